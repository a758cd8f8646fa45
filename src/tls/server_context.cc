#include "tls/server_context.h"

#include <unistd.h>

#include <openssl/err.h>

#include "absl/strings/str_cat.h"

namespace dotproxy::tls {
namespace {

std::string OpenSslErrors() {
  std::string out;
  unsigned long err;  // NOLINT(runtime/int)
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "unknown error" : out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerContext>> ServerContext::Create(const Options& options) {
  for (const std::string* path : {&options.cert_file, &options.key_file}) {
    if (path->empty() || access(path->c_str(), R_OK) != 0) {
      return absl::NotFoundError(absl::StrCat("cannot read ", path->empty() ? "(empty path)"
                                                                            : *path));
    }
  }
  auto out = std::unique_ptr<ServerContext>(new ServerContext());
  ERR_clear_error();
  out->ctx_ = SSL_CTX_new(TLS_server_method());
  if (out->ctx_ == nullptr) {
    return absl::InternalError(absl::StrCat("SSL_CTX_new: ", OpenSslErrors()));
  }
  SSL_CTX_set_min_proto_version(out->ctx_, TLS1_2_VERSION);
  if (options.max_version != 0) {
    SSL_CTX_set_max_proto_version(out->ctx_, options.max_version);
  }
  if (SSL_CTX_use_certificate_chain_file(out->ctx_, options.cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate ", options.cert_file, ": ", OpenSslErrors()));
  }
  if (SSL_CTX_use_PrivateKey_file(out->ctx_, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("private key ", options.key_file, ": ", OpenSslErrors()));
  }
  if (SSL_CTX_check_private_key(out->ctx_) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("private key ", options.key_file,
                                                   " does not match ", options.cert_file));
  }
  // Our BIO never refuses bytes, so writes are all-or-nothing, as with the client side.
  return out;
}

ServerContext::~ServerContext() {
  if (ctx_ != nullptr) {
    SSL_CTX_free(ctx_);
  }
}

}  // namespace dotproxy::tls
