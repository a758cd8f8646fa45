// File: base/privileges.h
//
// Dropping root after the listeners are bound. Process-wide: setresuid/setresgid through glibc
// apply to every thread, but call it from the main thread while the shards are idle between
// set-up and serving, or before any other thread calls getpw*/initgroups.
//
//   if (IsRoot() && !config.server.user.empty()) RETURN_IF_ERROR(DropPrivileges(config.server.user));
#ifndef DOTPROXY_BASE_PRIVILEGES_H_
#define DOTPROXY_BASE_PRIVILEGES_H_

#include <string>

#include "absl/status/status.h"

namespace dotproxy::base {

// True when the effective uid is 0.
bool IsRoot();

// Switches the real, effective and saved uid and gid to `user`'s, and the supplementary groups to
// `user`'s groups (initgroups), then checks that root cannot be regained. Errors: NotFound for an
// unknown user; InvalidArgument when `user` is root itself; FailedPrecondition when not running
// as root (unless already running as `user`, which is OK); the errno of a failed call otherwise,
// after which the process must exit (its identity may be half-changed). Capabilities are lost
// with uid 0, so binding a privileged port later (on reload) fails.
absl::Status DropPrivileges(const std::string& user);

}  // namespace dotproxy::base

#endif  // DOTPROXY_BASE_PRIVILEGES_H_
