// File: net/ktls.h
//
// The kernel side of TLS offload (kTLS) on an established TCP socket: the `tls` upper layer
// protocol, the per-direction keys OpenSSL hands over, and the records that are not application
// data. System calls only; what to offload is decided by tls::TlsStream and upstream::Connection.
//
//   if (net::KtlsAvailable()) ...                       // once, at start-up
//   net::InstallKtlsKey(fd, /*tx=*/true, crypto_info);  // from the BIO's SET_KTLS control
#ifndef DOTPROXY_NET_KTLS_H_
#define DOTPROXY_NET_KTLS_H_

#include <cstddef>
#include <cstdint>

namespace dotproxy::net {

// Whether this kernel has the `tls` ULP (loaded, or loadable by us): setting it on a TCP socket
// that is not connected fails with ENOTCONN when it exists and with ENOENT when it does not.
bool KtlsAvailable();

// The size of the `struct tls12_crypto_info_*` that starts with `crypto_info`, from its
// cipher_type; 0 for a cipher the kernel headers do not know.
size_t CryptoInfoLength(const void* crypto_info);

// Sets TCP_ULP "tls" (unless *ulp_set; sets it when done) and the key of one direction. Returns
// 0 or the errno of the call that failed (ENOENT: no kTLS in this kernel; EINVAL, ENOPROTOOPT:
// version or cipher not supported).
int InstallKtlsKey(int fd, bool* ulp_set, bool tx, const void* crypto_info);

// One record of `type` (alert 21, handshake 22) on a socket with a TX key, synchronously and
// without blocking (TLS_SET_RECORD_TYPE). True if all of it went out.
bool SendKtlsRecord(int fd, uint8_t type, const uint8_t* data, size_t len);

// Writes `len` bytes now, without blocking. Returns the bytes written (0 on EAGAIN) or -1.
long SendNow(int fd, const uint8_t* data, size_t len);  // NOLINT(runtime/int)

// Room for the TLS_GET_RECORD_TYPE control message of a kTLS receive.
inline constexpr size_t kKtlsControlBytes = 32;
// The record type a kTLS recvmsg reported: the TLS_GET_RECORD_TYPE control message, 23
// (application data) when there is none, or -1 when the control data was cut (MSG_CTRUNC).
int KtlsRecordType(const void* msghdr);

}  // namespace dotproxy::net

#endif  // DOTPROXY_NET_KTLS_H_
