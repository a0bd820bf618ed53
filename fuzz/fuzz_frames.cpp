// Fuzz target: the frame parser of an OPEN engine, in one role (built twice:
// frames_server with GUST_FUZZ_SERVER=1, frames_client with 0), fed whatever
// bytes a hostile peer sends, split where the input says.
//
// Input layout:
//   byte 0    flags
//             0x01 settings.deliver_partial_messages
//             0x02 settings.auto_pong off
//             0x04 settings.deflate.enabled on both engines (negotiated once
//                  the engine supports it; then RSV1 is legal and the
//                  reference decoder below is not consulted)
//             0x08 hand bytes over with prepare()/commit() instead of receive()
//             0x10 receive_eof() after the last byte
//             0x20 tight limits from bytes 1-4, else the defaults
//             0x40 engine B is fed one byte at a time instead of whole
//             0x80 with 0x04: no context takeover both ways, windows of 9
//                  (server) and 10 (client) bits, streams from a shared pool
//   bytes 1-2 limits.max_message_size (big-endian)      } with 0x20
//   byte 3    limits.max_frame_size = 16 * b (0: same)   }
//   byte 4    limits.max_fragments = 1 + b               }
//   byte 5    n: the low 4 bits are the number of chunk-plan bytes
//   n bytes   chunk plan, used in a cycle: length = b & 0x3F (0: all the
//             rest), 0x40 pull events after this chunk (else keep feeding;
//             events are always pulled at the end), 0x80 consume half of the
//             pending output after it
//   the rest  the bytes the peer sends (the handshake is already done)
//
// Oracles:
//   - engine A (fed per the chunk plan) and engine B (fed whole or byte by
//     byte) report the same events and end in the same state;
//   - both match a reference decoder written from RFC 6455 alone (same
//     close codes, messages, pings, pongs), unless an extension was
//     negotiated;
//   - parse_frame_header agrees with the reference header layout at every
//     frame boundary and every shorter length;
//   - what the engine writes back is valid framing for its role: a pong for
//     the latest ping, a close frame echoing the peer's code or carrying the
//     failure's, nothing after it but pongs;
//   - message sizes and reassembly memory stay within the limits.
#include <algorithm>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "frame.hpp"
#include "support.hpp"

#ifndef GUST_FUZZ_SERVER
#define GUST_FUZZ_SERVER 1
#endif

using namespace gust;
using namespace gust::fuzz;

namespace {

constexpr bool server_role = GUST_FUZZ_SERVER != 0;
constexpr gust::role my_role = server_role ? gust::role::server : gust::role::client;

struct config {
  bool partial, no_auto_pong, deflate, prepare_commit, eof, byte_by_byte, deflate_variant;
  gust::limits limits;
  std::vector<std::uint8_t> plan;
};

// What a run produced, normalized so that runs fed differently compare:
// message chunks are joined into one "text:<hex>" at their last chunk, the
// unfinished message's bytes are kept aside, close events become
// "close:<code>:<reason hex>" (the peer's close), "fail:<code>" (we failed
// the connection) or "eof".
struct outcome {
  std::vector<std::string> events;
  std::string partial;       // unfinished message: "t"/"b" then its bytes
  std::vector<std::string> pings;  // payloads, in order
  gust::state final_state{};
  std::string output;        // every byte the engine wrote after the handshake
  std::size_t max_input_memory = 0;
  std::size_t max_message_memory = 0;
};

class recorder {
 public:
  recorder(outcome& o, const config& c) : o_(o), c_(c) {}

