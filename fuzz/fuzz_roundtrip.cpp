// Fuzz target (differential): a client engine and a server engine wired to
// each other in memory. The input picks messages for each side (type, bytes,
// whole or in fragments, shared or copied), pings and pongs, how the bytes
// travel (all at once or in pieces of chosen sizes) and the passing of time.
// Each side must receive exactly what the other sent, in order: the same
// messages, its pings among the pings, its pongs among the pongs; and what
// travels must be valid framing for the sender's role.
//
// Input layout:
//   byte 0    flags
//             0x01 client: deliver_partial_messages   0x02 server: the same
//             0x04 deflate.enabled on both
//             0x08 client max_send_frame_size = byte 1 + 1
//             0x10 server max_send_frame_size = byte 2 + 1
//             0x20 end with a close handshake (0x40: the server starts it)
//             0x80 keepalive: ping_interval and ping_timeout 1 s (else off)
//   byte 1-2  max_send_frame_size - 1 (client, server)
//   byte 3    largest transfer in one receive() = 16 * b (0: no limit)
//   byte 4    permessage-deflate parameters, both ends (set_deflate_options)
//   then      operations: an op byte (bits 0-2 the operation, bit 3 the side:
//             0 client, 1 server; bits 4-7 `a`), then its arguments:
//     0 SEND      v, len, payload: v&1 text (made valid UTF-8), v&2 shared,
//                 the payload repeated (v >> 2) + 1 times
//     1 FRAGMENT  v, len, payload: v&1 text (raw: a fragment may end inside
//                 a code point, an invalid one must be refused), v&2 fin
//     2 PING      len, payload
//     3 PONG      len, payload
//     4 PUMP      move everything both ways until nothing moves
//     5 TRANSFER  move up to 16 * (a + 1) bytes from the side to its peer
//     6 TIME      advance 250 ms * a; on_timeout() on both when due
//     7 PULL      pull the side's events without moving bytes
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "support.hpp"

using namespace gust;
using namespace gust::fuzz;
using namespace std::chrono_literals;

namespace {

struct message {
  bool text;
  std::string data;
  bool operator==(const message&) const = default;
};

// One direction's bookkeeping.
struct side {
  connection* conn = nullptr;
  std::optional<output_checker> wire;  // what it sends
  borrowed_buffers keep;               // what it was handed
  bool partial = false;

  // As sender.
  std::vector<message> sent;
  bool frag = false;
  message frag_msg{};
  ref_utf8 frag_utf8;
  std::vector<std::string> pings_sent, pongs_sent;

