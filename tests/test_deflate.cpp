// permessage-deflate (RFC 7692) in the engine: messages, limits, memory.
// Negotiation tables are in test_deflate_negotiation.cpp.
#include <doctest.h>

#include <zlib.h>

#include <random>

#include "gust/deflate_pool.hpp"
#include "support/wire.hpp"

using namespace gust;
using namespace gust::test;
using strings = std::vector<std::string>;

namespace {

gust::settings deflate_settings(bool no_context = false, int window = 15) {
  gust::settings s;
  s.deflate.enabled = true;
  s.deflate.min_size = 0;
  s.deflate.server_no_context_takeover = no_context;
  s.deflate.client_no_context_takeover = no_context;
  s.deflate.server_max_window_bits = window;
  s.deflate.client_max_window_bits = window;
  s.timeouts.ping_interval = {};
  return s;
}

// A server that accepted "permessage-deflate" with the given offer.
server_connection deflate_server(virtual_clock& clk, gust::settings s,
                                 std::string_view offer = "permessage-deflate") {
  server_connection srv(clk.now, s);
  std::string extra = "Sec-WebSocket-Extensions: " + std::string(offer) + "\r\n";
  auto ev = feed(srv, upgrade_request(extra), clk);
  REQUIRE(ev.size() == 2);
  REQUIRE(ev[1] == "open:");
  std::string response = take_output(srv);
  REQUIRE(response.find("Sec-WebSocket-Extensions: permessage-deflate") != std::string::npos);
  REQUIRE(srv.compression_enabled());
  return srv;
}

// A client whose offer a deflate-enabled server engine accepted.
client_connection deflate_client(virtual_clock& clk, gust::settings cs, gust::settings ss) {
  cs.random = counting_random();
  client_options o;
  o.host = "localhost";
  client_connection cli(clk.now, o, cs);
  server_connection srv(clk.now, ss);
  REQUIRE(feed(srv, take_output(cli), clk).size() == 2);
  auto ev = feed(cli, take_output(srv), clk);
  REQUIRE(ev.size() == 1);
  REQUIRE(ev[0] == "open:");
  REQUIRE(cli.compression_enabled());
  return cli;
}

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

std::string random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

}  // namespace

TEST_SUITE("RFC 7692 7.2.3 examples") {
  TEST_CASE("7.2.3.1 a message compressed in one frame: Hello") {
    virtual_clock clk;
    auto cli = deflate_client(clk, deflate_settings(), deflate_settings());
    CHECK(feed(cli, unhex("c107f248cdc9c90700"), clk) == strings{"text:Hello"});
    // And the server writes exactly those bytes.
    auto srv = deflate_server(clk, deflate_settings());
    REQUIRE(!srv.send_text("Hello"));
    CHECK(hex(take_output(srv)) == "c107f248cdc9c90700");
  }
  TEST_CASE("7.2.3.1 the same message fragmented") {
    virtual_clock clk;
    auto cli = deflate_client(clk, deflate_settings(), deflate_settings());
    CHECK(feed(cli, unhex("4103f248cd") + unhex("8004c9c90700"), clk) == strings{"text:Hello"});
  }
  TEST_CASE("7.2.3.2 sharing the LZ77 window: the second Hello refers to the first") {
    virtual_clock clk;
    auto cli = deflate_client(clk, deflate_settings(), deflate_settings());
    CHECK(feed(cli, unhex("c107f248cdc9c90700") + unhex("c105f200110000"), clk) ==
          strings{"text:Hello", "text:Hello"});
    auto srv = deflate_server(clk, deflate_settings());
    REQUIRE(!srv.send_text("Hello"));
    REQUIRE(!srv.send_text("Hello"));
    CHECK(hex(take_output(srv)) == "c107f248cdc9c90700c105f200110000");
  }
  TEST_CASE("7.2.3.2 without context takeover the second message is compressed anew") {
    virtual_clock clk;
    auto srv = deflate_server(clk, deflate_settings(true), "permessage-deflate; server_no_context_takeover");
    REQUIRE(!srv.send_text("Hello"));
    REQUIRE(!srv.send_text("Hello"));
    CHECK(hex(take_output(srv)) == "c107f248cdc9c90700c107f248cdc9c90700");
  }
  TEST_CASE("7.2.3.3 a DEFLATE block with no compression") {
    virtual_clock clk;
    auto cli = deflate_client(clk, deflate_settings(), deflate_settings());
    CHECK(feed(cli, unhex("c10b000500faff48656c6c6f00"), clk) == strings{"text:Hello"});
  }
  TEST_CASE("7.2.3.4 a DEFLATE block with BFINAL set") {
    virtual_clock clk;
    auto cli = deflate_client(clk, deflate_settings(), deflate_settings());
    CHECK(feed(cli, unhex("c108f348cdc9c9070000"), clk) == strings{"text:Hello"});
    // The stream was ended by the sender: the next message starts a new one.
    CHECK(feed(cli, unhex("c107f248cdc9c90700"), clk) == strings{"text:Hello"});
  }
  TEST_CASE("7.2.3.5 two DEFLATE blocks in one message") {
    virtual_clock clk;
    auto cli = deflate_client(clk, deflate_settings(), deflate_settings());
    CHECK(feed(cli, unhex("c10df24805000000ffffcac9c90700"), clk) == strings{"text:Hello"});
  }
  TEST_CASE("an empty message compresses to the single byte 00") {
    virtual_clock clk;
    auto cli = deflate_client(clk, deflate_settings(), deflate_settings());
    CHECK(feed(cli, unhex("c10100"), clk) == strings{"text:"});
    CHECK(feed(cli, unhex("c20100"), clk) == strings{"binary:"});
    auto srv = deflate_server(clk, deflate_settings());
    REQUIRE(!srv.send_text(""));
    CHECK(hex(take_output(srv)) == "c10100");
  }
}

