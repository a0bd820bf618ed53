// The Autobahn|Testsuite case families 1-7, 9 (scaled down) and 10, as our
// own byte-level cases, with Autobahn's "strict" outcome: the exact events,
// the exact frames the engine writes back, the final state, and silence
// after the close.
//
// Every case runs in both roles (a server reading masked frames, a client
// reading unmasked ones) and is fed in many ways (whole, one byte at a time,
// in chunks, at split points); every way must give the same result.
#include <doctest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/wire.hpp"

using namespace gust;
using namespace gust::test;
using strings = std::vector<std::string>;

namespace {

// ---------------------------------------------------------------------------
// Bytes and frames

constexpr std::uint8_t FIN = 0x80;
constexpr std::uint8_t CONT = 0x0, TEXT = 0x1, BINARY = 0x2, CLOSE = 0x8, PING = 0x9, PONG = 0xA;

/// Bytes from hex digits; anything else (spaces) is skipped.
std::string X(std::string_view digits) {
  std::string out;
  int hi = -1;
  for (char ch : digits) {
    int v;
    if (ch >= '0' && ch <= '9')
      v = ch - '0';
    else if (ch >= 'a' && ch <= 'f')
      v = ch - 'a' + 10;
    else if (ch >= 'A' && ch <= 'F')
      v = ch - 'A' + 10;
    else
      continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<char>(hi * 16 + v));
      hi = -1;
    }
  }
  return out;
}

/// The UTF-8 form of a code point, surrogates included (to build invalid
/// input on purpose).
std::string U(char32_t cp) {
  std::string s;
  auto c = [](std::uint32_t v) { return static_cast<char>(v); };
  if (cp < 0x80) {
    s += c(cp);
  } else if (cp < 0x800) {
    s += c(0xC0 | (cp >> 6));
    s += c(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += c(0xE0 | (cp >> 12));
    s += c(0x80 | ((cp >> 6) & 0x3F));
    s += c(0x80 | (cp & 0x3F));
  } else {
    s += c(0xF0 | (cp >> 18));
    s += c(0x80 | ((cp >> 12) & 0x3F));
    s += c(0x80 | ((cp >> 6) & 0x3F));
    s += c(0x80 | (cp & 0x3F));
  }
  return s;
}

std::string repeat(std::string_view unit, std::size_t times) {
  std::string s;
  for (std::size_t i = 0; i < times; ++i) s += unit;
  return s;
}

/// Exactly `n` bytes of valid UTF-8 mixing 1- to 4-byte code points, so
/// that fragment boundaries fall inside code points.
std::string text_payload(std::size_t n) {
  static const std::string unit = "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4-UTF-8!! " + X("ce ba e1 bd b9 cf 83 ce bc ce b5") +
                                  " " + U(0x1D11E) + " " + U(0xFFFD) + " ";
  std::string s;
  while (s.size() + unit.size() <= n) s += unit;
  while (s.size() < n) s += static_cast<char>('a' + s.size() % 26);
  return s;
}

std::string binary_payload(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + 3) & 0xFF);
  return s;
}

/// Reference UTF-8 check (RFC 3629 section 4 / Unicode table 3-7),
/// independent of the engine's: the index of the first byte after which
/// the input can no longer be the prefix of valid UTF-8, and whether it
/// ends on a code point boundary.
struct utf8_scan {
  std::size_t bad = std::string::npos;
  bool complete = true;
};
utf8_scan scan_utf8(std::string_view s) {
  std::size_t need = 0;
  unsigned lo = 0x80, hi = 0xBF;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned c = static_cast<unsigned char>(s[i]);
    if (need == 0) {
      lo = 0x80;
      hi = 0xBF;
      if (c <= 0x7F) continue;
      if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
      } else if (c == 0xE0) {
        need = 2;
        lo = 0xA0;
      } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
        need = 2;
      } else if (c == 0xED) {
        need = 2;
        hi = 0x9F;
      } else if (c == 0xF0) {
        need = 3;
        lo = 0x90;
      } else if (c >= 0xF1 && c <= 0xF3) {
        need = 3;
      } else if (c == 0xF4) {
        need = 3;
        hi = 0x8F;
      } else {
        return {i, false};
      }
    } else {
      if (c < lo || c > hi) return {i, false};
      lo = 0x80;
      hi = 0xBF;
      --need;
    }
  }
  return {std::string::npos, need == 0};
}
bool utf8_ok(std::string_view s) {
  const auto r = scan_utf8(s);
  return r.bad == std::string::npos && r.complete;
}

// ---------------------------------------------------------------------------
// Roles

/// One side of the connection under test: a server reads masked frames, a
/// client unmasked ones; `f` builds a frame as the peer would send it.
struct side {
  bool server;

  std::string name() const { return server ? "as server (masked input)" : "as client (unmasked input)"; }
  std::string f(std::uint8_t b0, std::string_view payload) const { return frame(b0, payload, server); }
  /// The size of the header `f` writes for a payload of `n` bytes.
  std::size_t header_size(std::size_t n) const {
    return frame(FIN | BINARY, std::string(n, 'x'), server).size() - n;
  }
  std::unique_ptr<connection> open(virtual_clock& clk, const gust::settings& s = {}) const {
    if (server) return std::make_unique<server_connection>(open_server(clk, s));
    return std::make_unique<client_connection>(open_client(clk, s));
  }
};
constexpr side roles[] = {side{true}, side{false}};

/// A message of `op` split into frames of at most `size` bytes.
std::string fragments(const side& sd, std::uint8_t op, std::string_view msg, std::size_t size) {
  if (msg.empty()) return sd.f(FIN | op, "");
  std::string w;
  for (std::size_t pos = 0; pos < msg.size(); pos += size) {
    const std::size_t n = std::min(size, msg.size() - pos);
    const std::uint8_t b0 = static_cast<std::uint8_t>((pos == 0 ? op : CONT) | (pos + n == msg.size() ? FIN : 0));
    w += sd.f(b0, msg.substr(pos, n));
  }
  return w;
}

// ---------------------------------------------------------------------------
// Events

std::string text_ev(std::string_view s) { return "text:" + std::string(s); }
std::string binary_ev(std::string_view s) { return "binary:" + hex(s); }
std::string ping_ev(std::string_view s) { return "ping:" + hex(s); }
std::string pong_ev(std::string_view s) { return "pong:" + hex(s); }
/// We failed the connection: any reason.
std::string fail_ev(std::uint16_t code) {
  return "close:" + std::to_string(code) + ":*:unclean:local:protocol error";
}
/// The peer closed and we echoed: the close handshake is done.
std::string peer_close_ev(std::uint16_t code, std::string_view reason) {
  return "close:" + std::to_string(code) + ":" + std::string(reason) + ":clean:peer:close handshake";
}

/// `want` may hold one '*' standing for any text (the reason of a close
/// we chose ourselves).
bool event_matches(const std::string& got, const std::string& want) {
  const auto star = want.find('*');
  if (star == std::string::npos || want.rfind("close:", 0) != 0) return got == want;
  const std::string_view pre = std::string_view(want).substr(0, star);
  const std::string_view post = std::string_view(want).substr(star + 1);
  return got.size() >= pre.size() + post.size() && got.compare(0, pre.size(), pre) == 0 &&
         got.compare(got.size() - post.size(), post.size(), post) == 0;
}

std::string show(const strings& v) {
  std::ostringstream o;
  o << v.size() << " event(s): [";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) o << " | ";
    if (v[i].size() > 120)
      o << v[i].substr(0, 120) << "...(" << v[i].size() << " chars)";
    else
      o << v[i];
  }
  o << "]";
  return o.str();
}

bool events_match(const strings& got, const strings& want) {
  if (got.size() != want.size()) return false;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!event_matches(got[i], want[i])) return false;
  return true;
}

void expect_events(const strings& got, const strings& want) {
  INFO("got  " << show(got));
  INFO("want " << show(want));
  CHECK(events_match(got, want));
}

