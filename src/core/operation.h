// File: core/operation.h
//
// What sqe->user_data points to. Every object that submits I/O embeds one Operation per kind of
// request it can have in flight. `handler` is the id the owner got from Reactor::OnCompletion, so
// the reactor finds the owner's handler with one array index and core knows nothing of what the
// request is; the handler finds the owner's entry by `index` and rejects a stale completion when
// `generation` no longer matches. user_data == 0 marks requests whose completion is ignored.
#ifndef DOTPROXY_CORE_OPERATION_H_
#define DOTPROXY_CORE_OPERATION_H_

#include <cstdint>

namespace dotproxy::core {

// Handler id 0 is reserved: completions nobody waits for.
using HandlerId = uint8_t;
inline constexpr HandlerId kIgnoreHandler = 0;

struct Operation {
  HandlerId handler = kIgnoreHandler;
  uint32_t index = 0;       // owner's slot in its table
  uint32_t generation = 0;  // owner's generation when the request was submitted
};

}  // namespace dotproxy::core

#endif  // DOTPROXY_CORE_OPERATION_H_
