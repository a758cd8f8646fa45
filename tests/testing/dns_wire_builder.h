// File: testing/dns_wire_builder.h
//
// WireBuilder writes DNS messages byte by byte for the dns/ unit tests. It validates nothing, so
// tests can build broken messages as easily as good ones.
#ifndef DOTPROXY_TESTING_DNS_WIRE_BUILDER_H_
#define DOTPROXY_TESTING_DNS_WIRE_BUILDER_H_

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "dns/header.h"

namespace dotproxy::testutil {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kClassIn = 1;
inline constexpr uint16_t kClassCh = 3;

// Builds wire-format messages by hand; no validation, so tests can also build broken ones.
class WireBuilder {
 public:
  WireBuilder& Header(uint16_t id, uint16_t flags, uint16_t qdcount, uint16_t ancount,
                      uint16_t nscount, uint16_t arcount) {
    U16(id).U16(flags).U16(qdcount).U16(ancount).U16(nscount).U16(arcount);
    return *this;
  }
  // "www.example.com" -> 3www7example3com0; "" or "." -> the root.
  WireBuilder& Name(std::string_view dotted) {
    while (!dotted.empty() && dotted != ".") {
      const size_t dot = dotted.find('.');
      const std::string_view label = dotted.substr(0, dot);
      bytes_.push_back(static_cast<uint8_t>(label.size()));
      bytes_.insert(bytes_.end(), label.begin(), label.end());
      dotted = dot == std::string_view::npos ? std::string_view() : dotted.substr(dot + 1);
    }
    bytes_.push_back(0);
    return *this;
  }
  WireBuilder& Pointer(uint16_t offset) { return U16(static_cast<uint16_t>(0xc000 | offset)); }
  WireBuilder& Question(std::string_view name, uint16_t qtype, uint16_t qclass) {
    return Name(name).U16(qtype).U16(qclass);
  }
  // Fixed part of a record after its owner name.
  WireBuilder& RecordTail(uint16_t type, uint16_t rclass, uint32_t ttl,
                          const std::vector<uint8_t>& rdata) {
    U16(type).U16(rclass).U16(static_cast<uint16_t>(ttl >> 16)).U16(static_cast<uint16_t>(ttl));
    U16(static_cast<uint16_t>(rdata.size()));
    bytes_.insert(bytes_.end(), rdata.begin(), rdata.end());
    return *this;
  }
  // An OPT record; `version` goes in the second byte of its TTL (RFC 6891 §6.1.3).
  WireBuilder& Opt(uint16_t payload, bool do_bit, uint8_t version = 0) {
    bytes_.push_back(0);
    return RecordTail(dns::kTypeOpt, payload, (uint32_t{version} << 16) | (do_bit ? 0x8000u : 0u),
                      {});
  }
  WireBuilder& U16(uint16_t v) {
    bytes_.push_back(static_cast<uint8_t>(v >> 8));
    bytes_.push_back(static_cast<uint8_t>(v));
    return *this;
  }
  WireBuilder& Raw(std::initializer_list<uint8_t> raw) {
    bytes_.insert(bytes_.end(), raw.begin(), raw.end());
    return *this;
  }
  std::vector<uint8_t> Build() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace dotproxy::testutil

#endif  // DOTPROXY_TESTING_DNS_WIRE_BUILDER_H_