strings operator+(strings a, const strings& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// ---------------------------------------------------------------------------
// Expected outcomes

/// A frame the engine should write: a control frame with FIN. For a close
/// with `any_reason`, only the code is compared; the reason must be valid
/// UTF-8 of at most 123 bytes.
struct out_frame {
  std::uint8_t opcode;
  std::string payload;
  bool any_reason = false;
};
out_frame pong_out(std::string_view p) { return {PONG, std::string(p)}; }
out_frame close_out(std::uint16_t code) { return {CLOSE, close_payload(code), true}; }
out_frame empty_close_out() { return {CLOSE, ""}; }

std::string show(const std::vector<wire_frame>& frames) {
  std::ostringstream o;
  o << frames.size() << " frame(s):";
  for (auto& f : frames) {
    o << " [op " << int(f.opcode) << (f.fin ? " fin" : "") << " rsv " << int(f.rsv)
      << (f.masked ? " masked" : "") << " len " << f.payload.size() << " "
      << hex(f.payload.substr(0, 40)) << "]";
  }
  return o.str();
}

struct outcome {
  enum class end { open, failed, closed_by_peer };
  strings events;
  std::vector<out_frame> output;
  /// Replaces the comparison with `output` when set (pong coalescing).
  std::function<void(const std::vector<wire_frame>&)> output_check;
  end how = end::open;
};

/// The connection stays OPEN.
outcome deliver(strings events, std::vector<out_frame> output = {}) {
  return {std::move(events), std::move(output), {}, outcome::end::open};
}
/// We fail the connection with `code` after delivering `before`; the only
/// thing we write is our close frame.
outcome fail_with(strings before, std::uint16_t code) {
  return {std::move(before) + strings{fail_ev(code)}, {close_out(code)}, {}, outcome::end::failed};
}
/// The peer closes with (`code`, `reason`) after `before`; we echo `echo`.
outcome peer_close(strings before, std::uint16_t code, std::string_view reason, out_frame echo) {
  return {std::move(before) + strings{peer_close_ev(code, reason)}, {std::move(echo)}, {},
          outcome::end::closed_by_peer};
}

/// Pongs for several pings: one or more pongs, each carrying the payload of
/// one of the pings in order (5.5.3 lets a pong answer only the latest of
/// unanswered pings), the last one carrying the last ping's payload.
std::function<void(const std::vector<wire_frame>&)> pongs_for(strings pings) {
  return [pings](const std::vector<wire_frame>& frames) {
    INFO("output " << show(frames));
    REQUIRE(!frames.empty());
    CHECK(frames.size() <= pings.size());
    std::size_t next = 0;
    for (auto& f : frames) {
      CHECK(f.opcode == PONG);
      CHECK(f.fin);
      while (next < pings.size() && pings[next] != f.payload) ++next;
      CHECK(next < pings.size());  // a payload of an unanswered ping, in order
      ++next;
    }
    CHECK(frames.back().payload == pings.back());
  };
}

void expect_output(const side& sd, const std::string& out, const outcome& want) {
  const auto frames = parse_frames(out);
  INFO("output " << show(frames));
  for (auto& f : frames) {
    CHECK(f.rsv == 0);
    CHECK(f.masked == !sd.server);  // 5.1: a client masks, a server does not
  }
  if (want.output_check) {
    want.output_check(frames);
    return;
  }
  CHECK(frames.size() == want.output.size());
  for (std::size_t i = 0; i < std::min(frames.size(), want.output.size()); ++i) {
    const auto& f = frames[i];
    const auto& w = want.output[i];
    CHECK(f.opcode == w.opcode);
    CHECK(f.fin);
    if (w.any_reason) {
      REQUIRE(f.payload.size() >= 2);
      CHECK(hex(f.payload.substr(0, 2)) == hex(w.payload.substr(0, 2)));
      CHECK(f.payload.size() <= 125);
      CHECK(utf8_ok(f.payload.substr(2)));
    } else {
      CHECK(hex(f.payload) == hex(w.payload));
    }
  }
}

// ---------------------------------------------------------------------------
// Feeding

struct feeding {
  std::string name;
  /// Feeds the input, returns the events; output taken while feeding is
  /// appended to `out`.
  std::function<strings(connection&, std::string_view, virtual_clock&, std::string& out)> run;
};

std::vector<feeding> feedings(std::size_t n, const std::vector<std::size_t>& chunks) {
  std::vector<feeding> v;
  v.push_back({"whole", [](connection& c, std::string_view in, virtual_clock& clk, std::string&) {
                 return feed(c, in, clk);
               }});
  v.push_back({"whole via prepare/commit",
               [](connection& c, std::string_view in, virtual_clock& clk, std::string&) {
                 return feed(c, in, clk, 0, feed_mode::prepare_commit);
               }});
  v.push_back({"one byte at a time", [](connection& c, std::string_view in, virtual_clock& clk, std::string&) {
                 return feed(c, in, clk, 1);
               }});
  v.push_back({"one byte at a time via prepare/commit",
               [](connection& c, std::string_view in, virtual_clock& clk, std::string&) {
                 return feed(c, in, clk, 1, feed_mode::prepare_commit);
               }});
  v.push_back({"one byte at a time, output written after each byte",
               [](connection& c, std::string_view in, virtual_clock& clk, std::string& out) {
                 strings ev;
                 for (std::size_t i = 0; i < in.size(); ++i) {
                   ev = std::move(ev) + feed(c, in.substr(i, 1), clk);
                   out += take_output(c);
                 }
                 return ev;
               }});
  std::vector<std::size_t> sizes = {7};
  sizes.insert(sizes.end(), chunks.begin(), chunks.end());
  for (std::size_t size : sizes) {
    v.push_back({"chunks of " + std::to_string(size),
                 [size](connection& c, std::string_view in, virtual_clock& clk, std::string&) {
                   return feed(c, in, clk, size);
                 }});
  }
  std::vector<std::vector<std::size_t>> cuts = {{1}, {n / 2}, {n - 1}, {2, n / 3, 2 * n / 3}};
  std::mt19937 rng(static_cast<std::uint32_t>(n * 2654435761u + 17));
  for (int round = 0; round < 2 && n > 1; ++round) {
    std::vector<std::size_t> c;
    for (int i = 0; i < 4; ++i) c.push_back(rng() % n);
    std::sort(c.begin(), c.end());
    cuts.push_back(c);
  }
  for (auto& c : cuts) {
    std::string name = "split at";
    for (auto x : c) name += " " + std::to_string(x);
    v.push_back({name, [c](connection& conn, std::string_view in, virtual_clock& clk, std::string&) {
                   return feed_split(conn, in, clk, c);
                 }});
  }
  return v;
}

/// Runs `wire` through a fresh engine in every feeding and checks the
/// outcome; after a close, more input must give no events and no output.
void check(const side& sd, const std::string& wire, const outcome& want, const gust::settings& s = {},
           const std::vector<std::size_t>& chunks = {}) {
  const std::string late =
      sd.f(FIN | PING, "late ping") + sd.f(FIN | TEXT, "late text") + sd.f(FIN | CLOSE, close_payload(1000));
  const bool ended = want.how != outcome::end::open;
  const bool transport_closes =
      want.how == outcome::end::failed || (want.how == outcome::end::closed_by_peer && sd.server);
  for (auto& fd : feedings(wire.size(), chunks)) {
    INFO(sd.name() << ", fed " << fd.name << " (" << wire.size() << " bytes)");
    virtual_clock clk;
    auto c = sd.open(clk, s);
    std::string out;
    strings got = fd.run(*c, wire, clk, out);
    out += take_output(*c);
    expect_events(got, want.events);
    expect_output(sd, out, want);
    CHECK(c->state() == (ended ? state::closed : state::open));
    // 7.1.1: the server closes TCP first after the close handshake; on a
    // failure (7.1.7) both sides close at once.
    CHECK(c->transport_should_close() == transport_closes);
    if (!ended) continue;
    CHECK(feed(*c, late, clk).empty());
    CHECK(take_output(*c).empty());
    CHECK(c->state() == state::closed);
    if (want.how == outcome::end::closed_by_peer && !sd.server) {
      // A client waits for the server to close TCP, up to close_timeout.
      clk.advance(c->settings().timeouts.close_timeout);
      c->on_timeout(clk.now);
      CHECK(c->transport_should_close());
      CHECK(drain(*c, clk).empty());
      CHECK(take_output(*c).empty());
    }
  }
}

template <class Body>
void both_roles(Body&& body) {
  for (const side& sd : roles) {
    INFO(sd.name());
    body(sd);
  }
}

/// The connection must fail with `code` exactly when byte `at` of `wire`
/// arrives (fail fast), after delivering `before`; the rest of `wire`
/// changes nothing.
void check_fails_at(const side& sd, const std::string& wire, std::size_t at, std::uint16_t code,
                    const strings& before = {}, const gust::settings& s = {}) {
  REQUIRE(at < wire.size());
  INFO(sd.name() << ", must fail at byte " << at << " of " << wire.size() << ": " << hex(wire));
  auto finish = [&](connection& c, virtual_clock& clk) {
    expect_output(sd, take_output(c), fail_with(before, code));
    CHECK(c.state() == state::closed);
    CHECK(c.transport_should_close());
    CHECK(feed(c, sd.f(FIN | PING, "late"), clk).empty());
    CHECK(take_output(c).empty());
  };
  {
    INFO("one byte at a time");
    virtual_clock clk;
    auto c = sd.open(clk, s);
    strings early, at_byte, late;
    for (std::size_t i = 0; i < wire.size(); ++i) {
      auto ev = feed(*c, wire.substr(i, 1), clk);
      auto& dst = i < at ? early : (i == at ? at_byte : late);
      dst.insert(dst.end(), ev.begin(), ev.end());
    }
    expect_events(early, before);
    expect_events(at_byte, {fail_ev(code)});
    expect_events(late, {});
    finish(*c, clk);
  }
  const std::string prefix = wire.substr(0, at + 1), rest = wire.substr(at + 1);
  for (int mode = 0; mode < 3; ++mode) {
    INFO("the input up to the offending byte, "
         << std::string(mode == 0 ? "whole" : mode == 1 ? "via prepare/commit" : "in two pieces") << ", then the rest");
    virtual_clock clk;
    auto c = sd.open(clk, s);
    strings ev = mode == 0   ? feed(*c, prefix, clk)
                 : mode == 1 ? feed(*c, prefix, clk, 0, feed_mode::prepare_commit)
                             : feed_split(*c, prefix, clk, {prefix.size() / 2});
    expect_events(ev, before + strings{fail_ev(code)});
    CHECK(feed(*c, rest, clk).empty());
    finish(*c, clk);
  }
}

/// Feeds `parts` one after the other; `events[i]` are the events expected
/// right after part i.
void check_parts(const side& sd, const std::vector<std::string>& parts, const std::vector<strings>& events) {
  virtual_clock clk;
  auto c = sd.open(clk);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    INFO(sd.name() << ", after part " << i);
    expect_events(feed(*c, parts[i], clk), events[i]);
  }
}

