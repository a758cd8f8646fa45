#include "config/yaml_document.h"

#include <yaml.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "base/status_macros.h"

namespace dotproxy::config {

std::unique_ptr<YamlNode> YamlNode::Scalar(YamlMark mark, std::string value, bool is_null) {
  std::unique_ptr<YamlNode> node(new YamlNode(Kind::kScalar, mark));
  node->scalar_ = std::move(value);
  node->is_null_ = is_null;
  return node;
}

std::unique_ptr<YamlNode> YamlNode::Sequence(YamlMark mark) {
  return std::unique_ptr<YamlNode>(new YamlNode(Kind::kSequence, mark));
}

std::unique_ptr<YamlNode> YamlNode::Mapping(YamlMark mark) {
  return std::unique_ptr<YamlNode>(new YamlNode(Kind::kMapping, mark));
}

void YamlNode::AddItem(std::unique_ptr<YamlNode> item) { items_.push_back(std::move(item)); }

void YamlNode::AddEntry(std::string key, YamlMark key_mark, std::unique_ptr<YamlNode> value) {
  entries_.push_back(YamlMapEntry{std::move(key), key_mark, std::move(value)});
}

const YamlMapEntry* YamlNode::Find(std::string_view key) const {
  for (const YamlMapEntry& entry : entries_) {
    if (entry.key == key) {
      return &entry;
    }
  }
  return nullptr;
}

const char* YamlNode::KindName() const {
  switch (kind_) {
    case Kind::kScalar:
      return "a scalar";
    case Kind::kSequence:
      return "a sequence";
    case Kind::kMapping:
      return "a mapping";
  }
  return "a node";
}

namespace {

// yaml_event_delete frees what libyaml allocated inside the event; the event itself is ours.
struct EventDeleter {
  void operator()(yaml_event_t* event) const {
    yaml_event_delete(event);
    delete event;
  }
};
using EventPtr = std::unique_ptr<yaml_event_t, EventDeleter>;

YamlMark ToMark(const yaml_mark_t& mark) {
  return YamlMark{static_cast<int>(mark.line) + 1, static_cast<int>(mark.column) + 1};
}

// The key path shown in messages. The key is C-escaped: a quoted YAML key may hold newlines, and
// a message must stay one line.
std::string ChildPath(absl::string_view parent, absl::string_view key) {
  const std::string escaped = absl::CHexEscape(key);
  return parent.empty() ? escaped : absl::StrCat(parent, ".", escaped);
}

// Owns one libyaml parser reading from a caller-owned buffer that must outlive it. Neither
// copyable nor movable: libyaml keeps a pointer to the parser inside the parser
// (read_handler_data).
class ParserContext {
 public:
  static absl::StatusOr<std::unique_ptr<ParserContext>> Create(absl::string_view text,
                                                               absl::string_view filename);
  ParserContext(const ParserContext&) = delete;
  ParserContext& operator=(const ParserContext&) = delete;
  ~ParserContext() {
    if (is_initialized_) {
      yaml_parser_delete(&parser_);
    }
  }

  // The next event, or the parser's error as "FILE:LINE:COL: invalid YAML: ...".
  absl::StatusOr<EventPtr> Next();
  // "FILE:LINE:COL: path: problem" as InvalidArgument; the path part is left out when empty.
  absl::Status Error(YamlMark mark, absl::string_view path, absl::string_view problem) const;

 private:
  ParserContext(absl::string_view text, absl::string_view filename)
      : text_(text), filename_(filename) {}

  absl::Status ParserError() const;
  // Reader errors carry a byte offset instead of a mark.
  YamlMark MarkAtOffset(size_t offset) const;

  yaml_parser_t parser_{};
  bool is_initialized_ = false;
  absl::string_view text_;      // the input, borrowed for the parser's lifetime
  absl::string_view filename_;  // for messages only
};

absl::StatusOr<std::unique_ptr<ParserContext>> ParserContext::Create(absl::string_view text,
                                                                     absl::string_view filename) {
  std::unique_ptr<ParserContext> context(new ParserContext(text, filename));
  if (yaml_parser_initialize(&context->parser_) == 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat(filename, ":1:1: cannot initialise the YAML parser: out of memory"));
  }
  context->is_initialized_ = true;
  yaml_parser_set_input_string(&context->parser_,
                               reinterpret_cast<const unsigned char*>(text.data()), text.size());
  return context;
}

absl::StatusOr<EventPtr> ParserContext::Next() {
  // Value-initialised, so deleting it is safe even when parsing fails.
  EventPtr event(new yaml_event_t{});
  if (yaml_parser_parse(&parser_, event.get()) == 0) {
    return ParserError();
  }
  return event;
}

absl::Status ParserContext::Error(YamlMark mark, absl::string_view path,
                                  absl::string_view problem) const {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(filename_, ":", mark.line, ":", mark.column, ": ", problem));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(filename_, ":", mark.line, ":", mark.column, ": ", path, ": ", problem));
}

