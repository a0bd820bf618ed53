// The closing handshake and the ways a connection ends (RFC 6455 5.5.1,
// 7.1, 7.4), in both roles.
#include <doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "support/roles.hpp"
#include "support/wire.hpp"

using namespace gust;
using namespace gust::test;

namespace {

/// An open pair with the opening events cleared.
struct open_pair : engine_pair {
  open_pair() {
    pump();
    REQUIRE(client_events == strings{"open:"});
    REQUIRE(server_events == strings{"request:/", "open:"});
    client_events.clear();
    server_events.clear();
  }
};

/// Takes exactly `n` bytes of pending output, consuming them.
std::string take_exactly(connection& c, std::size_t n) {
  std::string out;
  while (out.size() < n) {
    auto bufs = c.pending_output();
    REQUIRE(!bufs.empty());
    std::size_t got = 0;
    for (auto& b : bufs) {
      const std::size_t k = std::min(b.size, n - out.size());
      out.append(static_cast<const char*>(b.data), k);
      got += k;
      if (out.size() == n) break;
    }
    REQUIRE(!c.consume_output(got));
  }
  return out;
}

}  // namespace

TEST_SUITE("RFC 6455 7.1.1 closing the connection") {
  TEST_CASE("a close handshake started by the client") {
    open_pair p;
    REQUIRE(!p.client.close(p.clk.now, 1000, "bye"));
    CHECK(p.client.state() == state::closing);
    p.pump();
    CHECK(p.server_events == strings{"close:1000:bye:clean:peer:close handshake"});
    // 5.5.1: the server echoes the code.
    CHECK(p.client_events == strings{"close:1000::clean:local:close handshake"});
    CHECK(p.client.state() == state::closed);
    CHECK(p.server.state() == state::closed);
    // 7.1.1: the server closes the TCP connection first.
    CHECK(p.server.transport_should_close());
    CHECK(!p.client.transport_should_close());
    p.close_transports();
    CHECK(p.client.transport_should_close());
    // Exactly one close_event each.
    CHECK(p.server_events.size() == 1);
    CHECK(p.client_events.size() == 1);
  }

  TEST_CASE("a close handshake started by the server") {
    open_pair p;
    REQUIRE(!p.server.close(p.clk.now, 1001, "going away"));
    CHECK(p.server.state() == state::closing);
    CHECK(!p.server.transport_should_close());
    p.pump();
    CHECK(p.client_events == strings{"close:1001:going away:clean:peer:close handshake"});
    CHECK(p.server_events == strings{"close:1001::clean:local:close handshake"});
    CHECK(p.server.transport_should_close());
    CHECK(!p.client.transport_should_close());
    p.close_transports();
    CHECK(p.client.transport_should_close());
    CHECK(p.client_events.size() == 1);
    CHECK(p.server_events.size() == 1);
  }

  TEST_CASE("a simultaneous close: both sent close first, both end clean") {
    open_pair p;
    REQUIRE(!p.client.close(p.clk.now, 4000, "client"));
    REQUIRE(!p.server.close(p.clk.now, 4001, "server"));
    // Each side sends exactly one close frame.
    const std::string from_client = take_output(p.client);
    const std::string from_server = take_output(p.server);
    auto cf = parse_frames(from_client);
    auto sf = parse_frames(from_server);
    REQUIRE(cf.size() == 1);
    REQUIRE(sf.size() == 1);
    CHECK(cf[0].payload == close_payload(4000, "client"));
    CHECK(sf[0].payload == close_payload(4001, "server"));
    CHECK(feed(p.server, from_client, p.clk) == strings{"close:4000:client:clean:local:close handshake"});
    CHECK(feed(p.client, from_server, p.clk) == strings{"close:4001:server:clean:local:close handshake"});
    // No second close frame is sent by either.
    CHECK(take_output(p.client).empty());
    CHECK(take_output(p.server).empty());
    CHECK(p.server.transport_should_close());
    CHECK(p.client.state() == state::closed);
  }

  TEST_CASE("a simultaneous close through the pair") {
    open_pair p;
    REQUIRE(!p.client.close(p.clk.now));
    REQUIRE(!p.server.close(p.clk.now, 1001));
    p.pump();
    CHECK(p.client_events == strings{"close:1001::clean:local:close handshake"});
    CHECK(p.server_events == strings{"close:1000::clean:local:close handshake"});
  }

  TEST_CASE("close with 1005 sends a close frame without a code") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      REQUIRE(!c.close(clk.now, close_code::no_status));
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].opcode == 0x8);
      CHECK(frames[0].payload.empty());
      // The peer answers with an empty close too: 1005 is reported.
      CHECK(feed(c, peer_frame(server, 0x88, ""), clk) ==
            strings{"close:1005::clean:local:close handshake"});
    });
    open_pair p;
    REQUIRE(!p.server.close(p.clk.now, close_code::no_status));
    p.pump();
    CHECK(p.client_events == strings{"close:1005::clean:peer:close handshake"});
    CHECK(p.server_events == strings{"close:1005::clean:local:close handshake"});
  }

  TEST_CASE("close() with a code that may not be sent: invalid_close_code") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      for (std::uint16_t code : {0, 1, 999, 1004, 1006, 1015, 1016, 2000, 2999, 5000, 65535}) {
        CAPTURE(code);
        CHECK(c.close(clk.now, code) == errc::invalid_close_code);
      }
      CHECK(c.state() == state::open);
      CHECK(c.buffered_amount() == 0);
    });
    for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                               1014, 3000, 3999, 4000, 4999}) {
      CAPTURE(code);
      virtual_clock clk;
      auto srv = open_server(clk);
      CHECK(!srv.close(clk.now, code));
      auto frames = parse_frames(take_output(srv));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].payload == close_payload(code));
    }
  }

  TEST_CASE("close() with a reason above 123 bytes: invalid_argument") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      CHECK(c.close(clk.now, 1000, pattern(124)) == errc::invalid_argument);
      CHECK(c.close(clk.now, 1000, pattern(1000)) == errc::invalid_argument);
      // A reason with 1005 cannot be sent either.
      CHECK(c.close(clk.now, close_code::no_status, "r") == errc::invalid_argument);
      CHECK(c.state() == state::open);
      CHECK(c.buffered_amount() == 0);
      // 123 bytes fit: 2 + 123 = 125, the control frame maximum.
      REQUIRE(!c.close(clk.now, 1000, pattern(123)));
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].payload == close_payload(1000, pattern(123)));
    });
  }

  TEST_CASE("close() with a reason that is not UTF-8: invalid_utf8") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      CHECK(c.close(clk.now, 1000, "\xff") == errc::invalid_utf8);
      CHECK(c.close(clk.now, 1000, "ok \xc3") == errc::invalid_utf8);
      CHECK(c.close(clk.now, 1000, "\xed\xa0\x80") == errc::invalid_utf8);  // surrogate
      CHECK(c.state() == state::open);
      CHECK(c.buffered_amount() == 0);
      REQUIRE(!c.close(clk.now, 1000, "κόσμε"));
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].payload == close_payload(1000, "κόσμε"));
    });
  }

  TEST_CASE("close() twice: invalid_state") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      REQUIRE(!c.close(clk.now));
      CHECK(c.close(clk.now) == errc::invalid_state);
      CHECK(c.close(clk.now, 1001, "again") == errc::invalid_state);
      CHECK(parse_frames(take_output(c)).size() == 1);
      CHECK(feed(c, peer_frame(server, 0x88, close_payload(1000)), clk).size() == 1);
      CHECK(c.close(clk.now) == errc::invalid_state);
      CHECK(take_output(c).empty());
    });
  }

  TEST_CASE("close() before the connection is open: invalid_state") {
    virtual_clock clk;
    server_connection srv(clk.now);
    CHECK(srv.close(clk.now) == errc::invalid_state);
    client_options o;
    o.host = "h";
    gust::settings s;
    s.random = counting_random();
    client_connection cli(clk.now, o, s);
    CHECK(cli.close(clk.now) == errc::invalid_state);
  }

  TEST_CASE("messages that arrive after we sent close are still delivered while CLOSING") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      REQUIRE(!c.close(clk.now, 1000, "done"));
      (void)take_output(c);
      std::string wire = peer_frame(server, 0x81, "late text") +
                         peer_frame(server, 0x02, "fr") + peer_frame(server, 0x80, "ag") +
                         peer_frame(server, 0x82, std::string(300, 'z'));
      CHECK(feed(c, wire, clk) ==
            strings{"text:late text", "binary:" + hex("frag"), "binary:" + hex(std::string(300, 'z'))});
      CHECK(c.state() == state::closing);
      CHECK(take_output(c).empty());  // no data goes out after our close
      CHECK(feed(c, peer_frame(server, 0x88, close_payload(1000)), clk) ==
            strings{"close:1000::clean:local:close handshake"});
      CHECK(c.state() == state::closed);
      CHECK(take_output(c).empty());  // our close was already sent
    });
  }

  TEST_CASE("nothing is delivered after the peer's close frame") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      std::string wire = peer_frame(server, 0x88, close_payload(1000)) + peer_frame(server, 0x81, "after");
      CHECK(feed(c, wire, clk) == strings{"close:1000::clean:peer:close handshake"});
      CHECK(feed(c, peer_frame(server, 0x81, "later"), clk).empty());
    });
  }

  TEST_CASE("send_* after close(): invalid_state, while CLOSING and once CLOSED") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      REQUIRE(!c.close(clk.now));
      (void)take_output(c);
      auto check_all_refused = [&] {
        auto owner = std::make_shared<std::string>("shared");
        CHECK(c.send_text("t") == errc::invalid_state);
        CHECK(c.send_binary(bytes("b")) == errc::invalid_state);
        CHECK(c.send(message_type::text, bytes("s")) == errc::invalid_state);
        CHECK(c.send_shared(message_type::binary, bytes(*owner), owner) == errc::invalid_state);
        CHECK(c.send_fragment(message_type::text, bytes("f"), false) == errc::invalid_state);
        CHECK(c.send_fragment(message_type::text, bytes("f"), true) == errc::invalid_state);
        CHECK(c.ping(bytes("p"), clk.now) == errc::invalid_state);
        CHECK(c.pong(bytes("p")) == errc::invalid_state);
        CHECK(owner.use_count() == 1);
        CHECK(c.buffered_amount() == 0);
      };
      {
        INFO("CLOSING");
        check_all_refused();
      }
      CHECK(feed(c, peer_frame(server, 0x88, close_payload(1000)), clk).size() == 1);
      {
        INFO("CLOSED");
        check_all_refused();
      }
    });
  }

  TEST_CASE("EOF without a close frame: 1006, unclean, by the peer, end of stream") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      c.receive_eof(clk.now);
      CHECK(drain(c, clk) == strings{"close:1006::unclean:peer:end of stream"});
      CHECK(c.state() == state::closed);
      CHECK(c.transport_should_close());
      CHECK(!c.next_deadline());
      // RFC 6455 7.4.1: 1006 is never sent.
      CHECK(take_output(c).empty());
      CHECK(drain(c, clk).empty());
    });
  }

  TEST_CASE("EOF in the middle of a message: the partial message is not delivered") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      std::string wire = peer_frame(server, 0x01, "first half") + peer_frame(server, 0x80, "second half").substr(0, 8);
      CHECK(feed(c, wire, clk).empty());
      c.receive_eof(clk.now);
      CHECK(drain(c, clk) == strings{"close:1006::unclean:peer:end of stream"});
    });
  }

  TEST_CASE("messages before EOF are delivered before the close event") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      std::string wire = peer_frame(server, 0x81, "one") + peer_frame(server, 0x81, "two");
      std::string storage = wire;
      c.receive(std::as_writable_bytes(std::span(storage.data(), storage.size())), clk.now);
      c.receive_eof(clk.now);
      CHECK(drain(c, clk) == strings{"text:one", "text:two", "close:1006::unclean:peer:end of stream"});
    });
  }

  TEST_CASE("EOF after our close(): 1006 unclean, and we started the closing") {
    // event.hpp close_event::by_peer: "false when we did" start the closing.
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      REQUIRE(!c.close(clk.now));
      (void)take_output(c);
      c.receive_eof(clk.now);
      CHECK(drain(c, clk) == strings{"close:1006::unclean:local:end of stream"});
      CHECK(c.transport_should_close());
    });
  }

  TEST_CASE("fail() by the application: a close frame with its code, then CLOSED") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      c.fail(clk.now, 4000, "app says no");
      CHECK(c.state() == state::closed);
      CHECK(c.transport_should_close());
      CHECK(drain(c, clk) == strings{"close:4000:app says no:unclean:local:failed by the application"});
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].opcode == 0x8);
      CHECK(frames[0].payload == close_payload(4000, "app says no"));
      // Further input is discarded.
      CHECK(feed(c, peer_frame(server, 0x81, "ignored"), clk).empty());
      CHECK(feed(c, peer_frame(server, 0x88, close_payload(1000)), clk).empty());
      CHECK(take_output(c).empty());
      CHECK(!c.next_deadline());
    });
  }

  TEST_CASE("fail() with a code that may not be sent uses 1011") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      c.fail(clk.now, close_code::abnormal);
      auto ev = drain(c, clk);
      REQUIRE(ev.size() == 1);
      CHECK(ev[0].rfind("close:1011:", 0) == 0);
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].payload.substr(0, 2) == close_payload(1011).substr(0, 2));
    });
  }

  TEST_CASE("fail() while CLOSING sends no second close frame") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      REQUIRE(!c.close(clk.now, 1000));
      auto first = parse_frames(take_output(c));
      REQUIRE(first.size() == 1);
      c.fail(clk.now, 4001);
      auto ev = drain(c, clk);
      REQUIRE(ev.size() == 1);
      CHECK(ev[0].find(":unclean:local:failed by the application") != std::string::npos);
      CHECK(take_output(c).empty());
      CHECK(c.transport_should_close());
    });
  }

  TEST_CASE("fail() drops queued data that has not started") {
    // connection.hpp: fail() sends its close right after the frame being
    // written; unsent data is dropped (5.5.1: no data after a close).
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      REQUIRE(!c.send_text("queued 1"));
      REQUIRE(!c.send_text("queued 2"));
      c.fail(clk.now, 4002);
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].opcode == 0x8);
    });
  }

  TEST_CASE("close() follows the messages already queued") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      REQUIRE(!c.send_text("one"));
      REQUIRE(!c.send_binary(bytes("two")));
      REQUIRE(!c.close(clk.now, 1000, "after"));
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 3);
      CHECK(frames[0].payload == "one");
      CHECK(frames[1].payload == "two");
      CHECK(frames[2].opcode == 0x8);
      CHECK(frames[2].payload == close_payload(1000, "after"));
    });
  }
}

