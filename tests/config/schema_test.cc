#include "config/schema.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "config/yaml_document.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace dotproxy::config::schema {
namespace {

using ::dotproxy::testutil::IsOk;
using ::dotproxy::testutil::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A toy configuration that uses the types the real tables do not (Bool) and the walker's
// generic rules (presence flag, alias, required, list) on a small scale.
struct Item {
  std::string name;
  bool is_enabled = true;
};

struct Toy {
  bool is_present = false;
  bool is_verbose = false;
  int count = 7;
  std::vector<Item> items;
};

struct Document {
  Toy toy;
};

constexpr Key kItemKeys[] = {
    String<&Item::name>("name").Required(),
    Bool<&Item::is_enabled>("enabled"),
};
constexpr Section kItem = SectionOf<Item>(kItemKeys);

constexpr Key kToyKeys[] = {
    Bool<&Toy::is_verbose>("verbose").Alias("verbos"),
    Integer<&Toy::count>("count", -3, 3),
    List<&Toy::items>("items", "item", kItem),
};
constexpr Section kToy = SectionOf<Toy, &Toy::is_present>(kToyKeys);

constexpr Key kDocumentKeys[] = {
    Nested<&Document::toy>("toy", kToy).Required("toy.items"),
};
constexpr Section kDocument = SectionOf<Document>(kDocumentKeys);

class SchemaTest : public ::testing::Test {
 protected:
  absl::Status Walk(std::string_view text) {
    document_ = Document{};
    warnings_.clear();
    absl::StatusOr<YamlDocument> yaml = YamlDocument::Parse(text, "toy.yaml");
    if (!yaml.ok()) {
      return yaml.status();
    }
    Walker walker("toy.yaml", &warnings_);
    return walker.WalkDocument(kDocument, yaml->root(), &document_);
  }

  Document document_;
  std::vector<std::string> warnings_;
};

TEST_F(SchemaTest, AbsentKeysKeepDefaults) {
  ASSERT_THAT(Walk("toy:\n"), IsOk());
  EXPECT_TRUE(document_.toy.is_present);
  EXPECT_FALSE(document_.toy.is_verbose);
  EXPECT_EQ(document_.toy.count, 7);
  EXPECT_THAT(document_.toy.items, IsEmpty());
  EXPECT_THAT(warnings_, IsEmpty());
}

TEST_F(SchemaTest, MissingSectionIsReportedAsItsInnermostKey) {
  EXPECT_THAT(Walk("{}\n"), StatusIs(absl::StatusCode::kInvalidArgument,
                                     "toy.yaml:1:1: toy.items: missing required key"));
}

TEST_F(SchemaTest, Bools) {
  for (const char* text : {"true", "True", "TRUE"}) {
    SCOPED_TRACE(text);
    ASSERT_THAT(Walk(std::string("toy:\n  verbose: ") + text + "\n"), IsOk());
    EXPECT_TRUE(document_.toy.is_verbose);
  }
  for (const char* text : {"false", "False", "FALSE"}) {
    SCOPED_TRACE(text);
    ASSERT_THAT(Walk(std::string("toy:\n  verbose: ") + text + "\n"), IsOk());
    EXPECT_FALSE(document_.toy.is_verbose);
  }
  EXPECT_THAT(Walk("toy:\n  verbose: yes\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "toy.yaml:2:12: toy.verbose: expected true or false, got \"yes\""));
  EXPECT_THAT(Walk("toy:\n  verbose:\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "toy.yaml:2:11: toy.verbose: expected true or false, got an empty value"));
}

TEST_F(SchemaTest, AliasWarnsAndConflicts) {
  ASSERT_THAT(Walk("toy:\n  verbos: true\n"), IsOk());
  EXPECT_TRUE(document_.toy.is_verbose);
  EXPECT_THAT(warnings_, ElementsAre("toy.yaml:2:3: toy.verbos: misspelt key accepted; rename "
                                     "it to verbose"));
  EXPECT_THAT(Walk("toy:\n  verbose: true\n  verbos: true\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "toy.yaml:3:3: toy.verbos: conflicts with toy.verbose; keep only the "
                       "correctly spelt key"));
}

TEST_F(SchemaTest, UnknownKeyListsOnlyCanonicalNames) {
  EXPECT_THAT(Walk("toy:\n  colour: red\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "toy.yaml:2:3: toy.colour: unknown key (allowed: verbose, count, items)"));
}

TEST_F(SchemaTest, ListItems) {
  ASSERT_THAT(Walk("toy:\n  items:\n    - name: a\n    - name: b\n      enabled: false\n"), IsOk());
  ASSERT_EQ(document_.toy.items.size(), 2u);
  EXPECT_EQ(document_.toy.items[0].name, "a");
  EXPECT_TRUE(document_.toy.items[0].is_enabled);
  EXPECT_FALSE(document_.toy.items[1].is_enabled);
  EXPECT_THAT(Walk("toy:\n  items: []\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "toy.yaml:2:10: toy.items: must list at least one item"));
  EXPECT_THAT(Walk("toy:\n  items:\n    - enabled: true\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "toy.yaml:3:7: toy.items[0].name: missing required key"));
}

TEST_F(SchemaTest, LocationsOfKeysAndItems) {
  std::vector<std::string> warnings;
  absl::StatusOr<YamlDocument> yaml = YamlDocument::Parse("toy:\n  items:\n    - name: a\n", "t");
  ASSERT_THAT(yaml.status(), IsOk());
  Walker walker("t", &warnings);
  Document document;
  ASSERT_THAT(walker.WalkDocument(kDocument, yaml->root(), &document), IsOk());
  const Locations& locations = walker.locations();
  ASSERT_EQ(locations.count("toy.items[0]"), 1u);
  EXPECT_EQ(locations.at("toy.items[0]").line, 3);
  EXPECT_EQ(locations.at("toy.items[0]").column, 7);
  ASSERT_EQ(locations.count("toy.items[0].name"), 1u);
  EXPECT_EQ(locations.at("toy.items[0].name").column, 13);
}

TEST(AppendKeyPathsTest, DottedWithBracketsForLists) {
  std::vector<std::string> paths;
  AppendKeyPaths(kDocument, "", &paths);
  EXPECT_THAT(paths, ElementsAre("toy", "toy.verbose", "toy.count", "toy.items", "toy.items[].name",
                                 "toy.items[].enabled"));
}

}  // namespace
}  // namespace dotproxy::config::schema
