// File: tls/tls_stream.h
//
// TlsStream is one TLS session (client, or server for the bench tools) driven by io_uring
// completions. A custom BIO (not BIO_s_mem)
// reads ciphertext straight from the bytes the last recv completion delivered (SetInput) and
// appends outgoing ciphertext to a caller-owned vector that becomes the next send. Nothing here
// blocks or makes a system call.
//
//   stream->SetInput(buf, n);              // after a recv CQE
//   IoResult r = stream->Handshake();      // or Read() once established
//   Send(outbound);                        // whatever the stream appended to `outbound`
#ifndef DOTPROXY_TLS_TLS_STREAM_H_
#define DOTPROXY_TLS_TLS_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "tls/server_context.h"
#include "tls/tls_context.h"

namespace dotproxy::tls {

// The socket side of kernel TLS (kTLS), implemented by the owner of the socket: OpenSSL hands
// its keys to our BIO (the BIO_CTRL_SET_KTLS controls) in the middle of a handshake or write, and
// the BIO calls these synchronously.
class KtlsSocket {
 public:
  // Sends `bytes` (ciphertext written before a TX switch) now and erases what went out. False if
  // not all of it can go out without waiting: the switch is then declined.
  virtual bool DrainNow(std::vector<uint8_t>& bytes) = 0;
  // TCP_ULP "tls" and the key of one direction. False: that direction stays in user space.
  virtual bool InstallKey(bool tx, const void* crypto_info) = 0;
  // One non-application record (an alert, a handshake message) on a socket with a TX key.
  virtual bool SendRecord(uint8_t type, const uint8_t* data, size_t len) = 0;

 protected:
  ~KtlsSocket() = default;
};

enum class IoResult : uint8_t {
  kDone,       // progress made (handshake finished, bytes read)
  kWantRead,   // needs more ciphertext: keep the recv armed
  kClosed,     // the peer sent close_notify
  kFailed,     // protocol, verification or truncation error: drop the connection
};

class TlsStream {
 public:
  // `outbound` receives ciphertext to send; it must outlive the stream.
  static std::unique_ptr<TlsStream> Create(ClientContext& context,
                                           std::vector<uint8_t>* outbound);
  // The server side of the same design, for bench/responder and test upstreams. Same contract.
  static std::unique_ptr<TlsStream> CreateServer(ServerContext& context,
                                                 std::vector<uint8_t>* outbound);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Makes `len` bytes of received ciphertext available; they must stay valid until consumed
  // (input_remaining() == 0) or SetInput is called again.
  void SetInput(const uint8_t* data, size_t len);
  size_t input_remaining() const { return in_len_ - in_off_; }

  IoResult Handshake();
  // Reads decrypted bytes into buf; *n is set on kDone.
  IoResult Read(uint8_t* buf, size_t cap, size_t* n);
  // Encrypts `len` bytes; the records are appended to `outbound`. kWantRead: OpenSSL must read
  // first (a post-handshake message is being processed); nothing was written, and the caller
  // retries with the same bytes (more may be appended) after the next received ciphertext.
  // kFailed on a fatal error.
  IoResult TryWrite(const uint8_t* data, size_t len);
  // TryWrite for callers that treat kWantRead as failure (the bench tools). False unless kDone.
  bool Write(const uint8_t* data, size_t len) { return TryWrite(data, len) == IoResult::kDone; }
  // Queues a close_notify alert.
  void Shutdown();
  // TLS 1.3 only: sends a KeyUpdate with the next write, asking the peer to update its keys too
  // (RFC 8446 §4.6.3, update_requested). For test upstreams (bench/responder --key-update-every).
  // False when the session is not TLS 1.3 or OpenSSL refuses.
  bool RequestKeyUpdate();

  // Lets OpenSSL offload to the kernel through `socket` (the context must have kTLS enabled).
  // TX moves to the kernel when OpenSSL offers it and nothing queued is stuck; RX (TLS 1.2 only
  // with OpenSSL 3.0) when no received ciphertext is left unread. After the RX switch the owner
  // must receive with recvmsg and a control buffer and pass each record as
  // [type, 3, 3, len_hi, len_lo] + plaintext (SetInput).
  void EnableKtls(KtlsSocket* socket) { ktls_socket_ = socket; }
  bool ktls_tx() const { return ktls_tx_; }
  bool ktls_rx() const { return ktls_rx_; }
  // The last kFailed of Read came from a TLS 1.3 KeyUpdate asking to re-key a kernel send side.
  bool is_key_update_blocked() const { return key_update_blocked_; }
  // How many bytes OpenSSL asked for in its last read: a reader that wants no bytes beyond the
  // current record (so that RX can switch at a record boundary) receives that many.
  size_t read_hint() const { return read_hint_; }

  bool is_established() const { return is_established_; }
  bool session_reused() const;
  // "TLSv1.2", "TLSv1.3": the negotiated version, for logs.
  const char* version() const { return SSL_get_version(ssl_); }
  // The reason of the last kFailed, for logs (verification result, OpenSSL error queue).
  const std::string& error() const { return error_; }

 private:
  TlsStream() = default;
  // An SSL on `ctx` wired to our BIO, role not yet set.
  static std::unique_ptr<TlsStream> NewSession(SSL_CTX* ctx, std::vector<uint8_t>* outbound);
  IoResult MapError(int rc, const char* what);
  // RFC 7858 §4.2: whether a certificate the server presented has a pinned SPKI.
  bool MatchesPin() const;
  static int BioRead(BIO* bio, char* out, int len);
  static int BioWrite(BIO* bio, const char* in, int len);
  static long BioCtrl(BIO* bio, int cmd, long num, void* ptr);  // NOLINT(runtime/int)
  static BIO_METHOD* Method();
  long KtlsCtrl(int cmd, long num, void* ptr);  // NOLINT(runtime/int)
  static void OnMessage(int write_p, int version, int content_type, const void* buf, size_t len,
                        SSL* ssl, void* arg);

  SSL* ssl_ = nullptr;
  std::vector<uint8_t>* outbound_ = nullptr;  // not owned
  const uint8_t* in_ = nullptr;               // received ciphertext, not owned
  size_t in_len_ = 0;
  size_t in_off_ = 0;
  bool is_established_ = false;
  std::string error_;
  const std::vector<std::string>* spki_pins_ = nullptr;  // the context's; empty: no pinning
  KtlsSocket* ktls_socket_ = nullptr;  // not owned; null: user space only
  bool ktls_tx_ = false;
  bool ktls_rx_ = false;
  // A TLS 1.3 KeyUpdate asked us to re-key while TX is in the kernel, which OpenSSL 3.0 cannot
  // follow (openssl#16307): the connection must be replaced.
  bool key_update_blocked_ = false;
  uint8_t tx_record_type_ = 0;  // the type of the next write when not application data; 0: none
  size_t read_hint_ = 5;        // a record header
};

}  // namespace dotproxy::tls

#endif  // DOTPROXY_TLS_TLS_STREAM_H_