TEST_SUITE("RFC 7692 6 RSV1") {
  TEST_CASE("RSV1 without negotiation fails 1002, both roles") {
    virtual_clock clk;
    auto srv = open_server(clk);
    auto ev = feed(srv, cframe(0xC1, "x"), clk);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].rfind("close:1002:", 0) == 0);
    auto cli = open_client(clk);
    ev = feed(cli, sframe(0xC1, "x"), clk);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].rfind("close:1002:", 0) == 0);
  }
  TEST_CASE("a compressed control frame fails 1002") {
    virtual_clock clk;
    for (std::uint8_t b0 : {std::uint8_t{0xC9}, std::uint8_t{0xCA}, std::uint8_t{0xC8}}) {
      auto srv = deflate_server(clk, deflate_settings());
      auto ev = feed(srv, cframe(b0, ""), clk);
      REQUIRE(ev.size() == 1);
      CHECK(ev[0].rfind("close:1002:compressed control frame", 0) == 0);
    }
  }
  TEST_CASE("RSV1 on a continuation frame fails 1002") {
    virtual_clock clk;
    auto cli = deflate_client(clk, deflate_settings(), deflate_settings());
    auto ev = feed(cli, unhex("4103f248cd") + unhex("c004c9c90700"), clk);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].rfind("close:1002:RSV1 on a continuation frame", 0) == 0);
  }
  TEST_CASE("RSV2 and RSV3 still fail with deflate negotiated") {
    virtual_clock clk;
    auto srv = deflate_server(clk, deflate_settings());
    auto ev = feed(srv, cframe(0xA1, "x"), clk);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].rfind("close:1002:", 0) == 0);
  }
  TEST_CASE("uncompressed messages (RSV1 clear) are still accepted") {
    virtual_clock clk;
    auto srv = deflate_server(clk, deflate_settings());
    CHECK(feed(srv, cframe(0x81, "plain"), clk) == strings{"text:plain"});
  }
  TEST_CASE("corrupt compressed data fails 1007") {
    virtual_clock clk;
    auto cli = deflate_client(clk, deflate_settings(), deflate_settings());
    auto ev = feed(cli, unhex("c102ffff"), clk);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].rfind("close:1007:", 0) == 0);
  }
  TEST_CASE("compressed text that inflates to invalid UTF-8 fails 1007") {
    engine_pair p(deflate_settings(), deflate_settings());
    p.pump();
    // Send binary bytes that are not UTF-8, then relabel the frame as text.
    REQUIRE(!p.server.send_binary(bytes("\xff\xfe not utf-8 at all")));
    std::string wire = take_output(p.server);
    wire[0] = static_cast<char>((wire[0] & 0xF0) | 0x1);
    auto ev = feed(p.client, wire, p.clk);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].rfind("close:1007:", 0) == 0);
  }
}

