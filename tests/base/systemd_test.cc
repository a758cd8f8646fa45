#include "base/systemd.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace dotproxy::base {
namespace {

using ::dotproxy::testutil::IsOk;
using ::testing::StartsWith;

// Saves and restores the environment variables the notifier reads.
class SystemdNotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) {
      const char* value = getenv(name);
      saved_.push_back({name, value != nullptr, value != nullptr ? value : ""});
      unsetenv(name);
    }
  }
  void TearDown() override {
    for (const Saved& saved : saved_) {
      if (saved.present) {
        setenv(saved.name, saved.value.c_str(), 1);
      } else {
        unsetenv(saved.name);
      }
    }
    if (!socket_path_.empty()) {
      unlink(socket_path_.c_str());
    }
  }

  // Binds a unix datagram socket, as systemd does, and points NOTIFY_SOCKET at it.
  void BindNotifySocket() {
    socket_path_ = absl::StrCat(::testing::TempDir(), "notify_test_", getpid(), ".sock");
    unlink(socket_path_.c_str());
    fd_ = UniqueFd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(fd_.is_valid());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(socket_path_.size(), sizeof(addr.sun_path));
    memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());
    ASSERT_EQ(bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << strerror(errno);
    timeval timeout{.tv_sec = 5, .tv_usec = 0};
    ASSERT_EQ(setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), 0);
    setenv("NOTIFY_SOCKET", socket_path_.c_str(), 1);
  }

  // The next datagram, or "" after 5 s.
  std::string Receive() {
    char buffer[4096];
    const ssize_t n = recv(fd_.get(), buffer, sizeof(buffer), 0);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
  }

  struct Saved {
    const char* name;
    bool present;
    std::string value;
  };
  std::vector<Saved> saved_;
  std::string socket_path_;
  UniqueFd fd_;
};

TEST_F(SystemdNotifierTest, OutsideSystemdEveryCallIsANoOp) {
  SystemdNotifier notifier;
  EXPECT_FALSE(notifier.enabled());
  EXPECT_THAT(notifier.Ready("up"), IsOk());
  EXPECT_THAT(notifier.Reloading(), IsOk());
  EXPECT_THAT(notifier.Stopping(), IsOk());
  EXPECT_THAT(notifier.Status("x"), IsOk());
  EXPECT_THAT(notifier.PingWatchdog(), IsOk());
  EXPECT_EQ(notifier.WatchdogInterval(), absl::ZeroDuration());
}

TEST_F(SystemdNotifierTest, SendsReadyReloadingReadyStoppingInOrder) {
  BindNotifySocket();
  SystemdNotifier notifier;
  ASSERT_TRUE(notifier.enabled());
  ASSERT_THAT(notifier.Ready("2 shards, 1/1 upstreams up"), IsOk());
  ASSERT_THAT(notifier.Status("120 qps"), IsOk());
  ASSERT_THAT(notifier.Reloading(), IsOk());
  ASSERT_THAT(notifier.Ready(""), IsOk());
  ASSERT_THAT(notifier.Stopping(), IsOk());

  EXPECT_EQ(Receive(), "READY=1\nSTATUS=2 shards, 1/1 upstreams up");
  EXPECT_EQ(Receive(), "STATUS=120 qps");
  const std::string reloading = Receive();
  EXPECT_THAT(reloading, StartsWith("RELOADING=1\nMONOTONIC_USEC="));
  uint64_t usec = 0;
  EXPECT_TRUE(absl::SimpleAtoi(reloading.substr(reloading.find('=', 12) + 1), &usec));
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  EXPECT_GT(usec, 0u);
  EXPECT_LE(usec, static_cast<uint64_t>(now.tv_sec) * 1000000u + now.tv_nsec / 1000u);
  EXPECT_EQ(Receive(), "READY=1");
  EXPECT_EQ(Receive(), "STOPPING=1");
}

TEST_F(SystemdNotifierTest, WatchdogIntervalAndPing) {
  BindNotifySocket();
  SystemdNotifier notifier;
  EXPECT_EQ(notifier.WatchdogInterval(), absl::ZeroDuration());
  setenv("WATCHDOG_USEC", "30000000", 1);
  setenv("WATCHDOG_PID", absl::StrCat(getpid()).c_str(), 1);
  EXPECT_EQ(notifier.WatchdogInterval(), absl::Seconds(30));
  // A watchdog meant for another process (the PID check of sd_watchdog_enabled) is off for us.
  setenv("WATCHDOG_PID", absl::StrCat(getpid() + 1).c_str(), 1);
  EXPECT_EQ(notifier.WatchdogInterval(), absl::ZeroDuration());
  ASSERT_THAT(notifier.PingWatchdog(), IsOk());
  EXPECT_EQ(Receive(), "WATCHDOG=1");
}

TEST_F(SystemdNotifierTest, UnreachableSocketIsAnError) {
  setenv("NOTIFY_SOCKET", "/nonexistent/dotproxy-notify.sock", 1);
  SystemdNotifier notifier;
  EXPECT_FALSE(notifier.Ready("").ok());
}

TEST(WatchdogGateTest, FirstCallSetsTheBaselineAndPings) {
  WatchdogGate gate;
  const std::vector<uint64_t> now = {5, 7};
  EXPECT_TRUE(gate.ShouldPing(now));
  EXPECT_EQ(gate.stalled_shard(), -1);
}

TEST(WatchdogGateTest, PingsWhileEveryShardProgresses) {
  WatchdogGate gate;
  EXPECT_TRUE(gate.ShouldPing(std::vector<uint64_t>{5, 7, 9}));
  EXPECT_TRUE(gate.ShouldPing(std::vector<uint64_t>{6, 100, 10}));
  EXPECT_TRUE(gate.ShouldPing(std::vector<uint64_t>{7, 101, 11}));
}

TEST(WatchdogGateTest, AWedgedShardStopsThePingsUntilItMovesAgain) {
  WatchdogGate gate;
  EXPECT_TRUE(gate.ShouldPing(std::vector<uint64_t>{5, 7, 9}));
  EXPECT_FALSE(gate.ShouldPing(std::vector<uint64_t>{6, 7, 10}));
  EXPECT_EQ(gate.stalled_shard(), 1);
  // Still wedged: compared with the last ping, not with the refused check.
  EXPECT_FALSE(gate.ShouldPing(std::vector<uint64_t>{8, 7, 12}));
  EXPECT_EQ(gate.stalled_shard(), 1);
  EXPECT_TRUE(gate.ShouldPing(std::vector<uint64_t>{9, 8, 13}));
  EXPECT_EQ(gate.stalled_shard(), -1);
}

TEST(WatchdogGateTest, ANewShardCountResetsTheBaseline) {
  WatchdogGate gate;
  EXPECT_TRUE(gate.ShouldPing(std::vector<uint64_t>{5, 7}));
  EXPECT_TRUE(gate.ShouldPing(std::vector<uint64_t>{5, 7, 1}));
  EXPECT_FALSE(gate.ShouldPing(std::vector<uint64_t>{6, 8, 1}));
  EXPECT_EQ(gate.stalled_shard(), 2);
}

}  // namespace
}  // namespace dotproxy::base
