#include "dns/message.h"

#include <algorithm>
#include <cstring>

#include "base/byte_order.h"
#include "dns/header.h"

namespace dotproxy::dns {
namespace {

// RFC 1035 §3.1 / §2.3.4: a label is at most 63 octets, a name at most 255 octets on the wire
// (length octets and the root label included).
constexpr size_t kMaxNameBytes = 255;
// RFC 1035 §4.1.4: the two top bits of a length octet: 00 = label, 11 = pointer; 01 and 10 are
// reserved (RFC 6891 §5 retired the extended label types), so we reject them.
constexpr uint8_t kLabelTypeMask = 0xc0;
constexpr uint8_t kPointerTag = 0xc0;
// A 255-byte name has at most 127 labels; more pointer hops than that can only be a loop.
constexpr int kMaxPointerHops = 127;

constexpr size_t kQuestionFixedBytes = 4;                  // QTYPE, QCLASS
constexpr size_t kRecordFixedBytes = 10;                   // TYPE, CLASS, TTL, RDLENGTH
constexpr size_t kOptRecordBytes = 1 + kRecordFixedBytes;  // root name + fixed part, no RDATA
// DNS Flag Day 2020: the EDNS payload size we advertise in replies we build.
constexpr uint16_t kAdvertisedUdpPayload = 1232;
// RFC 6891 §6.1.4: DO is the top bit of the 16-bit flags in the low half of the OPT TTL.
constexpr uint16_t kOptFlagDo = 0x8000;

inline uint8_t AsciiLower(uint8_t c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<uint8_t>(c + ('a' - 'A')) : c;
}

// Returns the offset just past an uncompressed name starting at `offset`, or 0 if the name is
// malformed, compressed or runs past `len`.
size_t SkipUncompressedName(const uint8_t* msg, size_t len, size_t offset) {
  size_t name_bytes = 0;
  while (offset < len) {
    const uint8_t label_len = msg[offset];
    if ((label_len & kLabelTypeMask) != 0) {
      return 0;
    }
    name_bytes += 1 + label_len;
    if (name_bytes > kMaxNameBytes) {
      return 0;
    }
    offset += 1 + label_len;
    if (label_len == 0) {
      return offset;
    }
  }
  return 0;
}

// Returns the offset just past a possibly compressed name starting at `offset` (the name ends at
// its first pointer), or 0 if the name is malformed. Pointers are followed, with a hop bound, to
// check that the whole name is well formed and within 255 bytes.
size_t SkipName(const uint8_t* msg, size_t len, size_t offset) {
  size_t end = 0;  // set at the first pointer or at the root label
  size_t name_bytes = 0;
  int hops = 0;
  while (offset < len) {
    const uint8_t label_len = msg[offset];
    const uint8_t label_type = label_len & kLabelTypeMask;
    if (label_type == kPointerTag) {
      if (offset + 2 > len || ++hops > kMaxPointerHops) {
        return 0;
      }
      if (end == 0) {
        end = offset + 2;
      }
      offset = base::LoadBigEndian16(msg + offset) & 0x3fff;
      continue;
    }
    if (label_type != 0) {
      return 0;
    }
    name_bytes += 1 + label_len;
    if (name_bytes > kMaxNameBytes) {
      return 0;
    }
    offset += 1 + label_len;
    if (label_len == 0) {
      return end != 0 ? end : offset;
    }
  }
  return 0;
}

// Walks `count` resource records from *offset (RFC 1035 §4.1.3). When `info` is non-null (the
// additional section), records the first OPT. Returns false if a record runs past `len`.
bool SkipRecords(const uint8_t* msg, size_t len, size_t* offset, uint32_t count, QueryInfo* info) {
  size_t pos = *offset;
  for (uint32_t i = 0; i < count; ++i) {
    pos = SkipName(msg, len, pos);
    if (pos == 0 || len - pos < kRecordFixedBytes) {
      return false;
    }
    const uint16_t type = base::LoadBigEndian16(msg + pos);
    const uint16_t rdata_len = base::LoadBigEndian16(msg + pos + 8);
    if (info != nullptr && type == kTypeOpt && info->opt_count < 255) {
      ++info->opt_count;
    }
    if (info != nullptr && type == kTypeOpt && !info->has_opt) {
      // RFC 6891 §6.1.2-§6.1.3: CLASS carries the requestor's UDP payload size, the TTL the
      // extended RCODE, version and flags.
      info->has_opt = true;
      info->edns_version = msg[pos + 5];
      info->udp_payload_size = base::LoadBigEndian16(msg + pos + 2);
      info->do_bit = (base::LoadBigEndian16(msg + pos + 6) & kOptFlagDo) != 0;
    }
    pos += kRecordFixedBytes;
    if (len - pos < rdata_len) {
      return false;
    }
    pos += rdata_len;
  }
  *offset = pos;
  return true;
}

// Writes header + the query's question + an optional OPT. Returns the length, or 0 if it does not
// fit in `cap`.
size_t WriteReply(uint16_t id, uint16_t flags, const uint8_t* query, const QueryInfo& info,
                  uint8_t* out, size_t cap) {
  if (info.question_end < kHeaderSize) {
    return 0;
  }
  // question_end == kHeaderSize: a header-only reply (dns::ParseUnsupportedOpcode).
  const size_t question_bytes = info.question_end - kHeaderSize;
  const size_t total = kHeaderSize + question_bytes + (info.has_opt ? kOptRecordBytes : 0);
  if (cap < total) {
    return 0;
  }
  SetId(out, id);
  SetFlags(out, flags);
  base::StoreBigEndian16(out + kQdcountOffset, question_bytes > 0 ? 1 : 0);
  base::StoreBigEndian16(out + kAncountOffset, 0);
  base::StoreBigEndian16(out + kNscountOffset, 0);
  base::StoreBigEndian16(out + kArcountOffset, info.has_opt ? 1 : 0);
  std::memcpy(out + kHeaderSize, query + kHeaderSize, question_bytes);
  if (info.has_opt) {
    uint8_t* opt = out + kHeaderSize + question_bytes;
    opt[0] = 0;  // root owner name
    base::StoreBigEndian16(opt + 1, kTypeOpt);
    base::StoreBigEndian16(opt + 3, kAdvertisedUdpPayload);
    base::StoreBigEndian16(opt + 5, 0);  // extended RCODE, version
    base::StoreBigEndian16(opt + 7, info.do_bit ? kOptFlagDo : 0);
    base::StoreBigEndian16(opt + 9, 0);  // RDLENGTH
  }
  return total;
}

}  // namespace

const char* QueryErrorName(QueryError error) {
  switch (error) {
    case QueryError::kOk:
      return "ok";
    case QueryError::kTooShort:
      return "too_short";
    case QueryError::kNotQuery:
      return "not_query";
    case QueryError::kBadQdcount:
      return "bad_qdcount";
    case QueryError::kBadQuestion:
      return "bad_question";
    case QueryError::kBadRecords:
      return "bad_records";
  }
  return "unknown";
}

QueryError ParseQuery(const uint8_t* msg, size_t len, QueryInfo* info) {
  *info = QueryInfo{};
  if (len < kHeaderSize) {
    return QueryError::kTooShort;
  }
  if (IsResponse(msg)) {
    return QueryError::kNotQuery;
  }
  if (GetQdcount(msg) != 1) {
    return QueryError::kBadQdcount;
  }
  info->id = GetId(msg);
  // The question is the first name in the message, so a pointer in it can only point forward or
  // at itself: RFC 1035 §4.1.4 allows pointers only to prior occurrences.
  size_t pos = SkipUncompressedName(msg, len, kHeaderSize);
  if (pos == 0 || len - pos < kQuestionFixedBytes) {
    return QueryError::kBadQuestion;
  }
  info->qtype = base::LoadBigEndian16(msg + pos);
  info->qclass = base::LoadBigEndian16(msg + pos + 2);
  pos += kQuestionFixedBytes;
  info->question_end = static_cast<uint16_t>(pos);  // <= 12 + 255 + 4

  const uint32_t other_records = uint32_t{GetAncount(msg)} + GetNscount(msg);
  if (!SkipRecords(msg, len, &pos, other_records, nullptr) ||
      !SkipRecords(msg, len, &pos, GetArcount(msg), info)) {
    return QueryError::kBadRecords;
  }
  return QueryError::kOk;
}

size_t ClientUdpLimit(const QueryInfo& info) {
  if (!info.has_opt) {
    return kMinUdpPayload;
  }
  // RFC 6891 §6.2.5: values below 512 are treated as 512.
  return std::min(std::max<size_t>(kMinUdpPayload, info.udp_payload_size), kMaxUdpPayload);
}

bool ResponseMatchesQuery(const uint8_t* query, const QueryInfo& info, const uint8_t* response,
                          size_t response_len) {
  if (response_len < kHeaderSize) {
    return false;
  }
  const uint16_t qdcount = GetQdcount(response);
  if (qdcount == 0) {
    return GetRcode(response) != kRcodeNoError;
  }
  if (qdcount != 1) {
    return false;
  }
  // The query's name was validated by ParseQuery and ends at question_end - 4, so walking it
  // label by label stays in bounds; only the response needs checks.
  size_t pos = kHeaderSize;
  for (;;) {
    if (pos >= response_len) {
      return false;
    }
    const uint8_t label_len = query[pos];
    // The response's QNAME is its first name: a pointer there is malformed. Comparing the length
    // octets exactly also rejects any pointer or reserved label type.
    if (response[pos] != label_len) {
      return false;
    }
    ++pos;
    if (label_len == 0) {
      break;
    }
    if (response_len - pos < label_len) {
      return false;
    }
    for (size_t i = 0; i < label_len; ++i) {
      // RFC 4343: DNS names compare ASCII case-insensitively; 0x20 randomisation relies on it.
      if (AsciiLower(query[pos + i]) != AsciiLower(response[pos + i])) {
        return false;
      }
    }
    pos += label_len;
  }
  if (response_len - pos < kQuestionFixedBytes) {
    return false;
  }
  return base::LoadBigEndian16(response + pos) == info.qtype &&
         base::LoadBigEndian16(response + pos + 2) == info.qclass;
}

size_t BuildTruncatedResponse(const uint8_t* response, size_t response_len, const uint8_t* query,
                              const QueryInfo& info, uint8_t* out, size_t cap) {
  if (response_len < kHeaderSize) {
    return 0;
  }
  // RFC 7766 §5 / RFC 1035 §4.2.1: a UDP client that sees TC=1 retries over TCP, so the answer
  // sections are dropped rather than cut mid-record.
  return WriteReply(GetId(response), GetFlags(response) | kFlagTc, query, info, out, cap);
}

size_t BuildServfail(const uint8_t* query, const QueryInfo& info, uint8_t* out, size_t cap) {
  const uint16_t query_flags = GetFlags(query);
  const uint16_t flags = static_cast<uint16_t>(kFlagQr | (query_flags & (kOpcodeMask | kFlagRd)) |
                                               kFlagRa | kRcodeServFail);
  return WriteReply(info.id, flags, query, info, out, cap);
}

size_t BuildFormerrHeaderOnly(const uint8_t* msg, size_t len, uint8_t* out, size_t cap) {
  if (len < kHeaderSize || cap < kHeaderSize) {
    return 0;
  }
  // memmove: callers may answer in place.
  std::memmove(out, msg, kHeaderSize);
  const uint16_t flags =
      static_cast<uint16_t>((GetFlags(out) & ~kRcodeMask) | kFlagQr | kRcodeFormErr);
  SetFlags(out, flags);
  base::StoreBigEndian16(out + kQdcountOffset, 0);
  base::StoreBigEndian16(out + kAncountOffset, 0);
  base::StoreBigEndian16(out + kNscountOffset, 0);
  base::StoreBigEndian16(out + kArcountOffset, 0);
  return kHeaderSize;
}

}  // namespace dotproxy::dns
