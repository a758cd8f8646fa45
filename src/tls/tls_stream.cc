#include "tls/tls_stream.h"

#include <cstring>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "absl/strings/str_cat.h"

namespace dotproxy::tls {

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

int TlsStream::BioRead(BIO* bio, char* out, int len) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
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
  self->outbound_->insert(self->outbound_->end(), p, p + len);
  return len;
}

long TlsStream::BioCtrl(BIO* /*bio*/, int cmd, long /*num*/, void* /*ptr*/) {  // NOLINT
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // the outbound vector is flushed by the owner's next send
    default:
      return 0;  // kTLS hooks answer here later (#6)
  }
}

}  // namespace dotproxy::tls
