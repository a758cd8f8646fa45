// File: bench/load/query_source.h
//
// Where dotload's questions come from: a names file in dnsperf format ("name type" per line,
// shared read-only by all threads, cycled through) or generated unique names
// (q<n>-<run token>-t<thread>.<suffix>) that no cache has seen. QueryWriter writes whole DNS
// query messages straight into a caller's buffer; one per thread.
#ifndef DOTPROXY_BENCH_LOAD_QUERY_SOURCE_H_
#define DOTPROXY_BENCH_LOAD_QUERY_SOURCE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dotproxy::bench {

// Largest query QueryWriter produces: header, a 255-byte name, type/class, an OPT record.
inline constexpr size_t kMaxQueryBytes = 12 + 255 + 4 + 11;

struct Question {
  std::vector<uint8_t> name;  // wire format, ends with the root label
  uint16_t qtype = 1;
};

// Reads "name [type]" lines (type defaults to A; '#' starts a comment; blank lines skipped).
// Types: A NS CNAME SOA PTR MX TXT AAAA SRV DS RRSIG DNSKEY HTTPS SVCB CAA ANY or TYPEnnn.
absl::StatusOr<std::vector<Question>> LoadNamesFile(const std::string& path);

// Encodes a presentation-format name ("www.example.com", trailing dot optional) to wire format.
absl::StatusOr<std::vector<uint8_t>> EncodeName(const std::string& name);

// Parses a type mnemonic or TYPEnnn.
absl::StatusOr<uint16_t> ParseQtype(const std::string& text);

class QueryWriter {
 public:
  struct Options {
    const std::vector<Question>* names = nullptr;  // null: unique names
    std::vector<uint8_t> suffix;  // wire-format suffix for unique names (e.g. bench.test.)
    std::string token;            // per-run token in unique names
    uint16_t unique_qtype = 1;
    bool edns = false;            // add an OPT record (payload 1232)
    uint32_t thread_id = 0;
    uint32_t thread_count = 1;    // names-file threads start at different offsets
  };
  explicit QueryWriter(Options options);

  // Writes the next query with `id` into `out` (>= kMaxQueryBytes). Returns its length and sets
  // *question_end to the offset just past the question.
  size_t Write(uint16_t id, uint8_t* out, uint16_t* question_end);

 private:
  Options options_;
  std::vector<uint8_t> prefix_label_tail_;  // "-<token>-t<thread>" bytes of the first label
  uint64_t next_unique_ = 0;
  size_t next_name_ = 0;
};

}  // namespace dotproxy::bench

#endif  // DOTPROXY_BENCH_LOAD_QUERY_SOURCE_H_
