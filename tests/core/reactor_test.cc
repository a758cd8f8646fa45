#include "core/reactor.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace dotproxy::core {
namespace {

// An owner with two kinds of requests, a timer and a flush hook, recording what the reactor
// hands it.
struct Owner {
  std::vector<std::pair<char, uint32_t>> completions;  // ('a' or 'b', op.index)
  int timers_fired = 0;
  int flushes = 0;
  int work_left = 0;  // the flush hook reports work this many times
  Operation a;
  Operation b;
  Timer timer;

  void OnA(const Operation& op, const io_uring_cqe& /*cqe*/) {
    completions.emplace_back('a', op.index);
  }
  void OnB(const Operation& op, const io_uring_cqe& /*cqe*/) {
    completions.emplace_back('b', op.index);
  }
  void OnTimer(Timer* t) {
    EXPECT_EQ(t, &timer);
    ++timers_fired;
  }
  bool Flush() {
    ++flushes;
    if (work_left > 0) {
      --work_left;
      return true;
    }
    return false;
  }
};

std::unique_ptr<Reactor> MakeReactor() {
  auto reactor = Reactor::Create();
  return reactor.ok() ? std::move(reactor).value() : nullptr;
}

TEST(ReactorTest, DispatchesEachCompletionToItsRegisteredHandler) {
  auto reactor = MakeReactor();
  if (reactor == nullptr) {
    GTEST_SKIP() << "io_uring unavailable";
  }
  Owner owner;
  owner.a = {reactor->OnCompletion<&Owner::OnA>(&owner), 7, 0};
  owner.b = {reactor->OnCompletion<&Owner::OnB>(&owner), 9, 0};
  EXPECT_NE(owner.a.handler, owner.b.handler);
  EXPECT_NE(owner.a.handler, kIgnoreHandler);
  io_uring_prep_nop(reactor->GetSqe(&owner.b));
  io_uring_prep_nop(reactor->GetSqe(&owner.a));
  io_uring_prep_nop(reactor->GetSqe(nullptr));  // ignored
  for (int i = 0; i < 10 && owner.completions.size() < 2; ++i) {
    reactor->RunOnce(100);
  }
  ASSERT_EQ(owner.completions.size(), 2u);
  EXPECT_EQ(owner.completions[0], std::make_pair('b', 9u));
  EXPECT_EQ(owner.completions[1], std::make_pair('a', 7u));
}

TEST(ReactorTest, FiresTimersThroughTheirKind) {
  auto reactor = MakeReactor();
  if (reactor == nullptr) {
    GTEST_SKIP() << "io_uring unavailable";
  }
  Owner owner;
  owner.timer.owner = &owner;
  owner.timer.kind = reactor->OnTimer<&Owner::OnTimer>(&owner);
  EXPECT_NE(owner.timer.kind, 0u);
  reactor->timers().Schedule(&owner.timer, reactor->now_ms() + 5);
  for (int i = 0; i < 50 && owner.timers_fired == 0; ++i) {
    reactor->RunOnce(20);
  }
  EXPECT_EQ(owner.timers_fired, 1);
  EXPECT_GE(reactor->now_ms(), owner.timer.expiry_ms == INT64_MAX ? 0 : owner.timer.expiry_ms);
}

TEST(ReactorTest, FlushHooksRunAgainWhileOneReportsWorkButBounded) {
  auto reactor = MakeReactor();
  if (reactor == nullptr) {
    GTEST_SKIP() << "io_uring unavailable";
  }
  Owner first;
  Owner second;
  reactor->OnFlush<&Owner::Flush>(&first);
  reactor->OnFlush<&Owner::Flush>(&second);
  first.work_left = 1;
  reactor->RunOnce(0);
  EXPECT_EQ(first.flushes, 2);  // a pass with work, then a quiet pass
  EXPECT_EQ(second.flushes, 2);
  first.work_left = 100;        // a hook that always has work cannot starve the ring
  reactor->RunOnce(0);
  EXPECT_LE(first.flushes, 2 + 4);
  EXPECT_GT(first.work_left, 90);
}

TEST(ReactorTest, RequestStopFromAnotherThreadEndsRun) {
  auto reactor = MakeReactor();
  if (reactor == nullptr) {
    GTEST_SKIP() << "io_uring unavailable";
  }
  std::thread loop([&] { reactor->Run(); });
  reactor->RequestStop();
  loop.join();  // would hang (and time the test out) if the wake-up were lost
  EXPECT_TRUE(reactor->is_stop_requested());
}

TEST(ReactorTest, BusyPollingDispatchesCompletionsAndStops) {
  auto reactor = MakeReactor();
  if (reactor == nullptr) {
    GTEST_SKIP() << "io_uring unavailable";
  }
  reactor->set_busy_poll_ns(5'000'000);
  Owner owner;
  owner.a = {reactor->OnCompletion<&Owner::OnA>(&owner), 1, 0};
  for (uint32_t round = 0; round < 3; ++round) {
    io_uring_prep_nop(reactor->GetSqe(&owner.a));
    for (int i = 0; i < 10 && owner.completions.size() <= round; ++i) {
      reactor->RunOnce(100);
    }
  }
  EXPECT_EQ(owner.completions.size(), 3u);
  // A stop requested while the loop spins ends Run().
  std::thread stopper([&] { reactor->RequestStop(); });
  reactor->Run();
  stopper.join();
  EXPECT_TRUE(reactor->is_stop_requested());
}

TEST(ReactorTest, BufferRingsGetDistinctGroups) {
  auto reactor = MakeReactor();
  if (reactor == nullptr) {
    GTEST_SKIP() << "io_uring unavailable";
  }
  auto first = reactor->AddBufferRing(8, 512);
  auto second = reactor->AddBufferRing(8, 512);
  if (!first.ok() || !second.ok()) {
    GTEST_SKIP() << "provided-buffer rings unavailable";
  }
  EXPECT_NE((*first)->group_id(), (*second)->group_id());
}

}  // namespace
}  // namespace dotproxy::core
