#include "dns/tcp_framing.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "dns/header.h"
#include "gtest/gtest.h"

namespace dotproxy::dns {
namespace {

using Message = std::vector<uint8_t>;

Message MakeMessage(size_t len, uint8_t seed) {
  Message msg(len);
  for (size_t i = 0; i < len; ++i) {
    msg[i] = static_cast<uint8_t>(seed + i * 7);
  }
  return msg;
}

// Concatenates length-prefixed messages into one stream.
std::vector<uint8_t> Frame(const std::vector<Message>& messages) {
  std::vector<uint8_t> stream;
  for (const Message& msg : messages) {
    uint8_t prefix[2];
    WriteLengthPrefix(prefix, msg.size());
    stream.insert(stream.end(), prefix, prefix + 2);
    stream.insert(stream.end(), msg.begin(), msg.end());
  }
  return stream;
}

// Collects every message handed out; optionally refuses once the count reaches `accept_limit`.
struct Collector {
  std::vector<Message> messages;
  size_t accept_limit = SIZE_MAX;
  std::vector<const uint8_t*> pointers;

  auto Handler() {
    return [this](const uint8_t* msg, size_t len) {
      if (messages.size() >= accept_limit) {
        return false;
      }
      messages.emplace_back(msg, msg + len);
      pointers.push_back(msg);
      return true;
    };
  }
};

TEST(FrameReaderTest, SplitsTwoPipelinedMessages) {
  const std::vector<Message> sent = {MakeMessage(30, 1), MakeMessage(5, 2)};
  const std::vector<uint8_t> stream = Frame(sent);
  FrameReader reader;
  Collector collector;
  EXPECT_EQ(reader.Feed(stream.data(), stream.size(), collector.Handler()), FrameResult::kOk);
  EXPECT_EQ(collector.messages, sent);
  EXPECT_EQ(reader.buffered(), 0u);
  EXPECT_FALSE(reader.has_partial());
}

TEST(FrameReaderTest, HandsOutWholeMessagesWithoutCopying) {
  const std::vector<uint8_t> stream = Frame({MakeMessage(10, 1), MakeMessage(20, 2)});
  FrameReader reader;
  Collector collector;
  ASSERT_EQ(reader.Feed(stream.data(), stream.size(), collector.Handler()), FrameResult::kOk);
  ASSERT_EQ(collector.pointers.size(), 2u);
  EXPECT_EQ(collector.pointers[0], stream.data() + 2);
  EXPECT_EQ(collector.pointers[1], stream.data() + 14);
}

TEST(FrameReaderTest, SplitsTwoMessageStreamAtEveryPosition) {
  const std::vector<Message> sent = {MakeMessage(17, 3), MakeMessage(300, 4)};
  const std::vector<uint8_t> stream = Frame(sent);
  for (size_t split = 0; split <= stream.size(); ++split) {
    FrameReader reader;
    Collector collector;
    EXPECT_EQ(reader.Feed(stream.data(), split, collector.Handler()), FrameResult::kOk);
    const bool first_complete = split >= 2 + 17;
    EXPECT_EQ(collector.messages.size(), first_complete ? (split == stream.size() ? 2u : 1u) : 0u);
    EXPECT_EQ(reader.has_partial(), split != 0 && split != 19 && split != stream.size());
    EXPECT_EQ(reader.Feed(stream.data() + split, stream.size() - split, collector.Handler()),
              FrameResult::kOk);
    EXPECT_EQ(collector.messages, sent) << "split at " << split;
    EXPECT_EQ(reader.buffered(), 0u);
  }
}

TEST(FrameReaderTest, AcceptsOneByteAtATime) {
  const std::vector<Message> sent = {MakeMessage(1, 1), MakeMessage(12, 2), MakeMessage(256, 3)};
  const std::vector<uint8_t> stream = Frame(sent);
  FrameReader reader;
  Collector collector;
  for (size_t i = 0; i < stream.size(); ++i) {
    ASSERT_EQ(reader.Feed(&stream[i], 1, collector.Handler()), FrameResult::kOk);
  }
  EXPECT_EQ(collector.messages, sent);
  EXPECT_FALSE(reader.has_partial());
}

TEST(FrameReaderTest, HandlesManyMessagesPerChunk) {
  std::vector<Message> sent;
  for (int i = 0; i < 1000; ++i) {
    sent.push_back(MakeMessage(1 + i % 97, static_cast<uint8_t>(i)));
  }
  const std::vector<uint8_t> stream = Frame(sent);
  FrameReader reader;
  Collector collector;
  EXPECT_EQ(reader.Feed(stream.data(), stream.size(), collector.Handler()), FrameResult::kOk);
  EXPECT_EQ(collector.messages, sent);
}

TEST(FrameReaderTest, ReassemblesMaximumSizeMessage) {
  const std::vector<Message> sent = {MakeMessage(kMaxMessageSize, 9), MakeMessage(3, 1)};
  const std::vector<uint8_t> stream = Frame(sent);
  ASSERT_EQ(stream[0], 0xff);
  ASSERT_EQ(stream[1], 0xff);
  // Whole, then in odd-sized chunks.
  for (const size_t chunk : {stream.size(), size_t{1000}, size_t{4093}}) {
    FrameReader reader;
    Collector collector;
    for (size_t pos = 0; pos < stream.size(); pos += chunk) {
      const size_t n = std::min(chunk, stream.size() - pos);
      ASSERT_EQ(reader.Feed(stream.data() + pos, n, collector.Handler()), FrameResult::kOk);
    }
    EXPECT_EQ(collector.messages, sent) << chunk;
    EXPECT_EQ(reader.buffered(), 0u);
  }
}

TEST(FrameReaderTest, ReportsZeroLengthFrame) {
  const std::vector<uint8_t> stream = {0, 1, 'x', 0, 0, 0, 1, 'y'};
  FrameReader reader;
  Collector collector;
  EXPECT_EQ(reader.Feed(stream.data(), stream.size(), collector.Handler()),
            FrameResult::kZeroLength);
  ASSERT_EQ(collector.messages.size(), 1u);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(FrameReaderTest, ReportsZeroLengthFrameSplitAcrossChunks) {
  FrameReader reader;
  Collector collector;
  const uint8_t first = 0;
  const uint8_t second = 0;
  EXPECT_EQ(reader.Feed(&first, 1, collector.Handler()), FrameResult::kOk);
  EXPECT_TRUE(reader.has_partial());
  EXPECT_EQ(reader.Feed(&second, 1, collector.Handler()), FrameResult::kZeroLength);
  EXPECT_TRUE(collector.messages.empty());
}

TEST(FrameReaderTest, PauseKeepsRefusedMessageAndRestUntilResume) {
  const std::vector<Message> sent = {MakeMessage(4, 1), MakeMessage(5, 2), MakeMessage(6, 3)};
  const std::vector<uint8_t> stream = Frame(sent);
  const std::vector<uint8_t> tail = {0, 9, 'p', 'a'};  // start of a fourth message
  std::vector<uint8_t> chunk = stream;
  chunk.insert(chunk.end(), tail.begin(), tail.end());

  FrameReader reader;
  Collector collector;
  collector.accept_limit = 1;
  EXPECT_EQ(reader.Feed(chunk.data(), chunk.size(), collector.Handler()), FrameResult::kPaused);
  EXPECT_TRUE(reader.is_paused());
  EXPECT_FALSE(reader.has_partial());
  EXPECT_EQ(reader.buffered(), chunk.size() - 6);
  ASSERT_EQ(collector.messages.size(), 1u);

  collector.accept_limit = 2;
  EXPECT_EQ(reader.Resume(collector.Handler()), FrameResult::kPaused);
  EXPECT_EQ(collector.messages.size(), 2u);
  EXPECT_EQ(reader.buffered(), chunk.size() - 6 - 7);

  collector.accept_limit = SIZE_MAX;
  EXPECT_EQ(reader.Resume(collector.Handler()), FrameResult::kOk);
  EXPECT_FALSE(reader.is_paused());
  EXPECT_EQ(collector.messages, sent);
  EXPECT_TRUE(reader.has_partial());
  EXPECT_EQ(reader.buffered(), tail.size());

  const std::vector<uint8_t> rest = {'y', 'l', 'o', 'a', 'd', '!', '!'};
  EXPECT_EQ(reader.Feed(rest.data(), rest.size(), collector.Handler()), FrameResult::kOk);
  ASSERT_EQ(collector.messages.size(), 4u);
  EXPECT_EQ(collector.messages[3], (Message{'p', 'a', 'y', 'l', 'o', 'a', 'd', '!', '!'}));
  EXPECT_FALSE(reader.has_partial());
}

TEST(FrameReaderTest, PauseOnStraddlingMessageKeepsIt) {
  const std::vector<Message> sent = {MakeMessage(40, 1), MakeMessage(2, 2)};
  const std::vector<uint8_t> stream = Frame(sent);
  FrameReader reader;
  Collector collector;
  collector.accept_limit = 0;
  ASSERT_EQ(reader.Feed(stream.data(), 10, collector.Handler()), FrameResult::kOk);
  EXPECT_EQ(reader.Feed(stream.data() + 10, stream.size() - 10, collector.Handler()),
            FrameResult::kPaused);
  EXPECT_EQ(reader.buffered(), stream.size());
  collector.accept_limit = SIZE_MAX;
  EXPECT_EQ(reader.Resume(collector.Handler()), FrameResult::kOk);
  EXPECT_EQ(collector.messages, sent);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(FrameReaderTest, ResumeWhenNotPausedDoesNothing) {
  FrameReader reader;
  Collector collector;
  const std::vector<uint8_t> partial = {0, 5, 'a'};
  ASSERT_EQ(reader.Feed(partial.data(), partial.size(), collector.Handler()), FrameResult::kOk);
  EXPECT_EQ(reader.Resume(collector.Handler()), FrameResult::kOk);
  EXPECT_TRUE(collector.messages.empty());
  EXPECT_EQ(reader.buffered(), 3u);
}

TEST(FrameReaderTest, FeedWhilePausedBuffersWithoutDelivering) {
  const std::vector<uint8_t> stream = Frame({MakeMessage(3, 1), MakeMessage(4, 2)});
  FrameReader reader;
  Collector collector;
  collector.accept_limit = 0;
  ASSERT_EQ(reader.Feed(stream.data(), 5, collector.Handler()), FrameResult::kPaused);
  collector.accept_limit = SIZE_MAX;
  EXPECT_EQ(reader.Feed(stream.data() + 5, stream.size() - 5, collector.Handler()),
            FrameResult::kPaused);
  EXPECT_TRUE(collector.messages.empty());
  EXPECT_EQ(reader.Resume(collector.Handler()), FrameResult::kOk);
  EXPECT_EQ(collector.messages.size(), 2u);
}

TEST(FrameReaderTest, ZeroLengthFrameFoundOnResume) {
  const std::vector<uint8_t> stream = {0, 1, 'a', 0, 0};
  FrameReader reader;
  Collector collector;
  collector.accept_limit = 0;
  ASSERT_EQ(reader.Feed(stream.data(), stream.size(), collector.Handler()), FrameResult::kPaused);
  collector.accept_limit = SIZE_MAX;
  EXPECT_EQ(reader.Resume(collector.Handler()), FrameResult::kZeroLength);
  EXPECT_EQ(collector.messages.size(), 1u);
}

TEST(FrameReaderTest, BufferedAndHasPartialTrackThePrefix) {
  FrameReader reader;
  Collector collector;
  EXPECT_EQ(reader.buffered(), 0u);
  EXPECT_FALSE(reader.has_partial());
  const uint8_t high = 0;
  ASSERT_EQ(reader.Feed(&high, 1, collector.Handler()), FrameResult::kOk);
  EXPECT_EQ(reader.buffered(), 1u);
  EXPECT_TRUE(reader.has_partial());
  const uint8_t low = 2;
  ASSERT_EQ(reader.Feed(&low, 1, collector.Handler()), FrameResult::kOk);
  EXPECT_EQ(reader.buffered(), 2u);
  const uint8_t body[] = {'h', 'i'};
  ASSERT_EQ(reader.Feed(body, 2, collector.Handler()), FrameResult::kOk);
  EXPECT_EQ(reader.buffered(), 0u);
  EXPECT_FALSE(reader.has_partial());
  ASSERT_EQ(collector.messages.size(), 1u);
}

TEST(FrameReaderTest, ClearDropsBufferedBytes) {
  FrameReader reader;
  Collector collector;
  const std::vector<uint8_t> partial = {0, 5, 'a', 'b'};
  ASSERT_EQ(reader.Feed(partial.data(), partial.size(), collector.Handler()), FrameResult::kOk);
  reader.Clear();
  EXPECT_EQ(reader.buffered(), 0u);
  EXPECT_FALSE(reader.has_partial());
  const std::vector<uint8_t> whole = Frame({MakeMessage(2, 1)});
  EXPECT_EQ(reader.Feed(whole.data(), whole.size(), collector.Handler()), FrameResult::kOk);
  EXPECT_EQ(collector.messages.size(), 1u);
}

TEST(FrameReaderTest, WriteLengthPrefixIsBigEndian) {
  uint8_t prefix[2];
  WriteLengthPrefix(prefix, 0x1234);
  EXPECT_EQ(prefix[0], 0x12);
  EXPECT_EQ(prefix[1], 0x34);
  WriteLengthPrefix(prefix, kMaxMessageSize);
  EXPECT_EQ(prefix[0], 0xff);
  EXPECT_EQ(prefix[1], 0xff);
}

// Random chunking and random pauses must deliver exactly the sent messages, in order.
TEST(FrameReaderTest, RandomChunkingAndPausesPreserveMessages) {
  std::mt19937 rng(20240611);
  for (int round = 0; round < 200; ++round) {
    std::vector<Message> sent;
    const int count = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < count; ++i) {
      const size_t len = (rng() % 8 == 0) ? 1 + rng() % 20000 : 1 + rng() % 300;
      sent.push_back(MakeMessage(len, static_cast<uint8_t>(rng())));
    }
    const std::vector<uint8_t> stream = Frame(sent);
    FrameReader reader;
    std::vector<Message> received;
    auto handler = [&](const uint8_t* msg, size_t len) {
      if (rng() % 4 == 0) {
        return false;
      }
      received.emplace_back(msg, msg + len);
      return true;
    };
    size_t pos = 0;
    int steps = 0;
    while ((pos < stream.size() || reader.is_paused()) && steps++ < 100000) {
      if (reader.is_paused()) {
        ASSERT_NE(reader.Resume(handler), FrameResult::kZeroLength);
        continue;
      }
      const size_t n = std::min<size_t>(1 + rng() % 3000, stream.size() - pos);
      ASSERT_NE(reader.Feed(stream.data() + pos, n, handler), FrameResult::kZeroLength);
      pos += n;
    }
    EXPECT_EQ(received, sent) << "round " << round;
    EXPECT_EQ(reader.buffered(), 0u);
  }
}

}  // namespace
}  // namespace dotproxy::dns
