#include "net/ktls.h"

#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

namespace dotproxy::net {
namespace {

constexpr uint8_t kApplicationData = 23;

}  // namespace

bool KtlsAvailable() {
  base::UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.is_valid()) {
    return false;
  }
  // tcp_set_ulp looks the ULP up (loading tls.ko with CAP_NET_ADMIN) before tls_init refuses a
  // socket that is not established.
  const int rc = setsockopt(fd.get(), SOL_TCP, TCP_ULP, "tls", 3);
  return rc == 0 || errno == ENOTCONN;
}

size_t CryptoInfoLength(const void* crypto_info) {
  tls_crypto_info info;
  memcpy(&info, crypto_info, sizeof(info));
  switch (info.cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
      return sizeof(tls12_crypto_info_aes_gcm_128);
    case TLS_CIPHER_AES_GCM_256:
      return sizeof(tls12_crypto_info_aes_gcm_256);
    case TLS_CIPHER_AES_CCM_128:
      return sizeof(tls12_crypto_info_aes_ccm_128);
    case TLS_CIPHER_CHACHA20_POLY1305:
      return sizeof(tls12_crypto_info_chacha20_poly1305);
    default:
      return 0;
  }
}

int InstallKtlsKey(int fd, bool* ulp_set, bool tx, const void* crypto_info) {
  const size_t len = CryptoInfoLength(crypto_info);
  if (len == 0) {
    return EINVAL;
  }
  if (!*ulp_set) {
    if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", 3) != 0) {
      return errno;
    }
    *ulp_set = true;
  }
  if (setsockopt(fd, SOL_TLS, tx ? TLS_TX : TLS_RX, crypto_info, static_cast<socklen_t>(len)) !=
      0) {
    return errno;
  }
  return 0;
}

bool SendKtlsRecord(int fd, uint8_t type, const uint8_t* data, size_t len) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(type))] = {};
  iovec iov{const_cast<uint8_t*>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_TLS;
  cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
  cmsg->cmsg_len = CMSG_LEN(sizeof(type));
  memcpy(CMSG_DATA(cmsg), &type, sizeof(type));
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(len);
}

long SendNow(int fd, const uint8_t* data, size_t len) {  // NOLINT(runtime/int)
  ssize_t n;
  do {
    n = send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  }
  return n;
}

int KtlsRecordType(const void* msghdr_ptr) {
  const auto* msg = static_cast<const msghdr*>(msghdr_ptr);
  if ((msg->msg_flags & MSG_CTRUNC) != 0) {
    return -1;
  }
  for (const cmsghdr* cmsg = CMSG_FIRSTHDR(msg); cmsg != nullptr;
       cmsg = CMSG_NXTHDR(const_cast<msghdr*>(msg), const_cast<cmsghdr*>(cmsg))) {
    if (cmsg->cmsg_level == SOL_TLS && cmsg->cmsg_type == TLS_GET_RECORD_TYPE) {
      uint8_t type = 0;
      memcpy(&type, CMSG_DATA(cmsg), sizeof(type));
      return type;
    }
  }
  return kApplicationData;
}

}  // namespace dotproxy::net
