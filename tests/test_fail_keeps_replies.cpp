// When the peer's input fails the connection (RFC 6455 7.1.7), the frames
// the application queued before the failure still go out, the close frame
// after them, and nothing after the close (5.5.1). The project's bar: bad
// input never costs the answers to good input. fail() by the application
// and the keepalive timeout still drop unsent data (connection.hpp).
#include <doctest.h>

#include <string>
#include <vector>

#include "support/roles.hpp"
#include "support/wire.hpp"

using namespace gust;
using namespace gust::test;

namespace {

const std::string reply = "echo: hello";

/// The two payload bytes of a close frame with `code`.
std::string code_bytes(std::uint16_t code) { return close_payload(code).substr(0, 2); }

/// Receives [text "hello"][bad] in one receive(), answers the first message
/// as an echo server does (uncompressed, so the payload can be compared),
/// then takes the rest: the failure with `code`. Returns the output frames.
std::vector<wire_frame> reply_then_fail(connection& c, virtual_clock& clk, bool server,
                                        const std::string& bad, std::uint16_t code) {
  std::string keep;
  auto ev = first_event(c, peer_frame(server, 0x81, "hello") + bad, clk, keep);
  REQUIRE(ev);
  REQUIRE(std::holds_alternative<message_event>(*ev));
  REQUIRE(!c.send(message_type::text, bytes(reply), false));
  const strings rest = drain(c, clk);
  REQUIRE(rest.size() == 1);
  CHECK(starts_with(rest[0], "close:" + std::to_string(code) + ":"));
  CHECK(c.state() == state::closed);
  CHECK(c.transport_should_close());
  // Sends after the failure are refused: nothing may follow the close.
  CHECK(c.send_text("too late") == errc::invalid_state);
  CHECK(c.pong(bytes("p")) == errc::invalid_state);
  return parse_frames(take_output(c));
}

/// The reply, then the close frame with `code`, then nothing.
void check_reply_then_close(const std::vector<wire_frame>& frames, std::uint16_t code) {
  REQUIRE(frames.size() == 2);
  CHECK(frames[0].opcode == 0x1);
  CHECK(frames[0].fin);
  CHECK(frames[0].payload == reply);
  CHECK(frames[1].opcode == 0x8);
  CHECK(frames[1].payload.substr(0, 2) == code_bytes(code));
}

struct bad_input {
  const char* name;
  std::string (*make)(bool server);
  std::uint16_t code;
};

// Limits small enough for the cases below to reach them.
gust::settings small_limits() {
  gust::settings s;
  s.limits.max_message_size = 64;
  s.limits.max_fragments = 2;
  return s;
}

const bad_input peer_failures[] = {
    {"invalid UTF-8 in a later text message", [](bool s) { return peer_frame(s, 0x81, "ok \xff\xfe"); }, 1007},
    {"text ending inside a UTF-8 sequence", [](bool s) { return peer_frame(s, 0x81, "\xe2\x82"); }, 1007},
    {"invalid UTF-8 in a fragmented text message",
     [](bool s) { return peer_frame(s, 0x01, "fine ") + peer_frame(s, 0x80, "\xc0\xaf"); }, 1007},
    {"a message over max_message_size", [](bool s) { return peer_frame(s, 0x82, std::string(65, 'x')); }, 1009},
    {"too many fragments",
     [](bool s) { return peer_frame(s, 0x01, "a") + peer_frame(s, 0x00, "b") + peer_frame(s, 0x80, "c"); }, 1009},
    {"a reserved opcode", [](bool s) { return peer_frame(s, 0x83, "x"); }, 1002},
    {"RSV1 without deflate", [](bool s) { return peer_frame(s, 0xC1, "x"); }, 1002},
    {"a fragmented ping", [](bool s) { return peer_frame(s, 0x09, "p"); }, 1002},
    {"a close frame with an invalid code", [](bool s) { return peer_frame(s, 0x88, close_payload(1005)); }, 1002},
};

}  // namespace

