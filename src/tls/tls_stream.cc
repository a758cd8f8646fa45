#include "tls/tls_stream.h"

#include <cstring>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "absl/strings/str_cat.h"

namespace dotproxy::tls {
namespace {

// OpenSSL's controls for a BIO that can do kTLS (internal to OpenSSL 3.x, commented in bio.h;
// HAProxy answers the same ones).
constexpr int kCtrlSetKtls = 72;             // ptr: struct tls_crypto_info...; num: 1 TX, 0 RX
constexpr int kCtrlSetKtlsRecordType = 74;   // num: the type of the next write
constexpr int kCtrlClearKtlsRecordType = 75;

}  // namespace

BIO_METHOD* TlsStream::Method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "dotproxy-uring");
    BIO_meth_set_read(m, &TlsStream::BioRead);
    BIO_meth_set_write(m, &TlsStream::BioWrite);
    BIO_meth_set_ctrl(m, &TlsStream::BioCtrl);
    BIO_meth_set_create(m, [](BIO* b) {
      BIO_set_init(b, 1);
      return 1;
    });
    return m;
  }();
  return method;
}

std::unique_ptr<TlsStream> TlsStream::NewSession(SSL_CTX* ctx, std::vector<uint8_t>* outbound) {
  auto out = std::unique_ptr<TlsStream>(new TlsStream());
  out->outbound_ = outbound;
  out->ssl_ = SSL_new(ctx);
  if (out->ssl_ == nullptr) {
    return nullptr;
  }
  BIO* bio = BIO_new(Method());
  BIO_set_data(bio, out.get());
  SSL_set_bio(out->ssl_, bio, bio);
  SSL_set_msg_callback(out->ssl_, &TlsStream::OnMessage);
  SSL_set_msg_callback_arg(out->ssl_, out.get());
  return out;
}

std::unique_ptr<TlsStream> TlsStream::Create(ClientContext& context,
                                             std::vector<uint8_t>* outbound) {
  std::unique_ptr<TlsStream> out = NewSession(context.ctx(), outbound);
  if (out == nullptr) {
    return nullptr;
  }
  // A non-socket BIO leaves the role unset: without this the handshake fails.
  SSL_set_connect_state(out->ssl_);
  const std::string& name = context.server_name();
  // Fail closed: a session whose name check could not be set up would verify nothing.
  if (context.is_ip_name()) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(out->ssl_), name.c_str()) != 1) {
      return nullptr;
    }
  } else {
    // RFC 6066 §3: SNI carries DNS names only.
    if (SSL_set_tlsext_host_name(out->ssl_, name.c_str()) != 1 ||
        SSL_set1_host(out->ssl_, name.c_str()) != 1) {
      return nullptr;
    }
  }
  out->spki_pins_ = &context.spki_pins();
  if (SSL_SESSION* session = context.TakeSession(); session != nullptr) {
    SSL_set_session(out->ssl_, session);
    SSL_SESSION_free(session);
  }
  return out;
}

std::unique_ptr<TlsStream> TlsStream::CreateServer(ServerContext& context,
                                                   std::vector<uint8_t>* outbound) {
  std::unique_ptr<TlsStream> out = NewSession(context.ctx(), outbound);
  if (out != nullptr) {
    SSL_set_accept_state(out->ssl_);
  }
  return out;
}

TlsStream::~TlsStream() {
  if (ssl_ != nullptr) {
    SSL_free(ssl_);  // also frees the BIO
  }
}

void TlsStream::SetInput(const uint8_t* data, size_t len) {
  in_ = data;
  in_len_ = len;
  in_off_ = 0;
}

bool TlsStream::session_reused() const { return SSL_session_reused(ssl_) == 1; }

IoResult TlsStream::MapError(int rc, const char* what) {
  const int err = SSL_get_error(ssl_, rc);
  switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return IoResult::kWantRead;
    case SSL_ERROR_ZERO_RETURN:
      return IoResult::kClosed;
    default: {
      error_ = absl::StrCat(what, ": ");
      const long verify = SSL_get_verify_result(ssl_);  // NOLINT(runtime/int)
      if (verify != X509_V_OK) {
        absl::StrAppend(&error_, "certificate verification failed: ",
                        X509_verify_cert_error_string(verify));
      } else {
        unsigned long e;  // NOLINT(runtime/int)
        bool any = false;
        while ((e = ERR_get_error()) != 0) {
          char buf[256];
          ERR_error_string_n(e, buf, sizeof(buf));
          absl::StrAppend(&error_, any ? "; " : "", buf);
          any = true;
        }
        if (!any) {
          absl::StrAppend(&error_, err == SSL_ERROR_SYSCALL ? "unexpected end of stream"
                                                            : "TLS error");
        }
      }
      return IoResult::kFailed;
    }
  }
}

IoResult TlsStream::Handshake() {
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    // Checked on every handshake: a resumed session carries the certificate of its first one.
    if (spki_pins_ != nullptr && !spki_pins_->empty() && !MatchesPin()) {
      error_ = "handshake: no certificate of the server matches its spki_pins";
      return IoResult::kFailed;
    }
    is_established_ = true;
    return IoResult::kDone;
  }
  return MapError(rc, "handshake");
}

bool TlsStream::MatchesPin() const {
  const auto matches = [this](X509* cert) {
    unsigned char* der = nullptr;
    const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    if (len <= 0) {
      return false;
    }
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(der, static_cast<size_t>(len), digest);
    OPENSSL_free(der);
    for (const std::string& pin : *spki_pins_) {
      if (pin.size() == sizeof(digest) && CRYPTO_memcmp(pin.data(), digest, sizeof(digest)) == 0) {
        return true;
      }
    }
    return false;
  };
  // RFC 7469 §2.6: a pin may name any certificate of the chain.
  if (X509* leaf = SSL_get0_peer_certificate(ssl_); leaf != nullptr && matches(leaf)) {
    return true;
  }
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl_);
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    if (matches(sk_X509_value(chain, i))) {
      return true;
    }
  }
  return false;
}