const std::string hello = "Hello, world!";

gust::settings big_settings() {
  gust::settings s;
  s.limits.max_message_size = 4 << 20;
  s.limits.max_fragments = 1 << 20;
  return s;
}

}  // namespace

// ===========================================================================

TEST_SUITE("Autobahn 1 framing") {
  const std::size_t sizes[] = {0, 125, 126, 127, 128, 65535, 65536};

  TEST_CASE("1.1.1-1.1.7 text messages of 0, 125, 126, 127, 128, 65535 and 65536 bytes") {
    both_roles([&](const side& sd) {
      for (std::size_t n : sizes) {
        INFO("length " << n);
        const std::string p(n, '*');
        check(sd, sd.f(FIN | TEXT, p), deliver({text_ev(p)}));
      }
    });
  }
  TEST_CASE("1.1.8 a 65536-byte text message delivered in chunks of 997 bytes") {
    both_roles([&](const side& sd) {
      const std::string p = text_payload(65536);
      check(sd, sd.f(FIN | TEXT, p), deliver({text_ev(p)}), {}, {997});
    });
  }
  TEST_CASE("1.2.1-1.2.7 binary messages of 0, 125, 126, 127, 128, 65535 and 65536 bytes") {
    both_roles([&](const side& sd) {
      for (std::size_t n : sizes) {
        INFO("length " << n);
        const std::string p(n, '\xfe');
        check(sd, sd.f(FIN | BINARY, p), deliver({binary_ev(p)}));
      }
    });
  }
  TEST_CASE("1.2.8 a 65536-byte binary message delivered in chunks of 997 bytes") {
    both_roles([&](const side& sd) {
      const std::string p = binary_payload(65536);
      check(sd, sd.f(FIN | BINARY, p), deliver({binary_ev(p)}), {}, {997});
    });
  }
  TEST_CASE("1.x several messages of boundary lengths back to back") {
    both_roles([&](const side& sd) {
      std::string wire;
      strings ev;
      for (std::size_t n : sizes) {
        const std::string t = text_payload(n), b = binary_payload(n);
        wire += sd.f(FIN | TEXT, t) + sd.f(FIN | BINARY, b);
        ev.push_back(text_ev(t));
        ev.push_back(binary_ev(b));
      }
      check(sd, wire, deliver(ev));
    });
  }
}

TEST_SUITE("Autobahn 2 pings and pongs") {
  TEST_CASE("2.1 ping without payload") {
    both_roles([&](const side& sd) { check(sd, sd.f(FIN | PING, ""), deliver({ping_ev("")}, {pong_out("")})); });
  }
  TEST_CASE("2.2 ping with a small text payload") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | PING, hello), deliver({ping_ev(hello)}, {pong_out(hello)}));
    });
  }
  TEST_CASE("2.3 ping with a small binary payload") {
    both_roles([&](const side& sd) {
      const std::string p = X("00 ff fe fd fc fb 00 ff");
      check(sd, sd.f(FIN | PING, p), deliver({ping_ev(p)}, {pong_out(p)}));
    });
  }
  TEST_CASE("2.4 ping with a 125-byte binary payload") {
    both_roles([&](const side& sd) {
      const std::string p(125, '\xfe');
      check(sd, sd.f(FIN | PING, p), deliver({ping_ev(p)}, {pong_out(p)}));
    });
  }
  TEST_CASE("2.5 ping with a 126-byte payload fails with 1002") {
    both_roles([&](const side& sd) {
      const std::string p(126, '\xfe');
      check(sd, sd.f(FIN | PING, p) + sd.f(FIN | TEXT, hello), fail_with({}, 1002));
      // 5.5: the length alone is enough to fail, before the payload comes.
      check_fails_at(sd, sd.f(FIN | PING, p), sd.header_size(p.size()) - 1, 1002);
    });
  }
  TEST_CASE("2.6 ping with a 125-byte payload sent in chunks") {
    both_roles([&](const side& sd) {
      const std::string p = binary_payload(125);
      check(sd, sd.f(FIN | PING, p), deliver({ping_ev(p)}, {pong_out(p)}), {}, {1, 2, 3, 5});
    });
  }
  TEST_CASE("2.7 unsolicited pong without payload") {
    both_roles([&](const side& sd) { check(sd, sd.f(FIN | PONG, ""), deliver({pong_ev("")})); });
  }
  TEST_CASE("2.8 unsolicited pong with payload") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | PONG, "unsolicited pong payload"), deliver({pong_ev("unsolicited pong payload")}));
    });
  }
  TEST_CASE("2.9 unsolicited pong, then ping: only the ping is answered") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | PONG, "unsolicited pong payload") + sd.f(FIN | PING, "ping payload"),
            deliver({pong_ev("unsolicited pong payload"), ping_ev("ping payload")}, {pong_out("ping payload")}));
    });
  }
  TEST_CASE("2.10 ten pings, answered (the last pong carries the last payload)") {
    both_roles([&](const side& sd) {
      std::string wire;
      strings ev, pings;
      for (int i = 0; i < 10; ++i) {
        const std::string p = "payload-" + std::to_string(i);
        wire += sd.f(FIN | PING, p);
        ev.push_back(ping_ev(p));
        pings.push_back(p);
      }
      outcome want = deliver(ev);
      want.output_check = pongs_for(pings);
      check(sd, wire, want);
    });
  }
  TEST_CASE("2.11 ten pings sent in chunks") {
    both_roles([&](const side& sd) {
      std::string wire;
      strings ev, pings;
      for (int i = 0; i < 10; ++i) {
        const std::string p = binary_payload(static_cast<std::size_t>(i) * 12 + 5) + char('0' + i);
        wire += sd.f(FIN | PING, p);
        ev.push_back(ping_ev(p));
        pings.push_back(p);
      }
      outcome want = deliver(ev);
      want.output_check = pongs_for(pings);
      check(sd, wire, want, {}, {2, 3, 13});
    });
  }
}

TEST_SUITE("Autobahn 3 reserved bits") {
  TEST_CASE("3.1 small text message with RSV = 1") {
    both_roles([&](const side& sd) { check(sd, sd.f(FIN | 0x10 | TEXT, hello), fail_with({}, 1002)); });
  }
  TEST_CASE("3.2 text message, then text with RSV = 2, then ping") {
    both_roles([&](const side& sd) {
      const std::string wire = sd.f(FIN | TEXT, hello) + sd.f(FIN | 0x20 | TEXT, hello) + sd.f(FIN | PING, hello);
      check(sd, wire, fail_with({text_ev(hello)}, 1002));
      check_fails_at(sd, wire, sd.f(FIN | TEXT, hello).size() + sd.header_size(hello.size()) - 1, 1002,
                     {text_ev(hello)});
    });
  }
  TEST_CASE("3.3 text message, then text with RSV = 3, then ping, frame-wise") {
    both_roles([&](const side& sd) {
      const std::string a = sd.f(FIN | TEXT, hello), b = sd.f(FIN | 0x30 | TEXT, hello), c = sd.f(FIN | PING, hello);
      check(sd, a + b + c, fail_with({text_ev(hello)}, 1002));
      check_parts(sd, {a, b, c}, {{text_ev(hello)}, {fail_ev(1002)}, {}});
    });
  }
  TEST_CASE("3.4 text message, then text with RSV = 4, then ping, octet-wise") {
    both_roles([&](const side& sd) {
      const std::string wire = sd.f(FIN | TEXT, hello) + sd.f(FIN | 0x40 | TEXT, hello) + sd.f(FIN | PING, hello);
      check(sd, wire, fail_with({text_ev(hello)}, 1002), {}, {1});
    });
  }
  TEST_CASE("3.5 small binary message with RSV = 5") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | 0x50 | BINARY, binary_payload(256)), fail_with({}, 1002));
    });
  }
  TEST_CASE("3.6 ping with RSV = 6") {
    both_roles([&](const side& sd) { check(sd, sd.f(FIN | 0x60 | PING, hello), fail_with({}, 1002)); });
  }
  TEST_CASE("3.7 close with RSV = 7") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | 0x70 | CLOSE, close_payload(1000)), fail_with({}, 1002));
    });
  }
  TEST_CASE("3.x every RSV combination on every frame type, after a valid message") {
    both_roles([&](const side& sd) {
      const std::string first = sd.f(FIN | TEXT, hello);
      for (std::uint8_t rsv = 1; rsv <= 7; ++rsv) {
        const auto bits = static_cast<std::uint8_t>(rsv << 4);
        INFO("RSV bits " << int(rsv));
        for (std::uint8_t op : {TEXT, BINARY, CLOSE, PING, PONG}) {
          INFO("opcode " << int(op));
          const std::string p = op == CLOSE ? close_payload(1000) : std::string("payload");
          const std::string wire = first + sd.f(FIN | bits | op, p) + sd.f(FIN | PING, "after");
          check(sd, wire, fail_with({text_ev(hello)}, 1002));
        }
        // On the first fragment and on a continuation.
        check(sd, first + sd.f(bits | TEXT, "frag") + sd.f(FIN | CONT, "ment"), fail_with({text_ev(hello)}, 1002));
        check(sd, first + sd.f(TEXT, "frag") + sd.f(FIN | bits | CONT, "ment"), fail_with({text_ev(hello)}, 1002));
      }
    });
  }
}

