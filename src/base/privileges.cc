#include "base/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dotproxy::base {
namespace {

absl::Status CallFailed(int error, absl::string_view call, const std::string& user) {
  return absl::ErrnoToStatus(error, absl::StrCat("dropping privileges to \"", user, "\": ", call));
}

}  // namespace

bool IsRoot() { return geteuid() == 0; }

absl::Status DropPrivileges(const std::string& user) {
  passwd entry;
  passwd* found = nullptr;
  long size_hint = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(size_hint > 0 ? static_cast<size_t>(size_hint) : 16384);
  int error = 0;
  while ((error = getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found)) ==
         ERANGE) {
    buffer.resize(buffer.size() * 2);
  }
  if (error != 0) {
    return CallFailed(error, "getpwnam_r", user);
  }
  if (found == nullptr) {
    return absl::NotFoundError(absl::StrCat("server.user: no such user \"", user, "\""));
  }
  const uid_t uid = entry.pw_uid;
  const gid_t gid = entry.pw_gid;
  if (uid == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("server.user: \"", user, "\" has uid 0; name an unprivileged user"));
  }
  if (!IsRoot()) {
    if (getuid() == uid && getgid() == gid) {
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "server.user: cannot switch to \"", user, "\": not running as root (uid ", getuid(), ")"));
  }
  // Order matters: the groups and the gid need root, so they go before the uid.
  if (initgroups(entry.pw_name, gid) != 0) {
    return CallFailed(errno, "initgroups", user);
  }
  if (setresgid(gid, gid, gid) != 0) {
    return CallFailed(errno, "setresgid", user);
  }
  if (setresuid(uid, uid, uid) != 0) {
    return CallFailed(errno, "setresuid", user);
  }
  // All three uids are now unprivileged, so this must fail; if it does not, refuse to go on.
  if (setuid(0) == 0 || seteuid(0) == 0 || getuid() != uid || geteuid() != uid ||
      getgid() != gid || getegid() != gid) {
    return absl::InternalError(
        absl::StrCat("dropping privileges to \"", user, "\": root could be regained"));
  }
  return absl::OkStatus();
}

}  // namespace dotproxy::base
