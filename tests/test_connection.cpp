// The connection engine, by RFC 6455 section, in both roles.
#include <doctest.h>

#include <cstring>
#include <random>

#include "support/wire.hpp"

using namespace gust;
using namespace gust::test;
using strings = std::vector<std::string>;

TEST_SUITE("RFC 6455 5.7 examples") {
  TEST_CASE("a single-frame unmasked text message (server to client)") {
    virtual_clock clk;
    auto cli = open_client(clk);
    std::string wire = "\x81\x05\x48\x65\x6c\x6c\x6f";
    CHECK(feed(cli, wire, clk) == strings{"text:Hello"});
  }
  TEST_CASE("a single-frame masked text message (client to server)") {
    virtual_clock clk;
    auto srv = open_server(clk);
    std::string wire = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    CHECK(feed(srv, wire, clk) == strings{"text:Hello"});
  }
  TEST_CASE("a fragmented unmasked text message") {
    virtual_clock clk;
    auto cli = open_client(clk);
    std::string wire = std::string("\x01\x03\x48\x65\x6c", 5) + "\x80\x02\x6c\x6f";
    CHECK(feed(cli, wire, clk) == strings{"text:Hello"});
  }
  TEST_CASE("unmasked ping and masked pong") {
    virtual_clock clk;
    auto cli = open_client(clk);
    CHECK(feed(cli, "\x89\x05Hello", clk) == strings{"ping:" + hex("Hello")});
    auto frames = parse_frames(take_output(cli));
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].opcode == 0xA);
    CHECK(frames[0].masked);
    CHECK(frames[0].payload == "Hello");

    auto srv = open_server(clk);
    std::string pong = "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    CHECK(feed(srv, pong, clk) == strings{"pong:" + hex("Hello")});
  }
  TEST_CASE("256-byte and 64 KiB binary messages in one unmasked frame") {
    virtual_clock clk;
    auto cli = open_client(clk);
    std::string p256(256, 'x');
    std::string wire = std::string("\x82\x7E\x01\x00", 4) + p256;
    CHECK(feed(cli, wire, clk) == strings{"binary:" + hex(p256)});
    std::string p64(65536, 'y');
    wire = std::string("\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10) + p64;
    CHECK(feed(cli, wire, clk) == strings{"binary:" + hex(p64)});
  }
}

TEST_SUITE("RFC 6455 5.1 masking") {
  TEST_CASE("a server fails an unmasked frame with 1002") {
    virtual_clock clk;
    auto srv = open_server(clk);
    auto ev = feed(srv, sframe(0x81, "hi"), clk);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].rfind("close:1002:", 0) == 0);
    CHECK(srv.state() == state::closed);
    CHECK(srv.transport_should_close());
    auto frames = parse_frames(take_output(srv));
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].opcode == 0x8);
    CHECK(frames[0].payload.substr(0, 2) == close_payload(1002).substr(0, 2));
  }
  TEST_CASE("a client fails a masked frame with 1002") {
    virtual_clock clk;
    auto cli = open_client(clk);
    auto ev = feed(cli, cframe(0x81, "hi"), clk);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].rfind("close:1002:", 0) == 0);
  }
  TEST_CASE("a client masks every frame with a fresh key") {
    virtual_clock clk;
    auto cli = open_client(clk);
    REQUIRE(!cli.send_text("abc"));
    REQUIRE(!cli.send_text("abc"));
    std::string out = take_output(cli);
    auto frames = parse_frames(out);
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].masked);
    CHECK(frames[0].payload == "abc");
    CHECK(out.substr(2, 4) != out.substr(9 + 2, 4));
  }
}

TEST_SUITE("split input") {
  TEST_CASE("every split point and one byte at a time give the same events") {
    std::string wire = cframe(0x01, "Hel") + cframe(0x89, "p") + cframe(0x80, "lo") +
                       cframe(0x82, std::string(300, 'b')) + cframe(0x81, "κόσμε") +
                       cframe(0x88, close_payload(1000, "bye"));
    virtual_clock clk;
    strings whole;
    {
      auto srv = open_server(clk);
      whole = feed(srv, wire, clk);
    }
    REQUIRE(whole.size() == 5);
    for (std::size_t cut = 1; cut < wire.size(); ++cut) {
      auto srv = open_server(clk);
      CHECK(feed_split(srv, wire, clk, {cut}) == whole);
    }
    for (auto mode : {feed_mode::receive, feed_mode::prepare_commit}) {
      auto srv = open_server(clk);
      CHECK(feed(srv, wire, clk, 1, mode) == whole);
    }
    std::mt19937 rng(12345);
    for (int round = 0; round < 200; ++round) {
      std::vector<std::size_t> cuts;
      for (int i = 0; i < 5; ++i) cuts.push_back(rng() % wire.size());
      std::sort(cuts.begin(), cuts.end());
      auto srv = open_server(clk);
      INFO("seed 12345 round " << round);
      CHECK(feed_split(srv, wire, clk, cuts) == whole);
    }
  }
}

TEST_SUITE("in-memory pair") {
  TEST_CASE("handshake and messages of every boundary size, both ways") {
    gust::settings s;
    s.limits.max_message_size = 32 << 20;
    engine_pair p(s, s);
    p.pump();
    CHECK(p.client_events == strings{"open:"});
    CHECK(p.server_events == strings{"request:/", "open:"});
    for (std::size_t n : {0u, 1u, 125u, 126u, 127u, 65535u, 65536u, 16u << 20}) {
      std::string payload(n, 'a');
      for (std::size_t i = 0; i < n; ++i) payload[i] = static_cast<char>('a' + i % 26);
      p.client_events.clear();
      p.server_events.clear();
      REQUIRE(!p.client.send_binary(bytes(payload)));
      REQUIRE(!p.server.send_text(payload));
      p.pump();
      REQUIRE(p.server_events.size() == 1);
      REQUIRE(p.client_events.size() == 1);
      CHECK(p.server_events[0].size() == 7 + 2 * n);
      CHECK(p.client_events[0] == "text:" + payload);
    }
  }
}

#include "gust/drain.hpp"

TEST_SUITE("drain helper") {
  TEST_CASE("drain visits every available event in order and lets the visitor send") {
    virtual_clock clk;
    auto srv = open_server(clk);
    std::string wire = cframe(0x81, "one") + cframe(0x89, "p") + cframe(0x82, "two");
    srv.receive(std::as_writable_bytes(std::span(wire.data(), wire.size())), clk.now);
    strings seen;
    auto n = gust::drain(srv, clk.now, [&](const auto& ev) {
      seen.push_back(describe(event(ev)));
      if constexpr (std::is_same_v<std::decay_t<decltype(ev)>, message_event>)
        CHECK(!srv.send(ev.type, ev.data));
    });
    CHECK(n == 3);
    CHECK(seen == strings{"text:one", "ping:" + hex("p"), "binary:" + hex("two")});
    auto frames = parse_frames(take_output(srv));
    REQUIRE(frames.size() == 3);
    CHECK(frames[0].opcode == 0xA);  // the pong went ahead of the echoes
    CHECK(frames[1].payload == "one");
    CHECK(frames[2].payload == "two");
  }
}
