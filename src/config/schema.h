// File: config/schema.h
//
// Table-driven mapping of a YamlNode tree onto the plain structs of config.h. A Section describes
// one YAML mapping: its Keys in the order the "unknown key" message lists them, each made by one
// of the factories below (the value type, its limits, and the struct field it fills). A Walker
// applies a Section to a node: it records where each key is, rejects unknown keys, parses each
// value into its field and then reports the first missing required key. Tables are constexpr and
// type-checked while compiling; a Walker serves one load on one thread.
//
//   constexpr Key kServerKeys[] = {Integer<&ServerSection::workers>("workers", 0, 256)};
//   constexpr Section kServer = SectionOf<ServerSection>(kServerKeys);
#ifndef DOTPROXY_CONFIG_SCHEMA_H_
#define DOTPROXY_CONFIG_SCHEMA_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/check.h"
#include "base/socket_address.h"
#include "config/yaml_document.h"

namespace dotproxy::config::schema {

// Key path -> position of its value, so Validate() can point at the offending node.
using Locations = std::map<std::string, YamlMark>;

// Identifies a struct without RTTI, so that a table can be checked while compiling.
using TypeId = const void*;
template <typename T>
inline constexpr char kTypeTag = 0;
template <typename T>
constexpr TypeId TypeIdOf() {
  return &kTypeTag<T>;
}

class Walker;
struct Key;
struct Section;

// Parses `node`, the value of `key` at `path`, into its field of `*object` (the section's struct).
using ParseFn = absl::Status (*)(Walker& walker, const Key& key, const YamlNode& node,
                                 const std::string& path, void* object);

// Listener addresses are numeric; statsd ones may also carry a "udp://" scheme.
enum class AddressKind : uint8_t { kListener, kStatsd };

// One accepted key. Made by the factories below, which fill `parse` and the limits of its type.
struct Key {
  // Makes the key required; `reported_path` (relative, e.g. "udp.addr") names it in the message.
  constexpr Key Required(absl::string_view reported_path = {}) const {
    Key key = *this;
    key.required = true;
    key.missing_path = reported_path.empty() ? name : reported_path;
    return key;
  }
  // Also accepts `spelling`, with a warning; it is not listed as allowed, and both is an error.
  constexpr Key Alias(absl::string_view spelling) const {
    Key key = *this;
    key.alias = spelling;
    return key;
  }

  absl::string_view name;
  ParseFn parse = nullptr;
  TypeId owner = nullptr;  // the struct whose field `parse` writes
  bool required = false;
  absl::string_view missing_path;  // reported when required and absent
  absl::string_view alias;         // empty: none

  // The limits and details of the value type; each factory sets only its own.
  int64_t min_integer = 0;  // Integer
  int64_t max_integer = 0;
  double min_number = 0;  // Number
  double max_number = 0;
  bool allow_zero = false;  // Duration
  absl::Duration max_duration;
  AddressKind address_kind = AddressKind::kListener;  // Address
  // Enum: what a value is ("policy"). List: what one item is ("server").
  absl::string_view noun;
  // Nested: the mapping. List: each item, and is_list is set.
  const Section* section = nullptr;
  bool is_list = false;
};

// A YAML mapping read into a struct of type `type`.
struct Section {
  TypeId type = nullptr;
  std::span<const Key> keys;
  void (*on_present)(void* object) = nullptr;  // sets the struct's "enabled" flag; may be null
};

// A name of an enumerator, as written in the file (matched case-insensitively).
template <typename E>
struct EnumName {
  absl::string_view name;
  E value;
};

// The value called `name` (in any case) in `names`; false, leaving *value alone, when none is.
template <typename E, size_t N>
bool LookupName(const EnumName<E> (&names)[N], absl::string_view name, E* value) {
  for (const EnumName<E>& entry : names) {
    if (absl::EqualsIgnoreCase(entry.name, name)) {
      *value = entry.value;
      return true;
    }
  }
  return false;
}

// Walks one document; collects warnings and the location of every key it reads.
class Walker {
 public:
  // `filename` is used only in messages; `warnings` may be null (warnings are dropped).
  Walker(absl::string_view filename, std::vector<std::string>* warnings)
      : filename_(filename), warnings_(warnings) {}

  // Reads the document `root` (null for an empty stream) into `*object` as `section` describes.
  template <typename T>
  absl::Status WalkDocument(const Section& section, const YamlNode* root, T* object) {
    CHECK(section.type == TypeIdOf<T>());
    return WalkRoot(section, root, object);
  }

