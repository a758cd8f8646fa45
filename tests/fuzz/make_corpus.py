#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Usage: tests/fuzz/make_corpus.py [OUT_DIR]     (default: corpus/ next to this script)

Real queries and responses come from dnspython (Debian: python3-dnspython); the input layouts are
the ones documented at the top of each fuzz_<target>.cc. The output is committed, so the corpus
does not change unless this script does; run it again after changing a layout. Regression inputs
(files named regression-*) are added by hand and are never touched here.
"""
import os
import shutil
import struct
import sys

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

HERE = os.path.dirname(os.path.abspath(__file__))


def query(name, rdtype="A", qid=0x1234, **kwargs):
    q = dns.message.make_query(name, rdtype, **kwargs)
    q.id = qid
    return q


def response(q, answers=0, rdtype=None, ttl=60):
    """A NOERROR response to q with `answers` records (compressed owner names)."""
    r = dns.message.make_response(q)
    rdtype = rdtype or q.question[0].rdtype
    if answers:
        values = []
        for i in range(answers):
            if rdtype == dns.rdatatype.A:
                values.append(f"10.0.{i // 256}.{i % 256}")
            elif rdtype == dns.rdatatype.AAAA:
                values.append(f"2001:db8::{i:x}")
            else:
                values.append(f'"answer {i} ' + "x" * 40 + '"')
        r.answer.append(dns.rrset.from_text_list(q.question[0].name, ttl, "IN",
                                                 dns.rdatatype.to_text(rdtype), values))
    return r


def u16(n):
    return struct.pack("!H", n)


def with_query(q, rest):
    wire = q.to_wire() if hasattr(q, "to_wire") else q
    return u16(len(wire)) + wire + rest


def frame(msg):
    return u16(len(msg)) + msg


def queries():
    edns_do = query("example.org", "AAAA", qid=0x0102, use_edns=0, payload=1232, want_dnssec=True)
    ecs = query("www.example.net", "TXT", qid=7, use_edns=0, payload=4096,
                options=[dns.edns.ECSOption("192.0.2.0", 24), dns.edns.GenericOption(10, b"c" * 8)])
    additional = query("mail.example.com", "MX", qid=0xbeef)
    additional.additional.append(dns.rrset.from_text("mail.example.com.", 30, "IN", "A", "192.0.2.1"))
    notify = dns.message.make_query("example.com", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    notify.flags &= ~dns.flags.RD
    notify.answer.append(dns.rrset.from_text(
        "example.com.", 3600, "IN", "SOA", "ns.example.com. admin.example.com. 1 2 3 4 5"))
    long_name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]) + "."
    rd = query("www.example.com").to_wire()
    return {
        "a_rd": rd,
        "aaaa_edns_do": edns_do.to_wire(),
        "txt_edns_ecs_cookie": ecs.to_wire(),
        "mx_additional_compressed": additional.to_wire(),
        "mixed_case_0x20": query("WwW.ExAmPlE.CoM", "A", qid=0xffff).to_wire(),
        "root_ns_edns512": query(".", "NS", qid=1, use_edns=0, payload=512).to_wire(),
        "chaos_version_bind": query("version.bind", "TXT", rdclass="CH", qid=2).to_wire(),
        "name_255_bytes": query(long_name, "A", qid=3).to_wire(),
        "notify_with_soa": notify.to_wire(),
        "bad_response_bit": response(query("example.com")).to_wire(),
        "bad_qdcount_2": rd[:4] + u16(2) + rd[6:] + rd[12:],
        "bad_cut_question": rd[:20],
        "header_only": rd[:12],
    }


def response_matches():
    q = query("www.example.com", qid=0x4242)
    edns = query("example.org", "AAAA", qid=9, use_edns=0, payload=1232)
    refused = dns.message.make_response(q)
    refused.set_rcode(dns.rcode.REFUSED)
    refused.question = []
    mixed = query("www.example.com", qid=0x4242)
    mixed_resp = response(q, 2).to_wire()
    mixed_resp = mixed_resp[:12] + mixed_resp[12:29].upper() + mixed_resp[29:]
    other_type = response(query("www.example.com", "AAAA", qid=0x4242)).to_wire()
    return {
        "answer_compressed": with_query(q, response(q, 3).to_wire()),
        "answer_upper_case": with_query(mixed, mixed_resp),
        "refused_no_question": with_query(q, refused.to_wire()),
        "other_qtype": with_query(q, other_type),
        "edns_answer_with_opt": with_query(edns, response(edns, 1).to_wire()),
        "short_response": with_query(q, response(q).to_wire()[:15]),
    }


def truncations():
    q = query("www.example.com", qid=0x5151)
    edns_do = query("big.example.org", "TXT", qid=0x0a0b, use_edns=0, payload=1232,
                    want_dnssec=True)
    big_a = response(q, 60).to_wire(max_size=65535)
    big_txt = response(edns_do, 40).to_wire(max_size=65535)
    return {
        "big_a_cap512": with_query(q, u16(512) + big_a),
        "big_txt_edns_do_cap1232": with_query(edns_do, u16(1232) + big_txt),
        "cap_too_small": with_query(edns_do, u16(30) + big_txt),
        "cap_65535": with_query(q, u16(65535) + big_a),
        "response_header_only": with_query(q, u16(512) + big_a[:12]),
        "servfail_response": with_query(
            q, u16(100) + dns.message.make_response(q).to_wire()[:2] + b"\x81\x82" +
            dns.message.make_response(q).to_wire()[4:]),
    }


def frame_reader_input(options, splits, pauses, payload):
    return bytes([options, len(splits)]) + bytes(splits) + bytes([len(pauses)]) + bytes(pauses) + \
        payload


def literal(msg):
    assert len(msg) < 0x80
    return bytes([len(msg)]) + msg


def generated(length, seed):
    return b"\x80" + u16(length) + bytes([seed])


def frame_readers():
    qs = list(queries().values())[:4]
    q = query("www.example.com", qid=0x6161)
    responses = [response(q, n).to_wire() for n in (1, 5, 20)]
    stream = b"".join(frame(r) for r in responses)
    return {
        "queries_byte_by_byte": frame_reader_input(0, [1], [], b"".join(literal(m) for m in qs)),
        "queries_whole_chunk": frame_reader_input(0, [], [], b"".join(literal(m) for m in qs)),
        "responses_odd_splits_pauses": frame_reader_input(1, [1, 2, 3, 50, 7], [0x55], stream),
        "responses_feed_while_paused": frame_reader_input(3, [9, 2], [0xff, 0x01], stream),
        "zero_length_frame_midway": frame_reader_input(
            0, [5], [0x02], literal(qs[0]) + b"\x00" + literal(qs[1])),
        "max_size_messages_kib_chunks": frame_reader_input(
            2, [255, 200, 1, 191], [0x0f],
            generated(65535, 1) + literal(qs[2]) + generated(40000, 2) + generated(65535, 3)),
        "partial_tail": frame_reader_input(1, [4], [], stream + stream[:30]),
        "prefix_split_then_pause": frame_reader_input(1, [1, 0, 1], [0x03], stream[:1] + stream),
    }


def configs():
    configs_dir = os.path.join(HERE, "..", "..")
    with open(os.path.join(configs_dir, "config.example.yaml"), "rb") as f:
        example = f.read()
    return {
        "example.yaml": example,
        "minimal.yaml": b"""listener:
  udp:
    addr: 127.0.0.1:53
  tcp:
    addr: 127.0.0.1:53
