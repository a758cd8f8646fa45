// File: dns/query_checks.h
//
// Queries the proxy answers itself instead of forwarding: what a strict resolver rejects (and may
// drop its whole connection over, taking every other client's queries in flight with it), and
// the REFUSED of the rate limiter. Wire format only: no I/O, no allocation.
#ifndef DOTPROXY_DNS_QUERY_CHECKS_H_
#define DOTPROXY_DNS_QUERY_CHECKS_H_

#include <cstddef>
#include <cstdint>

#include "dns/message.h"

namespace dotproxy::dns {

enum class LocalAnswer : uint8_t {
  kForward,  // a query to send upstream
  kNotImp,   // opcode other than QUERY
  kFormErr,  // TC=1, ANCOUNT or NSCOUNT != 0, or more than one OPT
  kBadVers,  // EDNS version other than 0
  kRefused,  // not a check: the rate limiter's "refuse"
};

const char* LocalAnswerName(LocalAnswer answer);

// For a message ParseQuery accepted into `info`: RFC 1035 §4.1.1 (opcode 0 is QUERY; TC has no
// meaning in a query; a query carries no answer or authority records), RFC 6891 §6.1.1 (at most
// one OPT, else FORMERR) and §6.1.3 (an unknown version gets BADVERS). Never kRefused.
LocalAnswer CheckQuery(const uint8_t* msg, const QueryInfo& info);

// For a message ParseQuery rejected: true when it is still a request (>= 12 bytes, QR = 0) with
// an opcode other than QUERY, whose question section need not parse or exist (a DSO message of
// RFC 8490 has QDCOUNT = 0). `info` then holds its ID and an empty question (question_end = 12,
// no OPT), so BuildLocalAnswer writes a header-only NOTIMP: RFC 1035 §4.1.1, RFC 8490 §5.1.
// False for everything else, which is malformed and dropped.
bool ParseUnsupportedOpcode(const uint8_t* msg, size_t len, QueryInfo* info);

// Writes the proxy's own reply to `query`: its ID, opcode and RD, QR = 1, the answer's RCODE, the
// question (none for ParseUnsupportedOpcode's empty one), and an OPT when the query had one
// (BADVERS = 16: RCODE 0 in the header, extended RCODE 1 in the OPT). Returns the length, or 0
// if `cap` is too small. `answer` != kForward.
size_t BuildLocalAnswer(const uint8_t* query, const QueryInfo& info, LocalAnswer answer,
                        uint8_t* out, size_t cap);

}  // namespace dotproxy::dns

#endif  // DOTPROXY_DNS_QUERY_CHECKS_H_