TEST_SUITE("RFC 7692 limits") {
  TEST_CASE("a 1 GiB decompression bomb is refused at the limit after a bounded amount of input") {
    // Deflate cannot pass about 1032:1, so 1 GiB of zeros takes about 1 MiB
    // on the wire; zlib makes it here from a reused 1 MiB zero buffer.
    std::string wire_payload;
    {
      z_stream z{};
      REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) == Z_OK);
      std::vector<unsigned char> zeros(1 << 20, 0), out(1 << 16);
      for (int mib = 0; mib < 1024; ++mib) {
        z.next_in = zeros.data();
        z.avail_in = static_cast<uInt>(zeros.size());
        const int flush = mib == 1023 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        do {
          z.next_out = out.data();
          z.avail_out = static_cast<uInt>(out.size());
          deflate(&z, flush);
          wire_payload.append(reinterpret_cast<char*>(out.data()), out.size() - z.avail_out);
        } while (z.avail_out == 0);
      }
      deflateEnd(&z);
      REQUIRE(wire_payload.size() > 4);
      wire_payload.resize(wire_payload.size() - 4);  // the 00 00 ff ff
    }
    MESSAGE("1 GiB bomb: " << wire_payload.size() << " bytes on the wire");
    CHECK(wire_payload.size() < (2u << 20));
    virtual_clock clk;
    auto cli = deflate_client(clk, deflate_settings(), deflate_settings());  // 1 MiB limit
    std::string wire = frame(0xC2, wire_payload, false);
    // Fed in 4 KiB reads: the close must come within the first few reads
    // (about 1 KiB of input inflates past 1 MiB), not after a gigabyte.
    strings events;
    std::size_t fed = 0;
    for (; fed < wire.size() && events.empty(); fed += 4096) events = feed(cli, wire.substr(fed, 4096), clk);
    REQUIRE(events.size() == 1);
    CHECK(events[0].rfind("close:1009:", 0) == 0);
    CHECK(fed <= 16 * 4096);
    CHECK(cli.memory().total() < (4u << 20));
  }

  TEST_CASE("a decompression bomb fails 1009 at the limit, in bounded time and memory") {
    // 1 GiB of zeros deflates to about 1 MiB; a few KiB of it already
    // inflate to far more than the 1 MiB limit.
    virtual_clock clk;
    auto cli = deflate_client(clk, deflate_settings(), deflate_settings());
    // Make the bomb with a sender engine: 64 MiB of zeros, compressed.
    gust::settings big = deflate_settings();
    big.limits.max_message_size = 128 << 20;
    big.max_send_frame_size = 0;
    auto srv = deflate_server(clk, big);
    std::string zeros(64 << 20, '\0');
    REQUIRE(!srv.send_binary(bytes(zeros)));
    std::string wire = take_output(srv);
    CHECK(wire.size() < 128 * 1024);
    // The client's limit is the default 1 MiB: fed in 4 KiB pieces, it must
    // stop before reading much of it.
    auto ev = feed(cli, wire, clk, 4096);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].rfind("close:1009:", 0) == 0);
    CHECK(cli.memory().total() < 4u << 20);
  }
  TEST_CASE("exactly max_message_size after inflating is delivered, one more byte fails") {
    gust::settings s = deflate_settings();
    s.limits.max_message_size = 100000;
    engine_pair p(s, s);
    p.pump();
    std::string ok = repetitive(100000);
    REQUIRE(!p.server.send_text(ok));
    p.pump();
    REQUIRE(p.client_events.size() == 2);
    CHECK(p.client_events[1] == "text:" + ok);
    gust::settings big = s;
    big.limits.max_message_size = 1 << 20;
    engine_pair q(s, big);
    q.pump();
    REQUIRE(!q.server.send_text(repetitive(100001)));
    q.pump();
    REQUIRE(q.client_events.size() == 2);
    CHECK(q.client_events[1].rfind("close:1009:", 0) == 0);
  }
}

