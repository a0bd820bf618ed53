// Timers (settings.hpp gust::timeouts) on a virtual clock: the core never
// reads a clock, so every deadline is exact.
#include <doctest.h>

#include <string>
#include <vector>

#include "support/roles.hpp"
#include "support/wire.hpp"

using namespace gust;
using namespace gust::test;

namespace {

constexpr duration ns1 = std::chrono::nanoseconds(1);

/// A client still in CONNECTING (its request taken from the output).
client_connection connecting_client(virtual_clock& clk, gust::settings s = {}) {
  s.random = counting_random();
  client_connection c(clk.now, default_client_options(), std::move(s));
  (void)take_output(c);
  return c;
}

/// Receives `wire` and returns the single event it produces.
event one_event(connection& c, std::string wire, virtual_clock& clk, std::string& keep) {
  auto ev = first_event(c, std::move(wire), clk, keep);
  REQUIRE(ev);
  return *ev;
}

/// The single keepalive ping in the output: its payload.
std::string take_ping(connection& c) {
  auto frames = parse_frames(take_output(c));
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].opcode == 0x9);
  CHECK(frames[0].fin);
  CHECK(frames[0].masked == (c.role() == role::client));
  return frames[0].payload;
}

/// Nothing at all happened: no event, no output, same state and deadline.
void check_nothing_happened(connection& c, virtual_clock& clk, state st,
                            std::optional<time_point> deadline) {
  CHECK(c.state() == st);
  CHECK(c.next_deadline() == deadline);
  CHECK(c.buffered_amount() == 0);
  CHECK(drain(c, clk).empty());
}

}  // namespace

TEST_SUITE("timers: open_timeout") {
  TEST_CASE("next_deadline() is the open_timeout while CONNECTING") {
    virtual_clock clk;
    const time_point t0 = clk.now;
    server_connection srv(clk.now);
    CHECK(srv.next_deadline() == t0 + std::chrono::seconds(10));
    auto cli = connecting_client(clk);
    CHECK(cli.next_deadline() == t0 + std::chrono::seconds(10));

    gust::settings s;
    s.timeouts.open_timeout = std::chrono::milliseconds(1500);
    server_connection srv2(clk.now, s);
    CHECK(srv2.next_deadline() == t0 + std::chrono::milliseconds(1500));
    auto cli2 = connecting_client(clk, s);
    CHECK(cli2.next_deadline() == t0 + std::chrono::milliseconds(1500));
  }

  TEST_CASE("open_timeout 0 means no deadline while CONNECTING") {
    virtual_clock clk;
    gust::settings s;
    s.timeouts.open_timeout = duration::zero();
    server_connection srv(clk.now, s);
    CHECK(!srv.next_deadline());
    auto cli = connecting_client(clk, s);
    CHECK(!cli.next_deadline());
    clk.advance(std::chrono::hours(24));
    srv.on_timeout(clk.now);
    cli.on_timeout(clk.now);
    CHECK(drain(srv, clk).empty());
    CHECK(drain(cli, clk).empty());
    CHECK(srv.state() == state::connecting);
    CHECK(cli.state() == state::connecting);
  }

  TEST_CASE("a server's opening handshake times out: handshake_failure timeout") {
    virtual_clock clk;
    server_connection srv(clk.now);
    const auto deadline = *srv.next_deadline();
    // Half a request arrives; the rest never does.
    const std::string req = upgrade_request();
    CHECK(feed(srv, req.substr(0, 20), clk).empty());
    clk.now = deadline - ns1;
    srv.on_timeout(clk.now);
    check_nothing_happened(srv, clk, state::connecting, deadline);
    clk.now = deadline;
    srv.on_timeout(clk.now);
    CHECK(drain(srv, clk) == strings{"handshake_failure:timeout"});
    CHECK(srv.state() == state::closed);
    CHECK(srv.transport_should_close());
    CHECK(!srv.next_deadline());
    // The rest of the request is now too late.
    CHECK(feed(srv, req.substr(20), clk).empty());
    CHECK(srv.state() == state::closed);
  }

  TEST_CASE("a request left unanswered by the application times out too") {
    virtual_clock clk;
    server_connection srv(clk.now);
    CHECK(feed(srv, upgrade_request(), clk, 0, feed_mode::receive, false) ==
          strings{"request:/chat?room=1"});
    clk.now = *srv.next_deadline();
    srv.on_timeout(clk.now);
    CHECK(drain(srv, clk) == strings{"handshake_failure:timeout"});
    CHECK(srv.transport_should_close());
    CHECK(srv.accept(clk.now) == errc::no_pending_request);
  }

  TEST_CASE("a client's opening handshake times out: handshake_failure timeout") {
    virtual_clock clk;
    auto cli = connecting_client(clk);
    const auto deadline = *cli.next_deadline();
    CHECK(feed(cli, "HTTP/1.1 101 Switching", clk).empty());
    clk.now = deadline - ns1;
    cli.on_timeout(clk.now);
    check_nothing_happened(cli, clk, state::connecting, deadline);
    clk.now = deadline + std::chrono::seconds(3);  // late is fine
    cli.on_timeout(clk.now);
    CHECK(drain(cli, clk) == strings{"handshake_failure:timeout"});
    CHECK(cli.state() == state::closed);
    CHECK(cli.transport_should_close());
    CHECK(!cli.next_deadline());
  }

  TEST_CASE("the open deadline is gone once OPEN") {
    gust::settings s;
    s.timeouts.ping_interval = duration::zero();
    both_roles(s, [](connection& c, virtual_clock& clk, bool) {
      CHECK(!c.next_deadline());
      clk.advance(std::chrono::minutes(5));
      c.on_timeout(clk.now);
      check_nothing_happened(c, clk, state::open, std::nullopt);
    });
  }
}