  // As receiver.
  std::vector<message> received;
  std::optional<message> receiving;
  std::vector<std::string> pings_got, pongs_got;
  std::optional<close_event> closed;
};

bool subsequence(const std::vector<std::string>& small, const std::vector<std::string>& big) {
  std::size_t i = 0;
  for (const auto& s : small) {
    while (i < big.size() && big[i] != s) ++i;
    if (i == big.size()) return false;
    ++i;
  }
  return true;
}

bool prefix_of(const std::vector<message>& a, const std::vector<message>& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

class wiring {
 public:
  wiring(reader& in) : in_(in) {
    const std::uint8_t flags = in.u8();
    const std::uint8_t c_msfs = in.u8(), s_msfs = in.u8();
    chunk_ = std::size_t{in.u8()} * 16;
    const std::uint8_t deflate_options = in.u8();
    gust::settings cs, ss;
    cs.deliver_partial_messages = flags & 0x01;
    ss.deliver_partial_messages = flags & 0x02;
    cs.deflate.enabled = ss.deflate.enabled = flags & 0x04;
    set_deflate_options(cs.deflate, deflate_options, &pool_);
    set_deflate_options(ss.deflate, deflate_options, &pool_);
    if (flags & 0x08) cs.max_send_frame_size = std::size_t{c_msfs} + 1;
    if (flags & 0x10) ss.max_send_frame_size = std::size_t{s_msfs} + 1;
    for (auto* s : {&cs, &ss}) {
      s->timeouts.ping_interval = (flags & 0x80) ? duration(1s) : duration(0s);
      s->timeouts.ping_timeout = 1s;
    }
    close_at_end_ = flags & 0x20;
    server_closes_ = flags & 0x40;
    pair_.emplace(open_engines(now_, cs, ss));
    c_.conn = &pair_->client;
    s_.conn = &pair_->server;
    c_.partial = cs.deliver_partial_messages;
    s_.partial = ss.deliver_partial_messages;
    c_.wire.emplace(role::client, false);
    s_.wire.emplace(role::server, false);
    const bool deflate = pair_->extensions.find("permessage-deflate") != std::string::npos;
    c_.wire->set_deflate(deflate);
    s_.wire->set_deflate(deflate);
    c_.wire->set_max_frame(cs.max_send_frame_size);
    s_.wire->set_max_frame(ss.max_send_frame_size);
  }

  void run() {
    while (!in_.empty()) step();
    finish();
  }

 private:
  void step() {
    const std::uint8_t op = in_.u8();
    side& me = (op & 8) ? s_ : c_;
    side& peer = (op & 8) ? c_ : s_;
    const std::uint8_t a = op >> 4;
    if (tracing()) {
      static const char* names[] = {"SEND", "FRAGMENT", "PING", "PONG", "PUMP", "TRANSFER", "TIME", "PULL"};
      trace(std::string(names[op & 7]) + ((op & 8) ? " server" : " client") + " a=" + std::to_string(a));
    }
    switch (op & 7) {
      case 0: send(me, in_.u8()); break;
      case 1: fragment(me, in_.u8()); break;
      case 2: control(me, true); break;
      case 3: control(me, false); break;
      case 4: pump(); break;
      case 5: transfer(me, peer, 16 * (std::size_t{a} + 1)); break;
      case 6: time(a); break;
      case 7: drain(me); break;
    }
  }

  void send(side& me, std::uint8_t v) {
    const bool text = v & 1;
    std::string unit(in_.take8());
    if (text) unit = make_utf8(unit);
    std::string payload;
    for (int i = 0; i <= (v >> 2); ++i) payload += unit;
    const auto type = text ? message_type::text : message_type::binary;
    const bool open = me.conn->state() == state::open;
    std::error_code ec;
    if (v & 2) {
      auto owner = std::make_shared<std::string>(payload);
      ec = me.conn->send_shared(type, as_bytes(*owner), owner);
    } else {
      ec = me.conn->send(type, as_bytes(payload));
    }
    trace("  send " + std::string(text ? "text" : "binary") + " of " + std::to_string(payload.size()) +
          " bytes: " + (ec ? ec.message() : "ok"));
    if (!ec) {
      FUZZ_CHECK(!me.frag);
      me.sent.push_back({text, payload});
    } else {
      FUZZ_CHECK_MSG(!open || me.frag, "send refused on an open connection: " + ec.message());
    }
  }

  void fragment(side& me, std::uint8_t v) {
    const bool text = v & 1, fin = v & 2;
    const std::string payload(in_.take8());
    const bool open = me.conn->state() == state::open;
    const auto ec = me.conn->send_fragment(text ? message_type::text : message_type::binary, as_bytes(payload), fin);
    ref_utf8 probe = me.frag ? me.frag_utf8 : ref_utf8();
    const bool valid = !text || (probe.push(payload) && (!fin || probe.complete()));
    const bool type_ok = !me.frag || me.frag_msg.text == text;
    trace("  fragment " + std::string(text ? "text" : "binary") + (fin ? " fin" : "") + " of " +
          std::to_string(payload.size()) + " bytes: " + (ec ? ec.message() : "ok"));
    if (!ec) {
      FUZZ_CHECK(open && valid && type_ok);
      if (!me.frag) me.frag_msg = {text, {}};
      me.frag_msg.data += payload;
      me.frag_utf8 = probe;
      me.frag = !fin;
      if (fin) me.sent.push_back(std::move(me.frag_msg));
    } else {
      FUZZ_CHECK_MSG(!open || !valid || !type_ok, "fragment refused: " + ec.message());
    }
  }

  void control(side& me, bool is_ping) {
    const std::string payload(in_.take8());
    const bool open = me.conn->state() == state::open;
    const auto ec = is_ping ? me.conn->ping(as_bytes(payload), now_) : me.conn->pong(as_bytes(payload));
    if (!ec) {
      (is_ping ? me.pings_sent : me.pongs_sent).push_back(payload);
    } else {
      FUZZ_CHECK_MSG(!open || payload.size() > 125, ec.message());
    }
  }

  void drain(side& me) {
    while (auto ev = me.conn->next_event(now_)) {
      if (tracing()) {
        std::string d = describe(*ev);
        trace(std::string(&me == &c_ ? "  client" : "  server") + " event " +
              (d.size() > 120 ? d.substr(0, 120) + "... (" + std::to_string(d.size()) + ")" : d));
      }
      if (const auto* m = std::get_if<message_event>(&*ev)) {
        FUZZ_CHECK(!me.closed);
        const bool text = m->type == message_type::text;
        if (!me.partial) FUZZ_CHECK(m->last);
        if (!me.receiving) me.receiving = message{text, {}};
        FUZZ_CHECK(me.receiving->text == text);
        me.receiving->data.append(as_sv(m->data));
        if (m->last) {
          me.received.push_back(std::move(*me.receiving));
          me.receiving.reset();
        }
      } else if (const auto* p = std::get_if<ping_event>(&*ev)) {
        me.pings_got.emplace_back(as_sv(p->payload));
      } else if (const auto* p = std::get_if<pong_event>(&*ev)) {
        me.pongs_got.emplace_back(as_sv(p->payload));
      } else if (const auto* c = std::get_if<close_event>(&*ev)) {
        FUZZ_CHECK(!me.closed);
        me.closed = *c;
        me.closed->reason = {};
      } else {
        fail(__FILE__, __LINE__, "unexpected event between open engines", describe(*ev));
      }
    }
    me.keep.release();
  }

  bool transfer(side& from, side& to, std::size_t max) {
    if (chunk_) max = std::min(max, chunk_);
    const std::string bytes = take_output(*from.conn, max);
    if (bytes.empty()) return false;
    trace(std::string(&from == &c_ ? "  client -> server " : "  server -> client ") + std::to_string(bytes.size()) +
          " bytes: " + hex(std::string_view(bytes).substr(0, 48)) + (bytes.size() > 48 ? "..." : ""));
    from.wire->feed(bytes);
    to.conn->receive(to.keep.make(bytes), now_);
    drain(to);
    return true;
  }

  void pump() {
    for (int round = 0; round < 100000; ++round) {
      const bool a = transfer(c_, s_, SIZE_MAX);
      const bool b = transfer(s_, c_, SIZE_MAX);
      if (!a && !b) break;
    }
    drain(c_);
    drain(s_);
  }

  void time(std::uint8_t a) {
    now_ += 250ms * a;
    for (side* s : {&c_, &s_}) {
      const auto d = s->conn->next_deadline();
      if (d && *d <= now_) s->conn->on_timeout(now_);
      drain(*s);
    }
  }

  void finish() {
    pump();
    const bool both_open = c_.conn->state() == state::open && s_.conn->state() == state::open;
    if (close_at_end_ && both_open) {
      side& closer = server_closes_ ? s_ : c_;
      side& other = server_closes_ ? c_ : s_;
      FUZZ_CHECK(!closer.conn->close(now_, 1000, "bye"));
      pump();
      // RFC 6455 7.1.2: both sent and received a close frame.
      FUZZ_CHECK_MSG(closer.closed && closer.closed->clean && !closer.closed->by_peer && closer.closed->code == 1000,
                     "the closing side did not end cleanly");
      FUZZ_CHECK_MSG(other.closed && other.closed->clean && other.closed->by_peer && other.closed->code == 1000,
                     "the other side did not end cleanly");
      FUZZ_CHECK(s_.conn->transport_should_close());
    }
    // Every byte sent was consumed and ends on a frame boundary.
    c_.wire->finish();
    s_.wire->finish();

    const bool clean = both_open && (!c_.closed || c_.closed->clean) && (!s_.closed || s_.closed->clean);
    for (auto [from, to] : {std::pair{&c_, &s_}, std::pair{&s_, &c_}}) {
      const char* dir = from == &c_ ? "client -> server" : "server -> client";
      if (clean) {
        FUZZ_CHECK_MSG(to->received == from->sent, std::string(dir) + ": messages differ (" +
                                                       std::to_string(to->received.size()) + " received, " +
                                                       std::to_string(from->sent.size()) + " sent)");
      } else {
        FUZZ_CHECK_MSG(prefix_of(to->received, from->sent), std::string(dir) + ": received is not a prefix of sent");
      }
      // An unfinished message shows only with partial delivery, as a
      // prefix of what was sent of it.
      if (to->receiving) {
        FUZZ_CHECK(to->partial);
        const std::string& so_far = from->frag ? from->frag_msg.data : std::string();
        if (clean) FUZZ_CHECK_MSG(to->receiving->data == so_far, std::string(dir) + ": partial message differs");
      }
      // Uncompressed messages travel as sent.
      const auto& on_wire = from->wire->messages();
      if (tracing())
        for (const auto& m : on_wire)
          trace(std::string(dir) + " on the wire: " + (m.text ? "text" : "binary") +
                (m.compressed ? " compressed " : " ") + hex(std::string_view(m.data).substr(0, 32)));
      std::size_t i = 0;
      for (const auto& m : on_wire) {
        FUZZ_CHECK(i < from->sent.size());
        if (!m.compressed) FUZZ_CHECK_MSG(m.data == from->sent[i].data && m.text == from->sent[i].text, dir);
        ++i;
      }
      if (clean) {
        FUZZ_CHECK_MSG(subsequence(from->pings_sent, to->pings_got), std::string(dir) + ": a ping went missing");
        FUZZ_CHECK_MSG(subsequence(from->pongs_sent, to->pongs_got), std::string(dir) + ": a pong went missing");
      }
    }
  }

  reader& in_;
  time_point now_ = time_point{} + std::chrono::hours(1);
  deflate_pool pool_;  // before pair_: outlives the engines
  std::optional<open_pair> pair_;
  side c_, s_;
  std::size_t chunk_ = 0;
  bool close_at_end_ = false, server_closes_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in(data, size);
  wiring w(in);
  w.run();
  return 0;
}
