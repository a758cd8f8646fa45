#include "tls/tls_stream.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "gtest/gtest.h"
#include "tls/server_context.h"
#include "tls/tls_context.h"

namespace dotproxy::tls {
namespace {

// A throwaway PKI from tests/testing/gen_certs.sh, made once per test binary and removed at exit.
const std::string& CertDir() {
  static std::string made;
  static const std::string dir = [] {
    char tmpl[] = "/tmp/dotproxy-tls-test-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      return std::string();
    }
    made = tmpl;
    std::atexit([] { std::filesystem::remove_all(made); });
    const std::string cmd = std::string("sh ") + DOTPROXY_SOURCE_ROOT +
                            "/tests/testing/gen_certs.sh " + made + " >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0 ? made : std::string();
  }();
  return dir;
}

// SHA-256 of the DER SubjectPublicKeyInfo of the certificate in `pem_path`.
std::string SpkiDigest(const std::string& pem_path) {
  FILE* f = fopen(pem_path.c_str(), "r");
  if (f == nullptr) {
    return "";
  }
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (cert == nullptr) {
    return "";
  }
  unsigned char* der = nullptr;
  const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(der, static_cast<size_t>(len), reinterpret_cast<unsigned char*>(digest.data()));
  OPENSSL_free(der);
  X509_free(cert);
  return digest;
}

class TlsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CertDir().empty()) {
      GTEST_SKIP() << "gen_certs.sh failed (openssl CLI missing?)";
    }
    auto server = ServerContext::Create({CertDir() + "/server.pem", CertDir() + "/server.key"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ctx_ = std::move(server).value();
    auto client = ClientContext::Create({"dot.test", CertDir() + "/ca.pem"});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ctx_ = std::move(client).value();
  }

  // Moves ciphertext both ways until neither side produces more (bounded); returns the client's
  // last handshake result.
  IoResult Connect(TlsStream& client, TlsStream& server) {
    IoResult c = IoResult::kWantRead;
    for (int round = 0; round < 20; ++round) {
      if (!client.is_established()) {
        c = client.Handshake();
        if (c == IoResult::kFailed) {
          return c;
        }
      }
      Deliver(client_out_, server);
      if (!server.is_established()) {
        server.Handshake();
      }
      Deliver(server_out_, client);
      if (client.is_established() && server.is_established() && client_out_.empty() &&
          server_out_.empty()) {
        break;
      }
    }
    // Read the session tickets the server sent after its handshake.
    uint8_t buf[256];
    size_t n = 0;
    client.Read(buf, sizeof(buf), &n);
    return c;
  }

  // A frame the client writes reaches the server intact (through OpenSSL on both sides).
  void ExpectWriteArrives(TlsStream& client, TlsStream& server) {
    const uint8_t query[] = {0, 3, 'a', 'b', 'c'};
    EXPECT_EQ(client.TryWrite(query, sizeof(query)), IoResult::kDone);
    Deliver(client_out_, server);
    uint8_t buf[64];
    size_t n = 0;
    ASSERT_EQ(server.Read(buf, sizeof(buf), &n), IoResult::kDone);
    EXPECT_EQ(std::vector<uint8_t>(buf, buf + n), std::vector<uint8_t>(query, query + sizeof(query)));
  }

  // Feeds everything in `from` to `to` (kept until the next Deliver) and empties `from`.
  void Deliver(std::vector<uint8_t>& from, TlsStream& to) {
    in_flight_.swap(from);
    from.clear();
    to.SetInput(in_flight_.data(), in_flight_.size());
  }

  std::unique_ptr<ServerContext> server_ctx_;
  std::unique_ptr<ClientContext> client_ctx_;
  std::vector<uint8_t> client_out_;
  std::vector<uint8_t> server_out_;
  std::vector<uint8_t> in_flight_;
};

TEST_F(TlsStreamTest, HandshakeWithoutPins) {
  auto client = TlsStream::Create(*client_ctx_, &client_out_);
  auto server = TlsStream::CreateServer(*server_ctx_, &server_out_);
  ASSERT_NE(client, nullptr);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Connect(*client, *server), IoResult::kDone);
  EXPECT_TRUE(client->is_established());
}

TEST_F(TlsStreamTest, MatchingPinPassesAndAWrongOneFailsTheHandshake) {
  const std::string pin = SpkiDigest(CertDir() + "/server.pem");
  ASSERT_EQ(pin.size(), 32u);
  client_ctx_->set_spki_pins({std::string(32, 'x'), pin});
  {
    auto client = TlsStream::Create(*client_ctx_, &client_out_);
    auto server = TlsStream::CreateServer(*server_ctx_, &server_out_);
    EXPECT_EQ(Connect(*client, *server), IoResult::kDone);
  }
  client_ctx_->set_spki_pins({SpkiDigest(CertDir() + "/wrong.pem")});
  auto client = TlsStream::Create(*client_ctx_, &client_out_);
  auto server = TlsStream::CreateServer(*server_ctx_, &server_out_);
  EXPECT_EQ(Connect(*client, *server), IoResult::kFailed);
  EXPECT_FALSE(client->is_established());
  EXPECT_NE(client->error().find("spki_pins"), std::string::npos) << client->error();
}

