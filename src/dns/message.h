// File: dns/message.h
//
// The little DNS parsing a forwarder needs, on raw wire bytes: validate a client query and find its
// question and EDNS0 OPT record; match a response's question against its query (RFC 7766 §7);
// build a truncated (TC=1) reply and a SERVFAIL reply. No I/O, no allocation; every function
// bounds-checks against the given length and never reads past it.
#ifndef DOTPROXY_DNS_MESSAGE_H_
#define DOTPROXY_DNS_MESSAGE_H_

#include <cstddef>
#include <cstdint>

namespace dotproxy::dns {

enum class QueryError : uint8_t {
  kOk,
  kTooShort,         // fewer than 12 bytes
  kNotQuery,         // QR = 1
  kBadQdcount,       // QDCOUNT != 1
  kBadQuestion,      // name or type/class runs past the end, label > 63, name > 255, bad pointer
  kBadRecords,       // an answer/authority/additional record runs past the end
};

const char* QueryErrorName(QueryError error);

struct QueryInfo {
  uint16_t id = 0;
  uint16_t question_end = 0;     // offset just past QTYPE/QCLASS of the only question
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  bool has_opt = false;          // the query carries an EDNS0 OPT record
  uint8_t opt_count = 0;         // OPT records in the additional section (saturates at 255)
  uint8_t edns_version = 0;      // VERSION of the first OPT (RFC 6891 §6.1.3)
  bool do_bit = false;           // DNSSEC OK bit from the OPT TTL field
  uint16_t udp_payload_size = 512;  // OPT CLASS, or 512 without OPT
};

// Checks a client query: >= 12 bytes, QR = 0, QDCOUNT = 1, the question parses (compression
// pointers in the question are rejected), every other record parses, and the first OPT in the
// additional section is recorded.
QueryError ParseQuery(const uint8_t* msg, size_t len, QueryInfo* info);

// Largest UDP reply this client accepts: 512 without OPT, else max(512, payload size), capped at
// kMaxUdpPayload.
size_t ClientUdpLimit(const QueryInfo& info);

// True when `response` (>= 12 bytes) has QDCOUNT = 1 and its question equals the question of
// `query` (which ParseQuery accepted): QNAME compared case-insensitively (0x20 randomisation),
// QTYPE and QCLASS exactly. A response with QDCOUNT = 0 matches only when its RCODE is not
// NOERROR (some servers drop the question in FORMERR/SERVFAIL/REFUSED answers).
bool ResponseMatchesQuery(const uint8_t* query, const QueryInfo& info, const uint8_t* response,
                          size_t response_len);

// Writes into `out` (capacity `cap`) a reply that has the response's header flags and RCODE plus
// TC = 1, ID = the response's ID, the query's question, no answer or authority records, and, if
// the query had OPT, one OPT record (payload 1232, DO bit copied from the query). RFC 7766 §5.
// Returns the length written, or 0 if `cap` is too small.
size_t BuildTruncatedResponse(const uint8_t* response, size_t response_len, const uint8_t* query,
                              const QueryInfo& info, uint8_t* out, size_t cap);

// Writes a SERVFAIL reply to `query`: its ID, QR = 1, its opcode, RD copied, RA = 1, RCODE = 2,
// the question, and an OPT if the query had one. Returns the length, or 0 if `cap` is too small.
size_t BuildServfail(const uint8_t* query, const QueryInfo& info, uint8_t* out, size_t cap);

// Writes a FORMERR reply echoing the 12-byte header of `msg` (len >= 12) with QR = 1,
// RCODE = 1 and all counts zero. Returns 12, or 0 if `cap` < 12 or len < 12.
size_t BuildFormerrHeaderOnly(const uint8_t* msg, size_t len, uint8_t* out, size_t cap);

}  // namespace dotproxy::dns

#endif  // DOTPROXY_DNS_MESSAGE_H_
