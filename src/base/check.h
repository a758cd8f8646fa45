// File: base/check.h
//
// CHECK(cond) is always on and aborts with file:line when an invariant whose violation would
// corrupt memory is broken. DCHECK(cond) is the same in debug builds and nothing under NDEBUG.
// Never use either on data that comes from the network, a peer or the config.
#ifndef DOTPROXY_BASE_CHECK_H_
#define DOTPROXY_BASE_CHECK_H_

#include "absl/base/optimization.h"

namespace dotproxy::base::internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition);
}  // namespace dotproxy::base::internal

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (ABSL_PREDICT_FALSE(!(cond))) {                                        \
      ::dotproxy::base::internal::CheckFailed(__FILE__, __LINE__, #cond);     \
    }                                                                         \
  } while (false)

#ifdef NDEBUG
#define DCHECK(cond) \
  do {               \
  } while (false && (cond))
#else
#define DCHECK(cond) CHECK(cond)
#endif

#endif  // DOTPROXY_BASE_CHECK_H_