TEST_SUITE("timers: keepalive") {
  TEST_CASE("a keepalive ping goes out after ping_interval") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      const time_point opened = clk.now;
      CHECK(c.next_deadline() == opened + std::chrono::seconds(20));
      clk.now = opened + std::chrono::seconds(20) - ns1;
      c.on_timeout(clk.now);
      check_nothing_happened(c, clk, state::open, opened + std::chrono::seconds(20));
      clk.now = opened + std::chrono::seconds(20);
      c.on_timeout(clk.now);
      CHECK(drain(c, clk).empty());  // a timer is no event
      const std::string payload = take_ping(c);
      CHECK(payload.size() <= 125);
      // Now the pong is awaited.
      CHECK(c.next_deadline() == clk.now + std::chrono::seconds(20));
      CHECK(c.state() == state::open);
    });
  }

  TEST_CASE("the matching pong clears the keepalive and reports the round-trip time") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      clk.advance(std::chrono::seconds(20));
      c.on_timeout(clk.now);
      const time_point sent = clk.now;
      const std::string payload = take_ping(c);
      CHECK(!c.latency());
      clk.advance(std::chrono::milliseconds(150));
      std::string keep;
      event ev = one_event(c, peer_frame(server, 0x8A, payload), clk, keep);
      REQUIRE(std::holds_alternative<pong_event>(ev));
      const auto& pong = std::get<pong_event>(ev);
      CHECK(std::string_view(reinterpret_cast<const char*>(pong.payload.data()), pong.payload.size()) ==
            payload);
      REQUIRE(pong.rtt);
      CHECK(*pong.rtt == std::chrono::milliseconds(150));
      CHECK(!c.next_event(clk.now));
      REQUIRE(c.latency());
      CHECK(*c.latency() == std::chrono::milliseconds(150));
      // No pong deadline any more: the next ping is due ping_interval after
      // the previous one was sent.
      CHECK(c.next_deadline() == sent + std::chrono::seconds(20));
      clk.now = sent + std::chrono::seconds(20);
      c.on_timeout(clk.now);
      CHECK(c.state() == state::open);
      const std::string second = take_ping(c);
      CHECK(second != payload);  // each keepalive ping is told apart
    });
  }

  TEST_CASE("no pong within ping_timeout fails the connection with 1011") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      clk.advance(std::chrono::seconds(20));
      c.on_timeout(clk.now);
      const std::string payload = take_ping(c);
      const time_point deadline = clk.now + std::chrono::seconds(20);
      // A pong that does not answer the keepalive (an unsolicited one) does
      // not count.
      clk.advance(std::chrono::seconds(1));
      std::string keep;
      event ev = one_event(c, peer_frame(server, 0x8A, payload + "x"), clk, keep);
      REQUIRE(std::holds_alternative<pong_event>(ev));
      CHECK(!std::get<pong_event>(ev).rtt);
      CHECK(!c.next_event(clk.now));
      CHECK(c.next_deadline() == deadline);

      clk.now = deadline - ns1;
      c.on_timeout(clk.now);
      check_nothing_happened(c, clk, state::open, deadline);
      clk.now = deadline;
      c.on_timeout(clk.now);
      auto events = drain(c, clk);
      REQUIRE(events.size() == 1);
      INFO(events[0]);
      CHECK(starts_with(events[0], "close:1011:"));
      CHECK(ends_with(events[0], ":unclean:local:keepalive timeout"));
      CHECK(c.state() == state::closed);
      CHECK(c.transport_should_close());
      CHECK(!c.next_deadline());
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].opcode == 0x8);
      REQUIRE(frames[0].payload.size() >= 2);
      CHECK(frames[0].payload.substr(0, 2) == close_payload(1011).substr(0, 2));
    });
  }

  TEST_CASE("ping_interval 0 disables keepalive") {
    gust::settings s;
    s.timeouts.ping_interval = duration::zero();
    both_roles(s, [](connection& c, virtual_clock& clk, bool) {
      CHECK(!c.next_deadline());
      for (int i = 0; i < 10; ++i) {
        clk.advance(std::chrono::hours(1));
        c.on_timeout(clk.now);
      }
      check_nothing_happened(c, clk, state::open, std::nullopt);
    });
  }

  TEST_CASE("ping_timeout 0: keepalive pings without a pong deadline") {
    gust::settings s;
    s.timeouts.ping_interval = std::chrono::seconds(5);
    s.timeouts.ping_timeout = duration::zero();
    both_roles(s, [](connection& c, virtual_clock& clk, bool) {
      for (int i = 0; i < 3; ++i) {
        clk.advance(std::chrono::seconds(5));
        c.on_timeout(clk.now);
        (void)take_ping(c);
        CHECK(c.state() == state::open);
        CHECK(c.next_deadline() == clk.now + std::chrono::seconds(5));
      }
    });
  }

  TEST_CASE("an application ping's pong reports its round-trip time") {
    gust::settings s;
    s.timeouts.ping_interval = duration::zero();
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      REQUIRE(!c.ping(bytes("app"), clk.now));
      CHECK(!c.next_deadline());  // an application ping has no timeout
      clk.advance(std::chrono::milliseconds(30));
      std::string keep;
      event ev = one_event(c, peer_frame(server, 0x8A, "app"), clk, keep);
      REQUIRE(std::holds_alternative<pong_event>(ev));
      REQUIRE(std::get<pong_event>(ev).rtt);
      CHECK(*std::get<pong_event>(ev).rtt == std::chrono::milliseconds(30));
      REQUIRE(c.latency());
      CHECK(*c.latency() == std::chrono::milliseconds(30));
    });
  }

  TEST_CASE("the keepalive is answered through an engine pair") {
    engine_pair p;
    p.pump();
    REQUIRE(p.client.state() == state::open);
    p.clk.advance(std::chrono::seconds(20));
    p.server.on_timeout(p.clk.now);
    p.client.on_timeout(p.clk.now);
    p.clk.advance(std::chrono::milliseconds(7));
    p.pump();
    CHECK(p.server.latency() == std::chrono::milliseconds(7));
    CHECK(p.client.latency() == std::chrono::milliseconds(7));
    CHECK(p.server.state() == state::open);
    CHECK(p.client.state() == state::open);
  }
}

