// connection::close_may_follow(): whether the input not processed yet may
// hold a close or a frame that fails the connection. Adapters write their
// output early when it says yes, so the answers before it are on the wire
// before the connection ends (the engine no longer drops them either: see
// test_fail_keeps_replies.cpp). It must never say no when such a frame is
// there; saying yes needlessly only costs a write.
#include <doctest.h>

#include <string>

#include "support/roles.hpp"
#include "support/wire.hpp"

using namespace gust;
using namespace gust::test;

namespace {

/// Receives `wire`, takes the first event (a message) and answers what
/// close_may_follow() says then.
bool after_first_message(connection& c, virtual_clock& clk, std::string& keep, std::string wire) {
  auto ev = first_event(c, std::move(wire), clk, keep);
  REQUIRE(ev);
  REQUIRE(std::holds_alternative<message_event>(*ev));
  return c.close_may_follow();
}

}  // namespace

TEST_SUITE("close_may_follow") {
  TEST_CASE("harmless frames behind the message: no") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      std::string keep;
      const std::string wire = peer_frame(server, 0x81, "first") + peer_frame(server, 0x82, "second") +
                               peer_frame(server, 0x89, "ping") + peer_frame(server, 0x01, "frag") +
                               peer_frame(server, 0x80, "ment");
      CHECK(!after_first_message(c, clk, keep, wire));
      // The answer stays no while the rest is processed, once per frame header.
      while (auto ev = c.next_event(clk.now)) CHECK(!c.close_may_follow());
    });
  }

  TEST_CASE("a frame that fails, or a close, anywhere behind: yes") {
    const std::pair<const char*, std::string (*)(bool)> cases[] = {
        {"close", [](bool s) { return peer_frame(s, 0x88, close_payload(1000)); }},
        {"reserved opcode", [](bool s) { return peer_frame(s, 0x83, "x"); }},
        {"RSV1 without deflate", [](bool s) { return peer_frame(s, 0xC1, "x"); }},
        {"RSV2", [](bool s) { return peer_frame(s, 0xA1, "x"); }},
        {"continuation outside a message", [](bool s) { return peer_frame(s, 0x80, "x"); }},
        {"new message inside a fragmented one", [](bool s) {
           return peer_frame(s, 0x01, "a") + peer_frame(s, 0x81, "b");
         }},
        {"fragmented ping", [](bool s) { return peer_frame(s, 0x09, "p"); }},
        {"ping over 125 bytes", [](bool s) { return peer_frame(s, 0x89, std::string(126, 'p')); }},
        {"wrong masking", [](bool s) { return frame(0x81, "x", !s); }},
        {"over max_message_size", [](bool s) { return peer_frame(s, 0x82, "", std::uint64_t(2) << 20); }},
    };
    for (const auto& [name, make] : cases) {
      CAPTURE(name);
      both_roles({}, [&](connection& c, virtual_clock& clk, bool server) {
        std::string keep;
        // Behind two harmless frames, so the scan has to walk to it.
        const std::string wire = peer_frame(server, 0x81, "first") + peer_frame(server, 0x82, "second") +
                                 peer_frame(server, 0x8A, "") + make(server);
        CHECK(after_first_message(c, clk, keep, wire));
      });
    }
  }

  TEST_CASE("a small frame over a small max_message_size behind: yes") {
    gust::settings s;
    s.limits.max_message_size = 10;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      std::string keep;
      CHECK(after_first_message(c, clk, keep, peer_frame(server, 0x81, "first") + peer_frame(server, 0x82, "0123456789a")));
    });
  }

  TEST_CASE("the input ends inside a frame: what is complete is judged, the rest later") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      std::string keep;
      const std::string next = peer_frame(server, 0x81, "second, cut in two");
      CHECK(!after_first_message(c, clk, keep, peer_frame(server, 0x81, "first") + next.substr(0, 5)));
      CHECK(!c.next_event(clk.now));
      std::string rest = next.substr(5) + peer_frame(server, 0x88, close_payload(1000));
      c.receive(std::as_writable_bytes(std::span(rest.data(), rest.size())), clk.now);
      auto ev = c.next_event(clk.now);
      REQUIRE(ev);
      REQUIRE(std::holds_alternative<message_event>(*ev));
      CHECK(c.close_may_follow());
    });
  }

  TEST_CASE("compressed messages: RSV1 on a first frame is fine, on a continuation it fails") {
    gust::settings s;
    s.deflate.enabled = true;
    engine_pair p(s, s);
    p.pump();
    REQUIRE(p.server.compression_enabled());
    // The client's compressed messages, as the server receives them.
    REQUIRE(!p.client.send_text(std::string(200, 'a')));
    REQUIRE(!p.client.send_text(std::string(300, 'b')));
    std::string wire = take_output(p.client);
    std::string keep;
    CHECK(!after_first_message(p.server, p.clk, keep, wire));
    // A fragmented message whose continuation has RSV1 behind it: the
    // server would fail (RFC 7692 6.1: RSV1 on the first frame only).
    wire = take_output(p.client);  // (nothing more queued)
    REQUIRE(wire.empty());
    REQUIRE(!p.client.send_text(std::string(200, 'c')));
    wire = take_output(p.client) + frame(0x41, "x", true) + frame(0xC0, "y", true);
    auto ev = p.server.next_event(p.clk.now);  // the second message
    REQUIRE(ev);
    REQUIRE(!p.server.next_event(p.clk.now));
    CHECK(after_first_message(p.server, p.clk, keep, wire));
  }

  TEST_CASE("not open, or mid-frame with partial delivery: yes") {
    virtual_clock clk;
    server_connection fresh(clk.now);
    CHECK(fresh.close_may_follow());
    gust::settings s;
    s.deliver_partial_messages = true;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      std::string keep;
      const std::string f = peer_frame(server, 0x82, std::string(100, 'x'));
      auto ev = first_event(c, f.substr(0, 50), clk, keep);
      REQUIRE(ev);
      CHECK(c.close_may_follow());
    });
  }
}