  void on(const event& ev) {
    if (const auto* m = std::get_if<message_event>(&ev))
      trace(std::string("  event ") + (m->type == message_type::text ? "text" : "binary") + " of " +
            std::to_string(m->data.size()) + " bytes" + (m->last ? ", last" : ", more to come") + ": " +
            hex(as_sv(m->data.first(std::min<std::size_t>(m->data.size(), 16)))));
    else
      trace("  event " + describe(ev).substr(0, 160));
    FUZZ_CHECK_MSG(!closed_, "event after the close event: " + describe(ev));
    if (const auto* m = std::get_if<message_event>(&ev)) {
      if (!c_.partial) FUZZ_CHECK_MSG(m->last, "a partial message without deliver_partial_messages");
      const char t = m->type == message_type::text ? 't' : 'b';
      if (o_.partial.empty()) {
        o_.partial.push_back(t);
        utf8_ = ref_utf8();
      } else {
        FUZZ_CHECK_MSG(o_.partial[0] == t, "message type changed between chunks");
      }
      o_.partial.append(as_sv(m->data));
      FUZZ_CHECK_MSG(o_.partial.size() - 1 <= c_.limits.max_message_size,
                     "message of " + std::to_string(o_.partial.size() - 1) + " bytes above max_message_size");
      if (t == 't') FUZZ_CHECK_MSG(utf8_.push(as_sv(m->data)), "invalid UTF-8 delivered as text");
      if (m->last) {
        if (t == 't') FUZZ_CHECK_MSG(utf8_.complete(), "text message delivered ending inside a code point");
        o_.events.push_back(std::string(t == 't' ? "text:" : "binary:") + hex(std::string_view(o_.partial).substr(1)));
        o_.partial.clear();
      }
      return;
    }
    if (const auto* p = std::get_if<ping_event>(&ev)) {
      FUZZ_CHECK(p->payload.size() <= 125);
      o_.pings.emplace_back(as_sv(p->payload));
      o_.events.push_back("ping:" + hex(as_sv(p->payload)));
      return;
    }
    if (const auto* p = std::get_if<pong_event>(&ev)) {
      FUZZ_CHECK(p->payload.size() <= 125);
      o_.events.push_back("pong:" + hex(as_sv(p->payload)));
      return;
    }
    const auto* c = std::get_if<close_event>(&ev);
    FUZZ_CHECK_MSG(c != nullptr, "unexpected event on an open connection: " + describe(ev));
    closed_ = true;
    switch (c->cause) {
      case close_cause::protocol_error:
        FUZZ_CHECK(!c->clean && !c->by_peer);
        o_.events.push_back("fail:" + std::to_string(c->code));
        break;
      case close_cause::handshake:
        FUZZ_CHECK(c->clean && c->by_peer);
        o_.events.push_back("close:" + std::to_string(c->code) + ":" + hex(c->reason));
        break;
      case close_cause::eof:
        FUZZ_CHECK(c->code == close_code::abnormal && !c->clean && c->by_peer);
        o_.events.push_back("eof");
        break;
      default:
        fail(__FILE__, __LINE__, "close cause impossible here", describe(ev));
    }
  }

