#include "dns/query_checks.h"

#include "dns/header.h"

namespace dotproxy::dns {
namespace {

constexpr uint16_t kRcodeNotImp = 4;
constexpr uint16_t kRcodeRefused = 5;
// RFC 6891 §6.1.3 / §9: BADVERS is 16, the upper 8 bits of the 12-bit RCODE live in the OPT TTL.
constexpr uint16_t kRcodeBadVers = 16;
constexpr size_t kOptExtendedRcodeOffset = 5;  // after root name (1), TYPE (2), CLASS (2)

uint16_t RcodeOf(LocalAnswer answer) {
  switch (answer) {
    case LocalAnswer::kForward:
      break;
    case LocalAnswer::kNotImp:
      return kRcodeNotImp;
    case LocalAnswer::kFormErr:
      return kRcodeFormErr;
    case LocalAnswer::kBadVers:
      return kRcodeBadVers;
    case LocalAnswer::kRefused:
      return kRcodeRefused;
  }
  return kRcodeServFail;
}

}  // namespace

const char* LocalAnswerName(LocalAnswer answer) {
  switch (answer) {
    case LocalAnswer::kForward:
      return "forward";
    case LocalAnswer::kNotImp:
      return "notimp";
    case LocalAnswer::kFormErr:
      return "formerr";
    case LocalAnswer::kBadVers:
      return "badvers";
    case LocalAnswer::kRefused:
      return "refused";
  }
  return "unknown";
}

LocalAnswer CheckQuery(const uint8_t* msg, const QueryInfo& info) {
  const uint16_t flags = GetFlags(msg);
  if ((flags & kOpcodeMask) != 0) {
    return LocalAnswer::kNotImp;
  }
  if ((flags & kFlagTc) != 0 || GetAncount(msg) != 0 || GetNscount(msg) != 0 ||
      info.opt_count > 1) {
    return LocalAnswer::kFormErr;
  }
  if (info.has_opt && info.edns_version != 0) {
    return LocalAnswer::kBadVers;
  }
  return LocalAnswer::kForward;
}

bool ParseUnsupportedOpcode(const uint8_t* msg, size_t len, QueryInfo* info) {
  if (len < kHeaderSize || IsResponse(msg) || (GetFlags(msg) & kOpcodeMask) == 0) {
    return false;
  }
  *info = QueryInfo{};
  info->id = GetId(msg);
  info->question_end = kHeaderSize;
  return true;
}

size_t BuildLocalAnswer(const uint8_t* query, const QueryInfo& info, LocalAnswer answer,
                        uint8_t* out, size_t cap) {
  // The SERVFAIL builder writes exactly this shape; only the RCODE differs.
  const size_t n = BuildServfail(query, info, out, cap);
  if (n == 0) {
    return 0;
  }
  const uint16_t rcode = RcodeOf(answer);
  SetFlags(out, static_cast<uint16_t>((GetFlags(out) & ~kRcodeMask) | (rcode & kRcodeMask)));
  if (info.has_opt) {
    out[info.question_end + kOptExtendedRcodeOffset] = static_cast<uint8_t>(rcode >> 4);
  }
  return n;
}

}  // namespace dotproxy::dns
