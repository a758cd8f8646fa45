#include "bench/load/load_shard.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "core/clock.h"
#include "dns/header.h"
#include "net/sockets.h"

namespace dotproxy::bench {
namespace {

constexpr uint32_t kUdpBufferCount = 4096;
constexpr uint32_t kUdpBufferSize = 4096;
constexpr uint32_t kStreamBufferCount = 1024;
constexpr uint32_t kStreamBufferSize = 16 * 1024;
constexpr uint32_t kMaxSlots = 65536;  // the DNS ID is the slot index
constexpr size_t kPlaintextChunk = 64 * 1024;
constexpr int64_t kMaxWaitNs = 100'000'000;

void Store(std::atomic<uint64_t>& counter, uint64_t value) {
  counter.store(value, std::memory_order_relaxed);
}

uint8_t Lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? static_cast<uint8_t>(c + 32) : c; }

// RFC 7766 §7: the answer's question must be the query's (names compared case-insensitively, as
// a 0x20-randomising server may change case; type and class exactly).
bool SameQuestion(const uint8_t* a, const uint8_t* b, size_t question_bytes) {
  const size_t name_bytes = question_bytes - 4;
  for (size_t i = 0; i < name_bytes; ++i) {
    if (Lower(a[i]) != Lower(b[i])) {
      return false;
    }
  }
  return memcmp(a + name_bytes, b + name_bytes, 4) == 0;
}

}  // namespace

LoadShard::LoadShard(const LoadOptions& options, QueryWriter::Options writer, uint32_t thread_id)
    : options_(options), thread_id_(thread_id), writer_(std::move(writer)) {}

LoadShard::~LoadShard() {
  // The reactor goes first: tearing its ring down cancels every request still in flight before
  // the slots and channels they point into are freed.
  reactor_.reset();
}

absl::StatusOr<std::unique_ptr<LoadShard>> LoadShard::Create(const LoadOptions& options,
                                                             QueryWriter::Options writer,
                                                             uint32_t thread_id) {
  auto shard = std::unique_ptr<LoadShard>(new LoadShard(options, std::move(writer), thread_id));
  RETURN_IF_ERROR(shard->Init());
  return shard;
}

