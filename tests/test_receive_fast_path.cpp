// next_event()'s small-frame fast path against the general path. A frame
// takes the fast path when it arrives whole in the buffer being read; fed
// one byte at a time, or cut inside, the same frame goes through
// read_header()/read_payload(). Both must give the same events, the same
// close code and reason, in both roles, whatever surrounds the frame.
#include <doctest.h>

#include <random>
#include <string>
#include <vector>

#include "support/roles.hpp"
#include "support/wire.hpp"

using namespace gust;
using namespace gust::test;

namespace {

/// Events of a fresh open connection of the given side fed `wire` in
/// pieces of `chunk` bytes (0: whole) or cut at `cuts`.
strings run(bool server_side, const gust::settings& s, std::string_view wire,
            std::size_t chunk = 0, feed_mode mode = feed_mode::receive) {
  virtual_clock clk;
  if (server_side) {
    auto c = open_server(clk, s);
    return feed(c, wire, clk, chunk, mode);
  }
  auto c = open_client(clk, s);
  return feed(c, wire, clk, chunk, mode);
}

strings run_cut(bool server_side, const gust::settings& s, std::string_view wire,
                const std::vector<std::size_t>& cuts) {
  virtual_clock clk;
  if (server_side) {
    auto c = open_server(clk, s);
    return feed_split(c, wire, clk, cuts);
  }
  auto c = open_client(clk, s);
  return feed_split(c, wire, clk, cuts);
}

/// Whole (fast path), one byte at a time (general path), through
/// prepare()/commit() whole and in pieces of 7: the same events. Returns
/// the events of the whole run.
strings same_every_way(bool server_side, const gust::settings& s, std::string_view wire) {
  const strings whole = run(server_side, s, wire);
  CHECK(run(server_side, s, wire, 1) == whole);
  CHECK(run(server_side, s, wire, 0, feed_mode::prepare_commit) == whole);
  CHECK(run(server_side, s, wire, 7, feed_mode::prepare_commit) == whole);
  CHECK(run(server_side, s, wire, 7, feed_mode::receive) == whole);
  return whole;
}

std::string bytes_0_to(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 37 + 200);
  return s;
}

std::string role_name(bool server_side) { return server_side ? "server" : "client"; }

/// `f` with its 7-bit length written in the 16-bit form (not minimal).
std::string long_form(const std::string& f) {
  std::string out = f.substr(0, 1);
  out += static_cast<char>((f[1] & 0x80) | 126);
  out += '\0';
  out += static_cast<char>(f[1] & 0x7F);
  return out + f.substr(2);
}

}  // namespace

