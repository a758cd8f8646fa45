#include "base/process.h"

#include <pthread.h>
#include <signal.h>

#include "gtest/gtest.h"
#include <sys/resource.h>

namespace dotproxy::base {
namespace {

TEST(PrepareProcessTest, BlocksStopSignalsIgnoresSigpipeAndRaisesFileLimit) {
  rlimit before{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &before), 0);
  sigset_t stop_signals;
  PrepareProcess(&stop_signals);

  EXPECT_EQ(sigismember(&stop_signals, SIGINT), 1);
  EXPECT_EQ(sigismember(&stop_signals, SIGTERM), 1);
  EXPECT_EQ(sigismember(&stop_signals, SIGPIPE), 0);
  sigset_t blocked;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, nullptr, &blocked), 0);
  EXPECT_EQ(sigismember(&blocked, SIGINT), 1);
  EXPECT_EQ(sigismember(&blocked, SIGTERM), 1);
  struct sigaction pipe_action {};
  ASSERT_EQ(sigaction(SIGPIPE, nullptr, &pipe_action), 0);
  EXPECT_EQ(pipe_action.sa_handler, SIG_IGN);
  rlimit after{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &after), 0);
  EXPECT_EQ(after.rlim_cur, before.rlim_max);
}

}  // namespace
}  // namespace dotproxy::base
