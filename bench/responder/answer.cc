#include "bench/responder/answer.h"

#include <cstring>

#include "base/byte_order.h"
#include "dns/header.h"
#include "dns/message.h"

namespace dotproxy::bench {
namespace {

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeAaaa = 28;
constexpr uint16_t kTypeAny = 255;
constexpr uint16_t kClassIn = 1;
constexpr uint16_t kOptPayload = 1232;  // DNS flag day 2020 default
constexpr size_t kARecordBytes = 16;    // pointer(2) type(2) class(2) ttl(4) rdlen(2) addr(4)
constexpr size_t kAaaaRecordBytes = 28;
constexpr size_t kOptRecordBytes = 11;

void Put16(uint8_t* p, uint16_t v) { base::StoreBigEndian16(p, v); }
void Put32(uint8_t* p, uint32_t v) {
  Put16(p, static_cast<uint16_t>(v >> 16));
  Put16(p + 2, static_cast<uint16_t>(v));
}

// A record owned by the question's name (compression pointer to offset 12, RFC 1035 §4.1.4).
uint8_t* PutRecordHead(uint8_t* p, uint16_t type, uint32_t ttl, uint16_t rdlength) {
  Put16(p, 0xC000 | dns::kHeaderSize);
  Put16(p + 2, type);
  Put16(p + 4, kClassIn);
  Put32(p + 6, ttl);
  Put16(p + 10, rdlength);
  return p + 12;
}

uint8_t* PutOpt(uint8_t* p) {
  p[0] = 0;  // root owner name
  Put16(p + 1, dns::kTypeOpt);
  Put16(p + 3, kOptPayload);
  Put32(p + 5, 0);
  Put16(p + 9, 0);
  return p + kOptRecordBytes;
}

}  // namespace

uint32_t AddressForName(const uint8_t* name, size_t name_len) {
  uint32_t hash = 2166136261u;
  for (size_t i = 0; i < name_len; ++i) {
    uint8_t c = name[i];
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<uint8_t>(c + ('a' - 'A'));
    }
    hash = (hash ^ c) * 16777619u;
  }
  return (198u << 24) | (18u << 16) | (hash & 0x1FFFF);
}

size_t BuildAnswer(const uint8_t* query, size_t len, const AnswerOptions& options, bool is_udp,
                   uint8_t* out, size_t cap) {
  if (len < dns::kHeaderSize || dns::IsResponse(query)) {
    return 0;
  }
  dns::QueryInfo info;
  if (dns::ParseQuery(query, len, &info) != dns::QueryError::kOk) {
    return dns::BuildFormerrHeaderOnly(query, len, out, cap);
  }
  const size_t question_bytes = info.question_end - dns::kHeaderSize;
  const size_t name_len = question_bytes - 4;
  const bool is_in = info.qclass == kClassIn;
  const bool wants_a = is_in && (info.qtype == kTypeA || info.qtype == kTypeAny);
  const bool wants_aaaa = is_in && info.qtype == kTypeAaaa;
  const size_t answer_bytes = wants_a ? kARecordBytes : (wants_aaaa ? kAaaaRecordBytes : 0);
  const size_t opt_bytes = info.has_opt ? kOptRecordBytes : 0;
  const size_t natural = info.question_end + answer_bytes + opt_bytes;
  size_t padding_records = 0;
  if (options.target_size > natural) {
    padding_records = (options.target_size - natural + kARecordBytes - 1) / kARecordBytes;
  }
  size_t total = natural + padding_records * kARecordBytes;
  const bool is_truncated = is_udp && total > dns::ClientUdpLimit(info);
  if (is_truncated) {
    total = info.question_end + opt_bytes;
  }
  if (total > cap || total > dns::kMaxMessageSize) {
    return 0;
  }
  memcpy(out, query, info.question_end);  // ID, then the question after the header
  const uint16_t query_flags = dns::GetFlags(query);
  uint16_t flags = dns::kFlagQr | dns::kFlagAa | dns::kFlagRa |
                   (query_flags & (dns::kOpcodeMask | dns::kFlagRd | dns::kFlagCd));
  if (is_truncated) {
    flags |= dns::kFlagTc;
  }
  dns::SetFlags(out, flags);
  const uint16_t ancount = is_truncated ? 0 : (answer_bytes > 0 ? 1 : 0);
  const uint16_t arcount = static_cast<uint16_t>((is_truncated ? 0 : padding_records) +
                                                 (info.has_opt ? 1 : 0));
  Put16(out + dns::kQdcountOffset, 1);
  Put16(out + dns::kAncountOffset, ancount);
  Put16(out + dns::kNscountOffset, 0);
  Put16(out + dns::kArcountOffset, arcount);
  uint8_t* p = out + info.question_end;
  const uint32_t address = AddressForName(query + dns::kHeaderSize, name_len);
  if (!is_truncated) {
    if (wants_a) {
      p = PutRecordHead(p, kTypeA, options.ttl, 4);
      Put32(p, address);
      p += 4;
    } else if (wants_aaaa) {
      p = PutRecordHead(p, kTypeAaaa, options.ttl, 16);
      static constexpr uint8_t kPrefix[12] = {0x20, 0x01, 0x0d, 0xb8};  // 2001:db8::/32
      memcpy(p, kPrefix, sizeof(kPrefix));
      Put32(p + 12, address);
      p += 16;
    }
    // Padding: extra A records in the additional section, distinct addresses.
    for (size_t i = 0; i < padding_records; ++i) {
      p = PutRecordHead(p, kTypeA, options.ttl, 4);
      Put32(p, address + static_cast<uint32_t>(i) + 1);
      p += 4;
    }
  }
  if (info.has_opt) {
    p = PutOpt(p);
  }
  return static_cast<size_t>(p - out);
}

}  // namespace dotproxy::bench