TEST_SUITE("RFC 7692 round trips") {
  TEST_CASE("every combination of context takeover and window bits, both ways, whole and fragmented") {
    for (bool no_context : {false, true}) {
      for (int bits = 9; bits <= 15; ++bits) {
        CAPTURE(no_context);
        CAPTURE(bits);
        gust::settings s = deflate_settings(no_context, bits);
        s.limits.max_message_size = 4 << 20;
        s.max_send_frame_size = 16 * 1024;
        engine_pair p(s, s);
        p.pump();
        REQUIRE(p.client.compression_enabled());
        std::vector<std::string> payloads = {"", "a", repetitive(1000), random_bytes(3000, 7),
                                             repetitive(200000), random_bytes(70000, 9)};
        for (const auto& m : payloads) {
          p.client_events.clear();
          p.server_events.clear();
          REQUIRE(!p.client.send_binary(bytes(m)));
          REQUIRE(!p.server.send_binary(bytes(m)));
          // Fragmented by the application, compressed as one stream.
          const std::size_t half = m.size() / 2;
          REQUIRE(!p.client.send_fragment(message_type::binary, bytes(m).subspan(0, half), false));
          REQUIRE(!p.client.send_fragment(message_type::binary, bytes(m).subspan(half), true));
          REQUIRE(!p.server.send_fragment(message_type::binary, bytes(m).subspan(0, half), false));
          REQUIRE(!p.server.send_fragment(message_type::binary, bytes(m).subspan(half), true));
          p.pump(1000);
          REQUIRE(p.server_events.size() == 2);
          REQUIRE(p.client_events.size() == 2);
          CHECK(p.server_events[0] == "binary:" + hex(m));
          CHECK(p.server_events[1] == "binary:" + hex(m));
          CHECK(p.client_events[0] == "binary:" + hex(m));
          CHECK(p.client_events[1] == "binary:" + hex(m));
        }
      }
    }
  }
  TEST_CASE("16 MiB of random and of repetitive data, both ways") {
    gust::settings s = deflate_settings();
    s.limits.max_message_size = 32 << 20;
    engine_pair p(s, s);
    p.pump();
    for (const auto& m : {repetitive(16 << 20), random_bytes(16 << 20, 3)}) {
      p.client_events.clear();
      p.server_events.clear();
      REQUIRE(!p.client.send_binary(bytes(m)));
      REQUIRE(!p.server.send_text(repetitive(m.size())));
      p.pump();
      REQUIRE(p.server_events.size() == 1);
      REQUIRE(p.client_events.size() == 1);
      CHECK(p.server_events[0].size() == 7 + 2 * m.size());
      CHECK(p.server_events[0] == "binary:" + hex(m));
      CHECK(p.client_events[0] == "text:" + repetitive(m.size()));
    }
  }
  TEST_CASE("a message can be sent uncompressed, and small ones are") {
    gust::settings s = deflate_settings();
    s.deflate.min_size = 100;
    virtual_clock clk;
    auto srv = deflate_server(clk, s);
    REQUIRE(!srv.send_text("short"));
    REQUIRE(!srv.send(message_type::text, bytes(repetitive(1000)), false));
    REQUIRE(!srv.send(message_type::text, bytes(repetitive(1000)), true));
    auto frames = parse_frames(take_output(srv));
    REQUIRE(frames.size() == 3);
    CHECK(frames[0].rsv == 0);
    CHECK(frames[1].rsv == 0);
    CHECK(frames[1].payload == repetitive(1000));
    CHECK(frames[2].rsv == 4);
    CHECK(frames[2].payload.size() < 200);
  }
  TEST_CASE("partial delivery inflates chunk by chunk") {
    gust::settings s = deflate_settings();
    s.deliver_partial_messages = true;
    s.limits.max_message_size = 4 << 20;
    engine_pair p(s, s);
    p.pump();
    std::string m = repetitive(1 << 20);
    REQUIRE(!p.server.send_text(m));
    p.pump(512);
    std::string joined;
    std::size_t chunks = 0;
    for (auto& e : p.client_events) {
      if (e.rfind("text:", 0) != 0) continue;
      bool more = e.size() >= 5 && e.compare(e.size() - 5, 5, ":more") == 0;
      joined += e.substr(5, e.size() - 5 - (more ? 5 : 0));
      ++chunks;
    }
    CHECK(chunks > 1);
    CHECK(joined == m);
  }
}

