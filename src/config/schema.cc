#include "config/schema.h"

#include <fcntl.h>
#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "base/status_macros.h"
#include "base/unique_fd.h"
#include <arpa/inet.h>
#include <sys/stat.h>

namespace dotproxy::config::schema {
namespace {

// What a node is, for "expected X, got Y" messages.
std::string Describe(const YamlNode& node) {
  if (node.is_null()) {
    return "an empty value";
  }
  if (node.is_scalar()) {
    return Quote(node.scalar());
  }
  return std::string(node.KindName());
}

bool IsDecimalInteger(absl::string_view text) {
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    text.remove_prefix(1);
  }
  return !text.empty() && text.find_first_not_of("0123456789") == absl::string_view::npos;
}

// RFC 1123 host name: dot-separated labels of letters, digits and hyphens (underscores are
// tolerated because some resolvers serve them), at most 253 characters.
bool IsValidHostName(absl::string_view host) {
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
  }
  if (host.empty() || host.size() > 253) {
    return false;
  }
  size_t label_length = 0;
  for (const char c : host) {
    if (c == '.') {
      if (label_length == 0) {
        return false;
      }
      label_length = 0;
      continue;
    }
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return false;
    }
    if (++label_length > 63) {
      return false;
    }
  }
  return label_length > 0;
}

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};

// A mapping or a null value (an empty section, treated as an empty mapping).
absl::Status ExpectMapping(const Walker& walker, const YamlNode& node, absl::string_view path) {
  if (node.is_mapping() || node.is_null()) {
    return absl::OkStatus();
  }
  return walker.Error(node.mark(), path, absl::StrCat("expected a mapping, got ", Describe(node)));
}

// The text of a scalar node; `what` names the expected type in the error.
absl::StatusOr<const std::string*> ScalarText(const Walker& walker, const YamlNode& node,
                                              absl::string_view path, absl::string_view what) {
  if (!node.is_scalar() || node.is_null()) {
    return walker.Error(node.mark(), path,
                        absl::StrCat("expected ", what, ", got ", Describe(node)));
  }
  return &node.scalar();
}

// `text` is "host:port" with a numeric host; `kind` names the address in hints. Port 0 is
// refused for listeners too: under SO_REUSEPORT every shard would get its own port.
absl::StatusOr<base::SocketAddress> ParseNumericAddress(const Walker& walker, const YamlNode& node,
                                                        absl::string_view path,
                                                        absl::string_view text,
                                                        absl::string_view kind) {
  // ":53" is every local address, as in the Go original: the IPv6 wildcard, which the listeners
  // open dual-stack (IPV6_V6ONLY off), so IPv4 clients are served too.
  std::string spelled(text);
  if (kind == "listener" && !spelled.empty() && spelled.front() == ':' &&
      spelled.find(':', 1) == std::string::npos) {
    spelled.insert(0, "[::]");
  }
  text = spelled;
  std::string host;
  uint16_t port = 0;
  const absl::Status split = base::SocketAddress::SplitHostPort(std::string(text), &host, &port);
  if (!split.ok()) {
    return walker.Error(node.mark(), path, split.message());
  }
  absl::StatusOr<base::SocketAddress> addr = base::SocketAddress::Parse(std::string(text));
  if (!addr.ok()) {
    return walker.Error(node.mark(), path,
                        absl::StrCat(addr.status().message(), "; ", kind,
                                     " addresses are numeric: a.b.c.d:port or [ipv6]:port"));
  }
  return addr;
}

}  // namespace

std::string ChildPath(absl::string_view parent, absl::string_view key) {
  return parent.empty() ? std::string(key) : absl::StrCat(parent, ".", key);
}

std::string IndexPath(absl::string_view parent, size_t index) {
  return absl::StrCat(parent, "[", index, "]");
}

std::string ErrnoText(int error) {
  char buffer[256];
  // GNU strerror_r: returns a pointer to the message, which may or may not be `buffer`.
  return strerror_r(error, buffer, sizeof(buffer));
}

std::string Quote(absl::string_view text) {
  constexpr size_t kMaxQuoted = 64;
  if (text.size() > kMaxQuoted) {
    return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kMaxQuoted)), "...\"");
  }
  return absl::StrCat("\"", absl::CHexEscape(text), "\"");
}

// --- Walker
// ---------------------------------------------------------------------------------------

absl::Status Walker::Error(YamlMark mark, absl::string_view path, absl::string_view problem) const {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(filename_, ":", mark.line, ":", mark.column, ": ", problem));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(filename_, ":", mark.line, ":", mark.column, ": ", path, ": ", problem));
}