TEST_SUITE("Autobahn 4 opcodes") {
  const std::string payload = "reserved opcode payload";

  TEST_CASE("4.1.1 non-control opcode 3, empty") {
    both_roles([&](const side& sd) { check(sd, sd.f(FIN | 3, ""), fail_with({}, 1002)); });
  }
  TEST_CASE("4.1.2 non-control opcode 4 with payload") {
    both_roles([&](const side& sd) { check(sd, sd.f(FIN | 4, payload), fail_with({}, 1002)); });
  }
  TEST_CASE("4.1.3 text, non-control opcode 5, ping") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | TEXT, hello) + sd.f(FIN | 5, "") + sd.f(FIN | PING, hello),
            fail_with({text_ev(hello)}, 1002));
    });
  }
  TEST_CASE("4.1.4 text, non-control opcode 6 with payload, ping") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | TEXT, hello) + sd.f(FIN | 6, payload) + sd.f(FIN | PING, hello),
            fail_with({text_ev(hello)}, 1002));
    });
  }
  TEST_CASE("4.1.5 text, non-control opcode 7 with payload, ping") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | TEXT, hello) + sd.f(FIN | 7, payload) + sd.f(FIN | PING, hello),
            fail_with({text_ev(hello)}, 1002));
    });
  }
  TEST_CASE("4.2.1 control opcode 11, empty") {
    both_roles([&](const side& sd) { check(sd, sd.f(FIN | 11, ""), fail_with({}, 1002)); });
  }
  TEST_CASE("4.2.2 control opcode 12 with payload") {
    both_roles([&](const side& sd) { check(sd, sd.f(FIN | 12, payload), fail_with({}, 1002)); });
  }
  TEST_CASE("4.2.3 text, control opcode 13, ping") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | TEXT, hello) + sd.f(FIN | 13, "") + sd.f(FIN | PING, hello),
            fail_with({text_ev(hello)}, 1002));
    });
  }
  TEST_CASE("4.2.4 text, control opcode 14 with payload, ping") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | TEXT, hello) + sd.f(FIN | 14, payload) + sd.f(FIN | PING, hello),
            fail_with({text_ev(hello)}, 1002));
    });
  }
  TEST_CASE("4.2.5 text, control opcode 15 with payload, ping") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | TEXT, hello) + sd.f(FIN | 15, payload) + sd.f(FIN | PING, hello),
            fail_with({text_ev(hello)}, 1002));
    });
  }
  TEST_CASE("4.x every reserved opcode, with and without FIN, and inside a fragmented message") {
    both_roles([&](const side& sd) {
      for (std::uint8_t op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
        INFO("opcode " << int(op));
        for (std::uint8_t fin : {FIN, std::uint8_t(0)}) {
          INFO("fin " << int(fin));
          const std::string bad = sd.f(fin | op, payload);
          check(sd, sd.f(FIN | TEXT, hello) + bad + sd.f(FIN | TEXT, hello), fail_with({text_ev(hello)}, 1002));
          // Fails at the header: the payload need not arrive.
          check_fails_at(sd, sd.f(FIN | TEXT, hello) + bad,
                         sd.f(FIN | TEXT, hello).size() + sd.header_size(payload.size()) - 1, 1002,
                         {text_ev(hello)});
        }
        check(sd, sd.f(TEXT, "frag") + sd.f(FIN | op, payload) + sd.f(FIN | CONT, "ment"), fail_with({}, 1002));
      }
    });
  }
}

TEST_SUITE("Autobahn 5 fragmentation") {
  TEST_CASE("5.1 ping in 2 fragments fails with 1002") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(PING, "fragment1") + sd.f(FIN | CONT, "fragment2"), fail_with({}, 1002));
    });
  }
  TEST_CASE("5.2 pong in 2 fragments fails with 1002") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(PONG, "fragment1") + sd.f(FIN | CONT, "fragment2"), fail_with({}, 1002));
    });
  }
  TEST_CASE("5.3-5.5 text message in 2 fragments (whole, frame-wise, octet-wise)") {
    both_roles([&](const side& sd) {
      const std::string a = sd.f(TEXT, "fragment1"), b = sd.f(FIN | CONT, "fragment2");
      check(sd, a + b, deliver({text_ev("fragment1fragment2")}), {}, {a.size()});
      check_parts(sd, {a, b}, {{}, {text_ev("fragment1fragment2")}});
    });
  }
  TEST_CASE("5.3 variant: binary message in 2 fragments") {
    both_roles([&](const side& sd) {
      const std::string p = binary_payload(300);
      check(sd, sd.f(BINARY, p.substr(0, 100)) + sd.f(FIN | CONT, p.substr(100)), deliver({binary_ev(p)}));
    });
  }
  TEST_CASE("5.3 variant: text and binary messages in many fragments, empty ones included") {
    both_roles([&](const side& sd) {
      const std::string t = text_payload(500), b = binary_payload(500);
      for (std::size_t size : {1, 2, 3, 10, 64, 125, 126, 499}) {
        INFO("fragments of " << size);
        check(sd, fragments(sd, TEXT, t, size), deliver({text_ev(t)}));
        check(sd, fragments(sd, BINARY, b, size), deliver({binary_ev(b)}));
      }
      const std::string wire = sd.f(TEXT, "") + sd.f(CONT, "frag") + sd.f(CONT, "") + sd.f(CONT, "ment") +
                               sd.f(FIN | CONT, "");
      check(sd, wire, deliver({text_ev("fragment")}));
      check(sd, sd.f(BINARY, "") + sd.f(FIN | CONT, ""), deliver({binary_ev("")}));
    });
  }
  TEST_CASE("5.6-5.8 text message in 2 fragments with a ping in between (whole, frame-wise, octet-wise)") {
    both_roles([&](const side& sd) {
      const std::string a = sd.f(TEXT, "fragment1"), p = sd.f(FIN | PING, "ping payload"),
                        b = sd.f(FIN | CONT, "fragment2");
      check(sd, a + p + b, deliver({ping_ev("ping payload"), text_ev("fragment1fragment2")}, {pong_out("ping payload")}),
            {}, {a.size(), p.size()});
      check_parts(sd, {a, p, b}, {{}, {ping_ev("ping payload")}, {text_ev("fragment1fragment2")}});
    });
  }
  TEST_CASE("5.6 variant: a pong between fragments is delivered and not answered") {
    both_roles([&](const side& sd) {
      const std::string p = binary_payload(200);
      check(sd, sd.f(BINARY, p.substr(0, 150)) + sd.f(FIN | PONG, "pong payload") + sd.f(FIN | CONT, p.substr(150)),
            deliver({pong_ev("pong payload"), binary_ev(p)}));
    });
  }
  TEST_CASE("5.9-5.11 continuation frame with FIN set and no message to continue") {
    both_roles([&](const side& sd) {
      const std::string a = sd.f(FIN | CONT, "non-continuation payload"), b = sd.f(FIN | TEXT, hello);
      check(sd, a + b, fail_with({}, 1002));
      check_parts(sd, {a, b}, {{fail_ev(1002)}, {}});
      check_fails_at(sd, a + b, sd.header_size(24) - 1, 1002);
    });
  }
  TEST_CASE("5.12-5.14 continuation frame with FIN unset and no message to continue") {
    both_roles([&](const side& sd) {
      const std::string a = sd.f(CONT, "non-continuation payload"), b = sd.f(FIN | TEXT, hello);
      check(sd, a + b, fail_with({}, 1002));
      check_parts(sd, {a, b}, {{fail_ev(1002)}, {}});
      check_fails_at(sd, a + b, sd.header_size(24) - 1, 1002);
    });
  }
  TEST_CASE("5.15 fragmented text message, then continuation with FIN unset and no message to continue") {
    both_roles([&](const side& sd) {
      const std::string first = sd.f(TEXT, "fragment1") + sd.f(FIN | CONT, "fragment2");
      const std::string wire = first + sd.f(CONT, "fragment3") + sd.f(FIN | TEXT, "fragment4");
      check(sd, wire, fail_with({text_ev("fragment1fragment2")}, 1002));
      check_fails_at(sd, wire, first.size() + sd.header_size(9) - 1, 1002, {text_ev("fragment1fragment2")});
    });
  }
  TEST_CASE("5.16 continuations (FIN unset, then set) and text, twice: fails at the first") {
    both_roles([&](const side& sd) {
      std::string wire;
      for (int i = 0; i < 2; ++i)
        wire += sd.f(CONT, "fragment1") + sd.f(FIN | CONT, "fragment2") + sd.f(FIN | TEXT, "fragment3");
      check(sd, wire, fail_with({}, 1002));
    });
  }
  TEST_CASE("5.17 continuations (FIN set) and text, twice: fails at the first") {
    both_roles([&](const side& sd) {
      std::string wire;
      for (int i = 0; i < 2; ++i)
        wire += sd.f(FIN | CONT, "fragment1") + sd.f(FIN | CONT, "fragment2") + sd.f(FIN | TEXT, "fragment3");
      check(sd, wire, fail_with({}, 1002));
    });
  }
  TEST_CASE("5.18 text message in 2 fragments, both with a text opcode") {
    both_roles([&](const side& sd) {
      const std::string a = sd.f(TEXT, "fragment1");
      check(sd, a + sd.f(FIN | TEXT, "fragment2"), fail_with({}, 1002));
      check_fails_at(sd, a + sd.f(FIN | TEXT, "fragment2"), a.size() + sd.header_size(9) - 1, 1002);
      // And a binary frame inside a text message, a text frame inside a
      // binary one.
      check(sd, a + sd.f(FIN | BINARY, "fragment2"), fail_with({}, 1002));
      check(sd, sd.f(BINARY, "fragment1") + sd.f(TEXT, "fragment2") + sd.f(FIN | CONT, "x"), fail_with({}, 1002));
    });
  }
  TEST_CASE("5.19-5.20 text message in 5 fragments with pings in between") {
    both_roles([&](const side& sd) {
      const std::vector<std::string> parts = {
          sd.f(TEXT, "fragment1") + sd.f(CONT, "fragment2") + sd.f(FIN | PING, "pongme 1!"),
          sd.f(CONT, "fragment3") + sd.f(CONT, "fragment4") + sd.f(FIN | PING, "pongme 2!"),
          sd.f(FIN | CONT, "fragment5")};
      const std::string msg = "fragment1fragment2fragment3fragment4fragment5";
      outcome want = deliver({ping_ev("pongme 1!"), ping_ev("pongme 2!"), text_ev(msg)});
      want.output_check = pongs_for({"pongme 1!", "pongme 2!"});
      check(sd, parts[0] + parts[1] + parts[2], want, {}, {parts[0].size()});
      check_parts(sd, parts, {{ping_ev("pongme 1!")}, {ping_ev("pongme 2!")}, {text_ev(msg)}});
      // Pongs written as soon as asked: one per ping, in order.
      virtual_clock clk;
      auto c = sd.open(clk);
      std::vector<std::string> pongs;
      for (auto& part : parts) {
        feed(*c, part, clk);
        for (auto& f : parse_frames(take_output(*c))) {
          CHECK(f.opcode == PONG);
          pongs.push_back(f.payload);
        }
      }
      CHECK(pongs == strings{"pongme 1!", "pongme 2!"});
    });
  }
  TEST_CASE("5.x control frames between fragments must not be fragmented or too long") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(TEXT, "frag") + sd.f(PING, "x") + sd.f(FIN | CONT, "ment"), fail_with({}, 1002));
      check(sd, sd.f(TEXT, "frag") + sd.f(FIN | PING, std::string(126, 'p')) + sd.f(FIN | CONT, "ment"),
            fail_with({}, 1002));
    });
  }
}