TEST_SUITE("Autobahn 12 and 13 (permessage-deflate)") {
  // 12.x: messages of many sizes, compressed, echoed; 13.x: the same under
  // each parameter combination. Our pair plays both the fuzzing client and
  // the echoing server, in both directions.
  TEST_CASE("12.1-12.5 sizes 16 B to 128 KiB, text and binary, 100 messages each, echoed") {
    for (std::size_t size : {16u, 64u, 256u, 1024u, 4096u, 8192u, 16384u, 32768u, 65536u, 131072u}) {
      CAPTURE(size);
      engine_pair p(deflate_settings(), deflate_settings());
      p.pump();
      for (int i = 0; i < 100; ++i) {
        std::string m = (i % 2 ? random_bytes(size, static_cast<std::uint32_t>(i)) : repetitive(size));
        REQUIRE(!p.client.send_binary(bytes(m)));
      }
      p.pump();
      REQUIRE(p.server_events.size() == 102);
      for (std::size_t i = 2; i < p.server_events.size(); ++i) {
        const int n = static_cast<int>(i - 2);
        std::string m = (n % 2 ? random_bytes(size, static_cast<std::uint32_t>(n)) : repetitive(size));
        CHECK(p.server_events[i] == "binary:" + hex(m));
      }
    }
  }
  TEST_CASE("13.1-13.7 parameter combinations offered by the client and accepted by the server") {
    struct combo {
      bool server_no_ctx, client_no_ctx;
      int server_bits, client_bits;
    };
    const combo combos[] = {{false, false, 15, 15}, {true, false, 15, 15}, {false, true, 15, 15},
                            {true, true, 15, 15},   {false, false, 9, 9},  {false, false, 15, 9},
                            {true, true, 9, 9},     {false, false, 12, 10}};
    for (auto c : combos) {
      CAPTURE(c.server_no_ctx);
      CAPTURE(c.client_no_ctx);
      CAPTURE(c.server_bits);
      CAPTURE(c.client_bits);
      gust::settings cs = deflate_settings();
      cs.deflate.server_no_context_takeover = c.server_no_ctx;
      cs.deflate.client_no_context_takeover = c.client_no_ctx;
      cs.deflate.server_max_window_bits = c.server_bits;
      cs.deflate.client_max_window_bits = c.client_bits;
      engine_pair p(cs, deflate_settings());
      p.pump();
      REQUIRE(p.client.compression_enabled());
      REQUIRE(p.server.compression_enabled());
      for (int i = 0; i < 50; ++i) {
        std::string m = repetitive(static_cast<std::size_t>(100 + 997 * i));
        REQUIRE(!p.client.send_text(m));
        REQUIRE(!p.server.send_text(m));
      }
      p.pump();
      REQUIRE(p.server_events.size() == 52);
      REQUIRE(p.client_events.size() == 51);
      for (int i = 0; i < 50; ++i) {
        std::string m = "text:" + repetitive(static_cast<std::size_t>(100 + 997 * i));
        CHECK(p.server_events[static_cast<std::size_t>(i) + 2] == m);
        CHECK(p.client_events[static_cast<std::size_t>(i) + 1] == m);
      }
    }
  }
}

