// File: core/kernel_features.h
//
// What this kernel's io_uring offers, probed once at start-up (before any shard starts), and the
// check against what dotproxy needs. Below the minimum (Linux 6.1) start-up fails with one line
// that names the first missing feature, instead of a shard failing later in some odd way.
//
//   const KernelFeatures found = ProbeKernelFeatures();
//   if (absl::Status s = CheckKernelFeatures(found); !s.ok()) { print s.message(); exit 1; }
#ifndef DOTPROXY_CORE_KERNEL_FEATURES_H_
#define DOTPROXY_CORE_KERNEL_FEATURES_H_

#include <bitset>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace dotproxy::core {

struct KernelFeatures {
  int setup_errno = 0;          // io_uring_setup failed with this; nothing else was probed
  std::bitset<256> ops;         // IORING_OP_* the kernel supports (io_uring_get_probe_ring)
  bool buf_ring = false;        // provided-buffer rings (io_uring_register_buf_ring, 5.19)
  bool multishot_recvmsg = false;  // a multishot recvmsg posted a CQE with F_MORE (6.0)
  bool cancel_fd_all = false;   // IORING_ASYNC_CANCEL_FD|ALL (5.19)
  // Optional and unused so far; reported so that any later use is gated on them.
  bool recv_bundle = false;     // IORING_FEAT_RECVSEND_BUNDLE (6.10)
  bool incremental_buffers = false;  // IOU_PBUF_RING_INC (6.12)
};

// Sets up a small ring and probes it, on private loopback sockets. Never fails: what could not
// be probed reads as missing.
KernelFeatures ProbeKernelFeatures();

// OK, or FailedPrecondition with one line: "kernel too old for dotproxy (Linux 6.1 or newer
// needed): no io_uring multishot recvmsg (Linux 6.0)".
absl::Status CheckKernelFeatures(const KernelFeatures& found);

// "buffer rings, multishot recvmsg; optional: recv bundles no, incremental buffers no".
std::string DescribeKernelFeatures(const KernelFeatures& found);

}  // namespace dotproxy::core

#endif  // DOTPROXY_CORE_KERNEL_FEATURES_H_
