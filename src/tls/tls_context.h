// File: tls/tls_context.h
//
// ClientContext is one SSL_CTX for one upstream server on one shard (OpenSSL 3.0 contends on
// contexts shared between threads), plus that server's cache of TLS session tickets. Peers are
// verified (SSL_VERIFY_PEER) against the default verify paths, which honour SSL_CERT_FILE and
// SSL_CERT_DIR, or against a configured CA file. TLS 1.2 is the minimum.
#ifndef DOTPROXY_TLS_TLS_CONTEXT_H_
#define DOTPROXY_TLS_TLS_CONTEXT_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <openssl/ssl.h>

#include "absl/status/statusor.h"

namespace dotproxy::tls {

class ClientContext {
 public:
  struct Options {
    std::string server_name;  // DNS name (SNI + name check) or IP literal (IP SAN check)
    std::string ca_file;      // empty: default verify paths
    bool ktls = false;        // SSL_OP_ENABLE_KTLS: OpenSSL offers keys to TlsStream's BIO
  };

  static absl::StatusOr<std::unique_ptr<ClientContext>> Create(const Options& options);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // A resumable ticket to try, or null. The caller owns the returned reference. RFC 8446
  // Appendix C.4: each ticket is used at most once.
  SSL_SESSION* TakeSession();

  SSL_CTX* ctx() { return ctx_; }
  const std::string& server_name() const { return options_.server_name; }
  bool is_ip_name() const { return is_ip_name_; }
  bool is_ktls_enabled() const { return options_.ktls; }
  // SHA-256 digests of a SubjectPublicKeyInfo (RFC 7858 §4.2); every handshake of a session on
  // this context must show a certificate with one of them. Empty (the default): no pinning.
  void set_spki_pins(std::vector<std::string> pins) { spki_pins_ = std::move(pins); }
  const std::vector<std::string>& spki_pins() const { return spki_pins_; }
  uint64_t tickets_received() const { return tickets_received_; }

 private:
  explicit ClientContext(const Options& options) : options_(options) {}
  static int OnNewSession(SSL* ssl, SSL_SESSION* session);
  void StoreSession(SSL_SESSION* session);

  Options options_;
  SSL_CTX* ctx_ = nullptr;
  bool is_ip_name_ = false;
  std::deque<SSL_SESSION*> sessions_;  // owned references, oldest first
  std::vector<std::string> spki_pins_;
  uint64_t tickets_received_ = 0;
};

}  // namespace dotproxy::tls

#endif  // DOTPROXY_TLS_TLS_CONTEXT_H_
