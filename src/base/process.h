// File: base/process.h
//
// The start-up steps every dotproxy binary (dotproxy, dotload, dotresponder) takes on its main
// thread before it starts worker threads. Call it once, before any other thread exists: the
// threads started afterwards inherit the signal mask.
#ifndef DOTPROXY_BASE_PROCESS_H_
#define DOTPROXY_BASE_PROCESS_H_

#include <signal.h>

namespace dotproxy::base {

// Blocks SIGINT and SIGTERM and stores them in *stop_signals, for the main thread to take with
// sigwait()/sigtimedwait(); ignores SIGPIPE (a peer's reset must not kill the process; sends
// also pass MSG_NOSIGNAL); raises the RLIMIT_NOFILE soft limit to the hard limit, as each
// connection is a descriptor. Best effort: a limit that cannot be raised stays as it was.
void PrepareProcess(sigset_t* stop_signals);

}  // namespace dotproxy::base

#endif  // DOTPROXY_BASE_PROCESS_H_