// ---------------------------------------------------------------------------
// Autobahn 6: UTF-8

namespace {

struct utf8_vector {
  std::string id;
  std::string bytes;
  bool valid;
};

/// One frame per byte (one empty frame for an empty message).
std::string per_byte_fragments(const side& sd, std::string_view v) { return fragments(sd, TEXT, v, 1); }

/// A text message `v` must be delivered (valid) or fail with 1007, as one
/// frame, as two fragments split at every byte boundary and as one fragment
/// per byte; an invalid one must fail as soon as the offending byte comes.
void utf8_message_case(const side& sd, const std::string& v, bool valid) {
  INFO("payload " << hex(v) << std::string(valid ? " (valid)" : " (invalid)"));
  CHECK(utf8_ok(v) == valid);  // the table agrees with the reference
  const outcome want = valid ? deliver({text_ev(v)}) : fail_with({}, 1007);
  check(sd, sd.f(FIN | TEXT, v), want);
  for (std::size_t k = 0; k <= v.size(); ++k) {
    INFO("two fragments split at " << k);
    check(sd, sd.f(TEXT, v.substr(0, k)) + sd.f(FIN | CONT, v.substr(k)), want);
  }
  check(sd, per_byte_fragments(sd, v), want);
  if (valid) return;

  // Fail fast: followed by more text (which cannot repair it), the message
  // fails at the first byte that makes it invalid, before the frame ends.
  const std::string padded = v + "-edited-and-more";
  const auto r = scan_utf8(padded);
  REQUIRE(r.bad != std::string::npos);
  const std::size_t k = r.bad;
  INFO("offending byte " << k << " of " << hex(padded));
  check_fails_at(sd, sd.f(FIN | TEXT, padded), sd.header_size(padded.size()) + k, 1007);
  for (std::size_t j : {std::size_t(0), k / 2, k, k + 1}) {
    if (j > padded.size()) continue;
    INFO("as two fragments split at " << j);
    const std::string a = sd.f(TEXT, padded.substr(0, j));
    const std::string wire = a + sd.f(FIN | CONT, padded.substr(j));
    const std::size_t at = j > k ? sd.header_size(j) + k : a.size() + sd.header_size(padded.size() - j) + (k - j);
    check_fails_at(sd, wire, at, 1007);
  }
}

void utf8_table(const std::vector<utf8_vector>& table) {
  both_roles([&](const side& sd) {
    for (auto& t : table) {
      INFO("case " << t.id);
      utf8_message_case(sd, t.bytes, t.valid);
    }
  });
}

const std::string kosme = X("ce ba e1 bd b9 cf 83 ce bc ce b5");

}  // namespace

