#include "tls/tls_context.h"

#include <arpa/inet.h>
#include <time.h>

#include <openssl/err.h>

#include "absl/strings/str_cat.h"

namespace dotproxy::tls {
namespace {

constexpr size_t kMaxCachedSessions = 8;

int ContextIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::string OpenSslErrors() {
  std::string out;
  unsigned long err;
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClientContext>> ClientContext::Create(const Options& options) {
  auto out = std::unique_ptr<ClientContext>(new ClientContext(options));
  in6_addr scratch;
  out->is_ip_name_ = inet_pton(AF_INET, options.server_name.c_str(), &scratch) == 1 ||
                     inet_pton(AF_INET6, options.server_name.c_str(), &scratch) == 1;
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    return absl::InternalError(absl::StrCat("SSL_CTX_new: ", OpenSslErrors()));
  }
  out->ctx_ = ctx;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (options.ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot load the default trust store: ", OpenSslErrors()));
    }
  } else if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load ca_file ", options.ca_file, ": ", OpenSslErrors()));
  }
  // Client-side ticket cache kept by us, per server, so each ticket is used once.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, &ClientContext::OnNewSession);
  SSL_CTX_set_ex_data(ctx, ContextIndex(), out.get());
  // Plain DNS payloads are small; a partial SSL_write never happens with our BIO, which never
  // refuses bytes, so the default (all-or-nothing) write mode is what we want. Idle connections
  // give their ~34 KiB of record buffers back (the memory target is <= 48 KiB per connection).
  // A write that had to wait for a read (TryWrite: kWantRead) is retried from a buffer that may
  // have grown and moved meanwhile.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Issue 9: a server has no business renegotiating a DoT connection (TLS 1.2).
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  if (options.ktls) {
    SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
  }
  return out;
}

ClientContext::~ClientContext() {
  for (SSL_SESSION* s : sessions_) {
    SSL_SESSION_free(s);
  }
  if (ctx_ != nullptr) {
    SSL_CTX_free(ctx_);
  }
}

int ClientContext::OnNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* self =
      static_cast<ClientContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ContextIndex()));
  if (self == nullptr) {
    return 0;
  }
  self->StoreSession(session);
  return 1;  // we keep the reference
}

void ClientContext::StoreSession(SSL_SESSION* session) {
  ++tickets_received_;
  sessions_.push_back(session);
  while (sessions_.size() > kMaxCachedSessions) {
    SSL_SESSION_free(sessions_.front());
    sessions_.pop_front();
  }
}

SSL_SESSION* ClientContext::TakeSession() {
  const time_t now = time(nullptr);
  while (!sessions_.empty()) {
    // Newest first: the freshest ticket is the most likely to be accepted.
    SSL_SESSION* s = sessions_.back();
    sessions_.pop_back();
    const time_t expires = SSL_SESSION_get_time(s) + SSL_SESSION_get_timeout(s);
    if (SSL_SESSION_is_resumable(s) == 1 && expires > now) {
      return s;
    }
    SSL_SESSION_free(s);
  }
  return nullptr;
}

}  // namespace dotproxy::tls
