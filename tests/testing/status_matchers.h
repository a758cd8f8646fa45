// File: tests/testing/status_matchers.h
//
// gmock matchers for absl::Status and absl::StatusOr<T>, which Abseil 20220623 does not ship
// (absl/status/status_matchers.h arrived in 2024). Test-only; header-only.
//
//   EXPECT_THAT(LoadConfig(path, &warnings), IsOk());
//   EXPECT_THAT(result, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listener")));
//   ASSERT_OK_AND_ASSIGN(Config config, LoadConfigFromString(text, "t.yaml", nullptr));
#ifndef DOTPROXY_TESTS_TESTING_STATUS_MATCHERS_H_
#define DOTPROXY_TESTS_TESTING_STATUS_MATCHERS_H_

#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dotproxy::testutil {
namespace internal {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }

template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

class IsOkMatcher {
 public:
  template <typename T>
  bool MatchAndExplain(const T& value, ::testing::MatchResultListener* listener) const {
    const absl::Status& status = GetStatus(value);
    if (!status.ok()) {
      *listener << "whose status is " << status;
    }
    return status.ok();
  }
  void DescribeTo(std::ostream* os) const { *os << "is OK"; }
  void DescribeNegationTo(std::ostream* os) const { *os << "is not OK"; }
};

class StatusIsMatcher {
 public:
  StatusIsMatcher(absl::StatusCode code, ::testing::Matcher<const std::string&> message)
      : code_(code), message_(std::move(message)) {}

  template <typename T>
  bool MatchAndExplain(const T& value, ::testing::MatchResultListener* listener) const {
    const absl::Status& status = GetStatus(value);
    if (status.code() != code_) {
      *listener << "whose status is " << status;
      return false;
    }
    const std::string message(status.message());
    ::testing::StringMatchResultListener inner;
    if (!message_.MatchAndExplain(message, &inner)) {
      *listener << "whose message \"" << message << "\" does not match";
      if (!inner.str().empty()) {
        *listener << " (" << inner.str() << ")";
      }
      return false;
    }
    return true;
  }
  void DescribeTo(std::ostream* os) const {
    *os << "has status code " << absl::StatusCodeToString(code_) << " and a message that ";
    message_.DescribeTo(os);
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "does not have status code " << absl::StatusCodeToString(code_)
        << " or has a message that ";
    message_.DescribeNegationTo(os);
  }

 private:
  absl::StatusCode code_;                           // the expected code
  ::testing::Matcher<const std::string&> message_;  // applied to the status message
};

}  // namespace internal

// Matches an OK absl::Status or an absl::StatusOr<T> holding a value.
inline ::testing::PolymorphicMatcher<internal::IsOkMatcher> IsOk() {
  return ::testing::MakePolymorphicMatcher(internal::IsOkMatcher());
}

// Matches a Status / StatusOr whose code is `code` (and whose message matches `message`).
inline ::testing::PolymorphicMatcher<internal::StatusIsMatcher> StatusIs(
    absl::StatusCode code,
    ::testing::Matcher<const std::string&> message = ::testing::A<const std::string&>()) {
  return ::testing::MakePolymorphicMatcher(internal::StatusIsMatcher(code, std::move(message)));
}

}  // namespace dotproxy::testutil

#define DOTPROXY_TESTUTIL_CONCAT_INNER_(a, b) a##b
#define DOTPROXY_TESTUTIL_CONCAT_(a, b) DOTPROXY_TESTUTIL_CONCAT_INNER_(a, b)

// ASSERT_OK_AND_ASSIGN(lhs, expr): asserts that the StatusOr `expr` holds a value and moves it
// into `lhs` (a declaration or an lvalue). Only usable in functions returning void.
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  DOTPROXY_ASSERT_OK_AND_ASSIGN_IMPL_(DOTPROXY_TESTUTIL_CONCAT_(status_or_, __LINE__), lhs, rexpr)

#define DOTPROXY_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                        \
  ASSERT_TRUE(statusor.ok()) << "status: " << statusor.status();  \
  lhs = std::move(statusor).value()

#endif  // DOTPROXY_TESTS_TESTING_STATUS_MATCHERS_H_
