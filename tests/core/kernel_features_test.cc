#include "core/kernel_features.h"

#include <cerrno>

#include <liburing.h>

#include "gtest/gtest.h"

namespace dotproxy::core {
namespace {

// Everything dotproxy needs, as a 6.1 kernel reports it.
KernelFeatures Linux61() {
  KernelFeatures f;
  for (int op = 0; op < IORING_OP_LAST; ++op) {
    f.ops.set(static_cast<size_t>(op));
  }
  f.buf_ring = true;
  f.multishot_recvmsg = true;
  f.cancel_fd_all = true;
  return f;
}

TEST(KernelFeaturesTest, EverythingPresentPasses) {
  EXPECT_TRUE(CheckKernelFeatures(Linux61()).ok());
}

TEST(KernelFeaturesTest, OptionalFeaturesAreNotRequired) {
  KernelFeatures f = Linux61();
  f.recv_bundle = false;
  f.incremental_buffers = false;
  EXPECT_TRUE(CheckKernelFeatures(f).ok());
}

TEST(KernelFeaturesTest, NoMultishotRecvmsgNamesIt) {
  KernelFeatures f = Linux61();
  f.multishot_recvmsg = false;  // a 5.19 kernel
  const absl::Status s = CheckKernelFeatures(f);
  EXPECT_EQ(s.message(),
            "kernel too old for dotproxy (Linux 6.1 or newer needed): no io_uring multishot "
            "recvmsg (Linux 6.0)");
}

TEST(KernelFeaturesTest, MissingOpcodeNamesIt) {
  KernelFeatures f = Linux61();
  f.ops.reset(IORING_OP_SEND);
  const absl::Status s = CheckKernelFeatures(f);
  EXPECT_EQ(s.message(),
            "kernel too old for dotproxy (Linux 6.1 or newer needed): no io_uring IORING_OP_SEND "
            "(Linux 5.6)");
}

TEST(KernelFeaturesTest, NoMsgRingNamesIt) {
  KernelFeatures f = Linux61();
  f.ops.reset(IORING_OP_MSG_RING);  // a 5.17 kernel: no wake-up for the hand-off between shards
  const absl::Status s = CheckKernelFeatures(f);
  EXPECT_EQ(s.message(),
            "kernel too old for dotproxy (Linux 6.1 or newer needed): no io_uring "
            "IORING_OP_MSG_RING (Linux 5.18)");
}

TEST(KernelFeaturesTest, NoBufferRingsNamesThem) {
  KernelFeatures f = Linux61();
  f.buf_ring = false;
  f.multishot_recvmsg = false;  // the probe cannot try it without a buffer ring
  EXPECT_EQ(CheckKernelFeatures(f).message(),
            "kernel too old for dotproxy (Linux 6.1 or newer needed): no io_uring provided-buffer "
            "rings (Linux 5.19)");
}

TEST(KernelFeaturesTest, SetupFailureIsOneLineWithTheCause) {
  KernelFeatures f;
  f.setup_errno = EPERM;
  const absl::Status s = CheckKernelFeatures(f);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("io_uring_setup: EPERM"), absl::string_view::npos) << s.message();
  EXPECT_NE(s.message().find("kernel.io_uring_disabled"), absl::string_view::npos);
  EXPECT_EQ(s.message().find('\n'), absl::string_view::npos);
}

// The probe on the kernel the tests run on (6.18 here, 6.1 in tests/vm) finds what it needs.
TEST(KernelFeaturesTest, ThisKernelPasses) {
  const KernelFeatures found = ProbeKernelFeatures();
  if (found.setup_errno != 0) {
    GTEST_SKIP() << "io_uring unavailable here";
  }
  EXPECT_TRUE(CheckKernelFeatures(found).ok()) << CheckKernelFeatures(found).message();
  EXPECT_TRUE(found.ops.test(IORING_OP_RECVMSG));
  EXPECT_TRUE(found.multishot_recvmsg);
}

}  // namespace
}  // namespace dotproxy::core
