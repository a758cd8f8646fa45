#include "tls/server_stream.h"

#include <algorithm>
#include <cstring>

#include <openssl/err.h>

#include "absl/strings/str_cat.h"

namespace dotproxy::tls {

BIO_METHOD* ServerStream::Method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "dotproxy-uring-server");
    BIO_meth_set_read(m, &ServerStream::BioRead);
    BIO_meth_set_write(m, &ServerStream::BioWrite);
    BIO_meth_set_ctrl(m, &ServerStream::BioCtrl);
    BIO_meth_set_create(m, [](BIO* b) {
      BIO_set_init(b, 1);
      return 1;
    });
    return m;
  }();
  return method;
}

std::unique_ptr<ServerStream> ServerStream::Create(ServerContext& context,
                                                   std::vector<uint8_t>* outbound) {
  auto out = std::unique_ptr<ServerStream>(new ServerStream());
  out->outbound_ = outbound;
  out->ssl_ = SSL_new(context.ctx());
  if (out->ssl_ == nullptr) {
    return nullptr;
  }
  BIO* bio = BIO_new(Method());
  BIO_set_data(bio, out.get());
  SSL_set_bio(out->ssl_, bio, bio);
  // A non-socket BIO leaves the role unset: without this the handshake fails.
  SSL_set_accept_state(out->ssl_);
  return out;
}

ServerStream::~ServerStream() {
  if (ssl_ != nullptr) {
    SSL_free(ssl_);  // also frees the BIO
  }
}

void ServerStream::SetInput(const uint8_t* data, size_t len) {
  in_ = data;
  in_len_ = len;
  in_off_ = 0;
}

bool ServerStream::session_reused() const { return SSL_session_reused(ssl_) == 1; }

IoResult ServerStream::MapError(int rc, const char* what) {
  const int err = SSL_get_error(ssl_, rc);
  switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return IoResult::kWantRead;
    case SSL_ERROR_ZERO_RETURN:
      return IoResult::kClosed;
    default: {
      error_ = absl::StrCat(what, ": ");
      unsigned long e;  // NOLINT(runtime/int)
      bool any = false;
      while ((e = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        absl::StrAppend(&error_, any ? "; " : "", buf);
        any = true;
      }
      if (!any) {
        absl::StrAppend(&error_,
                        err == SSL_ERROR_SYSCALL ? "unexpected end of stream" : "TLS error");
      }
      return IoResult::kFailed;
    }
  }
}

IoResult ServerStream::Handshake() {
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    is_established_ = true;
    return IoResult::kDone;
  }
  return MapError(rc, "handshake");
}

IoResult ServerStream::Read(uint8_t* buf, size_t cap, size_t* n) {
  ERR_clear_error();
  if (SSL_read_ex(ssl_, buf, cap, n) == 1) {
    return IoResult::kDone;
  }
  return MapError(0, "read");
}

bool ServerStream::Write(const uint8_t* data, size_t len) {
  ERR_clear_error();
  size_t written = 0;
  const int rc = SSL_write_ex(ssl_, data, len, &written);
  if (rc != 1 || written != len) {
    MapError(rc, "write");
    return false;
  }
  return true;
}

void ServerStream::Shutdown() {
  ERR_clear_error();
  SSL_shutdown(ssl_);
}

int ServerStream::BioRead(BIO* bio, char* out, int len) {
  auto* self = static_cast<ServerStream*>(BIO_get_data(bio));
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

int ServerStream::BioWrite(BIO* bio, const char* in, int len) {
  auto* self = static_cast<ServerStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const auto* p = reinterpret_cast<const uint8_t*>(in);
  self->outbound_->insert(self->outbound_->end(), p, p + len);
  return len;
}

long ServerStream::BioCtrl(BIO* /*bio*/, int cmd, long /*num*/, void* /*ptr*/) {  // NOLINT
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // the outbound vector is flushed by the next send
}

}  // namespace dotproxy::tls
