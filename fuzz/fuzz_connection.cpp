// Fuzz target: a whole connection, server or client, from construction to
// the end, driven the way an application and a hostile peer could drive it.
// The input is a program: a header choosing the role and settings, then
// operations that interleave the peer's bytes (raw, as frames, as canned
// handshakes; delivered in pieces of chosen sizes, through receive() or
// prepare()/commit()) with the application's calls (pull events, accept,
// reject, respond, send, send_shared, send_prepared, send_fragment, ping, pong, close, fail,
// consume output, receive_eof) and with time (advance the virtual clock by a
// chosen step or to the next deadline; on_timeout or not).
//
// Input layout:
//   byte 0    flags
//             0x01 client (else server)
//             0x02 settings.deliver_partial_messages
//             0x04 settings.auto_pong off
//             0x08 settings.deflate.enabled
//             0x10 tight limits from bytes 1-5, else the defaults
//             0x20 settings.max_send_frame_size = byte 6 + 1
//             0x40 server: allowed_origins {"https://example.com"};
//                  client: offers subprotocols "chat", "superchat"
//             0x80 settings.output_pool: the traffic state is borrowed
//                  and given back as the connection goes idle
//   bytes 1-2 limits.max_message_size          } with 0x10
//   byte 3    limits.max_frame_size = 16 * b   }
//   byte 4    limits.max_fragments = 1 + b     }
//   byte 5    limits.max_buffered_output = 64 * b
//   byte 6    max_send_frame_size - 1          (with 0x20)
//   byte 7    timeouts, 2 bits each from bit 0: open, close, ping_interval,
//             ping_timeout; values {none, 100 ms, 1 s, 20 s}
//   byte 8    seed of the random source
//   byte 9    permessage-deflate parameters (see set_deflate_options)
//   then      operations until the input ends: an op byte (low 4 bits the
//             operation, high 4 bits `a`), then its arguments:
//     0 PEER_RAW       len, bytes: appended to the peer's stream
//     1 PEER_FRAME     b0 (FIN/RSV/opcode), f, len, payload: a frame masked
//                      as the role expects (f&1: the other way); f&2 repeats
//                      the payload 16 * (f>>2 + 1) times (long lengths)
//     2 PEER_HANDSHAKE v: a canned request (server) or 101 answering our
//                      key (client), variants chosen by the bits of v
//     3 DELIVER        n: hand n bytes of the stream over (0: all); a&1
//                      prepare()/commit(), a&2 pull every event after
//     4 PULL           at most `a` events (0: until there are none)
//     5 ACCEPT         v: subprotocol {default, "chat", none, "bogus"}[v&3]
//                      (client: look at subprotocol(), latency(), memory())
//     6 REJECT         v: reject(400 + v), a&1: respond(200 + v)
//                      (client: pull one event)
//     7 SEND           v, len, payload: v&1 text, v&2 send_shared, v&4
//                      send(type, ...), both: send_prepared (v&0x10
//                      compressed with window 9 + v>>5), v&8 made valid
//                      UTF-8, v>>4 repeats
//     8 FRAGMENT       v, len, payload: v&1 text, v&2 fin, v&8 valid UTF-8
//     9 PING           len, payload (above 125 must be refused)
//    10 PONG           len, payload
//    11 CLOSE          [u16 code when a >= 8, else a table], len, reason
//    12 FAIL           u16 code, len, reason
//    13 TIME           v: v&15 a step from `steps` (14: to the deadline,
//                      15: just before it); v&16 on_timeout(now); v&32
//                      on_timeout only if due
//    14 CONSUME        v: consume 16 * v bytes (0: all); a&1 first try one
//                      byte past the end
//    15 EOF            receive_eof(now); a&1 then pull
//
// Invariants checked after every operation and event:
//   - the state only moves forward: CONNECTING -> OPEN -> CLOSING -> CLOSED,
//     or straight to CLOSED; transport_should_close() never goes back;
//   - events fit the state: request_event once and only for a server,
//     open_event once, data only while OPEN/CLOSING, valid UTF-8 text,
//     messages within max_message_size, exactly one close_event for a
//     connection that was OPEN, handshake_failure_event only before, and
//     nothing after either;
//   - every call's result matches its documented preconditions (a success
//     only when allowed, each errc only when its reason holds);
//   - output (checked as it is consumed by an independent parser) is valid
//     for the role: the HTTP head, then frames masked iff client; once
//     CLOSED nothing new is queued; a failure the peer's input causes
//     drops nothing queued before it (RFC 6455 7.1.7: its close goes
//     behind the data); the close frame of any failure is the last frame;
//   - buffered_amount() is bounded by what the application queued since
//     the queue was last empty plus the engine's own control frames, and
//     memory() by bounds derived from the limits;
//   - after on_timeout(now), next_deadline() is in the future (or none).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "handshake_server.hpp"
#include "gust/output_pool.hpp"
#include "gust/prepared_message.hpp"
#include "support.hpp"