IoResult TlsStream::Read(uint8_t* buf, size_t cap, size_t* n) {
  ERR_clear_error();
  const int rc = SSL_read_ex(ssl_, buf, cap, n);
  if (key_update_blocked_) {
    error_ = "read: a TLS 1.3 KeyUpdate asks to re-key the kernel TLS send side, which OpenSSL 3.0 "
             "cannot do: replacing the connection";
    return IoResult::kFailed;
  }
  if (rc == 1) {
    return IoResult::kDone;
  }
  return MapError(rc, "read");
}

IoResult TlsStream::TryWrite(const uint8_t* data, size_t len) {
  ERR_clear_error();
  size_t written = 0;
  const int rc = SSL_write_ex(ssl_, data, len, &written);
  if (rc == 1 && written == len) {
    return IoResult::kDone;
  }
  if (rc == 1) {
    error_ = "write: short write";
    return IoResult::kFailed;
  }
  // TLS 1.3 post-handshake messages (KeyUpdate, tickets) can make a write wait for a read; the
  // bytes it needs come with the next recv. Our BIO never refuses output, so WANT_WRITE does not
  // happen; it is treated the same way.
  const IoResult r = MapError(rc, "write");
  return r == IoResult::kClosed ? IoResult::kFailed : r;
}

void TlsStream::Shutdown() {
  ERR_clear_error();
  SSL_shutdown(ssl_);
}

bool TlsStream::RequestKeyUpdate() {
  ERR_clear_error();
  return SSL_version(ssl_) == TLS1_3_VERSION &&
         SSL_key_update(ssl_, SSL_KEY_UPDATE_REQUESTED) == 1;
}

int TlsStream::BioRead(BIO* bio, char* out, int len) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  self->read_hint_ = static_cast<size_t>(len);
  const size_t available = self->in_len_ - self->in_off_;
  if (available == 0) {
    BIO_set_retry_read(bio);
    return -1;
  }
  const size_t n = std::min(available, static_cast<size_t>(len));
  memcpy(out, self->in_ + self->in_off_, n);
  self->in_off_ += n;
  return static_cast<int>(n);
}

int TlsStream::BioWrite(BIO* bio, const char* in, int len) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const auto* p = reinterpret_cast<const uint8_t*>(in);
  if (self->tx_record_type_ != 0) {
    // Not application data on a kTLS TX socket: its own record with a type, after everything
    // queued before it.
    const uint8_t type = self->tx_record_type_;
    // The type is for this one write: OpenSSL's own socket BIO clears it once the record is out
    // (OpenSSL 3.0 never sends the clear control itself), or application data would follow it.
    self->tx_record_type_ = 0;
    if (!self->ktls_socket_->DrainNow(*self->outbound_) ||
        !self->ktls_socket_->SendRecord(type, p, static_cast<size_t>(len))) {
      return -1;
    }
    return len;
  }
  self->outbound_->insert(self->outbound_->end(), p, p + len);
  return len;
}

long TlsStream::BioCtrl(BIO* bio, int cmd, long num, void* ptr) {  // NOLINT
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // the outbound vector is flushed by the owner's next send (or by SET_KTLS)
    default:
      return static_cast<TlsStream*>(BIO_get_data(bio))->KtlsCtrl(cmd, num, ptr);
  }
}

long TlsStream::KtlsCtrl(int cmd, long num, void* ptr) {  // NOLINT(runtime/int)
  switch (cmd) {
    case kCtrlSetKtls: {
      if (ktls_socket_ == nullptr) {
        return 0;
      }
      const bool tx = num != 0;
      // The kernel encrypts everything written after TLS_TX, so what OpenSSL queued before must
      // leave first; the kernel decrypts everything read after TLS_RX, so nothing already read
      // may wait here.
      if (tx ? !ktls_socket_->DrainNow(*outbound_) : in_off_ < in_len_) {
        return 0;
      }
      if (!ktls_socket_->InstallKey(tx, ptr)) {
        return 0;
      }
      (tx ? ktls_tx_ : ktls_rx_) = true;
      return 1;
    }
    case BIO_CTRL_GET_KTLS_SEND:
      return ktls_tx_ ? 1 : 0;
    case BIO_CTRL_GET_KTLS_RECV:
      return ktls_rx_ ? 1 : 0;
    case kCtrlSetKtlsRecordType:
      tx_record_type_ = static_cast<uint8_t>(num);
      return 1;
    case kCtrlClearKtlsRecordType:
      tx_record_type_ = 0;
      return 1;
    default:
      return 0;
  }
}

void TlsStream::OnMessage(int write_p, int /*version*/, int content_type, const void* buf,
                          size_t len, SSL* /*ssl*/, void* arg) {
  auto* self = static_cast<TlsStream*>(arg);
  const auto* msg = static_cast<const uint8_t*>(buf);
  // RFC 8446 §4.6.3: KeyUpdate (type 24, 3-byte length, request_update); 1 asks us to re-key.
  constexpr uint8_t kKeyUpdate = 24;
  if (write_p == 0 && content_type == SSL3_RT_HANDSHAKE && self->ktls_tx_ && len >= 5 &&
      msg[0] == kKeyUpdate && msg[4] == 1) {
    self->key_update_blocked_ = true;
  }
}

}  // namespace dotproxy::tls