TEST_SUITE("RFC 6455 5.4 control frames between fragments") {
  constexpr std::size_t frame_payload = 16 * 1024;
  constexpr std::size_t message = 1 << 20;

  /// A 1 MiB binary message queued as 64 frames of 16 KiB.
  std::string queue_big(connection& c) {
    std::string payload = pattern(message);
    REQUIRE(!c.send_binary(bytes(payload)));
    return payload;
  }

  std::size_t frame_size(const connection& c) {
    return (c.role() == role::client ? 8 : 4) + frame_payload;
  }

  void check_message(const std::vector<wire_frame>& frames, std::size_t first, std::size_t count,
                     const std::string& payload) {
    std::string got;
    for (std::size_t i = first; i < first + count; ++i) {
      CAPTURE(i);
      CHECK(frames[i].opcode == (i == first ? 0x2 : 0x0));
      CHECK(frames[i].fin == (i == first + count - 1));
      got += frames[i].payload;
    }
    CHECK(got == payload);
  }

  TEST_CASE("a pong goes out right after the data frame being written") {
    gust::settings s;
    s.max_send_frame_size = frame_payload;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      const std::string payload = queue_big(c);
      // One whole frame and 100 bytes of the second are written.
      std::string written = take_exactly(c, frame_size(c) + 100);
      CHECK(feed(c, peer_frame(server, 0x89, "are you there"), clk) ==
            strings{"ping:" + hex("are you there")});
      written += take_output(c);
      auto frames = parse_frames(written);
      REQUIRE(frames.size() == 65);
      CHECK(frames[2].opcode == 0xA);
      CHECK(frames[2].payload == "are you there");
      std::vector<wire_frame> data(frames.begin(), frames.begin() + 2);
      data.insert(data.end(), frames.begin() + 3, frames.end());
      check_message(data, 0, 64, payload);
    });
  }

  TEST_CASE("a pong goes out next when the output stands between two frames") {
    gust::settings s;
    s.max_send_frame_size = frame_payload;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      const std::string payload = queue_big(c);
      std::string written = take_exactly(c, 3 * frame_size(c));
      CHECK(feed(c, peer_frame(server, 0x89, "x"), clk).size() == 1);
      written += take_output(c);
      auto frames = parse_frames(written);
      REQUIRE(frames.size() == 65);
      CHECK(frames[3].opcode == 0xA);
      CHECK(frames[3].payload == "x");
    });
  }

  TEST_CASE("an application ping and pong jump the queue too") {
    gust::settings s;
    s.max_send_frame_size = frame_payload;
    both_roles(s, [](connection& c, virtual_clock& clk, bool) {
      const std::string payload = queue_big(c);
      std::string written = take_exactly(c, frame_size(c) / 2);
      REQUIRE(!c.ping(bytes("p1"), clk.now));
      REQUIRE(!c.pong(bytes("p2")));
      written += take_output(c);
      auto frames = parse_frames(written);
      REQUIRE(frames.size() == 66);
      CHECK(frames[1].opcode == 0x9);
      CHECK(frames[1].payload == "p1");
      CHECK(frames[2].opcode == 0xA);
      CHECK(frames[2].payload == "p2");
    });
  }

  TEST_CASE("close() waits for the queued message, after a pong that jumped it") {
    gust::settings s;
    s.max_send_frame_size = frame_payload;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      const std::string payload = queue_big(c);
      std::string written = take_exactly(c, frame_size(c) + 100);
      CHECK(feed(c, peer_frame(server, 0x89, "ping"), clk).size() == 1);
      written += take_exactly(c, 3 * frame_size(c));
      REQUIRE(!c.close(clk.now, 1000, "bye"));
      written += take_output(c);
      auto frames = parse_frames(written);
      REQUIRE(frames.size() == 66);
      CHECK(frames[2].opcode == 0xA);
      CHECK(frames[65].opcode == 0x8);
      CHECK(frames[65].payload == close_payload(1000, "bye"));
    });
  }

  TEST_CASE("the echo of the peer's close follows the data already queued: nothing is lost") {
    // 5.5.1 lets an endpoint delay its Close "until its current message is
    // sent"; the peer is CLOSING and still reads data until our close.
    gust::settings s;
    s.max_send_frame_size = frame_payload;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      const std::string payload = queue_big(c);
      std::string written = take_exactly(c, 2 * frame_size(c) + 100);
      CHECK(feed(c, peer_frame(server, 0x88, close_payload(1001)), clk) ==
            strings{"close:1001::clean:peer:close handshake"});
      written += take_output(c);
      auto frames = parse_frames(written);
      REQUIRE(frames.size() == 65);
      std::string data;
      for (std::size_t i = 0; i + 1 < frames.size(); ++i) {
        CHECK(frames[i].opcode == (i == 0 ? 0x2 : 0x0));
        data += frames[i].payload;
      }
      CHECK(data == payload);
      CHECK(frames[64].opcode == 0x8);
      CHECK(frames[64].payload == close_payload(1001));
    });
  }

  TEST_CASE("a protocol failure's close goes out after the data already queued") {
    // The peer's bad input must not cost what the application queued
    // before it (connection.hpp, fail()): the whole message, then the close.
    gust::settings s;
    s.max_send_frame_size = frame_payload;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      const std::string payload = queue_big(c);
      std::string written = take_exactly(c, frame_size(c) + 1);
      // A reserved opcode: 1002.
      auto ev = feed(c, peer_frame(server, 0x83, ""), clk);
      REQUIRE(ev.size() == 1);
      CHECK(ev[0].rfind("close:1002:", 0) == 0);
      CHECK(c.transport_should_close());
      written += take_output(c);
      auto frames = parse_frames(written);
      REQUIRE(frames.size() == 65);
      check_message(frames, 0, 64, payload);
      CHECK(frames[64].opcode == 0x8);
      CHECK(frames[64].payload.substr(0, 2) == close_payload(1002).substr(0, 2));
    });
  }
}