TEST_SUITE("timers: close_timeout") {
  TEST_CASE("close() without an answer ends unclean after close_timeout") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      clk.advance(std::chrono::seconds(3));
      REQUIRE(!c.close(clk.now, 1000, "bye"));
      (void)take_output(c);
      // The close deadline replaces the keepalive ones.
      const time_point deadline = clk.now + std::chrono::seconds(10);
      CHECK(c.next_deadline() == deadline);
      clk.now = deadline - ns1;
      c.on_timeout(clk.now);
      check_nothing_happened(c, clk, state::closing, deadline);
      CHECK(!c.transport_should_close());
      clk.now = deadline;
      c.on_timeout(clk.now);
      auto events = drain(c, clk);
      REQUIRE(events.size() == 1);
      INFO(events[0]);
      // RFC 6455 7.1.5: no close frame received: 1006.
      CHECK(events[0] == "close:1006::unclean:local:close timeout");
      CHECK(c.state() == state::closed);
      CHECK(c.transport_should_close());
      CHECK(!c.next_deadline());
      CHECK(c.buffered_amount() == 0);
    });
  }

  TEST_CASE("close_timeout 0: close() waits without a deadline") {
    gust::settings s;
    s.timeouts.close_timeout = duration::zero();
    both_roles(s, [](connection& c, virtual_clock& clk, bool) {
      REQUIRE(!c.close(clk.now));
      CHECK(!c.next_deadline());
      clk.advance(std::chrono::hours(1));
      c.on_timeout(clk.now);
      CHECK(c.state() == state::closing);
    });
  }

  TEST_CASE("a client waits for the server to close the transport after a server-initiated close") {
    for (bool by_eof : {true, false}) {
      CAPTURE(by_eof);
      virtual_clock clk;
      auto cli = open_client(clk);
      clk.advance(std::chrono::seconds(2));
      CHECK(feed(cli, sframe(0x88, close_payload(1000, "done")), clk) ==
            strings{"close:1000:done:clean:peer:close handshake"});
      auto frames = parse_frames(take_output(cli));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].opcode == 0x8);
      CHECK(cli.state() == state::closed);
      CHECK(!cli.transport_should_close());
      const time_point deadline = clk.now + std::chrono::seconds(10);
      CHECK(cli.next_deadline() == deadline);
      clk.now = deadline - ns1;
      cli.on_timeout(clk.now);
      CHECK(!cli.transport_should_close());
      CHECK(drain(cli, clk).empty());
      if (by_eof) {
        cli.receive_eof(clk.now);
        CHECK(drain(cli, clk).empty());
        CHECK(cli.transport_should_close());
      } else {
        clk.now = deadline;
        cli.on_timeout(clk.now);
        CHECK(cli.transport_should_close());
        CHECK(drain(cli, clk).empty());  // the close_event was already given
      }
      CHECK(!cli.next_deadline());
    }
  }

  TEST_CASE("a client waits for the server to close the transport after its own close") {
    virtual_clock clk;
    auto cli = open_client(clk);
    REQUIRE(!cli.close(clk.now, 1001, "leaving"));
    (void)take_output(cli);
    clk.advance(std::chrono::seconds(4));
    CHECK(feed(cli, sframe(0x88, close_payload(1001)), clk) ==
          strings{"close:1001::clean:local:close handshake"});
    CHECK(!cli.transport_should_close());
    // From the end of the close handshake, not from close().
    CHECK(cli.next_deadline() == clk.now + std::chrono::seconds(10));
    clk.advance(std::chrono::seconds(10));
    cli.on_timeout(clk.now);
    CHECK(cli.transport_should_close());
  }

  TEST_CASE("a server closes the transport as soon as the close handshake ends") {
    SUBCASE("the client started it") {
      virtual_clock clk;
      auto srv = open_server(clk);
      CHECK(feed(srv, cframe(0x88, close_payload(1000)), clk) ==
            strings{"close:1000::clean:peer:close handshake"});
      CHECK(srv.transport_should_close());
      CHECK(!srv.next_deadline());
      auto frames = parse_frames(take_output(srv));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].opcode == 0x8);
    }
    SUBCASE("the server started it") {
      virtual_clock clk;
      auto srv = open_server(clk);
      REQUIRE(!srv.close(clk.now));
      CHECK(!srv.transport_should_close());
      CHECK(feed(srv, cframe(0x88, close_payload(1000)), clk) ==
            strings{"close:1000::clean:local:close handshake"});
      CHECK(srv.transport_should_close());
      CHECK(!srv.next_deadline());
    }
  }
}

