// File: dns/edns.h
//
// EDNS(0) (RFC 6891) work on wire messages for the encrypted leg: find a message's OPT record and
// its DO bit, pad a query (RFC 7830 padding option, RFC 8467 §4.1 block length 128), and take
// what the padding changed back out of the response. No I/O, no allocation: callers pass the
// buffers, and every function bounds-checks against the given length.
#ifndef DOTPROXY_DNS_EDNS_H_
#define DOTPROXY_DNS_EDNS_H_

#include <cstddef>
#include <cstdint>

namespace dotproxy::dns {

inline constexpr uint16_t kOptionPadding = 12;  // RFC 7830
inline constexpr size_t kPaddingBlock = 128;    // RFC 8467 §4.1: queries
// The most PadQuery adds: a new OPT record (11 bytes), the option header (4) and 127 zeros.
inline constexpr size_t kMaxPaddingGrowth = 11 + 4 + kPaddingBlock - 1;

struct OptRecord {
  bool found = false;
  size_t offset = 0;      // of the record (its owner name, the root)
  size_t rdata = 0;       // of its RDATA
  uint16_t rdlength = 0;
  bool do_bit = false;    // DNSSEC OK (RFC 3225), from the TTL field
};

// Walks every section of `msg` and describes its first OPT record in *opt (found = false when
// there is none). False when the message does not parse that far.
bool FindOpt(const uint8_t* msg, size_t len, OptRecord* opt);

// Writes `query` into `out` (capacity `cap`) padded to a multiple of kPaddingBlock bytes: a
// padding option appended to its OPT, or a new OPT (payload 1232, DO clear) holding one when the
// query has none. Returns the padded length, or 0 when it did not pad: the query already
// carries padding (the client's own), does not parse, or would not fit.
size_t PadQuery(const uint8_t* query, size_t len, uint8_t* out, size_t cap);

// Undoes PadQuery on the response, in place: `remove_opt` (the client sent no OPT) removes the
// response's OPT record; otherwise only its padding options go. Returns the new length (`len`
// when there is nothing to remove or the response does not parse).
size_t StripPadding(uint8_t* response, size_t len, bool remove_opt);

}  // namespace dotproxy::dns

#endif  // DOTPROXY_DNS_EDNS_H_