// A server's small messages queued back to back share one entry of the
// output queue (output_queue::append_small_frame); a control frame or a
// failure must still find the boundary after the frame being written.
TEST_SUITE("RFC 6455 5.4 control frames between small messages queued together") {
  /// Ten small text messages "m0".."m9", queued.
  void queue_small(connection& c) {
    for (int i = 0; i < 10; ++i) REQUIRE(!c.send_text("m" + std::to_string(i)));
  }

  std::size_t small_frame_size(const connection& c) { return (c.role() == role::client ? 6 : 2) + 2; }

  /// Queues m0..m9, writes `taken` bytes of them, runs `between`, then
  /// writes the rest: every frame that went out, parsed.
  template <class F>
  std::vector<wire_frame> frames_around(connection& c, std::size_t taken, F&& between) {
    queue_small(c);
    std::string written = take_exactly(c, taken);
    between();
    written += take_output(c);
    return parse_frames(written);
  }

  /// The data frames of `frames` other than the one at `skip` are m0..m(n-1), in order.
  void check_small(const std::vector<wire_frame>& frames, std::size_t skip, std::size_t n) {
    std::size_t k = 0;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      if (i == skip) continue;
      CAPTURE(i);
      CHECK(frames[i].opcode == 0x1);
      CHECK(frames[i].payload == "m" + std::to_string(k));
      ++k;
    }
    CHECK(k == n);
  }

  TEST_CASE("a pong goes out right after the small message being written") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      // m0 and one byte of m1 are written.
      auto frames = frames_around(c, small_frame_size(c) + 1, [&] {
        CHECK(feed(c, peer_frame(server, 0x89, "now"), clk) == strings{"ping:" + hex("now")});
      });
      REQUIRE(frames.size() == 11);
      CHECK(frames[2].opcode == 0xA);
      CHECK(frames[2].payload == "now");
      check_small(frames, 2, 10);
    });
  }

  TEST_CASE("a pong goes out next when the output stands between two small messages") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      auto frames = frames_around(c, 3 * small_frame_size(c),
                                  [&] { CHECK(feed(c, peer_frame(server, 0x89, "x"), clk).size() == 1); });
      REQUIRE(frames.size() == 11);
      CHECK(frames[3].opcode == 0xA);
      check_small(frames, 3, 10);
    });
  }

  TEST_CASE("small messages queued while a run is going out: a ping still goes right after the message being written") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      auto frames = frames_around(c, small_frame_size(c) / 2, [&] {
        for (int i = 10; i < 13; ++i) REQUIRE(!c.send_text("m" + std::to_string(i)));
        REQUIRE(!c.ping(bytes("p"), clk.now));
      });
      REQUIRE(frames.size() == 14);
      CHECK(frames[1].opcode == 0x9);
      check_small(frames, 1, 13);
    });
  }

  TEST_CASE("fail() in the middle of a small message: it is finished, the close follows, the rest is dropped") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      auto frames = frames_around(c, 2 * small_frame_size(c) + 1, [&] { c.fail(clk.now, 4002); });
      REQUIRE(frames.size() == 4);
      check_small({frames.begin(), frames.begin() + 3}, 99, 3);
      CHECK(frames[3].opcode == 0x8);
      CHECK(frames[3].payload == close_payload(4002));
    });
  }

  TEST_CASE("fail() between two small messages: the close is next") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      auto frames = frames_around(c, small_frame_size(c), [&] { c.fail(clk.now, 4002); });
      REQUIRE(frames.size() == 2);
      CHECK(frames[0].payload == "m0");
      CHECK(frames[1].opcode == 0x8);
    });
  }
}