YamlMark ParserContext::MarkAtOffset(size_t offset) const {
  offset = std::min(offset, text_.size());
  YamlMark mark;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text_[i] == '\n') {
      ++mark.line;
      line_start = i + 1;
    }
  }
  mark.column = static_cast<int>(offset - line_start) + 1;
  return mark;
}

absl::Status ParserContext::ParserError() const {
  const char* problem = parser_.problem != nullptr ? parser_.problem : "unknown error";
  switch (parser_.error) {
    case YAML_MEMORY_ERROR:
      return absl::ResourceExhaustedError(
          absl::StrCat(filename_, ":1:1: YAML parser out of memory"));
    case YAML_READER_ERROR: {
      std::string detail = absl::StrCat("invalid YAML: ", problem);
      if (parser_.problem_value != -1) {
        absl::StrAppendFormat(&detail, " (byte 0x%02x)", parser_.problem_value);
      }
      return Error(MarkAtOffset(parser_.problem_offset), "", detail);
    }
    default:
      break;
  }
  std::string detail = absl::StrCat("invalid YAML: ", problem);
  if (parser_.context != nullptr) {
    const YamlMark context_mark = ToMark(parser_.context_mark);
    absl::StrAppend(&detail, " (", parser_.context, " at ", context_mark.line, ":",
                    context_mark.column, ")");
  }
  return Error(ToMark(parser_.problem_mark), "", detail);
}

// Turns the event stream into a YamlNode tree. Recursion depth is bounded by kMaxDepth.
class TreeBuilder {
 public:
  explicit TreeBuilder(ParserContext& context) : context_(context) {}

  absl::StatusOr<std::unique_ptr<YamlNode>> BuildNode(EventPtr event, const std::string& path,
                                                      int depth);

 private:
  absl::StatusOr<std::unique_ptr<YamlNode>> BuildSequence(YamlMark mark, const std::string& path,
                                                          int depth);
  absl::StatusOr<std::unique_ptr<YamlNode>> BuildMapping(YamlMark mark, const std::string& path,
                                                         int depth);

  ParserContext& context_;
};

bool IsNullScalar(const yaml_event_t& event) {
  const auto& scalar = event.data.scalar;
  if (scalar.style != YAML_PLAIN_SCALAR_STYLE || scalar.tag != nullptr) {
    return false;
  }
  const absl::string_view value(reinterpret_cast<const char*>(scalar.value), scalar.length);
  return value.empty() || value == "~" || value == "null" || value == "Null" || value == "NULL";
}

const yaml_char_t* AnchorOf(const yaml_event_t& event) {
  switch (event.type) {
    case YAML_SCALAR_EVENT:
      return event.data.scalar.anchor;
    case YAML_SEQUENCE_START_EVENT:
      return event.data.sequence_start.anchor;
    case YAML_MAPPING_START_EVENT:
      return event.data.mapping_start.anchor;
    default:
      return nullptr;
  }
}

absl::StatusOr<std::unique_ptr<YamlNode>> TreeBuilder::BuildNode(EventPtr event,
                                                                 const std::string& path,
                                                                 int depth) {
  const YamlMark mark = ToMark(event->start_mark);
  if (event->type == YAML_ALIAS_EVENT) {
    return context_.Error(mark, path, "YAML aliases (*name) are not supported");
  }
  if (AnchorOf(*event) != nullptr) {
    return context_.Error(mark, path, "YAML anchors (&name) are not supported");
  }
  switch (event->type) {
    case YAML_SCALAR_EVENT:
      return YamlNode::Scalar(mark,
                              std::string(reinterpret_cast<const char*>(event->data.scalar.value),
                                          event->data.scalar.length),
                              IsNullScalar(*event));
    case YAML_SEQUENCE_START_EVENT:
      return BuildSequence(mark, path, depth);
    case YAML_MAPPING_START_EVENT:
      return BuildMapping(mark, path, depth);
    default:
      return context_.Error(mark, path,
                            absl::StrCat("unexpected YAML event ", static_cast<int>(event->type)));
  }
}

