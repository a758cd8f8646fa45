// File: base/flag_names.h
//
// absl flags are spelt with underscores; NormalizeFlagNames rewrites argv in place so the
// hyphenated spellings (--check-config, --server-name) work too. Only the name part of each
// "-name" / "--name[=value]" argument changes; values and everything after "--" are untouched.
#ifndef DOTPROXY_BASE_FLAG_NAMES_H_
#define DOTPROXY_BASE_FLAG_NAMES_H_

namespace dotproxy::base {

void NormalizeFlagNames(int argc, char** argv);

}  // namespace dotproxy::base

#endif  // DOTPROXY_BASE_FLAG_NAMES_H_
