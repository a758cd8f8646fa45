// LoadShard, second half: the TCP and DoT channels (connect, TLS handshake, multishot receive
// into the frame reader, one send in flight through net::SendQueue, close and reconnect).
// load_shard.cc has the set-up, the loop, the queries and UDP.
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "bench/load/load_shard.h"
#include "net/sockets.h"

namespace dotproxy::bench {
namespace {

constexpr int64_t kReconnectDelayNs = 100'000'000;

}  // namespace

void LoadShard::ReconnectIdle() {
  for (Channel& c : channels_) {
    if (c.state == Channel::State::kIdle && c.reconnect_at_ns <= now_ns_) {
      --idle_channels_;
      StartConnect(c.index);
    }
  }
}

void LoadShard::StartConnect(uint32_t channel) {
  Channel& c = channels_[channel];
  auto fd = net::CreateTcpClientSocket(options_.server);
  if (!fd.ok()) {
    NoteError(std::string(fd.status().message()));
    ++result_.connect_failures;
    c.state = Channel::State::kIdle;
    c.reconnect_at_ns = now_ns_ + kReconnectDelayNs;
    ++idle_channels_;
    return;
  }
  c.fd = std::move(fd).value();
  c.state = Channel::State::kConnecting;
  io_uring_sqe* sqe = reactor_->GetSqe(&c.connect_op);
  io_uring_prep_connect(sqe, c.fd.get(), options_.server.raw(), options_.server.length());
  c.is_connect_pending = true;
}

void LoadShard::OnConnect(const core::Operation& op, const io_uring_cqe& cqe) {
  const uint32_t channel = op.index;
  const int res = cqe.res;
  Channel& c = channels_[channel];
  c.is_connect_pending = false;
  if (c.state != Channel::State::kConnecting) {
    MaybeFinishClose(channel);
    return;
  }
  if (res < 0) {
    ++result_.connect_failures;
    NoteError(absl::StrCat("connect ", options_.server.ToString(), ": ", strerror(-res)));
    c.state = Channel::State::kClosing;
    MaybeFinishClose(channel);
    return;
  }
  if (options_.mode == Mode::kDot) {
    c.tls = tls::TlsStream::Create(*tls_, &c.output.pending());
    if (c.tls == nullptr) {
      ++result_.connect_failures;
      NoteError("cannot create a TLS session");
      c.state = Channel::State::kClosing;
      MaybeFinishClose(channel);
      return;
    }
    c.state = Channel::State::kHandshaking;
    ArmStreamRecv(channel);
    DriveTls(channel);
    return;
  }
  c.state = Channel::State::kReady;
  ++ready_channels_;
  ++result_.connects;
  ArmStreamRecv(channel);
}

void LoadShard::ArmStreamRecv(uint32_t channel) {
  Channel& c = channels_[channel];
  buffers_->PrepareRecvMultishot(reactor_->GetSqe(&c.recv_op), c.fd.get());
  c.is_recv_pending = true;
}

void LoadShard::OnStreamRecv(const core::Operation& op, const io_uring_cqe& cqe) {
  const uint32_t channel = op.index;
  Channel& c = channels_[channel];
  if ((cqe.flags & IORING_CQE_F_MORE) == 0) {
    c.is_recv_pending = false;
  }
  const bool is_live = c.state == Channel::State::kReady || c.state == Channel::State::kHandshaking;
  uint16_t bid = 0;
  if (cqe.res > 0 && core::BufferRing::BufferOf(cqe, &bid)) {
    const uint8_t* data = buffers_->buffer(bid);
    if (is_live) {
      if (options_.mode == Mode::kDot) {
        // TlsStream consumes all input before it reports kWantRead, so the buffer can go back.
        c.tls->SetInput(data, static_cast<size_t>(cqe.res));
        DriveTls(channel);
      } else if (c.reader.Feed(data, static_cast<size_t>(cqe.res),
                               [this, channel](const uint8_t* msg, size_t len) {
                                 OnResponse(channel, msg, len);
                                 return true;
                               }) == dns::FrameResult::kZeroLength) {
        ++result_.malformed;
        CloseChannel(channel, "zero-length frame");
      }
    }
    buffers_->Recycle(bid);
  } else if (cqe.res == 0) {
    CloseChannel(channel, "connection closed by the server");
  } else if (cqe.res < 0 && cqe.res != -ENOBUFS) {
    CloseChannel(channel, strerror(-cqe.res));
  }
  if ((c.state == Channel::State::kReady || c.state == Channel::State::kHandshaking) &&
      !c.is_recv_pending) {
    ArmStreamRecv(channel);
  }
  MaybeFinishClose(channel);
}

void LoadShard::DriveTls(uint32_t channel) {
  Channel& c = channels_[channel];
  if (c.state == Channel::State::kHandshaking) {
    const tls::IoResult r = c.tls->Handshake();
    if (r == tls::IoResult::kWantRead) {
      MarkDirty(channel);
      return;
    }
    if (r != tls::IoResult::kDone) {
      ++result_.connect_failures;
      NoteError(absl::StrCat("TLS ", c.tls->error()));
      MarkDirty(channel);  // the alert, best effort
      CloseChannel(channel, "handshake failed");
      return;
    }
    c.state = Channel::State::kReady;
    ++ready_channels_;
    ++result_.connects;
    if (c.tls->session_reused()) {
      ++result_.resumed;
    }
  }
  for (;;) {
    size_t n = 0;
    const tls::IoResult r = c.tls->Read(plaintext_.data(), plaintext_.size(), &n);
    if (r == tls::IoResult::kWantRead) {
      break;
    }
    if (r != tls::IoResult::kDone) {
      CloseChannel(channel, r == tls::IoResult::kClosed ? "close_notify from the server"
                                                        : c.tls->error().c_str());
      return;
    }
    if (c.reader.Feed(plaintext_.data(), n, [this, channel](const uint8_t* msg, size_t len) {
          OnResponse(channel, msg, len);
          return true;
        }) == dns::FrameResult::kZeroLength) {
      ++result_.malformed;
      CloseChannel(channel, "zero-length frame");
      return;
    }
  }
  if (!c.output.pending().empty()) {
    MarkDirty(channel);  // tickets, KeyUpdate answers
  }
}

void LoadShard::MarkDirty(uint32_t channel) {
  Channel& c = channels_[channel];
  if (!c.is_dirty) {
    c.is_dirty = true;
    dirty_channels_.push_back(channel);
  }
}

bool LoadShard::FlushDirty() {
  if (dirty_channels_.empty()) {
    return false;
  }
  for (size_t i = 0; i < dirty_channels_.size(); ++i) {
    const uint32_t channel = dirty_channels_[i];
    Channel& c = channels_[channel];
    c.is_dirty = false;
    if (options_.mode == Mode::kDot && c.state == Channel::State::kReady && !c.plain_out.empty()) {
      // One SSL_write per connection per iteration: many queries share TLS records.
      if (!c.tls->Write(c.plain_out.data(), c.plain_out.size())) {
        CloseChannel(channel, c.tls->error().c_str());
      }
      c.plain_out.clear();
    }
    StartSend(channel);
  }
  dirty_channels_.clear();
  return true;
}

void LoadShard::StartSend(uint32_t channel) {
  Channel& c = channels_[channel];
  if (c.fd.is_valid() && c.state != Channel::State::kIdle) {
    c.output.Start(reactor_->ring(), &c.send_op, c.fd.get());
  }
}

void LoadShard::OnSendDone(const core::Operation& op, const io_uring_cqe& cqe) {
  const uint32_t channel = op.index;
  Channel& c = channels_[channel];
  const bool is_live = c.state != Channel::State::kClosing && c.state != Channel::State::kIdle;
  // A closing channel does not resume a short write.
  const net::SendQueue::Result result =
      c.output.OnComplete(reactor_->ring(), &c.send_op, c.fd.get(), is_live ? cqe.res : -ECANCELED);
  if (!is_live) {
    MaybeFinishClose(channel);
    return;
  }
  if (result == net::SendQueue::Result::kFailed) {
    ++result_.send_errors;
    CloseChannel(channel, cqe.res == 0 ? "send made no progress" : strerror(-cqe.res));
    MaybeFinishClose(channel);
    return;
  }
  if (result == net::SendQueue::Result::kDone) {
    StartSend(channel);
  }
}

void LoadShard::CloseChannel(uint32_t channel, const char* reason) {
  Channel& c = channels_[channel];
  if (c.state == Channel::State::kIdle || c.state == Channel::State::kClosing) {
    return;
  }
  if (c.state == Channel::State::kReady) {
    --ready_channels_;
    if (is_sending_) {
      ++result_.closed_by_server;
      NoteError(absl::StrCat("connection to ", options_.server.ToString(), ": ", reason));
    }
  }
  c.state = Channel::State::kClosing;
  if (c.is_recv_pending || c.output.is_sending() || c.is_connect_pending) {
    // close() would not end a multishot recv: cancel everything on the fd and wait for the
    // final completions before the channel is reused. Its queries run into their timeouts.
    io_uring_sqe* sqe = reactor_->GetSqe(nullptr);
    io_uring_prep_cancel_fd(sqe, c.fd.get(), IORING_ASYNC_CANCEL_ALL);
  }
}

void LoadShard::MaybeFinishClose(uint32_t channel) {
  Channel& c = channels_[channel];
  if (c.state != Channel::State::kClosing || c.is_recv_pending || c.output.is_sending() ||
      c.is_connect_pending) {
    return;
  }
  c.fd.reset();
  c.tls.reset();
  c.reader.Clear();
  c.plain_out.clear();
  c.output.Clear();
  c.state = Channel::State::kIdle;
  c.reconnect_at_ns = now_ns_ + kReconnectDelayNs;
  ++idle_channels_;
}

}  // namespace dotproxy::bench
