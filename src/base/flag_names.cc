#include "base/flag_names.h"

#include <cstring>

namespace dotproxy::base {

void NormalizeFlagNames(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* a = argv[i];
    if (strcmp(a, "--") == 0) {
      break;
    }
    if (a[0] != '-') {
      continue;
    }
    for (char* p = a + (a[1] == '-' ? 2 : 1); *p != '\0' && *p != '='; ++p) {
      if (*p == '-') {
        *p = '_';
      }
    }
  }
}

}  // namespace dotproxy::base