  // Reads `node` (a mapping, or null for an empty section) at `path` into `*object`.
  absl::Status WalkMapping(const Section& section, const YamlNode& node, absl::string_view path,
                           void* object);
  // Reads item `item_path` of a list, which must be a mapping.
  absl::Status WalkListItem(const Section& section, const YamlNode& item,
                            const std::string& item_path, void* object);

  // "FILE:LINE:COL: path: problem" as InvalidArgument (without "path: " when `path` is empty).
  absl::Status Error(YamlMark mark, absl::string_view path, absl::string_view problem) const;
  void Warn(YamlMark mark, absl::string_view path, absl::string_view problem);

  const Locations& locations() const { return locations_; }

 private:
  absl::Status WalkRoot(const Section& section, const YamlNode* root, void* object);
  absl::Status CheckAliases(const Section& section, const YamlNode& node,
                            absl::string_view path) const;

  absl::string_view filename_;          // for messages only
  std::vector<std::string>* warnings_;  // may be null
  Locations locations_;                 // filled as keys are read
};

std::string ChildPath(absl::string_view parent, absl::string_view key);
std::string IndexPath(absl::string_view parent, size_t index);
// `text` in double quotes, C-escaped, cut after 64 characters.
std::string Quote(absl::string_view text);
// strerror for messages, thread-safe.
std::string ErrnoText(int error);

// Appends every key path of `section` below `prefix`, in table order: dotted, "[]" for list
// items, a nested section's keys right after the key that holds it. Aliases are not listed.
void AppendKeyPaths(const Section& section, absl::string_view prefix,
                    std::vector<std::string>* paths);

// Value readers, one per type; errors name `path` and the node's position.
absl::StatusOr<std::string> ReadString(Walker& walker, const Key& key, const YamlNode& node,
                                       const std::string& path);
absl::StatusOr<int64_t> ReadInteger(Walker& walker, const Key& key, const YamlNode& node,
                                    const std::string& path);
absl::StatusOr<double> ReadNumber(Walker& walker, const Key& key, const YamlNode& node,
                                  const std::string& path);
absl::StatusOr<bool> ReadBool(Walker& walker, const Key& key, const YamlNode& node,
                              const std::string& path);
// A Go-style duration ("250ms", "1m30s") in [0, max], or (0, max] when !key.allow_zero.
absl::StatusOr<absl::Duration> ReadDuration(Walker& walker, const Key& key, const YamlNode& node,
                                            const std::string& path);
// "a.b.c.d:port" or "[v6]:port" with port 1..65535 (statsd: optionally "udp://" first).
absl::StatusOr<base::SocketAddress> ReadAddress(Walker& walker, const Key& key,
                                                const YamlNode& node, const std::string& path);
// "host:port" where host is an IPv4 address, [IPv6] address or a DNS name, resolved here with
// getaddrinfo (first result). `*text` gets the value as written.
absl::StatusOr<base::SocketAddress> ResolveHostPort(Walker& walker, const YamlNode& node,
                                                    const std::string& path, std::string* text);

// A check for String keys: empty, or a readable regular file.
absl::Status CheckReadableFile(Walker& walker, const YamlNode& node, const std::string& path,
                               std::string& file);

namespace internal {

// Deliberately not constexpr and never defined: a table that breaks a rule of the factories below
// fails to compile at the call (or to link, if the table was not declared constexpr).
void TableError(const char* rule);

template <typename M>
struct MemberPointer;
template <typename T, typename V>
struct MemberPointer<V T::*> {
  using Owner = T;
  using Value = V;
};
template <auto kMember>
using OwnerOf = typename MemberPointer<decltype(kMember)>::Owner;
template <auto kMember>
using ValueOf = typename MemberPointer<decltype(kMember)>::Value;

template <auto kMember>
ValueOf<kMember>& Field(void* object) {
  return static_cast<OwnerOf<kMember>*>(object)->*kMember;
}

template <auto kFlag>
void SetFlag(void* object) {
  Field<kFlag>(object) = true;
}

template <auto kMember>
constexpr Key MakeKey(absl::string_view name, ParseFn parse) {
  Key key;
  key.name = name;
  key.parse = parse;
  key.owner = TypeIdOf<OwnerOf<kMember>>();
  return key;
}

// A check runs after the value is stored: more rules, or a warning for an ignored value.
template <auto kCheck, typename V>
absl::Status RunCheck(Walker& walker, const YamlNode& node, const std::string& path, V& value) {
  if constexpr (std::is_same_v<decltype(kCheck), std::nullptr_t>) {
    return absl::OkStatus();
  } else {
    return kCheck(walker, node, path, value);
  }
}

template <auto kRead, auto kMember, auto kCheck>
absl::Status ParseValue(Walker& walker, const Key& key, const YamlNode& node,
                        const std::string& path, void* object) {
  auto value = kRead(walker, key, node, path);
  if (!value.ok()) {
    return value.status();
  }
  ValueOf<kMember>& field = Field<kMember>(object);
  field = static_cast<ValueOf<kMember>>(*std::move(value));
  return RunCheck<kCheck>(walker, node, path, field);
}

absl::Status UnknownName(Walker& walker, const Key& key, const YamlNode& node,
                         const std::string& path, absl::string_view name, absl::string_view valid);

template <auto kMember, const auto& kNames>
absl::Status ParseEnum(Walker& walker, const Key& key, const YamlNode& node,
                       const std::string& path, void* object) {
  absl::StatusOr<std::string> name = ReadString(walker, key, node, path);
  if (!name.ok()) {
    return name.status();
  }
  if (LookupName(kNames, *name, &Field<kMember>(object))) {
    return absl::OkStatus();
  }
  const std::string valid = absl::StrJoin(
      kNames, ", ", [](std::string* out, const auto& entry) { absl::StrAppend(out, entry.name); });
  return UnknownName(walker, key, node, path, *name, valid);
}

template <auto kMember>
absl::Status ParseNested(Walker& walker, const Key& key, const YamlNode& node,
                         const std::string& path, void* object) {
  return walker.WalkMapping(*key.section, node, path, &Field<kMember>(object));
}

// A sequence (or null) with at least one item.
absl::Status ExpectList(Walker& walker, const Key& key, const YamlNode& node,
                        const std::string& path);

template <auto kMember>
absl::Status ParseList(Walker& walker, const Key& key, const YamlNode& node,
                       const std::string& path, void* object) {
  if (absl::Status status = ExpectList(walker, key, node, path); !status.ok()) {
    return status;
  }
  ValueOf<kMember>& items = Field<kMember>(object);
  items.clear();
  for (size_t i = 0; i < node.items().size(); ++i) {
    typename ValueOf<kMember>::value_type item;
    if (absl::Status status =
            walker.WalkListItem(*key.section, *node.items()[i], IndexPath(path, i), &item);
        !status.ok()) {
      return status;
    }
    items.push_back(std::move(item));
  }
  return absl::OkStatus();
}

template <typename F>
struct CustomParser;
template <typename T>
struct CustomParser<absl::Status (*)(Walker&, const YamlNode&, const std::string&, T&)> {
  using Owner = T;
};

template <auto kParse>
absl::Status ParseCustom(Walker& walker, const Key& /*key*/, const YamlNode& node,
                         const std::string& path, void* object) {
  using Owner = typename CustomParser<decltype(kParse)>::Owner;
  return kParse(walker, node, path, *static_cast<Owner*>(object));
}

}  // namespace internal

// --- Key factories: one per value type. kMember is the field (&Struct::field); kCheck, where
// allowed, is an optional absl::Status (*)(Walker&, const YamlNode&, const std::string& path,
// V& value) run after the value is stored.

// A string; an empty value reads as "". NUL characters are rejected.
template <auto kMember, auto kCheck = nullptr>
constexpr Key String(absl::string_view name) {
  static_assert(std::is_same_v<internal::ValueOf<kMember>, std::string>);
  return internal::MakeKey<kMember>(name, &internal::ParseValue<&ReadString, kMember, kCheck>);
}

// A decimal integer in [min, max]; the range must fit the field's type.
template <auto kMember, auto kCheck = nullptr>
constexpr Key Integer(absl::string_view name, int64_t min, int64_t max) {
  using V = internal::ValueOf<kMember>;
  static_assert(std::is_integral_v<V> && !std::is_same_v<V, bool>);
  if (min > max || !std::in_range<V>(min) || !std::in_range<V>(max)) {
    internal::TableError("Integer: the range must be ordered and fit the field");
  }
  Key key = internal::MakeKey<kMember>(name, &internal::ParseValue<&ReadInteger, kMember, kCheck>);
  key.min_integer = min;
  key.max_integer = max;
  return key;
}

// A finite floating-point number in [min, max].
template <auto kMember, auto kCheck = nullptr>
constexpr Key Number(absl::string_view name, double min, double max) {
  static_assert(std::is_floating_point_v<internal::ValueOf<kMember>>);
  Key key = internal::MakeKey<kMember>(name, &internal::ParseValue<&ReadNumber, kMember, kCheck>);
  key.min_number = min;
  key.max_number = max;
  return key;
}

// true or false (also True, TRUE, False, FALSE: the YAML 1.2 core schema).
template <auto kMember, auto kCheck = nullptr>
constexpr Key Bool(absl::string_view name) {
  static_assert(std::is_same_v<internal::ValueOf<kMember>, bool>);
  return internal::MakeKey<kMember>(name, &internal::ParseValue<&ReadBool, kMember, kCheck>);
}

// A duration in [0, max]: "0s" is allowed (it usually means "none").
template <auto kMember, auto kCheck = nullptr>
constexpr Key Duration(absl::string_view name, absl::Duration max) {
  static_assert(std::is_same_v<internal::ValueOf<kMember>, absl::Duration>);
  Key key = internal::MakeKey<kMember>(name, &internal::ParseValue<&ReadDuration, kMember, kCheck>);
  key.allow_zero = true;
  key.max_duration = max;
  return key;
}

// A duration in (0, max].
template <auto kMember, auto kCheck = nullptr>
constexpr Key PositiveDuration(absl::string_view name, absl::Duration max) {
  Key key = Duration<kMember, kCheck>(name, max);
  key.allow_zero = false;
  return key;
}

// A numeric socket address.
template <auto kMember, auto kCheck = nullptr>
constexpr Key Address(absl::string_view name, AddressKind kind) {
  static_assert(std::is_same_v<internal::ValueOf<kMember>, base::SocketAddress>);
  Key key = internal::MakeKey<kMember>(name, &internal::ParseValue<&ReadAddress, kMember, kCheck>);
  key.address_kind = kind;
  return key;
}

// One of the names in kNames (an array of EnumName<E>, E the field's type), in any case. `noun`
// names a value in the error: "unknown <noun> \"x\" (valid: A, B)".
template <auto kMember, const auto& kNames>
constexpr Key Enum(absl::string_view name, absl::string_view noun) {
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(kNames[0])>,
                               EnumName<internal::ValueOf<kMember>>>);
  Key key = internal::MakeKey<kMember>(name, &internal::ParseEnum<kMember, kNames>);
  key.noun = noun;
  return key;
}

