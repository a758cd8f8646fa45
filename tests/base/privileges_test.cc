#include "base/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace dotproxy::base {
namespace {

using ::dotproxy::testutil::IsOk;
using ::dotproxy::testutil::StatusIs;

TEST(PrivilegesTest, IsRootMatchesEffectiveUid) { EXPECT_EQ(IsRoot(), geteuid() == 0); }

TEST(PrivilegesTest, UnknownUserIsNotFound) {
  EXPECT_THAT(DropPrivileges("no-such-user-dotproxy-test"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("no such user")));
}

TEST(PrivilegesTest, RootAsTargetIsRefused) {
  EXPECT_THAT(DropPrivileges("root"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PrivilegesTest, NotRootCannotSwitchToAnotherUser) {
  if (IsRoot()) {
    GTEST_SKIP() << "runs as root; covered by DropsToNobodyInAChild";
  }
  if (getpwnam("nobody") == nullptr || getpwnam("nobody")->pw_uid == getuid()) {
    GTEST_SKIP() << "no user nobody distinct from the current one";
  }
  EXPECT_THAT(DropPrivileges("nobody"), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// The child reports each failed check in its exit code, so the parent keeps root.
TEST(PrivilegesTest, DropsToNobodyInAChild) {
  if (!IsRoot()) {
    GTEST_SKIP() << "needs root";
  }
  const passwd* nobody = getpwnam("nobody");
  if (nobody == nullptr) {
    GTEST_SKIP() << "no user nobody";
  }
  const uid_t uid = nobody->pw_uid;
  const gid_t gid = nobody->pw_gid;
  // The groups initgroups must leave: nobody's primary group plus its memberships.
  std::vector<gid_t> expected(64);
  int expected_count = static_cast<int>(expected.size());
  ASSERT_GE(getgrouplist("nobody", gid, expected.data(), &expected_count), 0);
  expected.resize(static_cast<size_t>(expected_count));

  fflush(nullptr);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (!DropPrivileges("nobody").ok()) {
      _exit(10);
    }
    if (getuid() != uid || geteuid() != uid) {
      _exit(11);
    }
    if (getgid() != gid || getegid() != gid) {
      _exit(12);
    }
    std::vector<gid_t> groups(256);
    const int n = getgroups(static_cast<int>(groups.size()), groups.data());
    if (n != static_cast<int>(expected.size())) {
      _exit(13);
    }
    for (int i = 0; i < n; ++i) {
      bool found = false;
      for (const gid_t g : expected) {
        found = found || g == groups[static_cast<size_t>(i)];
      }
      if (!found || groups[static_cast<size_t>(i)] == 0) {
        _exit(14);
      }
    }
    if (setuid(0) == 0 || setgid(0) == 0 || setgroups(0, nullptr) == 0) {
      _exit(15);
    }
    // Already that user: a second call is a no-op.
    if (!DropPrivileges("nobody").ok()) {
      _exit(16);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10 drop failed, 11 uid, 12 gid, 13/14 groups, "
                                       "15 root regained, 16 second call";
  EXPECT_EQ(geteuid(), 0u);
}

}  // namespace
}  // namespace dotproxy::base
