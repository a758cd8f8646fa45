// File: core/operation.h
//
// What sqe->user_data points to. Every object that submits I/O embeds one Operation per kind of
// request it can have in flight; the reactor reads `kind` in one switch and finds the owner by
// `index` in the shard's fixed tables, rejecting a stale completion when `generation` no longer
// matches the owner's. user_data == 0 marks requests whose completion is ignored (cancels).
#ifndef DOTPROXY_CORE_OPERATION_H_
#define DOTPROXY_CORE_OPERATION_H_

#include <cstdint>

namespace dotproxy::core {

enum class OpKind : uint8_t {
  kIgnore = 0,      // completions nobody waits for (link timeouts)
  kWake,            // eventfd read: a message from the control thread
  kUdpRecv,         // multishot recvmsg on the shard's UDP socket
  kUdpSend,         // sendmsg of one UDP reply
  kTcpAccept,       // multishot accept on the shard's TCP listener
  kTcpRecv,         // recv on a client TCP connection
  kTcpSend,         // send on a client TCP connection
  kUpstreamConnect, // connect() of an upstream connection
  kUpstreamRecv,    // recv of TLS bytes from an upstream
  kUpstreamSend,    // send of TLS bytes to an upstream
};

struct Operation {
  OpKind kind = OpKind::kIgnore;
  uint32_t index = 0;       // owner's slot in its table
  uint32_t generation = 0;  // owner's generation when the request was submitted
};

}  // namespace dotproxy::core

#endif  // DOTPROXY_CORE_OPERATION_H_
