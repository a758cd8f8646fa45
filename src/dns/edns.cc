#include "dns/edns.h"

#include <cstring>

#include "base/byte_order.h"
#include "dns/header.h"

namespace dotproxy::dns {
namespace {

constexpr size_t kRecordFixedBytes = 10;  // TYPE, CLASS, TTL, RDLENGTH
constexpr size_t kOptHeaderBytes = 1 + kRecordFixedBytes;
constexpr size_t kOptionHeaderBytes = 4;
constexpr uint16_t kPaddedQueryPayload = 1232;
constexpr uint16_t kFlagDo = 0x8000;  // in the low 16 bits of the OPT TTL

// Offset just past the name at `off` (compression allowed), or 0 if it runs past `len`.
size_t SkipName(const uint8_t* msg, size_t len, size_t off) {
  // A name has at most 127 labels; the bound also stops a malicious label chain.
  for (int labels = 0; labels < 128 && off < len; ++labels) {
    const uint8_t b = msg[off];
    if (b == 0) {
      return off + 1;
    }
    if ((b & 0xc0) == 0xc0) {
      return off + 2 <= len ? off + 2 : 0;
    }
    if ((b & 0xc0) != 0) {
      return 0;
    }
    off += 1 + b;
  }
  return 0;
}

// Whether the options in rdata[0, n) include padding; false also when they do not parse.
bool HasPaddingOption(const uint8_t* rdata, size_t n) {
  size_t off = 0;
  while (off + kOptionHeaderBytes <= n) {
    const uint16_t code = base::LoadBigEndian16(rdata + off);
    const size_t length = base::LoadBigEndian16(rdata + off + 2);
    if (code == kOptionPadding) {
      return true;
    }
    off += kOptionHeaderBytes + length;
  }
  return false;
}

// Zero bytes of padding that make a message of `len` bytes (option header included) a multiple
// of the block.
size_t PaddingFor(size_t len) { return (kPaddingBlock - len % kPaddingBlock) % kPaddingBlock; }

void WritePaddingOption(uint8_t* out, size_t pad) {
  base::StoreBigEndian16(out, kOptionPadding);
  base::StoreBigEndian16(out + 2, static_cast<uint16_t>(pad));
  memset(out + kOptionHeaderBytes, 0, pad);
}

}  // namespace

bool FindOpt(const uint8_t* msg, size_t len, OptRecord* opt) {
  *opt = OptRecord();
  if (len < kHeaderSize) {
    return false;
  }
  size_t off = kHeaderSize;
  for (uint32_t i = 0; i < GetQdcount(msg); ++i) {
    off = SkipName(msg, len, off);
    if (off == 0 || off + 4 > len) {
      return false;
    }
    off += 4;
  }
  const uint32_t before_additional = uint32_t{GetAncount(msg)} + GetNscount(msg);
  const uint32_t records = before_additional + GetArcount(msg);
  for (uint32_t i = 0; i < records; ++i) {
    const size_t start = off;
    off = SkipName(msg, len, off);
    if (off == 0 || off + kRecordFixedBytes > len) {
      return false;
    }
    const uint16_t type = base::LoadBigEndian16(msg + off);
    const uint16_t rdlength = base::LoadBigEndian16(msg + off + 8);
    const size_t rdata = off + kRecordFixedBytes;
    if (rdata + rdlength > len) {
      return false;
    }
    if (type == kTypeOpt && i >= before_additional && !opt->found) {
      opt->found = true;
      opt->offset = start;
      opt->rdata = rdata;
      opt->rdlength = rdlength;
      opt->do_bit = (base::LoadBigEndian16(msg + off + 6) & kFlagDo) != 0;
    }
    off = rdata + rdlength;
  }
  return true;
}

size_t PadQuery(const uint8_t* query, size_t len, uint8_t* out, size_t cap) {
  OptRecord opt;
  if (!FindOpt(query, len, &opt)) {
    return 0;
  }
  if (opt.found) {
    if (HasPaddingOption(query + opt.rdata, opt.rdlength)) {
      return 0;  // the client pads its own queries
    }
    const size_t pad = PaddingFor(len + kOptionHeaderBytes);
    const size_t grown = kOptionHeaderBytes + pad;
    const size_t opt_end = opt.rdata + opt.rdlength;
    if (len + grown > cap || len + grown > kMaxMessageSize || opt.rdlength + grown > 0xffff) {
      return 0;
    }
    // The option goes at the end of the OPT's RDATA; whatever follows the OPT moves up.
    memcpy(out, query, opt_end);
    WritePaddingOption(out + opt_end, pad);
    memcpy(out + opt_end + grown, query + opt_end, len - opt_end);
    base::StoreBigEndian16(out + opt.rdata - 2, static_cast<uint16_t>(opt.rdlength + grown));
    return len + grown;
  }
  const size_t pad = PaddingFor(len + kOptHeaderBytes + kOptionHeaderBytes);
  const size_t total = len + kOptHeaderBytes + kOptionHeaderBytes + pad;
  if (total > cap || total > kMaxMessageSize || GetArcount(query) == 0xffff) {
    return 0;
  }
  memcpy(out, query, len);
  uint8_t* rr = out + len;
  rr[0] = 0;  // owner: the root
  base::StoreBigEndian16(rr + 1, kTypeOpt);
  base::StoreBigEndian16(rr + 3, kPaddedQueryPayload);
  memset(rr + 5, 0, 4);  // extended RCODE, version 0, flags (DO clear)
  base::StoreBigEndian16(rr + 9, static_cast<uint16_t>(kOptionHeaderBytes + pad));
  WritePaddingOption(rr + kOptHeaderBytes, pad);
  base::StoreBigEndian16(out + kArcountOffset, static_cast<uint16_t>(GetArcount(query) + 1));
  return total;
}

size_t StripPadding(uint8_t* response, size_t len, bool remove_opt) {
  OptRecord opt;
  if (!FindOpt(response, len, &opt) || !opt.found) {
    return len;
  }
  const size_t opt_end = opt.rdata + opt.rdlength;
  if (remove_opt) {
    memmove(response + opt.offset, response + opt_end, len - opt_end);
    base::StoreBigEndian16(response + kArcountOffset,
                           static_cast<uint16_t>(GetArcount(response) - 1));
    return len - (opt_end - opt.offset);
  }
  // Validate first, so that a malformed OPT is left as the server sent it.
  size_t read = opt.rdata;
  while (read + kOptionHeaderBytes <= opt_end) {
    read += kOptionHeaderBytes + base::LoadBigEndian16(response + read + 2);
  }
  if (read != opt_end) {
    return len;
  }
  // Keep every option but padding, in order.
  read = opt.rdata;
  size_t write = opt.rdata;
  while (read < opt_end) {
    const uint16_t code = base::LoadBigEndian16(response + read);
    const size_t size = kOptionHeaderBytes + base::LoadBigEndian16(response + read + 2);
    if (code != kOptionPadding) {
      memmove(response + write, response + read, size);
      write += size;
    }
    read += size;
  }
  const size_t removed = opt_end - write;
  if (removed == 0) {
    return len;
  }
  memmove(response + write, response + opt_end, len - opt_end);
  base::StoreBigEndian16(response + opt.rdata - 2, static_cast<uint16_t>(opt.rdlength - removed));
  return len - removed;
}

}  // namespace dotproxy::dns
