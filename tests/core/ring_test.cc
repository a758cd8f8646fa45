#include "core/ring.h"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "core/buffer_ring.h"
#include "gtest/gtest.h"

namespace dotproxy::core {
namespace {

// Skips the test where io_uring cannot be set up here (seccomp, kernel.io_uring_disabled).
std::unique_ptr<Ring> MakeRing(uint32_t entries) {
  auto ring = Ring::Create({entries, entries * 4});
  if (!ring.ok()) {
    return nullptr;
  }
  return std::move(ring).value();
}

TEST(RingTest, GetSqeFlushesWhenQueueFull) {
  auto ring = MakeRing(2);
  if (ring == nullptr) {
    GTEST_SKIP() << "io_uring unavailable";
  }
  Operation ops[7];
  for (Operation& op : ops) {
    io_uring_prep_nop(ring->GetSqe(&op));
  }
  unsigned seen = 0;
  for (int i = 0; i < 10 && seen < 7; ++i) {
    ASSERT_TRUE(ring->SubmitAndWait(100));
    seen += ring->Drain([&](const io_uring_cqe& cqe) {
      EXPECT_EQ(cqe.res, 0);
      const auto* op = static_cast<const Operation*>(io_uring_cqe_get_data(&cqe));
      EXPECT_GE(op, &ops[0]);
      EXPECT_LE(op, &ops[6]);
    });
  }
  EXPECT_EQ(seen, 7u);
}

TEST(RingTest, SubmitAndWaitReturnsOnTimeout) {
  auto ring = MakeRing(4);
  if (ring == nullptr) {
    GTEST_SKIP() << "io_uring unavailable";
  }
  EXPECT_TRUE(ring->SubmitAndWait(5));
  EXPECT_EQ(ring->Drain([](const io_uring_cqe&) {}), 0u);
}

TEST(RingTest, CountedInlineCompletionDoesNotEndTheWaitAlone) {
  auto ring = MakeRing(4);
  if (ring == nullptr) {
    GTEST_SKIP() << "io_uring unavailable";
  }
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  const int efd = eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(efd, 0);
  uint64_t value = 0;
  Operation read_op;
  Operation send_op;
  io_uring_prep_read(ring->GetSqe(&read_op), efd, &value, sizeof(value), 0);
  io_uring_prep_send(ring->GetSqe(&send_op), fds[0], "x", 1, MSG_DONTWAIT);
  ring->CountInlineCompletion();
  std::thread writer([efd] {
    usleep(20'000);
    const uint64_t one = 1;
    EXPECT_EQ(write(efd, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  });
  // The send completes while it is submitted; the wait goes on until the eventfd read does.
  ASSERT_TRUE(ring->SubmitAndWait(10'000));
  std::vector<const Operation*> seen;
  ring->Drain([&](const io_uring_cqe& cqe) {
    seen.push_back(static_cast<const Operation*>(io_uring_cqe_get_data(&cqe)));
  });
  writer.join();
  EXPECT_EQ(seen.size(), 2u);
  close(efd);
  close(fds[0]);
  close(fds[1]);
}

TEST(BufferRingTest, RejectsCountThatIsNotAPowerOfTwo) {
  auto ring = MakeRing(4);
  if (ring == nullptr) {
    GTEST_SKIP() << "io_uring unavailable";
  }
  EXPECT_FALSE(BufferRing::Create(ring->raw(), 7, 3, 256).ok());
}

TEST(BufferRingTest, ReceiveSelectsAProvidedBufferAndRecyclesIt) {
  auto ring = MakeRing(4);
  if (ring == nullptr) {
    GTEST_SKIP() << "io_uring unavailable";
  }
  auto buffers = BufferRing::Create(ring->raw(), 5, 2, 128);
  if (!buffers.ok()) {
    GTEST_SKIP() << "provided-buffer rings unavailable: " << buffers.status();
  }
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0);
  // Three receives through a two-buffer ring: the third only works if buffers are recycled.
  for (int i = 0; i < 3; ++i) {
    const char message[] = "hello";
    ASSERT_EQ(write(fds[1], message, sizeof(message)), static_cast<ssize_t>(sizeof(message)));
    Operation op;
    io_uring_sqe* sqe = ring->GetSqe(&op);
    io_uring_prep_recv(sqe, fds[0], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = (*buffers)->group_id();
    int got = 0;
    for (int tries = 0; tries < 20 && got == 0; ++tries) {
      ASSERT_TRUE(ring->SubmitAndWait(100));
      ring->Drain([&](const io_uring_cqe& cqe) {
        ASSERT_EQ(cqe.res, static_cast<int>(sizeof(message)));
        ASSERT_TRUE(cqe.flags & IORING_CQE_F_BUFFER);
        const uint16_t bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
        EXPECT_EQ(memcmp((*buffers)->buffer(bid), message, sizeof(message)), 0);
        (*buffers)->Recycle(bid);
        ++got;
      });
    }
    EXPECT_EQ(got, 1) << "receive " << i;
  }
  close(fds[0]);
  close(fds[1]);
}

}  // namespace
}  // namespace dotproxy::core
