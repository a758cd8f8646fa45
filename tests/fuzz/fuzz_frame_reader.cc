// Fuzz target: dns::FrameReader fed a stream in fuzzer-chosen chunks, with a handler that refuses
// (pauses) at fuzzer-chosen messages and Resume to continue. A plain model parses the whole
// stream at once; the reader must hand out exactly the model's frames, in order, whatever the
// split, report a zero-length frame once everything before it is delivered, and keep exactly the
// unconsumed bytes buffered.
//
// Input: [u8 options][u8 n][n split bytes][u8 m][m pause bytes][payload]
//   options bit 0: the payload is the raw stream; otherwise a list of messages that are framed
//                  with WriteLengthPrefix: [tag < 0x80][tag bytes], or [tag >= 0x80][u16 length]
//                  [u8 seed] for a generated message (length 0 makes a zero-length frame);
//   options bit 1: also Feed while paused (FrameReader keeps those bytes for Resume);
//   split byte b:  the next chunk is b bytes if b < 192, else (b - 191) KiB (cycled; after 4096
//                  chunks the rest of the stream is fed at once);
//   pause bits:    1 = refuse the message offered (cycled; at most twice in a row).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "base/check.h"
#include "dns/tcp_framing.h"
#include "tests/fuzz/fuzz_common.h"

namespace dotproxy::fuzz {
namespace {

constexpr size_t kMaxStreamBytes = 256 << 10;
constexpr size_t kMaxFeeds = 4096;
constexpr size_t kPrefixBytes = 2;

struct Frame {
  size_t offset = 0;  // of the length prefix in the stream
  size_t len = 0;     // message bytes after the prefix
  size_t end() const { return offset + kPrefixBytes + len; }
};

// The whole stream parsed at once: its complete frames, where a zero-length frame starts (if one
// is reached), and how many bytes of an incomplete frame trail otherwise.
struct Model {
  std::vector<Frame> frames;
  std::optional<size_t> zero_length_at;
  size_t trailing = 0;
};

Model Parse(const std::vector<uint8_t>& stream) {
  Model model;
  size_t pos = 0;
  while (stream.size() - pos >= kPrefixBytes) {
    const size_t len = size_t{stream[pos]} << 8 | stream[pos + 1];
    if (len == 0) {
      model.zero_length_at = pos;
      return model;
    }
    if (stream.size() - pos - kPrefixBytes < len) {
      break;
    }
    model.frames.push_back({pos, len});
    pos += kPrefixBytes + len;
  }
  model.trailing = stream.size() - pos;
  return model;
}

// Frames the message list of the payload; returns the stream and the message sizes up to the
// first zero-length one.
std::vector<uint8_t> EncodeMessages(InputReader& in, std::vector<size_t>* sizes) {
  std::vector<uint8_t> stream;
  bool zero_seen = false;
  while (in.remaining() > 0 && stream.size() < kMaxStreamBytes) {
    const uint8_t tag = in.U8();
    std::vector<uint8_t> msg;
    if (tag < 0x80) {
      msg = in.Bytes(tag);
    } else {
      // The seed everywhere and a position mark every 64 bytes: cheap to make (the loops of this
      // file are instrumented too), and a window shifted inside the message does not compare equal.
      const size_t len = in.U16();
      msg.assign(len, in.U8());
      for (size_t i = 0; i < msg.size(); i += 64) {
        msg[i] = static_cast<uint8_t>(msg[i] + 1 + i / 64);
      }
    }
    uint8_t prefix[kPrefixBytes];
    dns::WriteLengthPrefix(prefix, msg.size());
    stream.insert(stream.end(), prefix, prefix + kPrefixBytes);
    stream.insert(stream.end(), msg.begin(), msg.end());
    zero_seen = zero_seen || msg.empty();
    if (!zero_seen) {
      sizes->push_back(msg.size());
    }
  }
  return stream;
}

class Harness {
 public:
  Harness(const std::vector<uint8_t>& stream, std::vector<uint8_t> splits,
          std::vector<uint8_t> pauses, bool feed_while_paused)
      : stream_(stream),
        model_(Parse(stream)),
        splits_(std::move(splits)),
        pauses_(std::move(pauses)),
        feed_while_paused_(feed_while_paused) {
    if (std::all_of(splits_.begin(), splits_.end(), [](uint8_t b) { return b == 0; })) {
      splits_.clear();  // no progress otherwise: feed everything at once
    }
  }

  const Model& model() const { return model_; }