void Walker::Warn(YamlMark mark, absl::string_view path, absl::string_view problem) {
  if (warnings_ != nullptr) {
    warnings_->push_back(
        absl::StrCat(filename_, ":", mark.line, ":", mark.column, ": ", path, ": ", problem));
  }
}

absl::Status Walker::WalkRoot(const Section& section, const YamlNode* root, void* object) {
  if (root == nullptr) {
    return Error(YamlMark{}, "", "empty configuration");
  }
  if (root->is_null()) {
    return Error(root->mark(), "", "empty configuration");
  }
  if (!root->is_mapping()) {
    return Error(root->mark(), "",
                 absl::StrCat("expected a mapping at the top level, got ", Describe(*root)));
  }
  return WalkMapping(section, *root, "", object);
}

absl::Status Walker::CheckAliases(const Section& section, const YamlNode& node,
                                  absl::string_view path) const {
  for (const Key& key : section.keys) {
    if (key.alias.empty()) {
      continue;
    }
    const YamlMapEntry* alias = node.Find(std::string_view(key.alias.data(), key.alias.size()));
    if (alias != nullptr &&
        node.Find(std::string_view(key.name.data(), key.name.size())) != nullptr) {
      return Error(alias->key_mark, ChildPath(path, key.alias),
                   absl::StrCat("conflicts with ", ChildPath(path, key.name),
                                "; keep only the correctly spelt key"));
    }
  }
  return absl::OkStatus();
}

absl::Status Walker::WalkMapping(const Section& section, const YamlNode& node,
                                 absl::string_view path, void* object) {
  RETURN_IF_ERROR(ExpectMapping(*this, node, path));
  if (section.on_present != nullptr) {
    section.on_present(object);
  }
  RETURN_IF_ERROR(CheckAliases(section, node, path));
  std::vector<bool> seen(section.keys.size(), false);
  for (const YamlMapEntry& entry : node.entries()) {
    const YamlNode& value = *entry.value;
    const std::string key_path = ChildPath(path, entry.key);
    locations_[key_path] = value.mark();
    size_t index = 0;
    while (index < section.keys.size() && section.keys[index].name != entry.key &&
           (section.keys[index].alias.empty() || section.keys[index].alias != entry.key)) {
      ++index;
    }
    if (index == section.keys.size()) {
      const std::string allowed =
          absl::StrJoin(section.keys, ", ",
                        [](std::string* out, const Key& key) { absl::StrAppend(out, key.name); });
      // The key is the file's raw text: escaped, so the message stays one line.
      return Error(entry.key_mark, ChildPath(path, absl::CEscape(entry.key)),
                   absl::StrCat("unknown key (allowed: ", allowed, ")"));
    }
    const Key& key = section.keys[index];
    if (entry.key != key.name) {
      Warn(entry.key_mark, key_path,
           absl::StrCat("misspelt key accepted; rename it to ", key.name));
    }
    seen[index] = true;
    RETURN_IF_ERROR(key.parse(*this, key, value, key_path, object));
  }
  for (size_t i = 0; i < section.keys.size(); ++i) {
    if (section.keys[i].required && !seen[i]) {
      return Error(node.mark(), ChildPath(path, section.keys[i].missing_path),
                   "missing required key");
    }
  }
  return absl::OkStatus();
}

absl::Status Walker::WalkListItem(const Section& section, const YamlNode& item,
                                  const std::string& item_path, void* object) {
  locations_[item_path] = item.mark();
  if (!item.is_mapping()) {
    return Error(item.mark(), item_path, absl::StrCat("expected a mapping, got ", Describe(item)));
  }
  return WalkMapping(section, item, item_path, object);
}

void AppendKeyPaths(const Section& section, absl::string_view prefix,
                    std::vector<std::string>* paths) {
  for (const Key& key : section.keys) {
    const std::string path = ChildPath(prefix, key.name);
    paths->push_back(path);
    if (key.section != nullptr) {
      AppendKeyPaths(*key.section, key.is_list ? absl::StrCat(path, "[]") : path, paths);
    }
  }
}

// --- Value readers
// ----------------------------------------------------------------------------------

absl::StatusOr<std::string> ReadString(Walker& walker, const Key& /*key*/, const YamlNode& node,
                                       const std::string& path) {
  if (node.is_null()) {
    return std::string();
  }
  ASSIGN_OR_RETURN(const std::string* text, ScalarText(walker, node, path, "a string"));
  if (text->find('\0') != std::string::npos) {
    return walker.Error(node.mark(), path, "must not contain NUL characters");
  }
  return *text;
}