TEST_SUITE("receive fast path") {
  TEST_CASE("every small size, text and binary, ASCII and not: same events every way") {
    for (bool server_side : {true, false}) {
      INFO("role: " << role_name(server_side));
      std::string wire;
      strings expected;
      for (std::size_t n = 0; n <= 126; ++n) {
        const std::string text = pattern(n);
        const std::string bin = bytes_0_to(n);
        // Multi-byte UTF-8 of n bytes or so: the fast path's validation call.
        std::string utf8;
        while (utf8.size() + 2 <= n) utf8 += "\xc3\xa9";
        wire += peer_frame(server_side, 0x81, text) + peer_frame(server_side, 0x82, bin) +
                peer_frame(server_side, 0x81, utf8);
        expected.push_back("text:" + text);
        expected.push_back("binary:" + hex(bin));
        expected.push_back("text:" + utf8);
      }
      CHECK(same_every_way(server_side, {}, wire) == expected);
    }
  }

  TEST_CASE("control frames, fragments and larger frames between small frames") {
    for (bool server_side : {true, false}) {
      INFO("role: " << role_name(server_side));
      const std::string big(300, 'q');
      const std::string wire =
          peer_frame(server_side, 0x81, "one") + peer_frame(server_side, 0x89, "p1") +
          peer_frame(server_side, 0x82, "\x01\x02") + peer_frame(server_side, 0x01, "frag") +
          peer_frame(server_side, 0x89, "") + peer_frame(server_side, 0x80, "mented") +
          peer_frame(server_side, 0x81, "two") + peer_frame(server_side, 0x82, big) +
          peer_frame(server_side, 0x8A, "po") + peer_frame(server_side, 0x02, "") +
          peer_frame(server_side, 0x80, "") + peer_frame(server_side, 0x81, "three") +
          peer_frame(server_side, 0x88, close_payload(1000, "bye")) +
          peer_frame(server_side, 0x81, "after the close");
      const strings expected{"text:one", "ping:" + hex("p1"), "binary:0102", "ping:",
                             "text:fragmented", "text:two", "binary:" + hex(big),
                             "pong:" + hex("po"), "binary:", "text:three",
                             "close:1000:bye:clean:peer:close handshake"};
      CHECK(same_every_way(server_side, {}, wire) == expected);
      // A receive() buffer ending at every point: inside a header, inside a
      // payload, exactly at a frame's end.
      for (std::size_t cut = 1; cut < wire.size(); ++cut) {
        const strings split = run_cut(server_side, {}, wire, {cut});
        if (split != expected) {
          CAPTURE(cut);
          CHECK(split == expected);
          break;
        }
      }
      std::mt19937 rng(6455);
      for (int round = 0; round < 100; ++round) {
        std::vector<std::size_t> cuts;
        for (int i = 0; i < 6; ++i) cuts.push_back(rng() % wire.size());
        std::sort(cuts.begin(), cuts.end());
        const strings split = run_cut(server_side, {}, wire, cuts);
        if (split != expected) {
          INFO("seed 6455 round " << round);
          CHECK(split == expected);
          break;
        }
      }
    }
  }

  TEST_CASE("invalid UTF-8 at every position of a small text frame fails 1007 at once") {
    for (bool server_side : {true, false}) {
      INFO("role: " << role_name(server_side));
      for (std::size_t n : {1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 64, 125}) {
        for (std::size_t at = 0; at < n; ++at) {
          for (char bad : {'\xff', '\x80', '\xc3'}) {
            std::string payload = pattern(n);
            payload[at] = bad;
            const std::string wire = peer_frame(server_side, 0x81, "ok") +
                                     peer_frame(server_side, 0x81, payload) +
                                     peer_frame(server_side, 0x81, "never");
            const strings whole = run(server_side, {}, wire);
            // A lead byte at the very end is a truncation, not a bad byte.
            const std::string reason = bad == '\xc3' && at + 1 == n
                                           ? "text message ends inside a UTF-8 sequence"
                                           : "invalid UTF-8 in text message";
            const strings expected{"text:ok", "close:1007:" + reason + ":unclean:local:protocol error"};
            const strings bytewise = run(server_side, {}, wire, 1);
            if (whole != expected || bytewise != expected) {
              CAPTURE(n);
              CAPTURE(at);
              CHECK(whole == expected);
              CHECK(bytewise == expected);
              return;
            }
          }
        }
      }
      // Truncated at the end, and a code point split across two frames of
      // one message (valid: only the message must be UTF-8).
      const std::string euro = "\xe2\x82\xac";
      CHECK(same_every_way(server_side, {},
                           peer_frame(server_side, 0x81, "ab" + euro.substr(0, 2))) ==
            strings{"close:1007:text message ends inside a UTF-8 sequence:unclean:local:protocol error"});
      CHECK(same_every_way(server_side, {},
                           peer_frame(server_side, 0x01, "ab" + euro.substr(0, 1)) +
                               peer_frame(server_side, 0x80, euro.substr(1)) +
                               peer_frame(server_side, 0x81, euro)) ==
            strings{"text:ab" + euro, "text:" + euro});
      // Not text: any bytes.
      CHECK(same_every_way(server_side, {}, peer_frame(server_side, 0x82, "\xff\xfe")) ==
            strings{"binary:fffe"});
    }
  }

  TEST_CASE("frames the fast path must leave to the general path fail as before") {
    for (bool server_side : {true, false}) {
      INFO("role: " << role_name(server_side));
      const std::string ok = peer_frame(server_side, 0x81, "ok");
      const std::vector<std::string> bad{
          peer_frame(server_side, 0xC1, "rsv1"),   // no extension: RSV1 reserved
          peer_frame(server_side, 0xA2, "rsv2"),
          peer_frame(server_side, 0x91, "rsv3"),
          peer_frame(server_side, 0x83, "op3"),    // reserved opcodes
          peer_frame(server_side, 0x8B, "opB"),
          frame(0x81, "wrong mask", !server_side), // masking by role (5.1)
          peer_frame(server_side, 0x80, "cont"),   // nothing to continue
          peer_frame(server_side, 0x09, "p"),      // fragmented control frame
          peer_frame(server_side, 0x01, "a") + peer_frame(server_side, 0x81, "b"),
          long_form(peer_frame(server_side, 0x81, "short")),  // length not minimal
      };
      for (std::size_t i = 0; i < bad.size(); ++i) {
        CAPTURE(i);
        const strings events = same_every_way(server_side, {}, ok + bad[i] + ok);
        REQUIRE(events.size() == 2);
        CHECK(events[0] == "text:ok");
        CHECK(starts_with(events[1], "close:1002:"));
      }
    }
  }

  TEST_CASE("limits hold for small frames") {
    for (bool server_side : {true, false}) {
      INFO("role: " << role_name(server_side));
      const std::string wire = peer_frame(server_side, 0x81, pattern(10)) +
                               peer_frame(server_side, 0x82, pattern(11)) +
                               peer_frame(server_side, 0x81, "never");
      gust::settings by_message;
      by_message.limits.max_message_size = 10;
      strings events = same_every_way(server_side, by_message, wire);
      REQUIRE(events.size() == 2);
      CHECK(events[0] == "text:" + pattern(10));
      CHECK(starts_with(events[1], "close:1009:"));

      gust::settings by_frame;
      by_frame.limits.max_frame_size = 10;
      events = same_every_way(server_side, by_frame, wire);
      REQUIRE(events.size() == 2);
      CHECK(events[0] == "text:" + pattern(10));
      CHECK(starts_with(events[1], "close:1009:"));

      gust::settings no_fragments;
      no_fragments.limits.max_fragments = 0;
      events = same_every_way(server_side, no_fragments, wire);
      REQUIRE(events.size() == 1);
      CHECK(starts_with(events[0], "close:1009:"));

      gust::settings zero;
      zero.limits.max_message_size = 0;
      events = same_every_way(server_side, zero, peer_frame(server_side, 0x82, "") + wire);
      REQUIRE(events.size() == 2);
      CHECK(events[0] == "binary:");
      CHECK(starts_with(events[1], "close:1009:"));
    }
  }

  TEST_CASE("partial delivery: a whole small frame is one last chunk") {
    for (bool server_side : {true, false}) {
      INFO("role: " << role_name(server_side));
      gust::settings s;
      s.deliver_partial_messages = true;
      CHECK(run(server_side, s,
                peer_frame(server_side, 0x81, "abc") + peer_frame(server_side, 0x82, "\x01")) ==
            strings{"text:abc", "binary:01"});
    }
  }

  TEST_CASE("small frames after a large fragmented message") {
    // The reassembly buffer is released after a message above 256 KiB: the
    // fast path must resume after that, not read a stale message state.
    for (bool server_side : {true, false}) {
      INFO("role: " << role_name(server_side));
      const std::string part(100 * 1024, 'x');
      const std::string wire = peer_frame(server_side, 0x02, part) +
                               peer_frame(server_side, 0x00, part) +
                               peer_frame(server_side, 0x80, part) +
                               peer_frame(server_side, 0x81, "a") + peer_frame(server_side, 0x81, "b");
      const strings events = run(server_side, {}, wire);
      REQUIRE(events.size() == 3);
      CHECK(events[0] == "binary:" + hex(part + part + part));
      CHECK(events[1] == "text:a");
      CHECK(events[2] == "text:b");
    }
  }

  TEST_CASE("state changes between two events of one batch") {
    for (bool server_side : {true, false}) {
      INFO("role: " << role_name(server_side));
      std::string wire = peer_frame(server_side, 0x81, "a") + peer_frame(server_side, 0x81, "b") +
                         peer_frame(server_side, 0x81, "c");
      {
        // CLOSING: data from the peer is still delivered.
        virtual_clock clk;
        auto srv = open_server(clk);
        auto cli = open_client(clk);
        connection& c = server_side ? static_cast<connection&>(srv) : static_cast<connection&>(cli);
        std::string buf = wire;
        c.receive(std::as_writable_bytes(std::span(buf.data(), buf.size())), clk.now);
        auto ev = c.next_event(clk.now);
        REQUIRE(ev);
        CHECK(describe(*ev) == "text:a");
        REQUIRE(!c.close(clk.now, close_code::normal));
        CHECK(drain(c, clk) == strings{"text:b", "text:c"});
      }
      {
        // fail(): the close event, then nothing of the rest.
        virtual_clock clk;
        auto srv = open_server(clk);
        auto cli = open_client(clk);
        connection& c = server_side ? static_cast<connection&>(srv) : static_cast<connection&>(cli);
        std::string buf = wire;
        c.receive(std::as_writable_bytes(std::span(buf.data(), buf.size())), clk.now);
        auto ev = c.next_event(clk.now);
        REQUIRE(ev);
        CHECK(describe(*ev) == "text:a");
        c.fail(clk.now, close_code::policy_violation, "enough");
        const strings rest = drain(c, clk);
        REQUIRE(rest.size() == 1);
        CHECK(starts_with(rest[0], "close:1008:enough:"));
        CHECK(!c.next_event(clk.now));
      }
    }
  }

  TEST_CASE("a server's request and small frames in one read: open before the messages") {
    virtual_clock clk;
    server_connection srv(clk.now);
    const std::string wire = upgrade_request() + peer_frame(true, 0x81, "a") + peer_frame(true, 0x82, "b");
    const strings events = feed(srv, wire, clk);
    REQUIRE(events.size() == 4);
    CHECK(starts_with(events[0], "request:"));
    CHECK(starts_with(events[1], "open:"));
    CHECK(events[2] == "text:a");
    CHECK(events[3] == "binary:" + hex("b"));
  }
}