TEST_SUITE("RFC 7692 memory") {
  TEST_CASE("compression off holds no zlib memory; context takeover holds it; a pool holds none per connection") {
    virtual_clock clk;
    // Off.
    {
      auto srv = open_server(clk);
      REQUIRE(!srv.send_text(repetitive(1000)));
      CHECK(srv.memory().compression == 0);
    }
    // Full context takeover: the streams stay with the connection.
    {
      auto srv = deflate_server(clk, deflate_settings());
      REQUIRE(!srv.send_text(repetitive(1000)));
      (void)take_output(srv);
      CHECK(feed(srv, cframe(0xC1, unhex("f248cdc9c90700")), clk) == strings{"text:Hello"});
      MESSAGE("context takeover, window 15, memLevel 8: " << srv.memory().compression << " bytes");
      CHECK(srv.memory().compression > 200000);
    }
    // Smaller window and memLevel: less.
    {
      gust::settings s = deflate_settings(false, 10);
      s.deflate.mem_level = 4;
      auto srv = deflate_server(clk, s, "permessage-deflate; client_max_window_bits");
      REQUIRE(!srv.send_text(repetitive(1000)));
      (void)take_output(srv);
      MESSAGE("context takeover, window 10, memLevel 4: " << srv.memory().compression << " bytes");
      CHECK(srv.memory().compression < 60000);
    }
    // No context takeover with a shared pool: nothing kept between messages.
    {
      deflate_pool pool;
      gust::settings s = deflate_settings(true);
      s.deflate.pool = &pool;
      std::vector<server_connection> conns;
      for (int i = 0; i < 10; ++i) {
        conns.push_back(deflate_server(clk, s, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"));
        REQUIRE(!conns.back().send_text(repetitive(1000)));
        (void)take_output(conns.back());
        CHECK(feed(conns.back(), cframe(0xC1, unhex("f248cdc9c90700")), clk) == strings{"text:Hello"});
        CHECK(conns.back().memory().compression == 0);
      }
      // One compressor and one decompressor serve all ten.
      CHECK(pool.streams() == 2);
      MESSAGE("no context takeover, shared pool: 0 bytes per connection, pool holds " << pool.memory());
    }
  }
}

TEST_SUITE("RFC 7692 7.1 several offers") {
  client_options localhost() {
    client_options o;
    o.host = "localhost";
    return o;
  }

  // A 101 for the client's request, with `extensions` as the server's answer.
  std::string answer_with(client_connection& cli, virtual_clock& clk, std::string_view extensions) {
    std::string request = take_output(cli);
    server_connection plain(clk.now);
    REQUIRE(feed(plain, request, clk).size() == 2);
    std::string response = take_output(plain);
    response.insert(response.size() - 2, "Sec-WebSocket-Extensions: " + std::string(extensions) + "\r\n");
    return response;
  }

  TEST_CASE("the client sends its offers in order and accepts an answer that fits a later one") {
    gust::settings cs = deflate_settings();
    cs.deflate.server_no_context_takeover = true;  // first: ask the server not to keep context
    gust::deflate_options plain;
    plain.enabled = true;
    cs.deflate.fallback_offers.push_back(plain);   // then: anything
    cs.random = counting_random();
    virtual_clock clk;
    client_connection cli(clk.now, localhost(), cs);
    const std::string request = [&] {
      std::string r;
      for (auto b : cli.pending_output()) r.append(static_cast<const char*>(b.data), b.size);
      return r;
    }();
    CHECK(request.find("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                       "client_max_window_bits, permessage-deflate; client_max_window_bits\r\n") !=
          std::string::npos);
    // The server keeps its context: that fits only the second offer.
    auto ev = feed(cli, answer_with(cli, clk, "permessage-deflate"), clk);
    REQUIRE(ev == strings{"open:"});
    CHECK(cli.compression_enabled());
  }
  TEST_CASE("an answer that fits no offer fails the handshake") {
    gust::settings cs = deflate_settings();
    cs.deflate.server_no_context_takeover = true;
    cs.random = counting_random();
    virtual_clock clk;
    client_connection cli(clk.now, localhost(), cs);
    auto ev = feed(cli, answer_with(cli, clk, "permessage-deflate"), clk);
    CHECK(ev == strings{"handshake_failure:unexpected_extension"});
    CHECK(cli.state() == state::closed);
  }
  TEST_CASE("the server takes the first offer it can honour") {
    virtual_clock clk;
    // zlib cannot compress with a 256-byte window: the first offer is declined.
    auto srv = deflate_server(clk, deflate_settings(),
                              "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=10");
    CHECK(srv.extensions() == "permessage-deflate; server_max_window_bits=10");
  }
}

TEST_SUITE("RFC 7692 regressions found by fuzzing") {
  TEST_CASE("an empty final fragment after a non-empty one keeps the stream in step") {
    // fuzz/regressions/roundtrip/deflate-empty-final-fragment-desyncs-the-stream
    engine_pair p(deflate_settings(), deflate_settings());
    p.pump();
    REQUIRE(!p.client.send_fragment(message_type::binary, bytes("a"), false));
    REQUIRE(!p.client.send_fragment(message_type::binary, bytes(""), true));
    REQUIRE(!p.client.send_fragment(message_type::binary, bytes(""), true));
    REQUIRE(!p.client.send_text("after"));
    p.pump();
    CHECK(p.server_events == strings{"request:/", "open:", "binary:" + hex("a"), "binary:", "text:after"});
  }
  TEST_CASE("a compressed text message over the limit whose in-limit part is not UTF-8 fails 1007, however split") {
    // fuzz/regressions/frames_server/deflate-too-big-hides-invalid-utf8-depending-on-split
    gust::settings s = deflate_settings();
    s.limits.max_message_size = 1 << 20;
    engine_pair big(s, s);
    big.pump();
    std::string m = "\xc0" + repetitive(300);  // invalid from its first byte
    REQUIRE(!big.server.send_binary(bytes(m)));
    std::string wire = take_output(big.server);
    wire[0] = static_cast<char>((wire[0] & 0xF0) | 0x1);  // relabel as text
    gust::settings small = deflate_settings();
    small.limits.max_message_size = 100;
    for (std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{7}}) {
      CAPTURE(chunk);
      virtual_clock clk;
      auto cli = deflate_client(clk, small, deflate_settings());
      auto ev = feed(cli, wire, clk, chunk);
      REQUIRE(ev.size() == 1);
      CHECK(ev[0].rfind("close:1007:", 0) == 0);
    }
  }
}
