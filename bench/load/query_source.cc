#include "bench/load/query_source.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/byte_order.h"
#include "dns/header.h"

namespace dotproxy::bench {
namespace {

struct TypeName {
  const char* name;
  uint16_t value;
};
constexpr TypeName kTypes[] = {
    {"A", 1},     {"NS", 2},      {"CNAME", 5},   {"SOA", 6},    {"PTR", 12},
    {"MX", 15},   {"TXT", 16},    {"AAAA", 28},   {"SRV", 33},   {"DS", 43},
    {"RRSIG", 46}, {"DNSKEY", 48}, {"SVCB", 64},  {"HTTPS", 65}, {"CAA", 257},
    {"ANY", 255},
};

}  // namespace

absl::StatusOr<uint16_t> ParseQtype(const std::string& text) {
  const std::string upper = absl::AsciiStrToUpper(text);
  for (const TypeName& t : kTypes) {
    if (upper == t.name) {
      return t.value;
    }
  }
  uint32_t value = 0;
  if (upper.rfind("TYPE", 0) == 0 && absl::SimpleAtoi(upper.substr(4), &value) &&
      value <= 65535) {
    return static_cast<uint16_t>(value);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown query type '", text, "'"));
}

absl::StatusOr<std::vector<uint8_t>> EncodeName(const std::string& name) {
  std::vector<uint8_t> wire;
  std::string text = name;
  if (!text.empty() && text.back() == '.') {
    text.pop_back();
  }
  if (!text.empty()) {
    for (absl::string_view label : absl::StrSplit(text, '.')) {
      if (label.empty() || label.size() > 63) {
        return absl::InvalidArgumentError(absl::StrCat("bad name '", name, "'"));
      }
      wire.push_back(static_cast<uint8_t>(label.size()));
      wire.insert(wire.end(), label.begin(), label.end());
    }
  }
  wire.push_back(0);
  if (wire.size() > 255) {
    return absl::InvalidArgumentError(absl::StrCat("name longer than 255 bytes: '", name, "'"));
  }
  return wire;
}

absl::StatusOr<std::vector<Question>> LoadNamesFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read names file ", path));
  }
  std::vector<Question> out;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (const size_t hash = line.find('#'); hash != std::string::npos) {
      line.resize(hash);
    }
    std::vector<std::string> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) {
      continue;
    }
    Question q;
    auto name = EncodeName(fields[0]);
    if (!name.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": ", name.status().message()));
    }
    q.name = std::move(name).value();
    if (fields.size() > 1) {
      auto type = ParseQtype(fields[1]);
      if (!type.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", line_no, ": ", type.status().message()));
      }
      q.qtype = *type;
    }
    out.push_back(std::move(q));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("names file ", path, " has no names"));
  }
  return out;
}

QueryWriter::QueryWriter(Options options) : options_(std::move(options)) {
  const std::string tail = absl::StrCat("-", options_.token, "-t", options_.thread_id);
  prefix_label_tail_.assign(tail.begin(), tail.end());
  if (options_.names != nullptr && !options_.names->empty()) {
    next_name_ = options_.names->size() * options_.thread_id / options_.thread_count;
  }
}

size_t QueryWriter::Write(uint16_t id, uint8_t* out, uint16_t* question_end) {
  dns::SetId(out, id);
  dns::SetFlags(out, dns::kFlagRd);
  base::StoreBigEndian16(out + dns::kQdcountOffset, 1);
  base::StoreBigEndian16(out + dns::kAncountOffset, 0);
  base::StoreBigEndian16(out + dns::kNscountOffset, 0);
  base::StoreBigEndian16(out + dns::kArcountOffset, options_.edns ? 1 : 0);
  uint8_t* p = out + dns::kHeaderSize;
  uint16_t qtype;
  if (options_.names != nullptr) {
    const Question& q = (*options_.names)[next_name_];
    if (++next_name_ == options_.names->size()) {
      next_name_ = 0;
    }
    memcpy(p, q.name.data(), q.name.size());
    p += q.name.size();
    qtype = q.qtype;
  } else {
    // First label: 'q' + decimal counter + "-<token>-t<thread>".
    char digits[24];
    int n = 0;
    uint64_t v = next_unique_++;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    const size_t label = 1 + static_cast<size_t>(n) + prefix_label_tail_.size();
    *p++ = static_cast<uint8_t>(label);
    *p++ = 'q';
    while (n > 0) {
      *p++ = static_cast<uint8_t>(digits[--n]);
    }
    memcpy(p, prefix_label_tail_.data(), prefix_label_tail_.size());
    p += prefix_label_tail_.size();
    memcpy(p, options_.suffix.data(), options_.suffix.size());
    p += options_.suffix.size();
    qtype = options_.unique_qtype;
  }
  base::StoreBigEndian16(p, qtype);
  base::StoreBigEndian16(p + 2, 1);  // class IN
  p += 4;
  *question_end = static_cast<uint16_t>(p - out);
  if (options_.edns) {
    p[0] = 0;
    base::StoreBigEndian16(p + 1, dns::kTypeOpt);
    base::StoreBigEndian16(p + 3, 1232);
    memset(p + 5, 0, 6);  // extended rcode, version, flags, rdlength
    p += 11;
  }
  return static_cast<size_t>(p - out);
}

}  // namespace dotproxy::bench
