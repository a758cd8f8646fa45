#include "base/process.h"

#include <pthread.h>

#include "base/fd_limits.h"

namespace dotproxy::base {

void PrepareProcess(sigset_t* stop_signals) {
  (void)RaiseFdLimit();  // best effort here; dotproxy checks its fd budget itself
  sigemptyset(stop_signals);
  sigaddset(stop_signals, SIGINT);
  sigaddset(stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

}  // namespace dotproxy::base