// A nested mapping read with `section`, whose struct is the field's type.
template <auto kMember>
constexpr Key Nested(absl::string_view name, const Section& section) {
  if (section.type != TypeIdOf<internal::ValueOf<kMember>>()) {
    internal::TableError("Nested: the section must describe the field's type");
  }
  Key key = internal::MakeKey<kMember>(name, &internal::ParseNested<kMember>);
  key.section = &section;
  return key;
}

// A non-empty sequence of mappings, each read with `section` into one element of the field (a
// std::vector). `noun` names one item: "must list at least one <noun>".
template <auto kMember>
constexpr Key List(absl::string_view name, absl::string_view noun, const Section& section) {
  if (section.type != TypeIdOf<typename internal::ValueOf<kMember>::value_type>()) {
    internal::TableError("List: the section must describe the field's element type");
  }
  Key key = internal::MakeKey<kMember>(name, &internal::ParseList<kMember>);
  key.noun = noun;
  key.section = &section;
  key.is_list = true;
  return key;
}

// A value read by kParse, an absl::Status (*)(Walker&, const YamlNode&, const std::string& path,
// T& object) that may set several fields of the section's struct T.
template <auto kParse>
constexpr Key Custom(absl::string_view name) {
  using Owner = typename internal::CustomParser<decltype(kParse)>::Owner;
  Key key;
  key.name = name;
  key.parse = &internal::ParseCustom<kParse>;
  key.owner = TypeIdOf<Owner>();
  return key;
}

// The section for struct T. When kPresenceFlag (a bool T::* member) is given, the section's mere
// presence sets it, even when the section is empty.
template <typename T, auto kPresenceFlag = nullptr>
constexpr Section SectionOf(std::span<const Key> keys) {
  for (const Key& key : keys) {
    if (key.owner != TypeIdOf<T>()) {
      internal::TableError("SectionOf: every key must fill a field of the section's struct");
    }
  }
  Section section;
  section.type = TypeIdOf<T>();
  section.keys = keys;
  if constexpr (!std::is_same_v<decltype(kPresenceFlag), std::nullptr_t>) {
    static_assert(std::is_same_v<decltype(kPresenceFlag), bool T::*>);
    section.on_present = &internal::SetFlag<kPresenceFlag>;
  }
  return section;
}

}  // namespace dotproxy::config::schema

#endif  // DOTPROXY_CONFIG_SCHEMA_H_
