// File: tls/server_stream.h
//
// ServerStream is one server-side TLS session driven by io_uring completions, the mirror of
// TlsStream: a custom BIO reads ciphertext straight from the bytes the last recv completion
// delivered (SetInput) and appends outgoing ciphertext to a caller-owned vector that becomes the
// next send. Nothing here blocks or makes a system call. One thread only.
//
//   stream->SetInput(buf, n);              // after a recv CQE
//   IoResult r = stream->Handshake();      // until kDone, then Read() until kWantRead
//   stream->Write(frames, len);            // ciphertext lands in `outbound`
#ifndef DOTPROXY_TLS_SERVER_STREAM_H_
#define DOTPROXY_TLS_SERVER_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "tls/server_context.h"
#include "tls/tls_stream.h"

namespace dotproxy::tls {

class ServerStream {
 public:
  // `outbound` receives ciphertext to send; it must outlive the stream. Null if SSL_new fails.
  static std::unique_ptr<ServerStream> Create(ServerContext& context,
                                              std::vector<uint8_t>* outbound);
  ~ServerStream();
  ServerStream(const ServerStream&) = delete;
  ServerStream& operator=(const ServerStream&) = delete;

  // Makes `len` bytes of received ciphertext available; they must stay valid until consumed
  // (input_remaining() == 0) or SetInput is called again.
  void SetInput(const uint8_t* data, size_t len);
  size_t input_remaining() const { return in_len_ - in_off_; }

  IoResult Handshake();
  // Reads decrypted bytes into buf; *n is set on kDone.
  IoResult Read(uint8_t* buf, size_t cap, size_t* n);
  // Encrypts `len` bytes; the records are appended to `outbound`. False on a fatal error.
  bool Write(const uint8_t* data, size_t len);
  // Queues a close_notify alert.
  void Shutdown();

  bool is_established() const { return is_established_; }
  bool session_reused() const;
  // The reason of the last kFailed, for logs.
  const std::string& error() const { return error_; }

 private:
  ServerStream() = default;
  IoResult MapError(int rc, const char* what);
  static int BioRead(BIO* bio, char* out, int len);
  static int BioWrite(BIO* bio, const char* in, int len);
  static long BioCtrl(BIO* bio, int cmd, long num, void* ptr);  // NOLINT(runtime/int)
  static BIO_METHOD* Method();

  SSL* ssl_ = nullptr;
  std::vector<uint8_t>* outbound_ = nullptr;  // not owned
  const uint8_t* in_ = nullptr;               // received ciphertext, not owned
  size_t in_len_ = 0;
  size_t in_off_ = 0;
  bool is_established_ = false;
  std::string error_;
};

}  // namespace dotproxy::tls

#endif  // DOTPROXY_TLS_SERVER_STREAM_H_