  void Run() {
    const auto handler = [this](const uint8_t* msg, size_t len) { return Offer(msg, len); };
    bool fed_while_paused = false;
    while (!saw_zero_length_) {
      if (reader_.is_paused() &&
          !(feed_while_paused_ && !fed_while_paused && fed_ < stream_.size())) {
        fed_while_paused = false;
        Check(reader_.Resume(handler));
        continue;
      }
      if (fed_ == stream_.size()) {
        break;
      }
      fed_while_paused = reader_.is_paused();
      // A fresh exact-size copy per chunk: ASan reports a reader that reads past the chunk or
      // keeps a pointer into it after Feed returns.
      const std::vector<uint8_t> chunk(
          stream_.begin() + static_cast<ptrdiff_t>(fed_),
          stream_.begin() + static_cast<ptrdiff_t>(fed_ + NextChunk()));
      fed_ += chunk.size();
      const dns::FrameResult result = reader_.Feed(chunk.data(), chunk.size(), handler);
      CHECK(!fed_while_paused || result == dns::FrameResult::kPaused);
      Check(result);
    }
    if (saw_zero_length_) {
      return;
    }
    // Everything was fed and nothing is paused: every frame is delivered, the tail is buffered.
    CHECK(!model_.zero_length_at.has_value());
    CHECK(next_ == model_.frames.size());
    CHECK(reader_.buffered() == model_.trailing);
    CHECK(reader_.has_partial() == (model_.trailing > 0));
    reader_.Clear();
    CHECK(reader_.buffered() == 0 && !reader_.has_partial() && !reader_.is_paused());
  }

 private:
  size_t NextChunk() {
    size_t want = stream_.size();
    // Bounded work per input: after kMaxFeeds chunks the rest goes in one.
    if (!splits_.empty() && split_index_ < kMaxFeeds) {
      const uint8_t b = splits_[split_index_++ % splits_.size()];
      want = b < 192 ? b : (b - 191u) * 1024u;
    }
    return std::min(want, stream_.size() - fed_);
  }

  bool NextPauseBit() {
    if (pauses_.empty()) {
      return false;
    }
    const size_t bit = pause_index_++ % (pauses_.size() * 8);
    return ((pauses_[bit / 8] >> (bit % 8)) & 1) != 0;
  }

  // The message handler: the reader may offer only the next frame of the model, whole.
  bool Offer(const uint8_t* msg, size_t len) {
    CHECK(next_ < model_.frames.size());
    const Frame& frame = model_.frames[next_];
    CHECK(frame.end() <= fed_);
    CHECK(len == frame.len);
    CHECK(std::memcmp(msg, stream_.data() + frame.offset + kPrefixBytes, len) == 0);
    if (NextPauseBit() && refusals_in_a_row_ < 2) {
      ++refusals_in_a_row_;
      return false;
    }
    refusals_in_a_row_ = 0;
    ++next_;
    return true;
  }

  // Bytes of the stream taken by the frames delivered so far.
  size_t Consumed() const { return next_ == 0 ? 0 : model_.frames[next_ - 1].end(); }

  void Check(dns::FrameResult result) {
    switch (result) {
      case dns::FrameResult::kZeroLength:
        // Only once every frame before it was delivered and its prefix was fed; then the reader
        // is empty.
        CHECK(model_.zero_length_at.has_value());
        CHECK(next_ == model_.frames.size());
        CHECK(fed_ >= *model_.zero_length_at + kPrefixBytes);
        CHECK(reader_.buffered() == 0 && !reader_.is_paused());
        saw_zero_length_ = true;
        return;
      case dns::FrameResult::kPaused:
        CHECK(reader_.is_paused());
        CHECK(reader_.buffered() == fed_ - Consumed());
        return;
      case dns::FrameResult::kOk: {
        CHECK(!reader_.is_paused());
        CHECK(reader_.buffered() == fed_ - Consumed());
        CHECK(reader_.has_partial() == (reader_.buffered() > 0));
        // Nothing deliverable is left behind: every frame fed whole was handed out, and a
        // zero-length prefix fed after them was reported.
        while (complete_ < model_.frames.size() && model_.frames[complete_].end() <= fed_) {
          ++complete_;
        }
        CHECK(next_ == complete_);
        CHECK(!model_.zero_length_at.has_value() || fed_ < *model_.zero_length_at + kPrefixBytes);
        return;
      }
    }
    CHECK(false);
  }

  const std::vector<uint8_t>& stream_;
  const Model model_;
  std::vector<uint8_t> splits_;
  std::vector<uint8_t> pauses_;
  const bool feed_while_paused_;
  dns::FrameReader reader_;
  size_t fed_ = 0;       // stream bytes given to Feed so far
  size_t next_ = 0;      // index of the next frame to deliver
  size_t complete_ = 0;  // frames fed whole so far (at the last kOk)
  size_t split_index_ = 0;
  size_t pause_index_ = 0;
  int refusals_in_a_row_ = 0;  // of the frame offered now
  bool saw_zero_length_ = false;
};

}  // namespace
}  // namespace dotproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dotproxy;  // NOLINT(google-build-using-namespace): one entry point
  fuzz::InputReader in(data, size);
  const uint8_t options = in.U8();
  std::vector<uint8_t> splits = in.Bytes(in.U8());
  std::vector<uint8_t> pauses = in.Bytes(in.U8());
  std::vector<size_t> sizes;
  const bool raw = (options & 1) != 0;
  const std::vector<uint8_t> stream = raw ? in.Rest() : fuzz::EncodeMessages(in, &sizes);
  fuzz::Harness harness(stream, std::move(splits), std::move(pauses), (options & 2) != 0);
  if (!raw) {
    // WriteLengthPrefix framing parses back into the same messages.
    const std::vector<fuzz::Frame>& frames = harness.model().frames;
    CHECK(frames.size() == sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) {
      CHECK(frames[i].len == sizes[i]);
    }
  }
  harness.Run();
  return 0;
}