using namespace gust;
using namespace gust::fuzz;
using namespace std::chrono_literals;

namespace {

constexpr duration timeout_table[] = {0s, 100ms, 1s, 20s};
constexpr duration steps[] = {0ns, 1ns, 1ms, 50ms, 99ms, 100ms, 500ms, 1s, 5s, 10s, 19s, 20s, 30s, 60s};
constexpr std::uint16_t close_codes[] = {1000, 1001, 1005, 3000, 4999, 1006, 1015, 999};
constexpr std::size_t control_frame = 14 + 125;

int rank(state s) {
  switch (s) {
    case state::connecting: return 0;
    case state::open: return 1;
    case state::closing: return 2;
    case state::closed: return 3;
  }
  return -1;
}

class driver {
 public:
  driver(reader& in) : in_(in) {
    const std::uint8_t flags = in.u8();
    client_ = flags & 0x01;
    s_.deliver_partial_messages = flags & 0x02;
    s_.auto_pong = !(flags & 0x04);
    s_.deflate.enabled = flags & 0x08;
    if (flags & 0x80) s_.output_pool = &output_pool_;
    const std::uint16_t max_msg = in.u16();
    const std::uint8_t max_frame = in.u8(), max_frags = in.u8(), max_buf = in.u8(), send_frame = in.u8();
    if (flags & 0x10) {
      s_.limits.max_message_size = max_msg;
      s_.limits.max_frame_size = std::size_t{max_frame} * 16;
      s_.limits.max_fragments = std::size_t{max_frags} + 1;
      s_.limits.max_buffered_output = std::size_t{max_buf} * 64;
    }
    if (flags & 0x20) s_.max_send_frame_size = std::size_t{send_frame} + 1;
    const std::uint8_t t = in.u8();
    s_.timeouts.open_timeout = timeout_table[t & 3];
    s_.timeouts.close_timeout = timeout_table[(t >> 2) & 3];
    s_.timeouts.ping_interval = timeout_table[(t >> 4) & 3];
    s_.timeouts.ping_timeout = timeout_table[(t >> 6) & 3];
    s_.random = counting_random(in.u8());
    set_deflate_options(s_.deflate, in.u8(), &pool_);
    const bool policy = flags & 0x40;

    if (client_) {
      client_options co;
      co.host = "example.com";
      co.target = "/chat";
      if (policy) co.subprotocols = {"chat", "superchat"};
      conn_ = std::make_unique<client_connection>(now_, co, s_);
      // Our key, to answer it.
      const std::string request = peek_output(*conn_, conn_->buffered_amount());
      const auto k = request.find("Sec-WebSocket-Key: ");
      FUZZ_CHECK(k != std::string::npos);
      key_ = request.substr(k + 19, request.find("\r\n", k) - k - 19);
      allowance_ = request.size();
    } else {
      server_options so;
      so.subprotocols = {"chat"};
      if (policy) so.allowed_origins = {"https://example.com"};
      conn_ = std::make_unique<server_connection>(now_, s_, so);
      server_ = static_cast<server_connection*>(conn_.get());
    }
    out_.emplace(client_ ? role::client : role::server);
    frame_limit_ = s_.limits.max_frame_size ? s_.limits.max_frame_size : s_.limits.max_message_size;
    frames_ = 1;
    after_op(false);
  }

  void run() {
    while (!in_.empty()) step();
    finish();
  }

 private:
  // ---- operations ----------------------------------------------------------

  void step() {
    const std::uint8_t op = in_.u8();
    const std::uint8_t a = op >> 4;
    bool timed = false;
    if (tracing()) {
      static const char* names[] = {"PEER_RAW", "PEER_FRAME", "PEER_HANDSHAKE", "DELIVER", "PULL", "ACCEPT",
                                    "REJECT", "SEND", "FRAGMENT", "PING", "PONG", "CLOSE", "FAIL", "TIME",
                                    "CONSUME", "EOF"};
      trace(std::string(names[op & 15]) + " a=" + std::to_string(a) + "  [" + std::string(to_string(conn_->state())) +
            ", buffered " + std::to_string(conn_->buffered_amount()) + ", peer bytes waiting " +
            std::to_string(peer_.size() - peer_pos_) + "]");
    }
    switch (op & 0x0F) {
      case 0: peer_.append(in_.take8()); break;
      case 1: peer_frame(); break;
      case 2: peer_handshake(in_.u8()); break;
      case 3: deliver(in_.u8(), a); break;
      case 4: pull(a ? a : SIZE_MAX); break;
      case 5: client_ ? observe() : accept(in_.u8()); break;
      case 6: client_ ? pull(1) : reject(in_.u8(), a & 1); break;
      case 7: send(in_.u8()); break;
      case 8: fragment(in_.u8()); break;
      case 9: ping(); break;
      case 10: pong(); break;
      case 11: close(a); break;
      case 12: fail(); break;
      case 13: timed = time(in_.u8()); break;
      case 14: consume(in_.u8(), a & 1); break;
      case 15:
        conn_->receive_eof(now_);
        if (a & 1) pull(SIZE_MAX);
        break;
    }
    after_op(timed);
  }