 private:
  outcome& o_;
  const config& c_;
  bool closed_ = false;
  ref_utf8 utf8_;
};

// ---------------------------------------------------------------------------
// Engines

connection& engine_of(open_pair& p) {
  if constexpr (server_role) return p.server;
  return p.client;
}

// Feeds `wire` in the given pieces; `pull` and `consume` say what to do
// after each piece.
struct piece {
  std::string_view bytes;
  bool pull;
  bool consume_half;
};

outcome run(const config& c, const std::vector<piece>& pieces, bool* compressed_out) {
  const time_point now = time_point{} + std::chrono::hours(1);
  gust::settings mine, peer;
  mine.limits = c.limits;
  mine.deliver_partial_messages = c.partial;
  mine.auto_pong = !c.no_auto_pong;
  mine.deflate.enabled = peer.deflate.enabled = c.deflate;
  deflate_pool pool;  // outlives the engines
  if (c.deflate_variant) {
    set_deflate_options(mine.deflate, 0x07 | (2 << 3) | (2 << 5), &pool);
    set_deflate_options(peer.deflate, 0x07 | (2 << 3) | (2 << 5), &pool);
  }
  mine.random = counting_random(7);
  open_pair pair = server_role ? open_engines(now, peer, mine) : open_engines(now, mine, peer);
  connection& e = engine_of(pair);
  const bool compressed = !pair.extensions.empty();
  if (compressed_out) *compressed_out = compressed;

  outcome o;
  recorder rec(o, c);
  borrowed_buffers keep;
  auto pull = [&] {
    while (auto ev = e.next_event(now)) rec.on(*ev);
    keep.release();  // next_event() returned nothing: the bytes are free
    const auto m = e.memory();
    o.max_input_memory = std::max(o.max_input_memory, m.input);
    o.max_message_memory = std::max(o.max_message_memory, m.message);
  };
  trace(std::string("engine ") + (pieces.size() == 1 ? "fed whole" : "fed in " + std::to_string(pieces.size()) + " pieces") +
        (compressed ? ", permessage-deflate: " + pair.extensions : std::string()));
  for (const auto& p : pieces) {
    if (c.prepare_commit) {
      auto buf = e.prepare(p.bytes.size());
      FUZZ_CHECK(buf.size() >= p.bytes.size());
      if (!p.bytes.empty()) std::memcpy(buf.data(), p.bytes.data(), p.bytes.size());
      e.commit(p.bytes.size(), now);
    } else {
      e.receive(keep.make(p.bytes), now);
    }
    if (p.pull) pull();
    if (p.consume_half) o.output += take_output(e, (e.buffered_amount() + 1) / 2);
  }
  pull();
  if (c.eof) {
    e.receive_eof(now);
    pull();
  }
  o.output += take_output(e);
  o.final_state = e.state();
  return o;
}

// ---------------------------------------------------------------------------
// The reference decoder: RFC 6455 5.2-5.7 and 8.1 as a plain loop over the
// whole byte stream, in the order the engine documents its checks.

struct reference {
  std::vector<std::string> events;
  std::string partial;
};

reference decode(std::string_view w, const config& c) {
  reference r;
  const gust::limits& lim = c.limits;
  const std::uint64_t frame_limit = lim.max_frame_size ? lim.max_frame_size : lim.max_message_size;
  bool in_msg = false;
  bool text = false;
  std::uint64_t announced = 0;
  std::size_t frags = 0;
  ref_utf8 utf8;
  std::string data;
  std::size_t pos = 0;
  auto fail_with = [&](int code) {
    r.events.push_back("fail:" + std::to_string(code));
    r.partial = in_msg && !data.empty() ? std::string(text ? "t" : "b") + data : std::string();
    return r;
  };
  for (;;) {
    const std::string_view rest = w.substr(pos);
    wire_frame f;
    const auto st = parse_wire_frame(rest, f, false);

    // parse_frame_header must agree on the layout, at this length and every
    // shorter one.
    {
      detail::frame_header h{};
      std::size_t hs = 0;
      const auto got = detail::parse_frame_header(reinterpret_cast<const std::byte*>(rest.data()), rest.size(), h, hs);
      switch (st) {
        case wire_status::need_more: FUZZ_CHECK(got == detail::header_status::need_more); break;
        case wire_status::not_minimal: FUZZ_CHECK(got == detail::header_status::length_not_minimal); break;
        case wire_status::msb_set: FUZZ_CHECK(got == detail::header_status::length_msb_set); break;
        case wire_status::ok:
          FUZZ_CHECK(got == detail::header_status::ok);
          FUZZ_CHECK(hs == f.header_size && h.fin == f.fin && h.rsv == f.rsv && h.opcode == f.opcode &&
                     h.masked == f.masked && h.length == f.length);
          if (f.masked) FUZZ_CHECK(std::memcmp(h.key.data(), f.key, 4) == 0);
          break;
      }
      if (st != wire_status::need_more) {
        for (std::size_t n = 0; n < f.header_size && n < rest.size(); ++n)
          FUZZ_CHECK(detail::parse_frame_header(reinterpret_cast<const std::byte*>(rest.data()), n, h, hs) ==
                     detail::header_status::need_more);
      }
    }

    if (st == wire_status::need_more) break;
    if (st != wire_status::ok) return fail_with(1002);
    if (f.rsv != 0) return fail_with(1002);
    const unsigned op = f.opcode;
    if (!(op <= 2 || (op >= 8 && op <= 10))) return fail_with(1002);
    if (f.masked != server_role) return fail_with(1002);
    const std::string_view body = rest.substr(f.header_size);
    auto byte_at = [&](std::size_t i) {
      const char b = body[i];
      return f.masked ? static_cast<char>(b ^ static_cast<char>(f.key[i % 4])) : b;
    };
    if (op >= 8) {
      if (!f.fin || f.length > 125) return fail_with(1002);
      if (body.size() < f.length) break;
      std::string p;
      for (std::size_t i = 0; i < f.length; ++i) p.push_back(byte_at(i));
      pos += f.header_size + f.length;
      if (op == 9) {
        r.events.push_back("ping:" + hex(p));
      } else if (op == 10) {
        r.events.push_back("pong:" + hex(p));
      } else {
        if (p.size() == 1) return fail_with(1002);
        std::uint16_t code = 1005;
        std::string_view reason;
        if (p.size() >= 2) {
          code = static_cast<std::uint16_t>(static_cast<std::uint8_t>(p[0]) << 8 | static_cast<std::uint8_t>(p[1]));
          if (!ref_close_code_ok(code)) return fail_with(1002);
          reason = std::string_view(p).substr(2);
          if (!valid_utf8(reason)) return fail_with(1007);
        }
        r.events.push_back("close:" + std::to_string(code) + ":" + hex(reason));
        r.partial = in_msg && !data.empty() ? std::string(text ? "t" : "b") + data : std::string();
        return r;
      }
      continue;
    }
    const bool cont = op == 0;
    if (cont && !in_msg) return fail_with(1002);
    if (!cont && in_msg) return fail_with(1002);
    const std::uint64_t so_far = cont ? announced : 0;
    if (f.length > frame_limit) return fail_with(1009);
    if (f.length > lim.max_message_size - std::min<std::uint64_t>(so_far, lim.max_message_size))
      return fail_with(1009);
    if ((cont ? frags : 0) + 1 > lim.max_fragments) return fail_with(1009);
    if (!cont) {
      in_msg = true;
      text = op == 1;
      announced = 0;
      frags = 0;
      utf8 = ref_utf8();
      data.clear();
    }
    announced += f.length;
    ++frags;
    const std::size_t have = static_cast<std::size_t>(std::min<std::uint64_t>(body.size(), f.length));
    for (std::size_t i = 0; i < have; ++i) {
      const char b = byte_at(i);
      if (text && !utf8.push(static_cast<std::uint8_t>(b))) return fail_with(1007);
      data.push_back(b);
    }
    if (have < f.length) break;
    pos += f.header_size + have;
    if (f.fin) {
      if (text && !utf8.complete()) return fail_with(1007);
      r.events.push_back(std::string(text ? "text:" : "binary:") + hex(data));
      in_msg = false;
      data.clear();
    }
  }
  r.partial = in_msg && !data.empty() ? std::string(text ? "t" : "b") + data : std::string();
  if (c.eof) r.events.push_back("eof");
  return r;
}

bool is_prefix(std::string_view a, std::string_view b) { return b.substr(0, a.size()) == a; }

// For messages: each event cut to 200 characters.
std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v)
    s += (x.size() > 200 ? x.substr(0, 200) + "... (" + std::to_string(x.size()) + " characters)" : x) + "\n";
  return s;
}