absl::StatusOr<int64_t> ReadInteger(Walker& walker, const Key& key, const YamlNode& node,
                                    const std::string& path) {
  ASSIGN_OR_RETURN(const std::string* text, ScalarText(walker, node, path, "an integer"));
  int64_t value = 0;
  if (!IsDecimalInteger(*text) || !absl::SimpleAtoi(*text, &value)) {
    return walker.Error(node.mark(), path, absl::StrCat("expected an integer, got ", Quote(*text)));
  }
  if (value < key.min_integer || value > key.max_integer) {
    return walker.Error(
        node.mark(), path,
        absl::StrCat("must be in ", key.min_integer, "..", key.max_integer, ", got ", value));
  }
  return value;
}

absl::StatusOr<double> ReadNumber(Walker& walker, const Key& key, const YamlNode& node,
                                  const std::string& path) {
  ASSIGN_OR_RETURN(const std::string* text, ScalarText(walker, node, path, "a number"));
  double value = 0;
  if (!absl::SimpleAtod(*text, &value) || !std::isfinite(value)) {
    return walker.Error(node.mark(), path, absl::StrCat("expected a number, got ", Quote(*text)));
  }
  if (value < key.min_number || value > key.max_number) {
    return walker.Error(
        node.mark(), path,
        absl::StrCat("must be in ", key.min_number, "..", key.max_number, ", got ",
                     absl::CEscape(*text)));
  }
  return value;
}

absl::StatusOr<bool> ReadBool(Walker& walker, const Key& /*key*/, const YamlNode& node,
                              const std::string& path) {
  constexpr absl::string_view kExpected = "true or false";
  ASSIGN_OR_RETURN(const std::string* text, ScalarText(walker, node, path, kExpected));
  if (*text == "true" || *text == "True" || *text == "TRUE") {
    return true;
  }
  if (*text == "false" || *text == "False" || *text == "FALSE") {
    return false;
  }
  return walker.Error(node.mark(), path,
                      absl::StrCat("expected ", kExpected, ", got ", Quote(*text)));
}

absl::StatusOr<absl::Duration> ReadDuration(Walker& walker, const Key& key, const YamlNode& node,
                                            const std::string& path) {
  constexpr absl::string_view kExpected = "a duration like \"5s\"";
  ASSIGN_OR_RETURN(const std::string* text, ScalarText(walker, node, path, kExpected));
  absl::Duration value;
  // absl::ParseDuration also takes a bare "0" and "inf"; Go's time.ParseDuration, which the seed
  // used, takes "0" too, but a YAML integer never reached it. Require a unit and a finite value.
  const bool has_unit = text->find_first_of("nsumh") != std::string::npos;
  if (!has_unit || !absl::ParseDuration(*text, &value) || value == absl::InfiniteDuration() ||
      value == -absl::InfiniteDuration()) {
    return walker.Error(node.mark(), path,
                        absl::StrCat("expected ", kExpected, ", got ", Quote(*text)));
  }
  if (value < absl::ZeroDuration()) {
    return walker.Error(node.mark(), path,
                        absl::StrCat("must not be negative, got ", Quote(*text)));
  }
  if (!key.allow_zero && value == absl::ZeroDuration()) {
    return walker.Error(node.mark(), path,
                        absl::StrCat("must be greater than 0s, got ", Quote(*text)));
  }
  if (value > key.max_duration) {
    return walker.Error(node.mark(), path,
                        absl::StrCat("must be at most ", absl::FormatDuration(key.max_duration),
                                     ", got ", Quote(*text)));
  }
  return value;
}

absl::StatusOr<base::SocketAddress> ReadAddress(Walker& walker, const Key& key,
                                                const YamlNode& node, const std::string& path) {
  switch (key.address_kind) {
    case AddressKind::kListener: {
      ASSIGN_OR_RETURN(const std::string* text,
                       ScalarText(walker, node, path, "an address like \"a.b.c.d:port\""));
      return ParseNumericAddress(walker, node, path, *text, "listener");
    }
  }
  return walker.Error(node.mark(), path, "unknown address kind");
}

