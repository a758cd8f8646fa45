// File: tls/server_context.h
//
// ServerContext is one server-side SSL_CTX (certificate chain + private key) for one thread;
// OpenSSL 3.0 contends on contexts shared between threads, so each thread creates its own.
// TLS 1.2 is the minimum; stateless session tickets are on (OpenSSL's default, two per
// handshake), so clients resume. Used by bench/responder (the DoT stand-in upstream).
#ifndef DOTPROXY_TLS_SERVER_CONTEXT_H_
#define DOTPROXY_TLS_SERVER_CONTEXT_H_

#include <memory>
#include <string>

#include <openssl/ssl.h>

#include "absl/status/statusor.h"

namespace dotproxy::tls {

class ServerContext {
 public:
  struct Options {
    std::string cert_file;  // PEM chain: leaf first, then intermediates
    std::string key_file;   // PEM private key of the leaf
    int max_version = 0;    // e.g. TLS1_2_VERSION to pin TLS 1.2; 0: the newest OpenSSL has
  };

  // Fails (InvalidArgument / NotFound) when the files cannot be read or do not match.
  static absl::StatusOr<std::unique_ptr<ServerContext>> Create(const Options& options);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  SSL_CTX* ctx() { return ctx_; }

 private:
  ServerContext() = default;

  SSL_CTX* ctx_ = nullptr;
};

}  // namespace dotproxy::tls

#endif  // DOTPROXY_TLS_SERVER_CONTEXT_H_
