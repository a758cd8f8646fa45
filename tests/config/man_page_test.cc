// The man page dotproxy.yaml(5) and the loader cannot drift apart: every key path that
// AcceptedKeyPaths() lists has an entry in man/dotproxy.yaml.5.scd, and every entry there is a
// key the loader accepts. An entry is a line in the KEYS section that starts with the path in
// scdoc bold, e.g. "*upstream.servers[].server_name* (string, required)", followed by its
// description on tab-indented lines.
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "config/load_config.h"
#include "gtest/gtest.h"

namespace dotproxy::config {
namespace {

constexpr char kManPage[] = DOTPROXY_SOURCE_ROOT "/man/dotproxy.yaml.5.scd";

struct Entry {
  std::string path;
  bool has_description = false;
};

bool IsKeyPathChar(char c) {
  return (c >= 'a' && c <= 'z') || c == '_' || c == '.' || c == '[' || c == ']';
}

// The entries of the KEYS section, in order. Empty when the file cannot be read.
std::vector<Entry> ReadEntries(const std::string& file) {
  std::ifstream in(file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<Entry> entries;
  bool in_keys = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "# ")) {  // a section heading ("## " is a subsection)
      in_keys = line == "# KEYS";
      continue;
    }
    if (!in_keys) {
      continue;
    }
    if (absl::StartsWith(line, "\t") && !entries.empty() && !line.substr(1).empty()) {
      entries.back().has_description = true;
      continue;
    }
    if (!absl::StartsWith(line, "*")) {
      continue;
    }
    const size_t end = line.find('*', 1);
    if (end == absl::string_view::npos || end == 1) {
      continue;
    }
    const absl::string_view path = line.substr(1, end - 1);
    bool is_path = true;
    for (const char c : path) {
      is_path = is_path && IsKeyPathChar(c);
    }
    if (is_path && (end + 1 == line.size() || line[end + 1] == ' ')) {
      entries.push_back(Entry{std::string(path)});
    }
  }
  return entries;
}

class ManPageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    entries_ = ReadEntries(kManPage);
    ASSERT_FALSE(entries_.empty()) << kManPage << ": no key entries found (unreadable?)";
    for (const Entry& entry : entries_) {
      documented_.insert(entry.path);
    }
    const std::vector<std::string> accepted = AcceptedKeyPaths();
    accepted_.insert(accepted.begin(), accepted.end());
    ASSERT_FALSE(accepted_.empty());
  }

  std::vector<Entry> entries_;
  std::set<std::string> documented_;
  std::set<std::string> accepted_;
};

TEST_F(ManPageTest, DocumentsEveryAcceptedKey) {
  for (const std::string& path : accepted_) {
    EXPECT_EQ(documented_.count(path), 1u)
        << "the loader accepts " << path << ", but " << kManPage
        << " has no entry for it: add a line \"*" << path << "* (type, default)\" under KEYS";
  }
}

TEST_F(ManPageTest, DocumentsOnlyAcceptedKeys) {
  for (const std::string& path : documented_) {
    EXPECT_EQ(accepted_.count(path), 1u)
        << kManPage << " documents " << path << ", which the loader does not accept";
  }
}

TEST_F(ManPageTest, DocumentsEachKeyOnceWithADescription) {
  std::set<std::string> seen;
  for (const Entry& entry : entries_) {
    EXPECT_TRUE(seen.insert(entry.path).second) << entry.path << " has two entries";
    EXPECT_TRUE(entry.has_description) << entry.path << " has no description line";
  }
}

}  // namespace
}  // namespace dotproxy::config