// The bytes the engine wrote back, checked against what it reported.
void check_output(const outcome& o, const config& c, bool compressed) {
  output_checker out(my_role, false);
  out.set_deflate(compressed);
  out.feed(o.output);
  out.finish();
  FUZZ_CHECK_MSG(out.messages().empty() && out.pings().empty(), "the engine sent data or pings on its own");
  // 5.5.2: a pong for every ping, or (5.5.3) at least for the latest one.
  const auto& pongs = out.pongs();
  if (c.no_auto_pong) {
    FUZZ_CHECK(pongs.empty());
  } else {
    std::size_t i = 0;
    for (const auto& pong : pongs) {
      while (i < o.pings.size() && o.pings[i] != pong) ++i;
      FUZZ_CHECK_MSG(i < o.pings.size(), "pong that answers no ping, or out of order: " + hex(pong));
      ++i;
    }
    if (!o.pings.empty())
      FUZZ_CHECK_MSG(!pongs.empty() && pongs.back() == o.pings.back(), "the latest ping was not answered");
  }
  const std::string last = o.events.empty() ? std::string() : o.events.back();
  if (last.rfind("fail:", 0) == 0) {
    FUZZ_CHECK_MSG(out.close_sent() && out.close_code() && std::to_string(*out.close_code()) == last.substr(5),
                   "failing with " + last + " without sending that close code");
  } else if (last.rfind("close:", 0) == 0) {
    const std::string code = last.substr(6, last.find(':', 6) - 6);
    FUZZ_CHECK_MSG(out.close_sent(), "the peer's close was not answered");
    if (code == "1005")
      FUZZ_CHECK_MSG(!out.close_code(), "a close without a code answered with one");
    else
      FUZZ_CHECK_MSG(out.close_code() && std::to_string(*out.close_code()) == code, "the close code was not echoed");
  } else {
    FUZZ_CHECK_MSG(!out.close_sent(), "a close frame sent while the connection stays open or ended by EOF");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in(data, size);
  config c{};
  const std::uint8_t flags = in.u8();
  c.partial = flags & 0x01;
  c.no_auto_pong = flags & 0x02;
  c.deflate = flags & 0x04;
  c.prepare_commit = flags & 0x08;
  c.eof = flags & 0x10;
  c.byte_by_byte = flags & 0x40;
  c.deflate_variant = flags & 0x80;
  const std::uint16_t max_msg = in.u16();
  const std::uint8_t max_frame = in.u8();
  const std::uint8_t max_frags = in.u8();
  if (flags & 0x20) {
    c.limits.max_message_size = max_msg;
    c.limits.max_frame_size = std::size_t{max_frame} * 16;
    c.limits.max_fragments = std::size_t{max_frags} + 1;
  }
  const std::size_t plan_size = in.u8() & 0x0F;
  const std::string_view plan = in.take(plan_size);
  const std::string_view wire = in.rest();

  // Engine A: the input's chunk plan.
  std::vector<piece> pieces;
  for (std::size_t pos = 0, i = 0; pos < wire.size(); ++i) {
    const std::uint8_t b = plan.empty() ? 0 : static_cast<std::uint8_t>(plan[i % plan.size()]);
    std::size_t len = b & 0x3F;
    if (len == 0) len = wire.size() - pos;
    len = std::min(len, wire.size() - pos);
    pieces.push_back({wire.substr(pos, len), (b & 0x40) != 0, (b & 0x80) != 0});
    pos += len;
  }
  // Engine B: whole, or byte by byte.
  std::vector<piece> other;
  if (c.byte_by_byte && wire.size() <= 2048) {
    for (std::size_t i = 0; i < wire.size(); ++i) other.push_back({wire.substr(i, 1), true, false});
  } else {
    other.push_back({wire, true, false});
  }

  bool compressed = false;
  const outcome a = run(c, pieces, &compressed);
  const outcome b = run(c, other, nullptr);
  FUZZ_CHECK_MSG(a.events == b.events, "engine A (the chunk plan):\n" + join(a.events) +
                                          (c.byte_by_byte ? "engine B (byte by byte):\n" : "engine B (whole):\n") +
                                          join(b.events));
  FUZZ_CHECK(a.final_state == b.final_state);
  // A failure inside a payload (invalid UTF-8; a compressed message
  // inflating past the limit) drops the chunk it happened in, and chunks
  // depend on how the bytes came: what was delivered of the unfinished
  // message before it may differ, one being a prefix of the other.
  const bool failed_utf8 = !a.events.empty() && a.events.back() == "fail:1007";
  const bool failed = !a.events.empty() && a.events.back().rfind("fail:", 0) == 0;
  if (!failed)
    FUZZ_CHECK_MSG(a.partial == b.partial, "the unfinished message's bytes depend on how they were fed");
  else
    FUZZ_CHECK_MSG(is_prefix(a.partial, b.partial) || is_prefix(b.partial, a.partial),
                   "the unfinished message's bytes differ");

  const bool closed = !a.events.empty() && (a.events.back().rfind("fail:", 0) == 0 ||
                                            a.events.back().rfind("close:", 0) == 0 || a.events.back() == "eof");
  FUZZ_CHECK_MSG(a.final_state == (closed ? state::closed : state::open),
                 "final state " + std::string(to_string(a.final_state)));

  for (const outcome* o : {&a, &b}) {
    check_output(*o, c, compressed);
    // Reassembly holds at most one message (vector growth: twice its size).
    FUZZ_CHECK_MSG(o->max_message_memory <= 2 * c.limits.max_message_size + 64,
                   "reassembly memory " + std::to_string(o->max_message_memory));
  }

  if (!compressed) {
    const reference r = decode(wire, c);
    FUZZ_CHECK_MSG(a.events == r.events, "engine:\n" + join(a.events) + "reference:\n" + join(r.events));
    if (c.partial) {
      if (failed_utf8)
        FUZZ_CHECK_MSG(is_prefix(a.partial, r.partial), "partial message bytes differ from the reference");
      else
        FUZZ_CHECK_MSG(a.partial == r.partial, "partial message bytes differ from the reference");
    }
  }
  return 0;
}