TEST_SUITE("Autobahn 6 UTF-8 handling") {
  TEST_CASE("6.1.1 empty text message") {
    both_roles([&](const side& sd) { check(sd, sd.f(FIN | TEXT, ""), deliver({text_ev("")})); });
  }
  TEST_CASE("6.1.2 text message of 3 empty fragments") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(TEXT, "") + sd.f(CONT, "") + sd.f(FIN | CONT, ""), deliver({text_ev("")}));
    });
  }
  TEST_CASE("6.1.3 text message of empty, non-empty and empty fragments") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(TEXT, "") + sd.f(CONT, "middle frame payload") + sd.f(FIN | CONT, ""),
            deliver({text_ev("middle frame payload")}));
    });
  }
  TEST_CASE("6.2.1-6.2.3 valid UTF-8 in one frame, in two fragments at every boundary, byte per frame") {
    utf8_table({{"6.2.1", "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!", true}});
  }
  TEST_CASE("6.2.4 valid UTF-8 (kosme) byte per frame") { utf8_table({{"6.2.4", kosme, true}}); }
  TEST_CASE("6.3.1-6.3.2 invalid UTF-8 (a surrogate) in one frame and byte per frame") {
    utf8_table({{"6.3.1", kosme + X("ed a0 80") + "edited", false}});
  }
  TEST_CASE("6.4.1 fail fast: invalid code point in the 2nd of 3 fragments") {
    both_roles([&](const side& sd) {
      const std::string a = sd.f(TEXT, kosme), b = sd.f(CONT, X("f4 90 80 80")), c = sd.f(FIN | CONT, "edited");
      check_parts(sd, {a, b, c}, {{}, {fail_ev(1007)}, {}});
      // F4 90 is above U+10FFFF: invalid at the 90.
      check_fails_at(sd, a + b + c, a.size() + sd.header_size(4) + 1, 1007);
    });
  }
  TEST_CASE("6.4.2 fail fast: the offending byte alone in the 2nd of 3 fragments") {
    both_roles([&](const side& sd) {
      const std::string a = sd.f(TEXT, kosme + "\xf4"), b = sd.f(CONT, "\x90"),
                        c = sd.f(FIN | CONT, X("80 80") + "edited");
      check_parts(sd, {a, b, c}, {{}, {fail_ev(1007)}, {}});
      check_fails_at(sd, a + b + c, a.size() + sd.header_size(1), 1007);
    });
  }
  TEST_CASE("6.4.3 fail fast: one frame sent in 3 chunks, the invalid code point in the 2nd") {
    both_roles([&](const side& sd) {
      const std::string payload = kosme + X("f4 90 80 80") + "edited";
      const std::string wire = sd.f(FIN | TEXT, payload);
      const std::size_t h = sd.header_size(payload.size());
      check_parts(sd, {wire.substr(0, h + kosme.size()), wire.substr(h + kosme.size(), 4), wire.substr(h + kosme.size() + 4)},
                  {{}, {fail_ev(1007)}, {}});
      check_fails_at(sd, wire, h + kosme.size() + 1, 1007);
    });
  }
  TEST_CASE("6.4.4 fail fast: one frame sent in 3 chunks, the 2nd ending right after the offending byte") {
    both_roles([&](const side& sd) {
      const std::string payload = kosme + X("f4 90 80 80") + "edited";
      const std::string wire = sd.f(FIN | TEXT, payload);
      const std::size_t h = sd.header_size(payload.size());
      check_parts(sd, {wire.substr(0, h + kosme.size()), wire.substr(h + kosme.size(), 2), wire.substr(h + kosme.size() + 2)},
                  {{}, {fail_ev(1007)}, {}});
    });
  }
  TEST_CASE("6.4 variant: a frame announcing 20 bytes fails at the offending byte") {
    both_roles([&](const side& sd) {
      // Length 20 announced; only the bytes up to the invalid one arrive.
      const std::string payload = "ab" + X("c0 af") + std::string(16, 'x');
      REQUIRE(payload.size() == 20);
      const std::string wire = sd.f(FIN | TEXT, payload);
      const std::size_t h = sd.header_size(20);
      virtual_clock clk;
      auto c = sd.open(clk);
      expect_events(feed(*c, wire.substr(0, h + 2), clk), {});
      expect_events(feed(*c, wire.substr(h + 2, 1), clk), {fail_ev(1007)});  // C0 is never valid
      CHECK(c->state() == state::closed);
      CHECK(c->transport_should_close());
      expect_output(sd, take_output(*c), fail_with({}, 1007));
      CHECK(feed(*c, wire.substr(h + 3), clk).empty());
      CHECK(take_output(*c).empty());
    });
  }
  TEST_CASE("6.5.1-6.5.5 valid UTF-8 sequences") {
    utf8_table({{"6.5.1", kosme, true},
                {"6.5.2", X("f0 90 80 80"), true},
                {"6.5.3", X("f0 9d 84 9e") + kosme, true},
                {"6.5.4", U(0x10FFFF) + "x" + U(0x10000), true},
                {"6.5.5", "\xe2\x82\xac" + U(0x7FF) + U(0x800) + U(0xFFFF), true}});
  }
  TEST_CASE("6.6.1-6.6.11 every prefix of kosme") {
    std::vector<utf8_vector> t;
    const bool valid_at[] = {false, true, false, false, true, false, true, false, true, false, true};
    for (std::size_t n = 1; n <= kosme.size(); ++n)
      t.push_back({"6.6." + std::to_string(n), kosme.substr(0, n), valid_at[n - 1]});
    utf8_table(t);
  }
  TEST_CASE("6.7.1-6.7.4 first possible sequence of each length") {
    utf8_table({{"6.7.1", std::string(1, '\0'), true},
                {"6.7.2", X("c2 80"), true},
                {"6.7.3", X("e0 a0 80"), true},
                {"6.7.4", X("f0 90 80 80"), true}});
  }
  TEST_CASE("6.8.1-6.8.2 first possible 5- and 6-byte sequences (not UTF-8)") {
    utf8_table({{"6.8.1", X("f8 88 80 80 80"), false}, {"6.8.2", X("fc 84 80 80 80 80"), false}});
  }
  TEST_CASE("6.9.1-6.9.4 last possible sequence of each length") {
    utf8_table({{"6.9.1", X("7f"), true},
                {"6.9.2", X("df bf"), true},
                {"6.9.3", X("ef bf bf"), true},
                {"6.9.4", X("f4 8f bf bf"), true}});
  }
  TEST_CASE("6.10.1-6.10.3 beyond U+10FFFF") {
    utf8_table({{"6.10.1", X("f7 bf bf bf"), false},
                {"6.10.2", X("fb bf bf bf bf"), false},
                {"6.10.3", X("fd bf bf bf bf bf"), false},
                {"6.10 U+110000", X("f4 90 80 80"), false},
                {"6.10 F5", X("f5 80 80 80"), false}});
  }
  TEST_CASE("6.11.1-6.11.5 other boundary conditions") {
    utf8_table({{"6.11.1", X("ed 9f bf"), true},
                {"6.11.2", X("ee 80 80"), true},
                {"6.11.3", X("ef bf bd"), true},
                {"6.11.4", X("f4 8f bf bf"), true},
                {"6.11.5", X("f4 90 80 80"), false},
                {"6.11 U+0080", U(0x80), true},
                {"6.11 U+07FF", U(0x7FF), true},
                {"6.11 U+0800", U(0x800), true},
                {"6.11 U+FFFF", U(0xFFFF), true},
                {"6.11 U+10000", U(0x10000), true},
                {"6.11 U+FFFF0 in a sentence", "a" + U(0xFFFF0) + "b", true}});
  }
  TEST_CASE("6.12.1-6.12.8 unexpected continuation bytes") {
    std::string all;
    for (int b = 0x80; b <= 0xBF; ++b) all += static_cast<char>(b);
    utf8_table({{"6.12.1", X("80"), false},
                {"6.12.2", X("bf"), false},
                {"6.12.3", X("80 bf"), false},
                {"6.12.4", X("80 bf 80"), false},
                {"6.12.5", X("80 bf 80 bf"), false},
                {"6.12.6", X("80 bf 80 bf 80"), false},
                {"6.12.7", X("80 bf 80 bf 80 bf"), false},
                {"6.12.8", all, false},
                {"6.12 after ASCII", "abc" + X("80"), false},
                {"6.12 after a complete code point", kosme + X("bf"), false}});
  }
  TEST_CASE("6.13.1-6.13.5 lonely start bytes, each followed by a space") {
    auto lonely = [](int from, int to) {
      std::string s;
      for (int b = from; b <= to; ++b) {
        s += static_cast<char>(b);
        s += ' ';
      }
      return s;
    };
    utf8_table({{"6.13.1", lonely(0xC0, 0xDF), false},
                {"6.13.2", lonely(0xE0, 0xEF), false},
                {"6.13.3", lonely(0xF0, 0xF7), false},
                {"6.13.4", lonely(0xF8, 0xFB), false},
                {"6.13.5", lonely(0xFC, 0xFD), false}});
  }
  TEST_CASE("6.14.1-6.14.10 sequences with the last continuation byte missing") {
    utf8_table({{"6.14.1", X("c0"), false},
                {"6.14.2", X("e0 80"), false},
                {"6.14.3", X("f0 80 80"), false},
                {"6.14.4", X("f8 80 80 80"), false},
                {"6.14.5", X("fc 80 80 80 80"), false},
                {"6.14.6", X("df"), false},
                {"6.14.7", X("ef bf"), false},
                {"6.14.8", X("f7 bf bf"), false},
                {"6.14.9", X("fb bf bf bf"), false},
                {"6.14.10", X("fd bf bf bf bf"), false},
                // Truncated but otherwise valid: only the end of the message
                // (or what follows) makes them invalid.
                {"6.14 truncated U+07FF", X("df"), false},
                {"6.14 truncated U+FFFF", X("ef bf"), false},
                {"6.14 truncated U+10FFFF", X("f4 8f bf"), false},
                {"6.14 truncated U+10000", "abc" + X("f0 90 80"), false}});
  }
  TEST_CASE("6.15.1 concatenation of incomplete sequences") {
    utf8_table({{"6.15.1", X("c0 e0 80 f0 80 80 f8 80 80 80 fc 80 80 80 80 df ef bf f7 bf bf fb bf bf bf fd bf bf bf bf"),
                 false},
                {"6.15 valid truncations in a row", X("df ef bf f4 8f bf"), false}});
  }
  TEST_CASE("6.16.1-6.16.3 impossible bytes") {
    utf8_table({{"6.16.1", X("fe"), false}, {"6.16.2", X("ff"), false}, {"6.16.3", X("fe fe ff ff"), false}});
  }
  TEST_CASE("6.17.1-6.17.5 overlong forms of '/'") {
    utf8_table({{"6.17.1", X("c0 af"), false},
                {"6.17.2", X("e0 80 af"), false},
                {"6.17.3", X("f0 80 80 af"), false},
                {"6.17.4", X("f8 80 80 80 af"), false},
                {"6.17.5", X("fc 80 80 80 80 af"), false}});
  }
  TEST_CASE("6.18.1-6.18.5 maximum overlong sequences") {
    utf8_table({{"6.18.1", X("c1 bf"), false},
                {"6.18.2", X("e0 9f bf"), false},
                {"6.18.3", X("f0 8f bf bf"), false},
                {"6.18.4", X("f8 87 bf bf bf"), false},
                {"6.18.5", X("fc 83 bf bf bf bf"), false}});
  }
  TEST_CASE("6.19.1-6.19.5 overlong NUL") {
    utf8_table({{"6.19.1", X("c0 80"), false},
                {"6.19.2", X("e0 80 80"), false},
                {"6.19.3", X("f0 80 80 80"), false},
                {"6.19.4", X("f8 80 80 80 80"), false},
                {"6.19.5", X("fc 80 80 80 80 80"), false}});
  }
  TEST_CASE("6.20.1-6.20.7 single UTF-16 surrogates") {
    utf8_table({{"6.20.1", X("ed a0 80"), false},
                {"6.20.2", X("ed ad bf"), false},
                {"6.20.3", X("ed ae 80"), false},
                {"6.20.4", X("ed af bf"), false},
                {"6.20.5", X("ed b0 80"), false},
                {"6.20.6", X("ed be 80"), false},
                {"6.20.7", X("ed bf bf"), false}});
  }
  TEST_CASE("6.21.1-6.21.8 paired UTF-16 surrogates") {
    utf8_table({{"6.21.1", X("ed a0 80 ed b0 80"), false},
                {"6.21.2", X("ed a0 80 ed bf bf"), false},
                {"6.21.3", X("ed ad bf ed b0 80"), false},
                {"6.21.4", X("ed ad bf ed bf bf"), false},
                {"6.21.5", X("ed ae 80 ed b0 80"), false},
                {"6.21.6", X("ed ae 80 ed bf bf"), false},
                {"6.21.7", X("ed af bf ed b0 80"), false},
                {"6.21.8", X("ed af bf ed bf bf"), false}});
  }
  TEST_CASE("6.22.1-6.22.34 noncharacters are valid UTF-8") {
    std::vector<utf8_vector> t;
    int n = 1;
    for (char32_t plane = 0; plane <= 16; ++plane)
      for (char32_t low : {0xFFFEu, 0xFFFFu}) t.push_back({"6.22." + std::to_string(n++), U((plane << 16) | low), true});
    for (char32_t cp = 0xFDD0; cp <= 0xFDEF; ++cp) t.push_back({"6.22 U+FDxx", U(cp), true});
    utf8_table(t);
  }
  TEST_CASE("6.23.1-6.23.7 special code points") {
    utf8_table({{"6.23.1", X("ef bf b9"), true},  // U+FFF9 interlinear annotation anchor
                {"6.23.2", X("ef bf ba"), true},
                {"6.23.3", X("ef bf bb"), true},
                {"6.23.4", X("ef bf bc"), true},  // U+FFFC object replacement
                {"6.23.5", X("ef bf bd"), true},  // U+FFFD replacement character
                {"6.23.6", X("ef bf bd ef bf bd"), true},
                {"6.23.7", X("ef bb bf") + "BOM", true}});
  }
  TEST_CASE("6.x every two-byte sequence after a lead byte, against the reference") {
    // Not an Autobahn case: a sweep of all lead/continuation pairs, one
    // frame each (fed whole), both roles; the outcome follows the reference.
    both_roles([&](const side& sd) {
      int mismatches = 0;
      for (int a = 0x80; a <= 0xFF; ++a) {
        for (int b = 0; b <= 0xFF; ++b) {
          std::string v{static_cast<char>(a), static_cast<char>(b)};
          const auto r = scan_utf8(v);
          virtual_clock clk;
          auto c = sd.open(clk);
          auto ev = feed(*c, sd.f(FIN | TEXT, v), clk);
          const strings want = utf8_ok(v) ? strings{text_ev(v)} : strings{fail_ev(1007)};
          if (!events_match(ev, want)) {
            ++mismatches;
            INFO("payload " << hex(v) << " reference bad at " << (r.bad == std::string::npos ? -1 : int(r.bad)));
            expect_events(ev, want);
            if (mismatches > 20) return;
          }
        }
      }
      CHECK(mismatches == 0);
    });
  }
}