absl::StatusOr<std::vector<base::SocketAddress>> ReadListenerAddresses(
    Walker& walker, const YamlNode& node, const std::string& path) {
  constexpr absl::string_view kExpected =
      "an address like \"a.b.c.d:port\" or a list of addresses";
  std::vector<const YamlNode*> items;
  std::vector<std::string> paths;
  if (node.is_sequence()) {
    if (node.items().empty()) {
      return walker.Error(node.mark(), path, "must list at least one address");
    }
    for (size_t i = 0; i < node.items().size(); ++i) {
      items.push_back(node.items()[i].get());
      paths.push_back(IndexPath(path, i));
    }
  } else {
    ASSIGN_OR_RETURN([[maybe_unused]] const std::string* text,
                     ScalarText(walker, node, path, kExpected));
    items.push_back(&node);
    paths.push_back(path);
  }
  std::vector<base::SocketAddress> addrs;
  for (size_t i = 0; i < items.size(); ++i) {
    ASSIGN_OR_RETURN(const std::string* text,
                     ScalarText(walker, *items[i], paths[i], "an address like \"a.b.c.d:port\""));
    ASSIGN_OR_RETURN(const base::SocketAddress addr,
                     ParseNumericAddress(walker, *items[i], paths[i], *text, "listener"));
    for (const base::SocketAddress& earlier : addrs) {
      if (earlier == addr) {
        return walker.Error(items[i]->mark(), paths[i],
                            absl::StrCat(addr.ToString(), " is listed twice"));
      }
      // A wildcard already receives every local address on its port; a second socket on the
      // same port would split the traffic between them unpredictably.
      if (earlier.port() == addr.port() && (earlier.is_wildcard() || addr.is_wildcard())) {
        return walker.Error(items[i]->mark(), paths[i],
                            absl::StrCat(addr.ToString(), " overlaps ", earlier.ToString(),
                                         ": a wildcard address covers every local address"));
      }
    }
    addrs.push_back(addr);
  }
  return addrs;
}

absl::StatusOr<base::SocketAddress> ResolveHostPort(Walker& walker, const YamlNode& node,
                                                    const std::string& path,
                                                    std::string* text_out) {
  ASSIGN_OR_RETURN(const std::string* text,
                   ScalarText(walker, node, path, "an address like \"host:853\""));
  std::string host;
  uint16_t port = 0;
  const absl::Status split = base::SocketAddress::SplitHostPort(*text, &host, &port);
  if (!split.ok()) {
    return walker.Error(node.mark(), path, split.message());
  }
  *text_out = *text;
  in_addr ipv4;
  if (text->front() == '[' || inet_pton(AF_INET, host.c_str(), &ipv4) == 1) {
    absl::StatusOr<base::SocketAddress> addr = base::SocketAddress::Parse(*text);
    if (!addr.ok()) {
      return walker.Error(node.mark(), path, addr.status().message());
    }
    return addr;
  }
  // getaddrinfo would take "1.2.3" as inet_aton shorthand; insist on a dotted quad.
  if (host.find_first_not_of("0123456789.") == std::string::npos) {
    return walker.Error(node.mark(), path, absl::StrCat(Quote(host), " is not an IPv4 address"));
  }
  if (!IsValidHostName(host)) {
    return walker.Error(
        node.mark(), path,
        absl::StrCat(Quote(host), " is not an IPv4 address, [IPv6] address or host name"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* raw_result = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &raw_result);
  std::unique_ptr<addrinfo, AddrInfoDeleter> result(raw_result);
  if (rc != 0 || result == nullptr) {
    const std::string reason = rc == EAI_SYSTEM ? ErrnoText(errno) : gai_strerror(rc);
    return walker.Error(node.mark(), path,
                        absl::StrCat("cannot resolve ", Quote(host), ": ", reason));
  }
  base::SocketAddress addr = base::SocketAddress::FromSockaddr(result->ai_addr, result->ai_addrlen);
  addr.set_port(port);
  return addr;
}

absl::Status CheckReadableFile(Walker& walker, const YamlNode& node, const std::string& path,
                               std::string& file) {
  if (file.empty()) {
    return absl::OkStatus();
  }
  base::UniqueFd fd(open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.is_valid()) {
    const int error = errno;
    return walker.Error(node.mark(), path,
                        absl::StrCat("cannot read ", Quote(file), ": ", ErrnoText(error)));
  }
  struct stat info;
  if (fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return walker.Error(node.mark(), path, absl::StrCat(Quote(file), " is not a regular file"));
  }
  return absl::OkStatus();
}

namespace internal {

absl::Status UnknownName(Walker& walker, const Key& key, const YamlNode& node,
                         const std::string& path, absl::string_view name, absl::string_view valid) {
  return walker.Error(
      node.mark(), path,
      absl::StrCat("unknown ", key.noun, " ", Quote(name), " (valid: ", valid, ")"));
}

absl::Status ExpectList(Walker& walker, const Key& key, const YamlNode& node,
                        const std::string& path) {
  if (!node.is_sequence() && !node.is_null()) {
    return walker.Error(
        node.mark(), path,
        absl::StrCat("expected a sequence of ", key.name, ", got ", Describe(node)));
  }
  if (node.items().empty()) {
    return walker.Error(node.mark(), path, absl::StrCat("must list at least one ", key.noun));
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace dotproxy::config::schema