upstream:
  load_balancing_policy: RoundRobin
  servers:
    - addr: 1.1.1.1:853
      server_name: cloudflare-dns.com
    - addr: 9.9.9.9:853
      server_name: dns.quad9.net
""",
        "full.yaml": b"""server:
  workers: 4
metrics:
  statsd:
    addr: udp://127.0.0.1:8125
    sample_rate: 0.25
listener:
  tcp:
    addr: "[::1]:5353"
    read_timeout: 1m30s
    write_timeout: 250ms
    max_connections: 100000
    max_inflight_per_connection: 65535
  udp:
    addr: "[::1]:5353"
upstream:
  load_balancing_policy: leastoutstanding
  max_connection_retries: 0
  query_timeout: 1.5s
  backoff_initial: 100ms
  backoff_max: 1h
  servers:
    - addr: localhost:853
      server_name: dot.test
      connection_pool_size: 1024
      max_inflight: 4096
      weight: 1000
      stale_timeout: 0s
    - addr: "[2001:db8::1]:853"
      server_name: 2001:db8::1
      weight: 3
""",
        "warnings.yaml": b"""application:
  sentry_dsn: https://key@sentry.example/1
listener:
  udp:
    addr: 0.0.0.0:53
    read_timeout: 5s
    write_timeout: 1s
    max_concurrent_connections: 10
upstream:
  load_balacing_policy: Failover
  servers:
    - {addr: 192.0.2.1:853, server_name: one.example}
    - {addr: 192.0.2.2:853, server_name: two.example}
""",
        "error_unknown_key.yaml": b"listener:\n  udp:\n    addr: 127.0.0.1:53\n    nonsense: 1\n",
        "error_bare_number.yaml": b"""listener:
  udp:
    addr: 127.0.0.1:53
upstream:
  query_timeout: 5
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
""",
        "error_bad_yaml.yaml": b"listener: [udp: {addr: 127.0.0.1:53\n  - &a *a\n\t\"\\x\"\n",
    }


def write(out_dir, target, inputs):
    target_dir = os.path.join(out_dir, target)
    os.makedirs(target_dir, exist_ok=True)
    for entry in os.listdir(target_dir):
        if not entry.startswith("regression-"):
            os.remove(os.path.join(target_dir, entry))
    for name, data in inputs.items():
        with open(os.path.join(target_dir, name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(inputs)} seed inputs in {target_dir}")


def main(argv):
    out_dir = argv[1] if len(argv) > 1 else os.path.join(HERE, "corpus")
    write(out_dir, "query", queries())
    write(out_dir, "response_match", response_matches())
    write(out_dir, "truncate", truncations())
    write(out_dir, "frame_reader", frame_readers())
    write(out_dir, "config", configs())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