TEST_SUITE("Autobahn 7 close handling") {
  TEST_CASE("7.1.1 text message, then close") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | TEXT, "Hello World!") + sd.f(FIN | CLOSE, close_payload(1000)),
            peer_close({text_ev("Hello World!")}, 1000, "", close_out(1000)));
    });
  }
  TEST_CASE("7.1.2 close, then close again: the second one is ignored") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | CLOSE, close_payload(1000)) + sd.f(FIN | CLOSE, close_payload(1001)),
            peer_close({}, 1000, "", close_out(1000)));
    });
  }
  TEST_CASE("7.1.3 close, then ping: not answered") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | CLOSE, close_payload(1000)) + sd.f(FIN | PING, "Hello World!"),
            peer_close({}, 1000, "", close_out(1000)));
    });
  }
  TEST_CASE("7.1.4 close, then text: ignored") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | CLOSE, close_payload(1000)) + sd.f(FIN | TEXT, "Hello World!"),
            peer_close({}, 1000, "", close_out(1000)));
    });
  }
  TEST_CASE("7.1.5 first fragment, close, last fragment: the message is never delivered") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(TEXT, "fragment1") + sd.f(FIN | CLOSE, close_payload(1000)) + sd.f(FIN | CONT, "fragment2"),
            peer_close({}, 1000, "", close_out(1000)));
    });
  }
  TEST_CASE("7.1.6 large text message, close, ping") {
    both_roles([&](const side& sd) {
      const std::string big = text_payload(256 * 1024);
      check(sd, sd.f(FIN | TEXT, big) + sd.f(FIN | CLOSE, close_payload(1000)) + sd.f(FIN | PING, "Hello World!"),
            peer_close({text_ev(big)}, 1000, "", close_out(1000)), {}, {4096});
    });
  }
  TEST_CASE("7.1.3 counterpart: after our own close, the peer's data still arrives and its ping is answered") {
    // RFC 6455 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
    // Pong frame in response, unless it already received a Close frame";
    // 5.5.1 only forbids *data* frames after sending a Close; 7.1.2/1.4: an
    // endpoint that sent a Close keeps reading until the peer's Close.
    both_roles([&](const side& sd) {
      const std::string wire = sd.f(FIN | TEXT, "still here") + sd.f(FIN | PING, "are you there") +
                               sd.f(FIN | CLOSE, close_payload(1000, "bye too"));
      for (auto& fd : feedings(wire.size(), {})) {
        INFO(sd.name() << ", fed " << fd.name);
        virtual_clock clk;
        auto c = sd.open(clk);
        REQUIRE(!c->close(clk.now, 1000, "bye"));
        {
          const auto ours = parse_frames(take_output(*c));
          REQUIRE(ours.size() == 1);
          CHECK(ours[0].opcode == CLOSE);
          CHECK(ours[0].payload == close_payload(1000, "bye"));
        }
        CHECK(c->state() == state::closing);
        std::string out;
        const strings got = fd.run(*c, wire, clk, out);
        out += take_output(*c);
        expect_events(got, {text_ev("still here"), ping_ev("are you there"),
                            "close:1000:bye too:clean:local:close handshake"});
        // The pong, and no second close frame.
        expect_output(sd, out, deliver({}, {pong_out("are you there")}));
        CHECK(c->state() == state::closed);
        CHECK(c->transport_should_close() == sd.server);
        CHECK(feed(*c, sd.f(FIN | PING, "late"), clk).empty());
        CHECK(take_output(*c).empty());
      }
    });
  }
  TEST_CASE("7.3.1 close with an empty payload: reported as 1005, echoed empty") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | CLOSE, ""), peer_close({}, 1005, "", empty_close_out()));
    });
  }
  TEST_CASE("7.3.2 close with a 1-byte payload fails with 1002") {
    both_roles([&](const side& sd) { check(sd, sd.f(FIN | CLOSE, "*"), fail_with({}, 1002)); });
  }
  TEST_CASE("7.3.3 close with code 1000 and no reason") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | CLOSE, close_payload(1000)), peer_close({}, 1000, "", close_out(1000)));
    });
  }
  TEST_CASE("7.3.4 close with code 1000 and a reason") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | CLOSE, close_payload(1000, "Hello World!")),
            peer_close({}, 1000, "Hello World!", close_out(1000)));
    });
  }
  TEST_CASE("7.3.5 close with code 1000 and a 123-byte reason") {
    both_roles([&](const side& sd) {
      const std::string reason(123, '*');
      check(sd, sd.f(FIN | CLOSE, close_payload(1000, reason)), peer_close({}, 1000, reason, close_out(1000)));
      const std::string utf8_reason = repeat(U(0x20AC), 41);  // 123 bytes of 3-byte code points
      REQUIRE(utf8_reason.size() == 123);
      check(sd, sd.f(FIN | CLOSE, close_payload(1000, utf8_reason)),
            peer_close({}, 1000, utf8_reason, close_out(1000)));
    });
  }
  TEST_CASE("7.3.6 close with a 126-byte payload (control frame too big) fails with 1002") {
    both_roles([&](const side& sd) {
      check(sd, sd.f(FIN | CLOSE, close_payload(1000, std::string(124, '*'))), fail_with({}, 1002));
    });
  }
  TEST_CASE("7.5.1 close with an invalid UTF-8 reason fails with 1007") {
    both_roles([&](const side& sd) {
      const std::string reason = kosme + X("ed a0 80") + "edited";
      check(sd, sd.f(FIN | CLOSE, close_payload(1000, reason)), fail_with({}, 1007));
      check(sd, sd.f(FIN | CLOSE, close_payload(1000, "abc\xce")), fail_with({}, 1007));
      check(sd, sd.f(FIN | CLOSE, close_payload(1000, X("c0 80"))), fail_with({}, 1007));
    });
  }
  TEST_CASE("7.7.1-7.7.13 valid close codes are accepted and echoed") {
    both_roles([&](const side& sd) {
      for (std::uint16_t code :
           {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}) {
        INFO("code " << code);
        check(sd, sd.f(FIN | CLOSE, close_payload(code)), peer_close({}, code, "", close_out(code)));
        check(sd, sd.f(FIN | CLOSE, close_payload(code, "reason")), peer_close({}, code, "reason", close_out(code)));
      }
    });
  }
  TEST_CASE("7.9.1-7.9.9 and 7.13.1-7.13.2 invalid close codes fail with 1002") {
    both_roles([&](const side& sd) {
      for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
        INFO("code " << code);
        check(sd, sd.f(FIN | CLOSE, close_payload(code)), fail_with({}, 1002));
        check(sd, sd.f(FIN | TEXT, hello) + sd.f(FIN | CLOSE, close_payload(code, "reason")) + sd.f(FIN | PING, "x"),
              fail_with({text_ev(hello)}, 1002));
      }
    });
  }
}

