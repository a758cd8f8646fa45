#include "base/fd_limits.h"

#include <sys/resource.h>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace dotproxy::base {
namespace {

using ::dotproxy::testutil::IsOk;
using ::dotproxy::testutil::StatusIs;

TEST(FdLimitsTest, BudgetIsShardsTimesPerShardPlusReserve) {
  EXPECT_EQ(FdBudget(4, 1024, 8, 16), 4u * (1024 + 8 + 16) + kProcessReserveFds);
  EXPECT_EQ(FdBudget(0, 1024, 8, 16), kProcessReserveFds);
  // No 32-bit overflow at the configuration limits.
  EXPECT_EQ(FdBudget(256, 1000000, 1024, 64),
            uint64_t{256} * (1000000 + 1024 + 64) + kProcessReserveFds);
}

TEST(FdLimitsTest, FitsExactlyAtTheLimit) {
  const uint64_t needed = FdBudget(2, 1024, 4, 16);
  EXPECT_THAT(CheckFdBudgetAgainst(needed, 2, 1024, 4, 16), IsOk());
  EXPECT_THAT(CheckFdBudgetAgainst(needed - 1, 2, 1024, 4, 16),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(FdLimitsTest, MessageGivesTheNumbersOnOneLine) {
  const absl::Status status = CheckFdBudgetAgainst(1024, 4, 1024, 8, 16);
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "not enough file descriptors: 4 shards x (1024 client + 8 upstream + 16 "
                       "spare) + 32 = 4224 fds, but RLIMIT_NOFILE is 1024; raise LimitNOFILE= "
                       "(or ulimit -n) or lower listener.tcp.max_connections or server.workers"));
}

TEST(FdLimitsTest, RaisesTheSoftLimitToTheHardLimit) {
  rlimit before;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &before), 0);
  if (before.rlim_max < 64) {
    GTEST_SKIP() << "hard RLIMIT_NOFILE too low to lower the soft one";
  }
  rlimit lowered = before;
  lowered.rlim_cur = 64;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
  ASSERT_OK_AND_ASSIGN(const uint64_t raised, RaiseFdLimit());
  EXPECT_EQ(raised, static_cast<uint64_t>(before.rlim_max));
  rlimit after;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &after), 0);
  EXPECT_EQ(after.rlim_cur, before.rlim_max);
  EXPECT_EQ(after.rlim_max, before.rlim_max);
  // Already at the hard limit: unchanged.
  ASSERT_OK_AND_ASSIGN(const uint64_t again, RaiseFdLimit());
  EXPECT_EQ(again, raised);
  EXPECT_THAT(CheckFdBudget(1, 16, 1, 1), IsOk());
}

}  // namespace
}  // namespace dotproxy::base