TEST_SUITE("timers: deadlines") {
  TEST_CASE("on_timeout before every kind of deadline does nothing") {
    SUBCASE("keepalive ping") {
      both_roles({}, [](connection& c, virtual_clock& clk, bool) {
        const auto d = *c.next_deadline();
        for (duration early : {duration(std::chrono::seconds(19)), duration(std::chrono::seconds(20)) - ns1}) {
          c.on_timeout(d - std::chrono::seconds(20) + early);
          check_nothing_happened(c, clk, state::open, d);
        }
      });
    }
    SUBCASE("pong") {
      both_roles({}, [](connection& c, virtual_clock& clk, bool) {
        clk.advance(std::chrono::seconds(20));
        c.on_timeout(clk.now);
        (void)take_ping(c);
        const auto d = *c.next_deadline();
        c.on_timeout(d - ns1);
        check_nothing_happened(c, clk, state::open, d);
      });
    }
    SUBCASE("time going backwards") {
      both_roles({}, [](connection& c, virtual_clock& clk, bool) {
        const auto d = *c.next_deadline();
        c.on_timeout(clk.now - std::chrono::hours(1));
        check_nothing_happened(c, clk, state::open, d);
      });
    }
  }

  TEST_CASE("a late pong never sets a deadline in the past") {
    gust::settings s;
    s.timeouts.ping_interval = std::chrono::seconds(5);
    s.timeouts.ping_timeout = std::chrono::seconds(20);
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      clk.advance(std::chrono::seconds(5));
      c.on_timeout(clk.now);
      const std::string payload = take_ping(c);
      // The pong comes 12 s later: the next ping was due 7 s ago.
      clk.advance(std::chrono::seconds(12));
      std::string keep;
      event ev = one_event(c, peer_frame(server, 0x8A, payload), clk, keep);
      REQUIRE(std::holds_alternative<pong_event>(ev));
      REQUIRE(c.next_deadline());
      CHECK(*c.next_deadline() >= clk.now);
      CHECK(*c.next_deadline() <= clk.now + std::chrono::seconds(5));
      c.on_timeout(clk.now);
      (void)take_ping(c);
    });
  }

  TEST_CASE("a late on_timeout sets the next deadline from now") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      clk.advance(std::chrono::hours(2));  // the timer fired very late
      c.on_timeout(clk.now);
      (void)take_ping(c);
      CHECK(c.next_deadline() == clk.now + std::chrono::seconds(20));
    });
  }

  TEST_CASE("every deadline is at or after the time it was set") {
    gust::settings s;
    s.timeouts.ping_interval = std::chrono::seconds(3);
    s.timeouts.ping_timeout = std::chrono::seconds(7);
    engine_pair p(s, s);
    auto check_both = [&] {
      for (connection* c : {static_cast<connection*>(&p.client), static_cast<connection*>(&p.server)}) {
        if (auto d = c->next_deadline()) CHECK(*d >= p.clk.now);
      }
    };
    check_both();
    p.pump();
    check_both();
    for (int step = 0; step < 50; ++step) {
      CAPTURE(step);
      p.clk.advance(std::chrono::milliseconds(700 + 130 * (step % 7)));
      for (connection* c : {static_cast<connection*>(&p.client), static_cast<connection*>(&p.server)}) {
        if (auto d = c->next_deadline(); d && *d <= p.clk.now) c->on_timeout(p.clk.now);
      }
      check_both();
      if (step % 3 == 0) {
        p.pump();
        check_both();
      }
    }
    CHECK(p.client.state() == state::open);
    CHECK(p.server.state() == state::open);
    REQUIRE(!p.client.close(p.clk.now));
    check_both();
    p.pump();
    check_both();
    CHECK(p.client.state() == state::closed);
    CHECK(p.server.state() == state::closed);
  }
}
