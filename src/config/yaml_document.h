// File: config/yaml_document.h
//
// A parsed YAML document as a small tree of YamlNode (scalar / sequence / mapping) whose nodes
// remember their 1-based line:column. Built from libyaml events in yaml_document.cc, the only file
// that includes <yaml.h>. Aliases, anchors and duplicate keys are rejected while parsing; the tree
// is immutable afterwards and owns all of its nodes.
//
//   absl::StatusOr<YamlDocument> doc = YamlDocument::Parse(text, "dotproxy.yaml");
//   if (doc.ok() && doc->root() != nullptr) { ... doc->root()->Find("listener") ... }
#ifndef DOTPROXY_CONFIG_YAML_DOCUMENT_H_
#define DOTPROXY_CONFIG_YAML_DOCUMENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace dotproxy::config {

// A position in the source text, 1-based.
struct YamlMark {
  int line = 1;
  int column = 1;
};

class YamlNode;

// One key/value pair of a mapping, in source order.
struct YamlMapEntry {
  std::string key;
  YamlMark key_mark;                // where the key itself starts
  std::unique_ptr<YamlNode> value;  // never null
};

class YamlNode {
 public:
  enum class Kind : uint8_t { kScalar, kSequence, kMapping };

  static std::unique_ptr<YamlNode> Scalar(YamlMark mark, std::string value, bool is_null);
  static std::unique_ptr<YamlNode> Sequence(YamlMark mark);
  static std::unique_ptr<YamlNode> Mapping(YamlMark mark);

  YamlNode(const YamlNode&) = delete;
  YamlNode& operator=(const YamlNode&) = delete;

  // Appends to a sequence / mapping; the caller checks kind() and key uniqueness.
  void AddItem(std::unique_ptr<YamlNode> item);
  void AddEntry(std::string key, YamlMark key_mark, std::unique_ptr<YamlNode> value);

  // The mapping entry for `key`, or null when absent or when this is not a mapping.
  const YamlMapEntry* Find(std::string_view key) const;
  // "a scalar", "a sequence" or "a mapping", for messages.
  const char* KindName() const;

  Kind kind() const { return kind_; }
  bool is_scalar() const { return kind_ == Kind::kScalar; }
  bool is_sequence() const { return kind_ == Kind::kSequence; }
  bool is_mapping() const { return kind_ == Kind::kMapping; }
  // A plain, untagged empty value, "~" or "null" (YAML 1.2 core schema).
  bool is_null() const { return is_null_; }
  const YamlMark& mark() const { return mark_; }
  // The scalar's text; empty for collections.
  const std::string& scalar() const { return scalar_; }
  // Sequence items; empty for scalars and mappings.
  const std::vector<std::unique_ptr<YamlNode>>& items() const { return items_; }
  // Mapping entries in source order; empty for scalars and sequences.
  const std::vector<YamlMapEntry>& entries() const { return entries_; }

 private:
  YamlNode(Kind kind, YamlMark mark) : kind_(kind), mark_(mark) {}

  Kind kind_;
  YamlMark mark_;  // where the node starts
  bool is_null_ = false;
  std::string scalar_;
  std::vector<std::unique_ptr<YamlNode>> items_;  // kSequence only
  std::vector<YamlMapEntry> entries_;             // kMapping only
};

class YamlDocument {
 public:
  // Parses one YAML document from `text`. Errors are InvalidArgument with the single-line message
  // "FILENAME:LINE:COL: problem" (`filename` is used only in messages), or ResourceExhausted if
  // libyaml runs out of memory. More than one document,
  // aliases, anchors, non-scalar keys, duplicate keys and nesting deeper than kMaxDepth are
  // errors. A stream with no document at all (empty, or only comments) gives root() == null.
  static absl::StatusOr<YamlDocument> Parse(std::string_view text, std::string_view filename);

  static constexpr int kMaxDepth = 64;

  // The top node, or null for an empty stream.
  const YamlNode* root() const { return root_.get(); }

 private:
  explicit YamlDocument(std::unique_ptr<YamlNode> root) : root_(std::move(root)) {}

  std::unique_ptr<YamlNode> root_;
};

}  // namespace dotproxy::config

#endif  // DOTPROXY_CONFIG_YAML_DOCUMENT_H_
