// File: base/status_macros.h
//
// RETURN_IF_ERROR and ASSIGN_OR_RETURN for absl::Status / absl::StatusOr, until Debian ships an
// Abseil (>= 20260526) that has its own status_macros.h.
//
//   RETURN_IF_ERROR(socket.Bind(addr));
//   ASSIGN_OR_RETURN(Config config, LoadConfig(path));
#ifndef DOTPROXY_BASE_STATUS_MACROS_H_
#define DOTPROXY_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DOTPROXY_STATUS_CONCAT_INNER_(a, b) a##b
#define DOTPROXY_STATUS_CONCAT_(a, b) DOTPROXY_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status status_macro_s_ = (expr);     \
    if (!status_macro_s_.ok()) {                 \
      return status_macro_s_;                    \
    }                                            \
  } while (false)

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  DOTPROXY_ASSIGN_OR_RETURN_IMPL_(DOTPROXY_STATUS_CONCAT_(status_or_, __LINE__), lhs, rexpr)

#define DOTPROXY_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                    \
  if (!statusor.ok()) {                                       \
    return std::move(statusor).status();                      \
  }                                                           \
  lhs = std::move(statusor).value()

#endif  // DOTPROXY_BASE_STATUS_MACROS_H_
