#include "net/send_queue.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "gtest/gtest.h"

namespace dotproxy::net {
namespace {

class SendQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ring = core::Ring::Create({4, 16});
    if (!ring.ok()) {
      GTEST_SKIP() << "io_uring unavailable: " << ring.status();
    }
    ring_ = std::move(ring).value();
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0);
  }
  void TearDown() override {
    if (ring_ != nullptr) {
      close(fds_[0]);
      close(fds_[1]);
    }
  }

  // Waits for the one send completion and returns its result.
  int WaitSend() {
    int res = INT32_MIN;
    for (int i = 0; i < 20 && res == INT32_MIN; ++i) {
      ring_->SubmitAndWait(100);
      ring_->Drain([&](const io_uring_cqe& cqe) { res = cqe.res; });
    }
    return res;
  }

  std::string ReadAll(size_t n) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
      const ssize_t r = read(fds_[1], out.data() + got, n - got);
      if (r <= 0) {
        break;
      }
      got += static_cast<size_t>(r);
    }
    out.resize(got);
    return out;
  }

  std::unique_ptr<core::Ring> ring_;
  int fds_[2] = {-1, -1};
  core::Operation op_;
};

TEST_F(SendQueueTest, BytesAppendedDuringASendGoOutTogetherInTheNext) {
  SendQueue queue;
  EXPECT_TRUE(queue.is_idle());
  EXPECT_FALSE(queue.Start(*ring_, &op_, fds_[0]));  // nothing to send
  queue.pending().assign({'a', 'b'});
  ASSERT_TRUE(queue.Start(*ring_, &op_, fds_[0]));
  EXPECT_TRUE(queue.is_sending());
  // One send in flight: more bytes wait, and Start does not submit a second send.
  queue.pending().insert(queue.pending().end(), {'c', 'd', 'e'});
  EXPECT_EQ(queue.queued_bytes(), 5u);
  EXPECT_FALSE(queue.Start(*ring_, &op_, fds_[0]));
  EXPECT_EQ(queue.OnComplete(*ring_, &op_, fds_[0], WaitSend()), SendQueue::Result::kDone);
  EXPECT_FALSE(queue.is_idle());
  EXPECT_EQ(queue.queued_bytes(), 3u);
  ASSERT_TRUE(queue.Start(*ring_, &op_, fds_[0]));
  EXPECT_EQ(queue.OnComplete(*ring_, &op_, fds_[0], WaitSend()), SendQueue::Result::kDone);
  EXPECT_TRUE(queue.is_idle());
  EXPECT_EQ(queue.queued_bytes(), 0u);
  EXPECT_EQ(ReadAll(5), "abcde");
}

TEST_F(SendQueueTest, ShortWriteResubmitsTheRest) {
  SendQueue queue;
  queue.pending().assign({'1', '2', '3', '4'});
  ASSERT_TRUE(queue.Start(*ring_, &op_, fds_[0]));
  const int res = WaitSend();
  ASSERT_EQ(res, 4);
  // Pretend the kernel took only one byte: the remaining three are submitted again.
  EXPECT_EQ(queue.OnComplete(*ring_, &op_, fds_[0], 1), SendQueue::Result::kPartial);
  EXPECT_TRUE(queue.is_sending());
  EXPECT_EQ(queue.queued_bytes(), 3u);
  EXPECT_EQ(queue.OnComplete(*ring_, &op_, fds_[0], WaitSend()), SendQueue::Result::kDone);
  EXPECT_EQ(ReadAll(7), "1234234");
}

TEST_F(SendQueueTest, FullSocketBufferWaitsForRoomInsteadOfFailing) {
  // Fill the socket: the queue's MSG_DONTWAIT send then completes at once with EAGAIN.
  ASSERT_EQ(fcntl(fds_[0], F_SETFL, O_NONBLOCK), 0);
  const std::string filler(4096, 'f');
  size_t filled = 0;
  for (ssize_t w = 0; w >= 0; filled += static_cast<size_t>(std::max<ssize_t>(w, 0))) {
    w = write(fds_[0], filler.data(), filler.size());
  }
  SendQueue queue;
  queue.pending().assign({'o', 'k'});
  ASSERT_TRUE(queue.Start(*ring_, &op_, fds_[0]));
  const int res = WaitSend();
  ASSERT_EQ(res, -EAGAIN);
  EXPECT_EQ(queue.OnComplete(*ring_, &op_, fds_[0], res), SendQueue::Result::kPartial);
  EXPECT_TRUE(queue.is_sending());  // again, now waiting in the kernel for room
  EXPECT_EQ(ReadAll(filled).size(), filled);
  EXPECT_EQ(queue.OnComplete(*ring_, &op_, fds_[0], WaitSend()), SendQueue::Result::kDone);
  EXPECT_EQ(ReadAll(2), "ok");
}

TEST_F(SendQueueTest, FailedSendIsReported) {
  SendQueue queue;
  queue.pending().assign({'x'});
  close(fds_[1]);
  fds_[1] = socket(AF_UNIX, SOCK_STREAM, 0);  // keep TearDown's close valid
  ASSERT_TRUE(queue.Start(*ring_, &op_, fds_[0]));
  const int res = WaitSend();
  EXPECT_LT(res, 0);
  EXPECT_EQ(queue.OnComplete(*ring_, &op_, fds_[0], res), SendQueue::Result::kFailed);
  EXPECT_FALSE(queue.is_sending());
  queue.Clear();
  EXPECT_TRUE(queue.is_idle());
}

}  // namespace
}  // namespace dotproxy::net