TEST_SUITE("RFC 6455 7.1.7 a failure the peer causes keeps the replies queued before it") {
  TEST_CASE("[valid message][bad input] in one receive: the reply, then the close") {
    for (const auto& f : peer_failures) {
      INFO(f.name);
      both_roles(small_limits(), [&](connection& c, virtual_clock& clk, bool server) {
        check_reply_then_close(reply_then_fail(c, clk, server, f.make(server), f.code), f.code);
      });
    }
  }

  TEST_CASE("corrupt compressed data (RFC 7692): the reply, then 1007") {
    gust::settings s;
    s.deflate.enabled = true;
    engine_pair p(s, s);
    p.pump();
    REQUIRE(p.server.compression_enabled());
    REQUIRE(p.client.compression_enabled());
    // 0xff: a final block of the reserved type 3, which inflate refuses.
    {
      INFO("role: server");
      check_reply_then_close(reply_then_fail(p.server, p.clk, true, frame(0xC1, "\xff\xff", true), 1007), 1007);
    }
    {
      INFO("role: client");
      check_reply_then_close(reply_then_fail(p.client, p.clk, false, frame(0xC1, "\xff\xff", false), 1007), 1007);
    }
  }

  TEST_CASE("replies queued over several messages all stay, in order") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      std::string keep = peer_frame(server, 0x81, "one") + peer_frame(server, 0x82, "two") +
                         peer_frame(server, 0x81, "\xff");
      c.receive(std::as_writable_bytes(std::span(keep.data(), keep.size())), clk.now);
      int replies = 0;
      while (auto ev = c.next_event(clk.now)) {
        if (std::holds_alternative<message_event>(*ev)) REQUIRE(!c.send_text("reply " + std::to_string(++replies)));
      }
      REQUIRE(replies == 2);
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 3);
      CHECK(frames[0].payload == "reply 1");
      CHECK(frames[1].payload == "reply 2");
      CHECK(frames[2].opcode == 0x8);
      CHECK(frames[2].payload.substr(0, 2) == code_bytes(1007));
    });
  }

  TEST_CASE("a pong already queued stays; the close is still the last frame") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      std::string keep = peer_frame(server, 0x89, "ping") + peer_frame(server, 0x81, "hello") +
                         peer_frame(server, 0x81, "\xff");
      c.receive(std::as_writable_bytes(std::span(keep.data(), keep.size())), clk.now);
      strings events;
      while (auto ev = c.next_event(clk.now)) {
        events.push_back(describe(*ev));
        if (std::holds_alternative<message_event>(*ev)) REQUIRE(!c.send_text(reply));
      }
      REQUIRE(events.size() == 3);
      CHECK(starts_with(events[2], "close:1007:"));
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 3);
      CHECK(frames[0].opcode == 0xA);  // (a pong goes before data not yet started)
      CHECK(frames[0].payload == "ping");
      CHECK(frames[1].payload == reply);
      CHECK(frames[2].opcode == 0x8);
    });
  }

  TEST_CASE("a fragmented message of ours: whole fragments stay, the close follows, the message stays unfinished") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      REQUIRE(!c.send_fragment(message_type::text, bytes("part 1, "), false));
      std::string keep;
      auto ev = first_event(c, peer_frame(server, 0x81, "hello") + peer_frame(server, 0x83, ""), clk, keep);
      REQUIRE(ev);
      REQUIRE(std::holds_alternative<message_event>(*ev));
      REQUIRE(!c.send_fragment(message_type::text, bytes("part 2"), false));
      CHECK(drain(c, clk).size() == 1);
      // Neither the rest of the message nor anything else after the close.
      CHECK(c.send_fragment(message_type::text, bytes("end"), true) == errc::invalid_state);
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 3);
      CHECK(frames[0].opcode == 0x1);
      CHECK(!frames[0].fin);
      CHECK(frames[1].opcode == 0x0);
      CHECK(!frames[1].fin);
      CHECK(frames[1].payload == "part 2");
      CHECK(frames[2].opcode == 0x8);
      CHECK(frames[2].payload.substr(0, 2) == code_bytes(1002));
    });
  }
  // (Output partly written when the failure comes: test_close.cpp, "a
  // protocol failure's close goes out after the data already queued".)
}

TEST_SUITE("RFC 6455 7.1.7 failures that must not wait drop unsent data") {
  TEST_CASE("fail() by the application after a reply: only the close goes out") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      std::string keep;
      auto ev = first_event(c, peer_frame(server, 0x81, "hello"), clk, keep);
      REQUIRE(ev);
      REQUIRE(!c.send_text(reply));
      c.fail(clk.now, 4000, "stop");
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].opcode == 0x8);
      CHECK(frames[0].payload == close_payload(4000, "stop"));
    });
  }

  TEST_CASE("the keepalive timeout: only the close goes out") {
    gust::settings s;
    s.timeouts.ping_interval = std::chrono::seconds(1);
    s.timeouts.ping_timeout = std::chrono::seconds(1);
    both_roles(s, [](connection& c, virtual_clock& clk, bool) {
      clk.advance(std::chrono::seconds(1));
      c.on_timeout(clk.now);
      auto ping = parse_frames(take_output(c));
      REQUIRE(ping.size() == 1);
      REQUIRE(ping[0].opcode == 0x9);
      REQUIRE(!c.send_text("unsent"));
      clk.advance(std::chrono::seconds(1));
      c.on_timeout(clk.now);
      const strings ev = drain(c, clk);
      REQUIRE(ev.size() == 1);
      CHECK(starts_with(ev[0], "close:1011:"));
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].opcode == 0x8);
    });
  }
}
