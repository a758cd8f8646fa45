// File: base/unique_fd.h
//
// UniqueFd owns a file descriptor and closes it on destruction. Move-only.
#ifndef DOTPROXY_BASE_UNIQUE_FD_H_
#define DOTPROXY_BASE_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace dotproxy::base {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }

  int get() const { return fd_; }
  bool is_valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace dotproxy::base

#endif  // DOTPROXY_BASE_UNIQUE_FD_H_