TEST_SUITE("Autobahn 9 limits and performance (scaled down)") {
  const std::size_t mib = 1 << 20;

  TEST_CASE("9.1.3 text message of 1 MiB in one frame") {
    both_roles([&](const side& sd) {
      const std::string p = text_payload(mib);
      check(sd, sd.f(FIN | TEXT, p), deliver({text_ev(p)}), big_settings(), {65536});
    });
  }
  TEST_CASE("9.2.3 binary message of 1 MiB in one frame") {
    both_roles([&](const side& sd) {
      const std::string p = binary_payload(mib);
      check(sd, sd.f(FIN | BINARY, p), deliver({binary_ev(p)}), big_settings(), {65536});
    });
  }
  TEST_CASE("9.3.1 and 9.3.4 text message of 1 MiB in fragments of 64 bytes and 4 KiB") {
    both_roles([&](const side& sd) {
      const std::string p = text_payload(mib);
      for (std::size_t size : {64, 4096}) {
        INFO("fragments of " << size);
        check(sd, fragments(sd, TEXT, p, size), deliver({text_ev(p)}), big_settings(), {65536});
      }
    });
  }
  TEST_CASE("9.4.1 and 9.4.4 binary message of 1 MiB in fragments of 64 bytes and 4 KiB") {
    both_roles([&](const side& sd) {
      const std::string p = binary_payload(mib);
      for (std::size_t size : {64, 4096}) {
        INFO("fragments of " << size);
        check(sd, fragments(sd, BINARY, p, size), deliver({binary_ev(p)}), big_settings(), {65536});
      }
    });
  }
  TEST_CASE("9.5.1-9.5.6 text message of 1 MiB in one frame, delivered in chunks of 64 to 2048 bytes") {
    both_roles([&](const side& sd) {
      const std::string p = text_payload(mib);
      check(sd, sd.f(FIN | TEXT, p), deliver({text_ev(p)}), big_settings(), {64, 128, 256, 512, 1024, 2048});
    });
  }
  TEST_CASE("9.6.1-9.6.6 binary message of 1 MiB in one frame, delivered in chunks of 64 to 2048 bytes") {
    both_roles([&](const side& sd) {
      const std::string p = binary_payload(mib);
      check(sd, sd.f(FIN | BINARY, p), deliver({binary_ev(p)}), big_settings(), {64, 128, 256, 512, 1024, 2048});
    });
  }
  TEST_CASE("9.7.x and 9.8.x 1000 text and binary messages of 0, 16 and 64 bytes") {
    both_roles([&](const side& sd) {
      for (std::size_t n : {0, 16, 64}) {
        INFO("messages of " << n << " bytes");
        std::string wt, wb;
        strings et, eb;
        for (int i = 0; i < 1000; ++i) {
          std::string t = text_payload(n), b = binary_payload(n);
          if (n) {
            t[0] = static_cast<char>('A' + i % 26);
            b[0] = static_cast<char>(i);
          }
          wt += sd.f(FIN | TEXT, t);
          wb += sd.f(FIN | BINARY, b);
          et.push_back(text_ev(t));
          eb.push_back(binary_ev(b));
        }
        check(sd, wt, deliver(et));
        check(sd, wb, deliver(eb));
      }
    });
  }
}

namespace {

/// Sends `msg` with settings::max_send_frame_size = `limit` and checks the
/// frames; then an engine of the other role reassembles them.
void check_autofragment_send(const side& sd, message_type type, const std::string& msg, std::size_t limit) {
  INFO(sd.name() << " sending " << msg.size() << " bytes, max_send_frame_size " << limit);
  gust::settings s = big_settings();
  s.max_send_frame_size = limit;
  virtual_clock clk;
  auto c = sd.open(clk, s);
  REQUIRE(!c->send(type, bytes(msg)));
  const std::string out = take_output(*c);
  const auto frames = parse_frames(out);
  INFO("output " << show(frames));
  const std::size_t count = (limit == 0 || msg.empty()) ? 1 : (msg.size() + limit - 1) / limit;
  CHECK(frames.size() == count);
  std::string joined;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const auto& f = frames[i];
    CHECK(f.opcode == (i == 0 ? static_cast<std::uint8_t>(type) : CONT));
    CHECK(f.fin == (i + 1 == frames.size()));
    CHECK(f.rsv == 0);
    CHECK(f.masked == !sd.server);
    if (limit) CHECK(f.payload.size() <= limit);
    if (!msg.empty()) CHECK(!f.payload.empty());
    joined += f.payload;
  }
  CHECK(joined == msg);
  const std::string want = type == message_type::text ? text_ev(msg) : binary_ev(msg);
  const side peer{!sd.server};
  for (std::size_t chunk : {std::size_t(0), std::size_t(1), std::size_t(1000)}) {
    INFO("the peer reads it in chunks of " << chunk);
    virtual_clock pclk;
    auto p = peer.open(pclk, big_settings());
    expect_events(feed(*p, out, pclk, chunk), {want});
    CHECK(take_output(*p).empty());
    CHECK(p->state() == state::open);
  }
}

}  // namespace

TEST_SUITE("Autobahn 10 auto-fragmentation") {
  TEST_CASE("10.1.1 a 64 KiB text message received as frames of 1300 bytes") {
    both_roles([&](const side& sd) {
      const std::string p = text_payload(65536);
      check(sd, fragments(sd, TEXT, p, 1300), deliver({text_ev(p)}), big_settings(), {1300});
    });
  }
  TEST_CASE("10.1.1 variant: a 64 KiB message received as frames of other sizes") {
    both_roles([&](const side& sd) {
      const std::string t = text_payload(65536), b = binary_payload(65536);
      for (std::size_t size : {1, 64, 125, 126, 127, 1000, 4096, 65535, 65536}) {
        INFO("frames of " << size);
        check(sd, fragments(sd, TEXT, t, size), deliver({text_ev(t)}), big_settings());
        check(sd, fragments(sd, BINARY, b, size), deliver({binary_ev(b)}), big_settings());
      }
    });
  }
  TEST_CASE("10.1.1 sending a 64 KiB message with max_send_frame_size 1300 and other sizes") {
    both_roles([&](const side& sd) {
      const std::string t = text_payload(65536), b = binary_payload(65536);
      for (std::size_t limit : {1300, 1, 64, 125, 126, 4096, 65535, 65536, 100000, 0}) {
        check_autofragment_send(sd, message_type::text, t, limit);
        check_autofragment_send(sd, message_type::binary, b, limit);
      }
      check_autofragment_send(sd, message_type::text, "", 1300);
      check_autofragment_send(sd, message_type::text, text_payload(1300), 1300);
      check_autofragment_send(sd, message_type::text, text_payload(1301), 1300);
      check_autofragment_send(sd, message_type::binary, binary_payload(2600), 1300);
    });
  }
  TEST_CASE("10.1.1 variant: send_fragment pieces larger than max_send_frame_size") {
    both_roles([&](const side& sd) {
      gust::settings s = big_settings();
      s.max_send_frame_size = 1300;
      virtual_clock clk;
      auto c = sd.open(clk, s);
      const std::string msg = text_payload(6000);
      // Pieces cut inside code points; the fragment stream is valid UTF-8.
      REQUIRE(!c->send_fragment(message_type::text, bytes(std::string_view(msg).substr(0, 3001)), false));
      REQUIRE(!c->send_fragment(message_type::text, bytes(std::string_view(msg).substr(3001)), true));
      const std::string out = take_output(*c);
      const auto frames = parse_frames(out);
      INFO("output " << show(frames));
      // 3001 = 1300 + 1300 + 401; 2999 = 1300 + 1300 + 399.
      REQUIRE(frames.size() == 6);
      std::string joined;
      for (std::size_t i = 0; i < frames.size(); ++i) {
        CHECK(frames[i].opcode == (i == 0 ? TEXT : CONT));
        CHECK(frames[i].fin == (i == 5));
        CHECK(frames[i].masked == !sd.server);
        CHECK(frames[i].payload.size() <= 1300);
        joined += frames[i].payload;
      }
      CHECK(joined == msg);
      const side peer{!sd.server};
      virtual_clock pclk;
      auto p = peer.open(pclk);
      expect_events(feed(*p, out, pclk), {text_ev(msg)});
    });
  }
  TEST_CASE("10.1.1 variant: a pong goes out between the frames of an auto-fragmented message") {
    both_roles([&](const side& sd) {
      gust::settings s = big_settings();
      s.max_send_frame_size = 1300;
      virtual_clock clk;
      auto c = sd.open(clk, s);
      const std::string msg = text_payload(65536);
      REQUIRE(!c->send_text(msg));
      // Part of the first frame is written, then a ping arrives.
      auto first = c->pending_output();
      REQUIRE(!first.empty());
      std::string out(static_cast<const char*>(first[0].data), std::min<std::size_t>(first[0].size, 100));
      REQUIRE(!c->consume_output(out.size()));
      expect_events(feed(*c, sd.f(FIN | PING, "ping payload"), clk), {ping_ev("ping payload")});
      out += take_output(*c);
      const auto frames = parse_frames(out);
      INFO("output " << show(frames));
      std::string joined;
      int pongs = 0;
      std::size_t data_frames = 0;
      for (auto& f : frames) {
        CHECK(f.masked == !sd.server);
        if (f.opcode == PONG) {
          ++pongs;
          CHECK(f.payload == "ping payload");
          CHECK(data_frames > 0);  // not inside the first frame, which had started
          CHECK(data_frames < 51);  // and not behind the whole message
        } else {
          CHECK(f.opcode == (data_frames == 0 ? TEXT : CONT));
          ++data_frames;
          joined += f.payload;
        }
      }
      CHECK(pongs == 1);
      CHECK(data_frames == 51);  // 50 * 1300 + 536
      CHECK(frames.back().fin);
      CHECK(joined == msg);
      const side peer{!sd.server};
      virtual_clock pclk;
      auto p = peer.open(pclk, big_settings());
      expect_events(feed(*p, out, pclk), {pong_ev("ping payload"), text_ev(msg)});
    });
  }
}