absl::StatusOr<std::unique_ptr<YamlNode>> TreeBuilder::BuildSequence(YamlMark mark,
                                                                     const std::string& path,
                                                                     int depth) {
  if (depth >= YamlDocument::kMaxDepth) {
    return context_.Error(mark, path,
                          absl::StrCat("nesting deeper than ", YamlDocument::kMaxDepth, " levels"));
  }
  std::unique_ptr<YamlNode> node = YamlNode::Sequence(mark);
  for (size_t index = 0;; ++index) {
    ASSIGN_OR_RETURN(EventPtr event, context_.Next());
    if (event->type == YAML_SEQUENCE_END_EVENT) {
      return node;
    }
    ASSIGN_OR_RETURN(std::unique_ptr<YamlNode> item,
                     BuildNode(std::move(event), absl::StrCat(path, "[", index, "]"), depth + 1));
    node->AddItem(std::move(item));
  }
}

absl::StatusOr<std::unique_ptr<YamlNode>> TreeBuilder::BuildMapping(YamlMark mark,
                                                                    const std::string& path,
                                                                    int depth) {
  if (depth >= YamlDocument::kMaxDepth) {
    return context_.Error(mark, path,
                          absl::StrCat("nesting deeper than ", YamlDocument::kMaxDepth, " levels"));
  }
  std::unique_ptr<YamlNode> node = YamlNode::Mapping(mark);
  std::map<std::string, YamlMark> seen;  // key -> where it was first defined
  for (;;) {
    ASSIGN_OR_RETURN(EventPtr key_event, context_.Next());
    if (key_event->type == YAML_MAPPING_END_EVENT) {
      return node;
    }
    const YamlMark key_mark = ToMark(key_event->start_mark);
    if (key_event->type == YAML_ALIAS_EVENT) {
      return context_.Error(key_mark, path, "YAML aliases (*name) are not supported");
    }
    if (key_event->type != YAML_SCALAR_EVENT) {
      return context_.Error(key_mark, path, "mapping keys must be scalars");
    }
    if (AnchorOf(*key_event) != nullptr) {
      return context_.Error(key_mark, path, "YAML anchors (&name) are not supported");
    }
    std::string key(reinterpret_cast<const char*>(key_event->data.scalar.value),
                    key_event->data.scalar.length);
    const std::string key_path = ChildPath(path, key);
    const auto [it, inserted] = seen.emplace(key, key_mark);
    if (!inserted) {
      return context_.Error(key_mark, key_path,
                            absl::StrCat("duplicate key (first defined at ", it->second.line, ":",
                                         it->second.column, ")"));
    }
    ASSIGN_OR_RETURN(EventPtr value_event, context_.Next());
    ASSIGN_OR_RETURN(std::unique_ptr<YamlNode> value,
                     BuildNode(std::move(value_event), key_path, depth + 1));
    node->AddEntry(std::move(key), key_mark, std::move(value));
  }
}

}  // namespace

absl::StatusOr<YamlDocument> YamlDocument::Parse(std::string_view text_in,
                                                 std::string_view filename_in) {
  const absl::string_view text(text_in.data(), text_in.size());
  const absl::string_view filename(filename_in.data(), filename_in.size());
  ASSIGN_OR_RETURN(std::unique_ptr<ParserContext> context, ParserContext::Create(text, filename));
  ASSIGN_OR_RETURN(EventPtr event, context->Next());
  if (event->type != YAML_STREAM_START_EVENT) {
    return context->Error(ToMark(event->start_mark), "", "expected the start of a YAML stream");
  }
  ASSIGN_OR_RETURN(event, context->Next());
  if (event->type == YAML_STREAM_END_EVENT) {
    return YamlDocument(nullptr);
  }
  if (event->type != YAML_DOCUMENT_START_EVENT) {
    return context->Error(ToMark(event->start_mark), "", "expected a YAML document");
  }
  TreeBuilder builder(*context);
  ASSIGN_OR_RETURN(event, context->Next());
  ASSIGN_OR_RETURN(std::unique_ptr<YamlNode> root, builder.BuildNode(std::move(event), "", 0));
  ASSIGN_OR_RETURN(event, context->Next());
  if (event->type != YAML_DOCUMENT_END_EVENT) {
    return context->Error(ToMark(event->start_mark), "", "expected the end of the YAML document");
  }
  ASSIGN_OR_RETURN(event, context->Next());
  if (event->type == YAML_DOCUMENT_START_EVENT) {
    return context->Error(ToMark(event->start_mark), "",
                          "more than one YAML document; expected exactly one");
  }
  if (event->type != YAML_STREAM_END_EVENT) {
    return context->Error(ToMark(event->start_mark), "", "expected the end of the YAML stream");
  }
  return YamlDocument(std::move(root));
}

}  // namespace dotproxy::config
