// File: bench/responder/answer.h
//
// Synthesises an authoritative-style answer from a query alone, so dotresponder needs no zone:
// same ID and question, QR AA RA set, RD copied; an A (or AAAA) record whose address is derived
// from a hash of the name, TTL 0 by default so no cache can answer the next query. Optional
// padding records grow responses to a target size. No I/O, no allocation.
#ifndef DOTPROXY_BENCH_RESPONDER_ANSWER_H_
#define DOTPROXY_BENCH_RESPONDER_ANSWER_H_

#include <cstddef>
#include <cstdint>

namespace dotproxy::bench {

struct AnswerOptions {
  uint32_t ttl = 0;             // TTL of every record
  size_t target_size = 0;       // pad responses to at least this many bytes (0: no padding)
};

// Writes the answer to the `len`-byte query `query` into `out` (capacity `cap`) and returns its
// length; 0 means "send nothing" (not a query, or shorter than a header). A query that does not
// parse gets a header-only FORMERR. Over UDP (`is_udp`) an answer larger than the client's limit
// (512, or its EDNS0 payload size) is replaced by a TC=1 reply with the question only, so the
// client retries over TCP (RFC 7766 §5).
size_t BuildAnswer(const uint8_t* query, size_t len, const AnswerOptions& options,
                   bool is_udp, uint8_t* out, size_t cap);

// The IPv4 address (host order) that BuildAnswer puts in the A record for this wire-format name:
// 198.18.0.0/15 (RFC 2544 benchmarking range) plus 17 bits of an FNV-1a hash of the lower-cased
// name.
uint32_t AddressForName(const uint8_t* name, size_t name_len);

}  // namespace dotproxy::bench

#endif  // DOTPROXY_BENCH_RESPONDER_ANSWER_H_