TEST_F(TlsStreamTest, PinsAreCheckedOnResumedHandshakes) {
  const std::string pin = SpkiDigest(CertDir() + "/server.pem");
  client_ctx_->set_spki_pins({pin});
  {
    auto client = TlsStream::Create(*client_ctx_, &client_out_);
    auto server = TlsStream::CreateServer(*server_ctx_, &server_out_);
    ASSERT_EQ(Connect(*client, *server), IoResult::kDone);
    EXPECT_FALSE(client->session_reused());
  }
  ASSERT_GT(client_ctx_->tickets_received(), 0u) << "no session ticket to resume with";
  {
    // The resumed session still shows the server's certificate, so the pin still matches.
    auto client = TlsStream::Create(*client_ctx_, &client_out_);
    auto server = TlsStream::CreateServer(*server_ctx_, &server_out_);
    ASSERT_EQ(Connect(*client, *server), IoResult::kDone);
    EXPECT_TRUE(client->session_reused());
  }
  // With a pin the server's key does not have, a resumed handshake fails too.
  client_ctx_->set_spki_pins({std::string(32, 'y')});
  auto client = TlsStream::Create(*client_ctx_, &client_out_);
  auto server = TlsStream::CreateServer(*server_ctx_, &server_out_);
  EXPECT_EQ(Connect(*client, *server), IoResult::kFailed);
  EXPECT_NE(client->error().find("spki_pins"), std::string::npos) << client->error();
}

TEST_F(TlsStreamTest, WritesAndReadsAfterTheHandshake) {
  auto client = TlsStream::Create(*client_ctx_, &client_out_);
  auto server = TlsStream::CreateServer(*server_ctx_, &server_out_);
  ASSERT_EQ(Connect(*client, *server), IoResult::kDone);
  const uint8_t query[] = {0, 3, 'a', 'b', 'c'};
  EXPECT_EQ(client->TryWrite(query, sizeof(query)), IoResult::kDone);
  Deliver(client_out_, *server);
  uint8_t buf[64];
  size_t n = 0;
  ASSERT_EQ(server->Read(buf, sizeof(buf), &n), IoResult::kDone);
  EXPECT_EQ(std::vector<uint8_t>(buf, buf + n), std::vector<uint8_t>(query, query + sizeof(query)));
}

// A socket whose kernel has no kTLS (TCP_ULP fails with ENOENT): records what OpenSSL offered.
class RefusingKtlsSocket : public KtlsSocket {
 public:
  bool DrainNow(std::vector<uint8_t>& bytes) override {
    ++drains;
    if (!can_drain) {
      return false;
    }
    drained += bytes.size();
    bytes.clear();  // pretend they went out; the test delivers nothing sent this way
    return true;
  }
  bool InstallKey(bool tx, const void* /*crypto_info*/) override {
    ++(tx ? tx_offers : rx_offers);
    return false;
  }
  bool SendRecord(uint8_t /*type*/, const uint8_t* /*data*/, size_t /*len*/) override {
    ADD_FAILURE() << "no record may bypass OpenSSL while nothing is offloaded";
    return false;
  }
  bool can_drain = true;
  int drains = 0;
  size_t drained = 0;
  int tx_offers = 0;
  int rx_offers = 0;
};

TEST_F(TlsStreamTest, Tls13OffersTheSendKeyAndARefusalKeepsUserSpace) {
  auto context = ClientContext::Create({"dot.test", CertDir() + "/ca.pem", /*ktls=*/true});
  ASSERT_TRUE(context.ok()) << context.status();
  RefusingKtlsSocket socket;
  socket.can_drain = false;  // as with a send in flight: nothing may be drained behind it
  auto client = TlsStream::Create(**context, &client_out_);
  auto server = TlsStream::CreateServer(*server_ctx_, &server_out_);
  client->EnableKtls(&socket);
  ASSERT_EQ(Connect(*client, *server), IoResult::kDone);
  EXPECT_GE(socket.drains, 1);      // OpenSSL 3.0 offered TX after the client's Finished
  EXPECT_EQ(socket.tx_offers, 0);   // declined before the key was installed
  EXPECT_EQ(socket.rx_offers, 0);   // OpenSSL 3.0 never offers TLS 1.3 RX
  EXPECT_FALSE(client->ktls_tx());
  EXPECT_FALSE(client->ktls_rx());
  ExpectWriteArrives(*client, *server);
}

TEST_F(TlsStreamTest, Tls12DeclinesWhatCannotSwitchAndKeepsUserSpace) {
  auto server_ctx = ServerContext::Create(
      {CertDir() + "/server.pem", CertDir() + "/server.key", TLS1_2_VERSION});
  ASSERT_TRUE(server_ctx.ok()) << server_ctx.status();
  auto context = ClientContext::Create({"dot.test", CertDir() + "/ca.pem", /*ktls=*/true});
  ASSERT_TRUE(context.ok()) << context.status();
  RefusingKtlsSocket socket;
  auto client = TlsStream::Create(**context, &client_out_);
  auto server = TlsStream::CreateServer(**server_ctx, &server_out_);
  client->EnableKtls(&socket);
  socket.can_drain = false;  // the TX switch is declined before any key is installed
  ASSERT_EQ(Connect(*client, *server), IoResult::kDone);
  EXPECT_EQ(std::string(client->version()), "TLSv1.2");
  EXPECT_GE(socket.drains, 1);     // TX was offered at the client's ChangeCipherSpec
  EXPECT_EQ(socket.tx_offers, 0);
  // RX is offered at the server's ChangeCipherSpec, but its Finished came in the same input and
  // is still unread (the kernel could not decrypt it): declined without touching the socket.
  EXPECT_EQ(socket.rx_offers, 0);
  EXPECT_FALSE(client->ktls_tx());
  EXPECT_FALSE(client->ktls_rx());
  ExpectWriteArrives(*client, *server);
}

}  // namespace
}  // namespace dotproxy::tls