  void peer_frame() {
    const std::uint8_t b0 = in_.u8(), f = in_.u8();
    std::string payload(in_.take8());
    if ((f & 2) && !payload.empty()) {
      std::string big;
      const std::size_t times = 16 * (std::size_t{f} >> 2) + 16;
      big.reserve(payload.size() * times);
      for (std::size_t i = 0; i < times; ++i) big += payload;
      payload = std::move(big);
    }
    const bool mask = client_ == ((f & 1) != 0);  // the peer of a server masks
    std::string fr;
    fr.push_back(static_cast<char>(b0));
    const std::size_t n = payload.size();
    const char m = mask ? static_cast<char>(0x80) : 0;
    if (n < 126) {
      fr.push_back(static_cast<char>(m | static_cast<char>(n)));
    } else if (n <= 0xFFFF) {
      fr.push_back(static_cast<char>(m | 126));
      fr.push_back(static_cast<char>(n >> 8));
      fr.push_back(static_cast<char>(n));
    } else {
      fr.push_back(static_cast<char>(m | 127));
      for (int i = 7; i >= 0; --i) fr.push_back(static_cast<char>(static_cast<std::uint64_t>(n) >> (8 * i)));
    }
    const char key[4] = {static_cast<char>(f), 0x37, static_cast<char>(0xfa), 0x21};
    if (mask) fr.append(key, 4);
    for (std::size_t i = 0; i < n; ++i) fr.push_back(mask ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
    peer_ += fr;
  }

  void peer_handshake(std::uint8_t v) {
    std::string h;
    if (!client_) {
      h = "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
      if (!(v & 0x10)) h += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
      h += (v & 0x08) ? "Sec-WebSocket-Version: 12\r\n" : "Sec-WebSocket-Version: 13\r\n";
      if (v & 0x01) h += "Sec-WebSocket-Protocol: chat, superchat\r\n";
      if (v & 0x02) h += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
      if (v & 0x04) h += "Origin: https://example.com\r\n";
      if (v & 0x20)
        h += "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
             "client_no_context_takeover; server_max_window_bits=10\r\n";
      if (v & 0x40) h += "Content-Length: 5\r\n";
      h += "\r\n";
    } else {
      if (v & 0x20) h += "HTTP/1.1 100 Continue\r\n\r\n";
      if (v & 0x10) {
        h += "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
      } else {
        h += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
        h += "Sec-WebSocket-Accept: " + ((v & 0x08) ? std::string("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
                                                     : detail::accept_value(key_)) + "\r\n";
        if (v & 0x01) h += "Sec-WebSocket-Protocol: chat\r\n";
        if (v & 0x40) h += "Sec-WebSocket-Protocol: other\r\n";
        if (v & 0x02) h += "Sec-WebSocket-Extensions: permessage-deflate\r\n";
        if (v & 0x04) h += "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=9\r\n";
        h += "\r\n";
      }
    }
    peer_ += h;
  }

  void deliver(std::uint8_t n8, std::uint8_t a) {
    const std::size_t left = peer_.size() - peer_pos_;
    const std::size_t n = n8 == 0 ? left : std::min<std::size_t>(n8, left);
    const std::string_view piece = std::string_view(peer_).substr(peer_pos_, n);
    peer_pos_ += n;
    if (n > 0) {
      if (a & 1) {
        auto buf = conn_->prepare(n);
        FUZZ_CHECK(buf.size() >= n);
        std::memcpy(buf.data(), piece.data(), n);
        conn_->commit(n, now_);
      } else {
        conn_->receive(keep_.make(piece), now_);
      }
      fed_since_drain_ += n;
      peak_need_ = std::max(peak_need_, retained() + fed_since_drain_);
    }
    if (a & 2) pull(SIZE_MAX);
  }

  std::size_t retained() const {
    // What a connection may keep from one drain to the next: a partial
    // frame (header, a control frame, or a whole-message frame it delivers
    // in place).
    return detail_header + std::max<std::size_t>(frame_limit_, 125);
  }
  static constexpr std::size_t detail_header = 14;

  void pull(std::size_t max) {
    for (std::size_t i = 0; i < max; ++i) {
      const std::size_t queued_before = conn_->buffered_amount();
      const bool close_sent_before = conn_->state() == state::closing;
      auto ev = conn_->next_event(now_);
      if (ev) check_failure_kept_output(*ev, queued_before, close_sent_before);
      if (!ev) {
        keep_.release();
        // A request waiting for its answer holds the input (the
        // application must answer before pulling more): not drained.
        if (!awaiting_answer()) fed_since_drain_ = 0;
        return;
      }
      on_event(*ev);
    }
  }

  // The peer's bad input must not cost the frames queued before it: the
  // close goes behind them, so the queue grows by exactly the close frame
  // (nothing, if ours went out already). Each ping is its own event, so no
  // pong is replaced (in place, at another size) inside the call that fails.
  void check_failure_kept_output(const event& ev, std::size_t queued_before, bool close_sent_before) {
    const auto* c = std::get_if<close_event>(&ev);
    if (!c || c->cause != close_cause::protocol_error) return;
    const std::size_t close_frame = (client_ ? 6 : 2) + 2 + std::min<std::size_t>(c->reason.size(), 123);
    const std::size_t expected = queued_before + (close_sent_before ? 0 : close_frame);
    FUZZ_CHECK_MSG(conn_->buffered_amount() == expected,
                   "a protocol failure changed the queue from " + std::to_string(queued_before) + " to " +
                       std::to_string(conn_->buffered_amount()) + " bytes, not " + std::to_string(expected));
  }

  // A request_event the application has not answered yet (a failure or a
  // timeout in between withdraws it).
  bool awaiting_answer() const { return request_pending_ && conn_->state() == state::connecting; }

  void observe() {
    (void)conn_->subprotocol();
    (void)conn_->latency();
    (void)conn_->settings();
    (void)conn_->transport_should_close();
  }

  void accept(std::uint8_t v) {
    const bool pending = awaiting_answer();
    accept_options o;
    switch (v & 3) {
      case 0: break;
      case 1: o.subprotocol = "chat"; break;
      case 2: o.subprotocol = ""; break;
      case 3: o.subprotocol = "bogus"; break;
    }
    const auto ec = server_->accept(now_, o);
    if (!ec) {
      FUZZ_CHECK_MSG(pending, "accept() succeeded without a pending request");
      FUZZ_CHECK(conn_->state() == state::open);
      request_pending_ = false;
      allowance_ += 1024 + s_.limits.max_header_line;
      ++frames_;
    } else if (ec == errc::no_pending_request) {
      FUZZ_CHECK(!pending);
    } else {
      FUZZ_CHECK_MSG(ec == errc::invalid_argument && pending && (v & 3) != 0, ec.message());
    }
  }

  void reject(std::uint8_t v, bool respond) {
    const bool pending = awaiting_answer();
    std::error_code ec;
    int status;
    std::string body(v % 64, 'x');
    if (respond) {
      http::response r;
      status = r.status = 200 + v;
      r.headers.add("X-Test", "1");
      r.body = body;
      ec = server_->respond(r);
    } else {
      status = 400 + v;
      ec = server_->reject(status, body);
    }
    const bool in_range = respond ? status >= 200 && status <= 599 && status != 101 : status >= 400 && status <= 599;
    if (!ec) {
      FUZZ_CHECK(pending && in_range);
      FUZZ_CHECK(conn_->state() == state::closed && conn_->transport_should_close());
      request_pending_ = false;
      app_refused_ = true;
      allowance_ += 512 + body.size();
      ++frames_;
    } else if (ec == errc::no_pending_request) {
      FUZZ_CHECK(!pending);
    } else {
      FUZZ_CHECK_MSG(ec == errc::invalid_argument && !in_range, ec.message());
    }
  }

  std::size_t data_cost(std::size_t n) const {
    const std::size_t msfs = s_.max_send_frame_size;
    const std::size_t frames = msfs ? std::max<std::size_t>(1, (n + msfs - 1) / msfs) : 1;
    std::size_t cost = n + 14 * frames;
    if (s_.deflate.enabled) cost += n / 2 + 64 + 14;  // a compressed message may grow a little
    return cost;
  }
  std::size_t data_frames(std::size_t n) const {
    const std::size_t msfs = s_.max_send_frame_size;
    return 2 * (msfs ? std::max<std::size_t>(1, (n + msfs - 1) / msfs) : 1);
  }

  void send(std::uint8_t v) {
    std::string payload(in_.take8());
    if (v & 8) payload = make_utf8(payload);
    if (v >> 4) {
      std::string big;
      for (int i = 0; i < (v >> 4) * 64; ++i) big += payload;
      payload = std::move(big);
    }
    const bool text = v & 1;
    const auto type = text ? message_type::text : message_type::binary;
    const state st = conn_->state();
    const std::size_t buffered = conn_->buffered_amount();
    std::error_code ec;
    if ((v & 6) == 6) {
      // A broadcast's prepared message, compressed with a window that may
      // or may not suit this connection's agreement.
      deflate_options z;
      z.enabled = true;
      z.min_size = 0;
      z.server_max_window_bits = 9 + (v >> 5);
      const prepared_message m(type, as_bytes(payload), nullptr, (v & 0x10) ? &z : nullptr);
      ec = conn_->send_prepared(m);
    } else if (v & 2) {
      auto owner = std::make_shared<std::string>(payload);
      ec = conn_->send_shared(type, as_bytes(*owner), owner);
      // Only the connection keeps `owner` alive now: ASan sees it if the
      // bytes are read after it let go.
    } else if (v & 4) {
      ec = conn_->send(type, as_bytes(payload));
    } else if (text) {
      ec = conn_->send_text(payload);
    } else {
      ec = conn_->send_binary(as_bytes(payload));
    }
    const bool valid = !text || valid_utf8(payload);
    if (!ec) {
      FUZZ_CHECK_MSG(st == state::open && buffered < s_.limits.max_buffered_output && !frag_ && valid,
                     "a send succeeded that should not have");
      allowance_ += data_cost(payload.size());
      frames_ += data_frames(payload.size());
    } else if (ec == errc::invalid_state) {
      FUZZ_CHECK(st != state::open);
    } else if (ec == errc::output_limit_reached) {
      FUZZ_CHECK(buffered >= s_.limits.max_buffered_output);
    } else if (ec == errc::message_in_progress) {
      FUZZ_CHECK(frag_);
    } else {
      FUZZ_CHECK_MSG(ec == errc::invalid_utf8 && !valid, ec.message());
    }
  }

  void fragment(std::uint8_t v) {
    std::string payload(in_.take8());
    if (v & 8) payload = make_utf8(payload);
    const bool text = v & 1, fin = v & 2;
    const auto type = text ? message_type::text : message_type::binary;
    const state st = conn_->state();
    const std::size_t buffered = conn_->buffered_amount();
    const auto ec = conn_->send_fragment(type, as_bytes(payload), fin);
    ref_utf8 probe = frag_ ? frag_utf8_ : ref_utf8();
    const bool valid = !text || (probe.push(payload) && (!fin || probe.complete()));
    if (!ec) {
      FUZZ_CHECK_MSG(st == state::open && buffered < s_.limits.max_buffered_output && (!frag_ || frag_text_ == text) &&
                         valid,
                     "a fragment was accepted that should not have been");
      frag_ = !fin;
      frag_text_ = text;
      frag_utf8_ = probe;
      allowance_ += data_cost(payload.size());
      frames_ += data_frames(payload.size());
    } else if (ec == errc::invalid_state) {
      FUZZ_CHECK(st != state::open);
    } else if (ec == errc::output_limit_reached) {
      FUZZ_CHECK(buffered >= s_.limits.max_buffered_output);
    } else if (ec == errc::fragment_type_mismatch) {
      FUZZ_CHECK(frag_ && frag_text_ != text);
    } else {
      FUZZ_CHECK_MSG(ec == errc::invalid_utf8 && !valid, ec.message());
    }
  }

  void ping() {
    const std::string_view payload = in_.take8();
    const state st = conn_->state();
    const auto ec = conn_->ping(as_bytes(payload), now_);
    control_result(ec, st, payload.size());
  }

  void pong() {
    const std::string_view payload = in_.take8();
    const state st = conn_->state();
    const auto ec = conn_->pong(as_bytes(payload));
    control_result(ec, st, payload.size());
  }

  void control_result(std::error_code ec, state st, std::size_t n) {
    if (!ec) {
      FUZZ_CHECK(st == state::open && n <= 125);
      allowance_ += n + 14;
      ++frames_;
    } else if (ec == errc::control_frame_too_large) {
      FUZZ_CHECK(n > 125);
    } else {
      FUZZ_CHECK_MSG(ec == errc::invalid_state && st != state::open, ec.message());
    }
  }

  void close(std::uint8_t a) {
    const std::uint16_t code = a >= 8 ? in_.u16() : close_codes[a];
    const std::string_view reason = in_.take8();
    const state st = conn_->state();
    const auto ec = conn_->close(now_, code, reason);
    const bool code_ok = code == close_code::no_status || ref_close_code_ok(code);
    const bool arg_ok = reason.size() <= 123 && (code != close_code::no_status || reason.empty());
    if (!ec) {
      FUZZ_CHECK(st == state::open && code_ok && arg_ok && valid_utf8(reason));
      FUZZ_CHECK(conn_->state() == state::closing);
      app_closed_ = true;
      allowance_ += reason.size() + 16;
      ++frames_;
    } else if (ec == errc::invalid_state) {
      FUZZ_CHECK(st != state::open);
    } else if (ec == errc::invalid_close_code) {
      FUZZ_CHECK(!code_ok);
    } else if (ec == errc::invalid_argument) {
      FUZZ_CHECK(!arg_ok);
    } else {
      FUZZ_CHECK_MSG(ec == errc::invalid_utf8 && !valid_utf8(reason), ec.message());
    }
  }

  void fail() {
    std::uint16_t code = in_.u16();
    const std::string_view reason = in_.take8();
    const state st = conn_->state();
    conn_->fail(now_, code, reason);
    FUZZ_CHECK(conn_->state() == state::closed && conn_->transport_should_close());
    if (st == state::connecting) app_refused_ = true;
    if (st == state::open || st == state::closing) {
      if (!ref_close_code_ok(code)) code = close_code::internal_error;
      if (fail_code_ == 0) fail_code_ = code;
    }
  }

  bool time(std::uint8_t v) {
    const auto deadline = conn_->next_deadline();
    const unsigned i = v & 15;
    if (i < std::size(steps)) {
      now_ += steps[i];
    } else if (deadline) {
      const time_point target = i == 14 ? *deadline : *deadline - 1ns;
      if (target > now_) now_ = target;
    }
    const bool due = deadline && *deadline <= now_;
    if ((v & 16) && (!(v & 32) || due)) {
      conn_->on_timeout(now_);
      allowance_ += 14;  // a keepalive ping
      ++frames_;
      return true;
    }
    return false;
  }

  void consume(std::uint8_t v, bool past_end) {
    const std::size_t before = conn_->buffered_amount();
    if (past_end) {
      FUZZ_CHECK(conn_->consume_output(before + 1) == errc::consume_past_end);
      FUZZ_CHECK(conn_->buffered_amount() == before);
    }
    const std::size_t n = v == 0 ? before : std::min<std::size_t>(before, std::size_t{v} * 16);
    // pending_output() offers at most IOV_MAX buffers at a time: write what
    // it offers, as an adapter would, until n bytes went.
    std::size_t done = 0;
    while (done < n) {
      const std::string bytes = peek_output(*conn_, n - done);
      FUZZ_CHECK_MSG(!bytes.empty(), "buffered_amount() > 0 but pending_output() is empty");
      FUZZ_CHECK(!conn_->consume_output(bytes.size()));
      done += bytes.size();
      out_->feed(bytes);
    }
    FUZZ_CHECK(conn_->buffered_amount() == before - n);
    consumed_ += n;
  }

  // ---- events --------------------------------------------------------------

  void on_event(const event& ev) {
    trace("  event " + describe(ev).substr(0, 120));
    FUZZ_CHECK_MSG(!ended_, "event after the connection's last event: " + describe(ev));
    const state st = conn_->state();
    check_state();
    if (std::holds_alternative<request_event>(ev)) {
      FUZZ_CHECK(!client_ && !request_seen_ && st == state::connecting);
      FUZZ_CHECK(server_->request() == std::get<request_event>(ev).request);
      request_seen_ = request_pending_ = true;
    } else if (const auto* o = std::get_if<open_event>(&ev)) {
      FUZZ_CHECK(!ever_open_ && (st == state::open || st == state::closing || st == state::closed));
      if (client_) {
        FUZZ_CHECK(o->response != nullptr && o->response->status == 101);
        out_->set_deflate(o->extensions.find("permessage-deflate") != std::string_view::npos);
      } else {
        FUZZ_CHECK(o->request != nullptr && request_seen_ && !request_pending_);
      }
      ever_open_ = true;
    } else if (const auto* m = std::get_if<message_event>(&ev)) {
      FUZZ_CHECK(ever_open_ && (st == state::open || st == state::closing));
      if (!s_.deliver_partial_messages) FUZZ_CHECK(m->last);
      if (!in_message_) {
        in_message_ = true;
        msg_text_ = m->type == message_type::text;
        msg_size_ = 0;
        msg_utf8_ = ref_utf8();
      }
      FUZZ_CHECK_MSG(msg_text_ == (m->type == message_type::text), "message type changed between chunks");
      msg_size_ += m->data.size();
      FUZZ_CHECK_MSG(msg_size_ <= s_.limits.max_message_size, "message above max_message_size");
      if (msg_text_) FUZZ_CHECK_MSG(msg_utf8_.push(as_sv(m->data)), "invalid UTF-8 delivered as text");
      if (m->last) {
        if (msg_text_) FUZZ_CHECK_MSG(msg_utf8_.complete(), "text ends inside a code point");
        in_message_ = false;
      }
    } else if (const auto* p = std::get_if<ping_event>(&ev)) {
      FUZZ_CHECK(ever_open_ && p->payload.size() <= 125);
    } else if (const auto* p = std::get_if<pong_event>(&ev)) {
      FUZZ_CHECK(ever_open_ && p->payload.size() <= 125);
    } else if (const auto* c = std::get_if<close_event>(&ev)) {
      FUZZ_CHECK_MSG(ever_open_ && st == state::closed, "close_event in state " + std::string(to_string(st)));
      ended_ = true;
      close_ = *c;
      close_reason_.assign(c->reason);
      switch (c->cause) {
        case close_cause::handshake:
          FUZZ_CHECK(c->clean && (c->code == close_code::no_status || ref_close_code_ok(c->code)));
          FUZZ_CHECK(valid_utf8(c->reason));
          break;
        case close_cause::protocol_error:
          FUZZ_CHECK(!c->clean && !c->by_peer);
          FUZZ_CHECK_MSG(c->code == 1002 || c->code == 1003 || c->code == 1007 || c->code == 1008 ||
                             c->code == 1009 || c->code == 1010 || c->code == 1011,
                         "protocol error closed with " + std::to_string(c->code));
          break;
        case close_cause::failed_locally:
          FUZZ_CHECK(!c->clean && !c->by_peer && fail_code_ != 0 && c->code == fail_code_);
          break;
        case close_cause::keepalive_timeout:
          FUZZ_CHECK(!c->clean && !c->by_peer && c->code == close_code::internal_error);
          break;
        case close_cause::close_timeout:
          FUZZ_CHECK(!c->clean && !c->by_peer && c->code == close_code::abnormal && app_closed_);
          break;
        case close_cause::eof:
          FUZZ_CHECK(!c->clean && c->code == close_code::abnormal);
          break;
      }
    } else if (std::holds_alternative<handshake_failure_event>(ev)) {
      FUZZ_CHECK(!ever_open_ && st == state::closed);
      ended_ = true;
      request_pending_ = false;
    }
  }

  // ---- invariants ----------------------------------------------------------

  void check_state() {
    const state st = conn_->state();
    const int from = rank(last_state_), to = rank(st);
    FUZZ_CHECK_MSG(to >= from, std::string("state went back from ") + std::string(to_string(last_state_)) + " to " +
                                   std::string(to_string(st)));
    FUZZ_CHECK_MSG(!(last_state_ == state::connecting && st == state::closing), "CONNECTING -> CLOSING");
    last_state_ = st;
  }

  void after_op(bool timed) {
    check_state();
    const state st = conn_->state();
    const bool tsc = conn_->transport_should_close();
    FUZZ_CHECK_MSG(!transport_close_ || tsc, "transport_should_close() went back to false");
    transport_close_ = tsc;

    // Nothing new is queued once CLOSED.
    const std::size_t buffered = conn_->buffered_amount();
    const std::size_t emitted = consumed_ + buffered;
    if (closed_before_) FUZZ_CHECK_MSG(emitted <= emitted_, "output queued after CLOSED");
    emitted_ = emitted;
    closed_before_ = st == state::closed;

    // Output bounded by what was asked for since the queue was last empty.
    const std::size_t engine_own = 3 * control_frame + 1024;  // two pongs, a close, a refusal
    FUZZ_CHECK_MSG(buffered <= allowance_ + engine_own,
                   "buffered_amount() " + std::to_string(buffered) + " above " + std::to_string(allowance_ + engine_own));
    peak_allowance_ = std::max(peak_allowance_, allowance_ + engine_own);
    peak_frames_ = std::max(peak_frames_, frames_ + 4);
    if (buffered == 0) {
      allowance_ = 0;
      frames_ = 0;
    }

    const memory_usage m = conn_->memory();
    const std::size_t compression = m.total() - m.input - m.message - m.output;
    // The message buffer doubles as it grows; with a pool, its blocks are
    // powers of two.
    const std::size_t max_msg = s_.limits.max_message_size;
    const std::size_t msg_bound = (s_.output_pool ? max_msg * 5 / 2 : 2 * max_msg) + 64;
    FUZZ_CHECK_MSG(m.message <= msg_bound, "reassembly memory " + std::to_string(m.message));
    FUZZ_CHECK_MSG(m.input <= 2 * std::max(peak_need_, std::size_t{16384}) + 64,
                   "input memory " + std::to_string(m.input) + " for at most " + std::to_string(peak_need_) +
                       " bytes needed");
    // The arena doubles as it grows, and a pooled block is that rounded up
    // to a power of two (doublings of a power of two stay exact).
    const std::size_t out_bound = peak_allowance_ * 9 / 4 + 8192 + 128 * (2 * peak_frames_ + 64) + 16384 + 512;
    FUZZ_CHECK_MSG(m.output <= out_bound, "output memory " + std::to_string(m.output) + " above " + std::to_string(out_bound));
    FUZZ_CHECK_MSG(compression <= (std::size_t{1} << 20), "compression memory " + std::to_string(compression));

    const auto deadline = conn_->next_deadline();
    if (timed) FUZZ_CHECK_MSG(!deadline || *deadline > now_, "a deadline that on_timeout() left in the past");
    if (st == state::closed && !client_) FUZZ_CHECK_MSG(!deadline, "a closed server with a deadline");
  }

  void finish() {
    pull(SIZE_MAX);
    after_op(false);
    consume(0, false);
    after_op(false);
    out_->finish();
    const state st = conn_->state();
    if (st == state::closed) {
      if (ever_open_) FUZZ_CHECK_MSG(close_.has_value(), "a connection that was OPEN closed without a close_event");
      else if (!app_refused_) FUZZ_CHECK_MSG(ended_, "a handshake that failed without handshake_failure_event");
    } else {
      FUZZ_CHECK(!close_);
    }
    // What went out agrees with how it ended.
    if (out_->refused()) FUZZ_CHECK(!ever_open_ && !client_);
    if (close_) {
      const auto& c = *close_;
      const bool we_sent_first = app_closed_;
      if (c.cause == close_cause::handshake && c.by_peer && !we_sent_first) {
        FUZZ_CHECK_MSG(out_->close_sent(), "the peer's close was not answered");
        if (c.code == close_code::no_status) FUZZ_CHECK(!out_->close_code());
        else FUZZ_CHECK(out_->close_code() == c.code);
      }
      if (!we_sent_first && (c.cause == close_cause::protocol_error || c.cause == close_cause::keepalive_timeout ||
                             c.cause == close_cause::failed_locally)) {
        FUZZ_CHECK_MSG(out_->close_sent() && out_->close_code() == c.code, "the failure's close frame");
        // 5.5.1: data may go before it, nothing after (CLOSED queues no pong).
        FUZZ_CHECK_MSG(out_->frames().back().opcode == 0x8, "a frame after the failure's close frame");
      }
      if (c.cause == close_cause::eof && !we_sent_first) FUZZ_CHECK(!out_->close_sent());
    }
    if (!ever_open_) FUZZ_CHECK(out_->frames().empty());
  }

  reader& in_;
  gust::settings s_;
  bool client_ = false;
  deflate_pool pool_;  // before conn_: outlives it
  output_pool output_pool_;  // (the same)
  std::unique_ptr<connection> conn_;
  server_connection* server_ = nullptr;
  std::string key_;
  time_point now_ = time_point{} + std::chrono::hours(1);
  std::optional<output_checker> out_;
  borrowed_buffers keep_;

  std::string peer_;
  std::size_t peer_pos_ = 0;

  // model
  state last_state_ = state::connecting;
  bool transport_close_ = false;
  bool ever_open_ = false, ended_ = false;
  bool request_seen_ = false, request_pending_ = false, app_refused_ = false;
  bool app_closed_ = false;
  std::uint16_t fail_code_ = 0;
  std::optional<close_event> close_;
  std::string close_reason_;
  bool frag_ = false, frag_text_ = false;
  ref_utf8 frag_utf8_;
  bool in_message_ = false, msg_text_ = false;
  std::size_t msg_size_ = 0;
  ref_utf8 msg_utf8_;

  // bounds
  std::size_t frame_limit_ = 0;
  std::size_t fed_since_drain_ = 0, peak_need_ = 0;
  std::size_t allowance_ = 0, frames_ = 0, peak_allowance_ = 0, peak_frames_ = 0;
  std::size_t consumed_ = 0, emitted_ = 0;
  bool closed_before_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in(data, size);
  driver d(in);
  d.run();
  return 0;
}
