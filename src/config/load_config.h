// File: config/load_config.h
//
// LoadConfig reads the YAML file at `path` into a Config. Every problem comes back as one
// InvalidArgument (or NotFound for a missing file) whose message is the single line
// "FILE:LINE:COL: key.path: problem". Accepted-but-ignored keys, the README's misspelt
// load_balacing_policy and similar produce warnings, returned in *warnings (one line each, same
// FILE:LINE:COL prefix) for main to log. Upstream host names are resolved here (getaddrinfo).
#ifndef DOTPROXY_CONFIG_LOAD_CONFIG_H_
#define DOTPROXY_CONFIG_LOAD_CONFIG_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "config/config.h"

namespace dotproxy::config {

absl::StatusOr<Config> LoadConfig(const std::string& path, std::vector<std::string>* warnings);

// Same, from text; `filename` is used only in messages.
absl::StatusOr<Config> LoadConfigFromString(std::string_view text, std::string_view filename,
                                            std::vector<std::string>* warnings);

// Every key path the loader accepts, dotted, with "[]" for list items, e.g.
// "listener.tcp.addr", "upstream.servers[].server_name". Derived from the tables.
// Sections come before their keys, in table order. The misspelt alias load_balacing_policy is
// accepted but not listed: it is not a key to document.
std::vector<std::string> AcceptedKeyPaths();

// Cross-field checks after parsing.
absl::Status Validate(const Config& config, std::string_view filename);

// Case-insensitive policy name -> Policy. False for an unknown name.
bool ParsePolicyName(std::string_view name, Policy* policy);
const char* PolicyName(Policy policy);

}  // namespace dotproxy::config

#endif  // DOTPROXY_CONFIG_LOAD_CONFIG_H_