absl::Status LoadShard::Init() {
  now_ns_ = core::MonotonicNanos();
  ASSIGN_OR_RETURN(reactor_, core::Reactor::Create());
  reactor_->OnFlush<&LoadShard::FlushDirty>(this);
  plaintext_.resize(kPlaintextChunk);
  // Closed loop: twice the window, so an ID is not reused right after it was freed (a late
  // answer then finds its slot empty instead of a new query). Open loop: all 65536 IDs.
  const uint32_t slot_count =
      options_.qps > 0 ? kMaxSlots : std::min<uint32_t>(kMaxSlots, std::max<uint32_t>(
                                                                       64, 2 * options_.inflight));
  slots_ = std::vector<Slot>(slot_count);
  free_slots_.resize(slot_count);
  for (uint32_t i = 0; i < slot_count; ++i) {
    free_slots_[i] = i;
  }
  free_count_ = slot_count;
  channels_ = std::vector<Channel>(options_.channels);
  const bool is_udp = options_.mode == Mode::kUdp;
  const core::HandlerId connect_handler = reactor_->OnCompletion<&LoadShard::OnConnect>(this);
  const core::HandlerId recv_handler =
      is_udp ? reactor_->OnCompletion<&LoadShard::OnUdpRecv>(this)
             : reactor_->OnCompletion<&LoadShard::OnStreamRecv>(this);
  const core::HandlerId send_handler =
      is_udp ? reactor_->OnCompletion<&LoadShard::OnUdpSendFailed>(this)
             : reactor_->OnCompletion<&LoadShard::OnSendDone>(this);
  for (uint32_t i = 0; i < options_.channels; ++i) {
    Channel& c = channels_[i];
    c.index = i;
    c.connect_op = {connect_handler, i, 0};
    c.recv_op = {recv_handler, i, 0};
    c.send_op = {send_handler, i, 0};
  }
  if (is_udp) {
    ASSIGN_OR_RETURN(buffers_, reactor_->AddBufferRing(kUdpBufferCount, kUdpBufferSize));
    for (Channel& c : channels_) {
      c.fd.reset(socket(options_.server.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
      if (!c.fd.is_valid()) {
        return absl::ErrnoToStatus(errno, "socket(udp)");
      }
      const int buffer_bytes = 4 << 20;
      setsockopt(c.fd.get(), SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof(buffer_bytes));
      setsockopt(c.fd.get(), SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof(buffer_bytes));
      // A connected socket: plain send/recv, and only the server's datagrams are delivered.
      if (connect(c.fd.get(), options_.server.raw(), options_.server.length()) != 0) {
        return absl::ErrnoToStatus(errno, absl::StrCat("connect udp ",
                                                       options_.server.ToString()));
      }
      c.state = Channel::State::kReady;
      ++ready_channels_;
      ArmUdpRecv(c.index);
    }
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(buffers_, reactor_->AddBufferRing(kStreamBufferCount, kStreamBufferSize));
  if (options_.mode == Mode::kDot) {
    ASSIGN_OR_RETURN(tls_, tls::ClientContext::Create({options_.server_name, options_.ca_file}));
  }
  idle_channels_ = options_.channels;
  return absl::OkStatus();
}

bool LoadShard::Connect(std::string* error) {
  if (options_.mode == Mode::kUdp) {
    return true;
  }
  now_ns_ = core::MonotonicNanos();
  const int64_t deadline = now_ns_ + options_.connect_timeout_ns;
  for (Channel& c : channels_) {
    c.reconnect_at_ns = now_ns_;
  }
  while (ready_channels_ < channels_.size() && now_ns_ < deadline) {
    ReconnectIdle();
    Wait(10'000'000);
  }
  if (ready_channels_ == 0) {
    *error = result_.first_error.empty()
                 ? absl::StrCat("no connection to ", options_.server.ToString(), " within ",
                                options_.connect_timeout_ns / 1'000'000, " ms")
                 : result_.first_error;
    return false;
  }
  return true;
}

void LoadShard::Wait(int64_t timeout_ns) {
  // The flush hook (FlushDirty) runs first, then the wait and the completions. A deadline
  // already passed means no wait at all.
  reactor_->RunOnceNs(std::max<int64_t>(timeout_ns, 0));
  now_ns_ = core::MonotonicNanos();
}

void LoadShard::Run(int64_t start_ns, const std::atomic<bool>& stop) {
  // Until the common start, keep serving the connections (late TLS tickets and the like).
  for (now_ns_ = core::MonotonicNanos(); now_ns_ < start_ns;) {
    Wait(start_ns - now_ns_);
  }
  is_sending_ = true;
  const bool is_open_loop = options_.qps > 0;
  const double interval_ns = is_open_loop ? 1e9 / options_.qps : 0;
  const int64_t end_ns = start_ns + options_.duration_ns;
  double next_send_ns = static_cast<double>(start_ns);
  int64_t send_end_ns = start_ns;
  for (;;) {
    if (is_sending_ && (now_ns_ >= end_ns || result_.sent + result_.not_sent >= options_.count ||
                        stop.load(std::memory_order_relaxed))) {
      is_sending_ = false;
      send_end_ns = now_ns_;
    }
    if (is_sending_) {
      if (is_open_loop) {
        // Everything due by now goes out in this iteration, each stamped with its intended time.
        while (next_send_ns <= static_cast<double>(now_ns_) &&
               result_.sent + result_.not_sent < options_.count) {
          if (!SendQuery(static_cast<int64_t>(next_send_ns))) {
            ++result_.not_sent;
          }
          next_send_ns += interval_ns;
        }
      } else {
        while (inflight_ < options_.inflight && result_.sent < options_.count &&
               SendQuery(now_ns_)) {
        }
      }
    } else if (inflight_ == 0 || now_ns_ >= send_end_ns + options_.timeout_ns) {
      break;
    }
    ExpireDeadlines();
    if (idle_channels_ > 0 && is_sending_) {
      ReconnectIdle();
    }
    int64_t wait_ns = kMaxWaitNs;
    if (!deadlines_.empty()) {
      wait_ns = std::min(wait_ns, deadlines_.front().at_ns - now_ns_);
    }
    if (is_sending_) {
      wait_ns = std::min(wait_ns, end_ns - now_ns_);
      if (is_open_loop) {
        wait_ns = std::min(wait_ns, static_cast<int64_t>(next_send_ns) - now_ns_);
      }
      if (idle_channels_ > 0) {
        wait_ns = std::min<int64_t>(wait_ns, 10'000'000);
      }
    } else {
      wait_ns = std::min(wait_ns, send_end_ns + options_.timeout_ns - now_ns_);
    }
    Wait(wait_ns);
  }
  // Whatever is still unanswered has timed out by now.
  now_ns_ = INT64_MAX;
  ExpireDeadlines();
  result_.send_ns = send_end_ns - start_ns;
  result_.answer_ns = std::max<int64_t>(result_.answer_ns - start_ns, 0);
}

// ---- Queries --------------------------------------------------------------------------------

int32_t LoadShard::PickChannel() {
  const auto n = static_cast<uint32_t>(channels_.size());
  for (uint32_t tries = 0; tries < n; ++tries) {
    const uint32_t ch = next_channel_;
    next_channel_ = next_channel_ + 1 == n ? 0 : next_channel_ + 1;
    if (channels_[ch].state == Channel::State::kReady) {
      return static_cast<int32_t>(ch);
    }
  }
  return -1;
}

bool LoadShard::SendQuery(int64_t start_ns) {
  if (free_count_ == 0) {
    return false;
  }
  const int32_t ch = PickChannel();
  if (ch < 0) {
    return false;
  }
  const uint32_t si = free_slots_[free_head_];
  free_head_ = free_head_ + 1 == free_slots_.size() ? 0 : free_head_ + 1;
  --free_count_;
  Slot& s = slots_[si];
  s.length = static_cast<uint16_t>(writer_.Write(static_cast<uint16_t>(si), s.query,
                                                 &s.question_end));
  s.is_in_use = true;
  s.channel = static_cast<uint32_t>(ch);
  s.start_ns = start_ns;
  s.sent_ns = now_ns_;
  Channel& c = channels_[ch];
  if (options_.mode == Mode::kUdp) {
    // The slot keeps the bytes until the answer or the timeout, long after the kernel copied
    // them, so the completion of a successful send is not needed.
    io_uring_sqe* sqe = reactor_->GetSqe(&c.send_op);
    io_uring_prep_send(sqe, c.fd.get(), s.query, s.length, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  } else {
    std::vector<uint8_t>& dest = options_.mode == Mode::kDot ? c.plain_out : c.output.pending();
    const size_t offset = dest.size();
    dest.resize(offset + 2 + s.length);
    dns::WriteLengthPrefix(dest.data() + offset, s.length);
    memcpy(dest.data() + offset + 2, s.query, s.length);
    MarkDirty(static_cast<uint32_t>(ch));
  }
  ++c.inflight;
  ++inflight_;
  ++result_.sent;
  Store(progress_.sent, result_.sent);
  deadlines_.push_back({si, s.generation, now_ns_ + options_.timeout_ns});
  return true;
}

void LoadShard::OnResponse(uint32_t channel, const uint8_t* msg, size_t len) {
  if (len < dns::kHeaderSize || !dns::IsResponse(msg)) {
    ++result_.malformed;
    return;
  }
  const uint16_t id = dns::GetId(msg);
  if (id >= slots_.size() || !slots_[id].is_in_use || slots_[id].channel != channel) {
    ++result_.unexpected;
    return;
  }
  Slot& s = slots_[id];
  const size_t question_bytes = s.question_end - dns::kHeaderSize;
  const uint16_t qdcount = dns::GetQdcount(msg);
  // Some servers drop the question in error answers; accept those by ID alone.
  const bool is_same = qdcount == 0 ? dns::GetRcode(msg) != dns::kRcodeNoError
                                    : (len >= s.question_end &&
                                       SameQuestion(msg + dns::kHeaderSize,
                                                    s.query + dns::kHeaderSize, question_bytes));
  if (!is_same) {
    ++result_.mismatched;  // keep waiting for the right answer, or the timeout
    return;
  }
  const int64_t now = core::MonotonicNanos();
  result_.latency.Record(now - s.start_ns);
  result_.from_send.Record(now - s.sent_ns);
  ++result_.rcodes[dns::GetRcode(msg)];
  if ((dns::GetFlags(msg) & dns::kFlagTc) != 0) {
    ++result_.truncated;
  }
  ++result_.answered;
  Store(progress_.answered, result_.answered);
  result_.answer_ns = now;
  --channels_[channel].inflight;
  ReleaseSlot(id);
}

void LoadShard::ReleaseSlot(uint32_t slot) {
  Slot& s = slots_[slot];
  s.is_in_use = false;
  ++s.generation;
  size_t tail = free_head_ + free_count_;
  if (tail >= free_slots_.size()) {
    tail -= free_slots_.size();
  }
  free_slots_[tail] = slot;
  ++free_count_;
  --inflight_;
}

void LoadShard::ExpireDeadlines() {
  while (!deadlines_.empty() && deadlines_.front().at_ns <= now_ns_) {
    const Deadline d = deadlines_.front();
    deadlines_.pop_front();
    Slot& s = slots_[d.slot];
    if (s.is_in_use && s.generation == d.generation) {
      ++result_.timeouts;
      --channels_[s.channel].inflight;
      ReleaseSlot(d.slot);
    }
  }
}

// ---- UDP ------------------------------------------------------------------------------------

void LoadShard::ArmUdpRecv(uint32_t channel) {
  Channel& c = channels_[channel];
  buffers_->PrepareRecvMultishot(reactor_->GetSqe(&c.recv_op), c.fd.get());
}

void LoadShard::OnUdpRecv(const core::Operation& op, const io_uring_cqe& cqe) {
  const uint32_t channel = op.index;
  uint16_t bid = 0;
  if (cqe.res > 0 && core::BufferRing::BufferOf(cqe, &bid)) {
    OnResponse(channel, buffers_->buffer(bid), static_cast<size_t>(cqe.res));
    buffers_->Recycle(bid);
  } else if (cqe.res < 0 && cqe.res != -ENOBUFS) {
    // ECONNREFUSED: an ICMP port unreachable came back, nobody listens there.
    NoteError(absl::StrCat("udp recv from ", options_.server.ToString(), ": ",
                           strerror(-cqe.res)));
  }
  // The multishot ends on any CQE without F_MORE; the datagrams wait in the socket meanwhile.
  if ((cqe.flags & IORING_CQE_F_MORE) == 0) {
    ArmUdpRecv(channel);
  }
}

void LoadShard::OnUdpSendFailed(const core::Operation& /*op*/, const io_uring_cqe& cqe) {
  // Successful UDP sends post no completion (IOSQE_CQE_SKIP_SUCCESS).
  ++result_.send_errors;
  LOG_EVERY_N_SEC(kWarn, 1, "udp send: %s", strerror(-cqe.res));
}

void LoadShard::NoteError(const std::string& error) {
  if (result_.first_error.empty()) {
    result_.first_error = error;
  }
  LOG_EVERY_N_SEC(kWarn, 1, "dotload thread %u: %s", thread_id_, error);
}

}  // namespace dotproxy::bench
