// Limits that protect the engine from its peer (settings.hpp gust::limits),
// in both roles where they apply.
#include <doctest.h>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "gust/output_pool.hpp"
#include "support/allocations.hpp"
#include "support/roles.hpp"
#include "support/wire.hpp"

using namespace gust;
using namespace gust::test;

// ---------------------------------------------------------------------------
// The largest single allocation proves that nothing is allocated in
// proportion to a length the peer announced.


// ---------------------------------------------------------------------------

namespace {

constexpr std::size_t one_mib = std::size_t{1} << 20;

/// The settings of the tests of pooled storage: buffers borrowed from
/// `pool`, no keepalive timer.
gust::settings pooled(gust::output_pool& pool, std::size_t max_message_size = one_mib) {
  gust::settings s;
  s.output_pool = &pool;
  s.limits.max_message_size = max_message_size;
  s.timeouts.ping_interval = {};
  return s;
}

/// A frame header written by hand: `len7` and the extended length bytes as
/// given (to write non-minimal encodings), masked towards a server.
std::string raw_header(bool server_side, std::uint8_t b0, std::uint8_t len7,
                       std::string_view ext_len) {
  std::string h;
  h.push_back(static_cast<char>(b0));
  h.push_back(static_cast<char>((server_side ? 0x80 : 0) | len7));
  h.append(ext_len);
  if (server_side) h.append("\x37\xfa\x21\x3d", 4);
  return h;
}

std::string masked_payload(bool server_side, std::string_view p) {
  if (!server_side) return std::string(p);
  const char k[4] = {'\x37', '\xfa', '\x21', '\x3d'};
  std::string out(p);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(out[i] ^ k[i % 4]);
  return out;
}

/// The connection failed with `code` because of the peer (RFC 6455 7.1.7).
void check_failed(const strings& ev, std::uint16_t code) {
  REQUIRE(ev.size() >= 1);
  INFO("event: " << ev.back());
  CHECK(starts_with(ev.back(), "close:" + std::to_string(code) + ":"));
  CHECK(ends_with(ev.back(), ":unclean:local:protocol error"));
}

/// The only output is one close frame carrying `code`.
void check_close_frame(connection& c, std::uint16_t code) {
  auto frames = parse_frames(take_output(c));
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].opcode == 0x8);
  CHECK(frames[0].masked == (c.role() == role::client));
  REQUIRE(frames[0].payload.size() >= 2);
  CHECK(frames[0].payload.substr(0, 2) == close_payload(code).substr(0, 2));
}

/// Hands `input` (writable, owned by the caller and allocated before any
/// tracking starts) to `c` in pieces of `chunk` bytes, pulling events.
strings receive_owned(connection& c, std::string& input, virtual_clock& clk, std::size_t chunk) {
  strings ev;
  if (chunk == 0) chunk = input.size();
  for (std::size_t pos = 0; pos < input.size(); pos += chunk) {
    const std::size_t n = std::min(chunk, input.size() - pos);
    c.receive(std::as_writable_bytes(std::span(input.data() + pos, n)), clk.now);
    while (auto e = c.next_event(clk.now)) ev.push_back(describe(*e));
  }
  return ev;
}

}  // namespace

TEST_SUITE("limits") {
  TEST_CASE("a frame announcing more than max_message_size fails with 1009 once its header is in") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      // Only the header: the payload never comes.
      const std::string header = peer_frame(server, 0x82, "", one_mib + 1);
      strings ev;
      std::size_t largest = 0;
      {
        allocation_scope track;
        ev = feed(c, header, clk, 0, feed_mode::prepare_commit);
        largest = track.largest();
      }
      REQUIRE(ev.size() == 1);
      check_failed(ev, 1009);
      CHECK(c.state() == state::closed);
      CHECK(c.transport_should_close());
      CHECK(c.memory().total() < 64 * 1024);
      CHECK(largest < 64 * 1024);
      check_close_frame(c, 1009);
    });
  }

  TEST_CASE("a frame announcing exactly max_message_size waits for its payload and is delivered") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      const std::string payload = pattern(one_mib);
      const std::string wire = peer_frame(server, 0x81, payload);
      const std::size_t header_size = wire.size() - payload.size();
      // The header alone is no failure.
      auto ev = feed_split(c, wire, clk, {header_size, header_size + 1000});
      REQUIRE(ev.size() == 1);
      CHECK(ev[0] == "text:" + payload);
      CHECK(c.state() == state::open);
      CHECK(take_output(c).empty());
    });
  }

  TEST_CASE("a fragmented message passing max_message_size fails with 1009 at the header that passes it") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      const std::string first = peer_frame(server, 0x02, pattern(600 * 1024));
      CHECK(feed(c, first, clk).empty());
      // 600 KiB + 600 KiB > 1 MiB: refused before any of the second payload.
      const std::string second_header = peer_frame(server, 0x80, "", 600 * 1024);
      auto ev = feed(c, second_header, clk);
      REQUIRE(ev.size() == 1);
      check_failed(ev, 1009);
      CHECK(c.transport_should_close());
      check_close_frame(c, 1009);
    });
  }

  TEST_CASE("a fragmented message of exactly max_message_size is delivered") {
    gust::settings s;
    s.limits.max_message_size = 1000;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      const std::string payload = pattern(1000);
      const std::string wire = peer_frame(server, 0x01, payload.substr(0, 400)) +
                               peer_frame(server, 0x00, payload.substr(400, 0)) +
                               peer_frame(server, 0x00, payload.substr(400, 599)) +
                               peer_frame(server, 0x80, payload.substr(999));
      CHECK(feed(c, wire, clk) == strings{"text:" + payload});
      // One byte more in the next message is too much.
      const std::string over = peer_frame(server, 0x01, payload.substr(0, 400)) +
                               peer_frame(server, 0x80, payload.substr(0, 601));
      auto ev = feed(c, over, clk);
      REQUIRE(ev.size() == 1);
      check_failed(ev, 1009);
    });
  }

  TEST_CASE("max_frame_size bounds a single frame below max_message_size") {
    gust::settings s;
    s.limits.max_message_size = 1000;
    s.limits.max_frame_size = 100;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      // Frames of exactly 100 bytes make a message of 500: fine.
      std::string payload = pattern(500);
      std::string wire;
      for (int i = 0; i < 5; ++i)
        wire += peer_frame(server, static_cast<std::uint8_t>((i == 0 ? 0x02 : 0x00) | (i == 4 ? 0x80 : 0)),
                           payload.substr(static_cast<std::size_t>(i) * 100, 100));
      CHECK(feed(c, wire, clk) == strings{"binary:" + hex(payload)});
      // A single frame of 101 bytes is not, though the message would fit.
      auto ev = feed(c, peer_frame(server, 0x82, "", 101), clk);
      REQUIRE(ev.size() == 1);
      check_failed(ev, 1009);
      check_close_frame(c, 1009);
    });
  }

  TEST_CASE("max_frame_size 0 means max_message_size") {
    gust::settings s;
    s.limits.max_message_size = 300;
    s.limits.max_frame_size = 0;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      CHECK(feed(c, peer_frame(server, 0x81, pattern(300)), clk) == strings{"text:" + pattern(300)});
      auto ev = feed(c, peer_frame(server, 0x81, "", 301), clk);
      REQUIRE(ev.size() == 1);
      check_failed(ev, 1009);
    });
  }

  TEST_CASE("max_fragments counts empty continuation frames") {
    gust::settings s;
    s.limits.max_fragments = 4;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      // Four frames, three of them empty: at the limit.
      std::string ok = peer_frame(server, 0x01, "a") + peer_frame(server, 0x00, "") +
                       peer_frame(server, 0x00, "") + peer_frame(server, 0x80, "");
      CHECK(feed(c, ok, clk) == strings{"text:a"});
      // Five frames of which four are empty (no bytes at all): one too many.
      std::string flood = peer_frame(server, 0x02, "") + peer_frame(server, 0x00, "") +
                          peer_frame(server, 0x00, "") + peer_frame(server, 0x00, "");
      CHECK(feed(c, flood, clk).empty());
      auto ev = feed(c, peer_frame(server, 0x00, ""), clk);
      REQUIRE(ev.size() == 1);
      check_failed(ev, 1009);
      CHECK(c.transport_should_close());
      check_close_frame(c, 1009);
    });
  }

  TEST_CASE("the fragment count starts again with every message") {
    gust::settings s;
    s.limits.max_fragments = 2;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      std::string wire;
      for (int i = 0; i < 10; ++i) wire += peer_frame(server, 0x01, "x") + peer_frame(server, 0x80, "y");
      CHECK(feed(c, wire, clk) == strings(10, "text:xy"));
      CHECK(c.state() == state::open);
    });
  }

  TEST_CASE("a frame announcing 2^63-1 bytes fails with 1009 without allocating for it") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      const std::string header = peer_frame(server, 0x82, "", 0x7FFF'FFFF'FFFF'FFFFull);
      strings ev;
      std::size_t largest = 0;
      {
        allocation_scope track;
        ev = feed(c, header, clk);
        largest = track.largest();
      }
      REQUIRE(ev.size() == 1);
      check_failed(ev, 1009);
      CHECK(largest < 64 * 1024);
      CHECK(c.memory().total() < 64 * 1024);
      check_close_frame(c, 1009);
    });
  }

  TEST_CASE("a 2^63-1 continuation after a first fragment fails with 1009 (no overflow)") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      CHECK(feed(c, peer_frame(server, 0x02, pattern(1000)), clk).empty());
      auto ev = feed(c, peer_frame(server, 0x80, "", 0x7FFF'FFFF'FFFF'FFFFull), clk);
      REQUIRE(ev.size() == 1);
      check_failed(ev, 1009);
    });
  }

  TEST_CASE("a 64-bit length with its most significant bit set fails with 1002") {
    // RFC 6455 5.2: "the most significant bit MUST be 0".
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      auto ev = feed(c, peer_frame(server, 0x82, "", 0x8000'0000'0000'0005ull), clk);
      REQUIRE(ev.size() == 1);
      check_failed(ev, 1002);
      CHECK(c.transport_should_close());
      check_close_frame(c, 1002);
    });
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      auto ev = feed(c, peer_frame(server, 0x82, "", 0xFFFF'FFFF'FFFF'FFFFull), clk);
      REQUIRE(ev.size() == 1);
      check_failed(ev, 1002);
    });
  }

  TEST_CASE("a length not in its minimal encoding fails with 1002") {
    // RFC 6455 5.2: "the minimal number of bytes MUST be used to encode the
    // length".
    struct encoding {
      const char* name;
      std::uint8_t len7;
      std::string ext;
      std::size_t payload;
    };
    const std::vector<encoding> cases = {
        {"16-bit form for 5 bytes", 126, std::string("\x00\x05", 2), 5},
        {"16-bit form for 125 bytes", 126, std::string("\x00\x7d", 2), 125},
        {"64-bit form for 200 bytes", 127, std::string("\x00\x00\x00\x00\x00\x00\x00\xc8", 8), 200},
        {"64-bit form for 65535 bytes", 127, std::string("\x00\x00\x00\x00\x00\x00\xff\xff", 8), 65535},
        {"64-bit form for 0 bytes", 127, std::string(8, '\0'), 0},
    };
    for (const auto& e : cases) {
      CAPTURE(e.name);
      both_roles({}, [&](connection& c, virtual_clock& clk, bool server) {
        std::string wire = raw_header(server, 0x82, e.len7, e.ext) +
                           masked_payload(server, pattern(e.payload));
        auto ev = feed(c, wire, clk);
        REQUIRE(ev.size() == 1);
        check_failed(ev, 1002);
        check_close_frame(c, 1002);
      });
    }
  }

  TEST_CASE("the smallest lengths of each encoding are accepted") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      for (std::size_t n : {125u, 126u, 65535u, 65536u}) {
        CAPTURE(n);
        auto ev = feed(c, peer_frame(server, 0x82, pattern(n)), clk);
        REQUIRE(ev.size() == 1);
        CHECK(ev[0] == "binary:" + hex(pattern(n)));
      }
    });
  }

  TEST_CASE("a control frame above 125 bytes fails with 1002") {
    // RFC 6455 5.5: "All control frames MUST have a payload length of 125
    // bytes or less".
    for (std::uint8_t op : {std::uint8_t{0x89}, std::uint8_t{0x8A}, std::uint8_t{0x88}}) {
      CAPTURE(int{op});
      both_roles({}, [&](connection& c, virtual_clock& clk, bool server) {
        INFO("whole frame");
        std::string payload = op == 0x88 ? close_payload(1000, pattern(124)) : pattern(126);
        REQUIRE(payload.size() == 126);
        auto ev = feed(c, peer_frame(server, op, payload), clk);
        REQUIRE(ev.size() == 1);
        check_failed(ev, 1002);
        check_close_frame(c, 1002);
      });
      both_roles({}, [&](connection& c, virtual_clock& clk, bool server) {
        INFO("header announcing 126 bytes, no payload yet");
        auto ev = feed(c, peer_frame(server, op, "", 126), clk);
        REQUIRE(ev.size() == 1);
        check_failed(ev, 1002);
      });
      both_roles({}, [&](connection& c, virtual_clock& clk, bool server) {
        INFO("header announcing 2^40 bytes");
        auto ev = feed(c, peer_frame(server, op, "", std::uint64_t{1} << 40), clk);
        REQUIRE(ev.size() == 1);
        check_failed(ev, 1002);
      });
    }
  }

  TEST_CASE("a ping of exactly 125 bytes is answered") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      CHECK(feed(c, peer_frame(server, 0x89, pattern(125)), clk) == strings{"ping:" + hex(pattern(125))});
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].opcode == 0xA);
      CHECK(frames[0].payload == pattern(125));
    });
  }

  TEST_CASE("a ping flood with unread output holds one pong, carrying the last ping's payload") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      constexpr std::uint32_t count = 100000;
      std::string wire;
      wire.reserve(count * 10);
      std::string last;
      for (std::uint32_t i = 0; i < count; ++i) {
        const char p[4] = {static_cast<char>(i >> 24), static_cast<char>(i >> 16),
                           static_cast<char>(i >> 8), static_cast<char>(i)};
        last.assign(p, 4);
        wire += peer_frame(server, 0x89, last);
      }
      const std::size_t output_before = c.memory().output;
      std::size_t max_buffered = 0, max_output_memory = 0;
      std::size_t pings = 0;
      std::string last_event;
      // In pieces, checking the bounds after each.
      constexpr std::size_t piece = 64 * 1024;
      for (std::size_t pos = 0; pos < wire.size(); pos += piece) {
        auto ev = feed(c, std::string_view(wire).substr(pos, piece), clk);
        pings += ev.size();
        if (!ev.empty()) last_event = ev.back();
        max_buffered = std::max(max_buffered, c.buffered_amount());
        max_output_memory = std::max(max_output_memory, c.memory().output);
      }
      CHECK(pings == count);
      CHECK(last_event == "ping:" + hex(last));
      CHECK(max_buffered <= 200);
      CHECK(max_output_memory <= output_before + 512);
      CHECK(c.state() == state::open);
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].opcode == 0xA);
      CHECK(frames[0].masked == !server);
      CHECK(frames[0].payload == last);
      CHECK(c.buffered_amount() == 0);
    });
  }

  TEST_CASE("pings while a pong is partly written hold at most two pongs") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      CHECK(feed(c, peer_frame(server, 0x89, "first"), clk).size() == 1);
      // One byte of the first pong goes out: it can no longer be replaced.
      REQUIRE(!c.pending_output().empty());
      std::string written(static_cast<const char*>(c.pending_output()[0].data), 1);
      REQUIRE(!c.consume_output(1));
      std::string wire;
      for (int i = 0; i < 5000; ++i) wire += peer_frame(server, 0x89, "p" + std::to_string(i));
      CHECK(feed(c, wire, clk).size() == 5000);
      CHECK(c.buffered_amount() <= 300);
      auto frames = parse_frames(written + take_output(c));
      REQUIRE(frames.size() == 2);
      CHECK(frames[0].opcode == 0xA);
      CHECK(frames[0].payload == "first");
      CHECK(frames[1].opcode == 0xA);
      CHECK(frames[1].payload == "p4999");
    });
  }

  TEST_CASE("a 1 MiB message in 1-byte fragments is reassembled correctly") {
    gust::settings s;
    s.limits.max_fragments = 2 * one_mib;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      const std::string payload = pattern(one_mib);
      std::string wire;
      wire.reserve(one_mib * 7);
      for (std::size_t i = 0; i < payload.size(); ++i) {
        std::uint8_t b0 = i == 0 ? 0x01 : 0x00;
        if (i + 1 == payload.size()) b0 |= 0x80;
        wire += peer_frame(server, b0, std::string_view(payload).substr(i, 1));
      }
      auto ev = feed(c, wire, clk, 64 * 1024);
      REQUIRE(ev.size() == 1);
      CHECK(ev[0].size() == 5 + one_mib);
      CHECK(ev[0] == "text:" + payload);
      CHECK(c.state() == state::open);
      CHECK(take_output(c).empty());
    });
  }

  // The work bound: no step may cost in proportion to what came before
  // (re-validating the whole message per fragment, copying it to grow it).
  // Hardware instruction counters are not available everywhere CI runs, so
  // the bound is on two things that are: bytes allocated while receiving
  // (amortised growth is linear; growing by each fragment is quadratic) and
  // the thread's CPU time for 16 times the input (about 16x when linear,
  // 256x when quadratic; 64x is the generous line between them).
  TEST_CASE("a 1 MiB message in 1-byte fragments costs linear work") {
    gust::settings s;
    s.limits.max_fragments = 2 * one_mib;
    both_roles(s, [&s](connection&, virtual_clock&, bool server) {
      auto wire_of = [server](std::size_t n) {
        std::string wire;
        wire.reserve(n * 7);
        for (std::size_t i = 0; i < n; ++i) {
          std::uint8_t b0 = i == 0 ? 0x02 : 0x00;
          if (i + 1 == n) b0 |= 0x80;
          wire += peer_frame(server, b0, "z");
        }
        return wire;
      };
      auto cpu_now = [] {
        timespec ts{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
      };
      // One run: a fresh open engine receives `n` bytes as n fragments,
      // 64 KiB of wire at a time. Returns CPU seconds.
      auto run = [&](std::string& wire, std::size_t n, std::size_t* allocations, std::size_t* bytes) {
        virtual_clock clk;
        std::optional<server_connection> srv;
        std::optional<client_connection> cli;
        if (server) srv.emplace(open_server(clk, s));
        else cli.emplace(open_client(clk, s));
        connection* c = server ? static_cast<connection*>(&*srv) : static_cast<connection*>(&*cli);
        const double t0 = cpu_now();
        std::size_t delivered = 0;
        {
          std::optional<allocation_scope> scope;
          if (allocations) scope.emplace();
          for (std::size_t pos = 0; pos < wire.size(); pos += 64 * 1024) {
            const std::size_t k = std::min<std::size_t>(64 * 1024, wire.size() - pos);
            c->receive(std::as_writable_bytes(std::span(wire.data() + pos, k)), clk.now);
            while (auto e = c->next_event(clk.now))
              if (auto* m = std::get_if<message_event>(&*e)) delivered += m->data.size();
          }
          if (allocations) {
            *allocations = scope->count();
            *bytes = scope->total();
          }
        }
        const double t = cpu_now() - t0;
        CHECK(delivered == n);
        return t;
      };
      std::string small = wire_of(one_mib / 16), big = wire_of(one_mib);
      std::size_t allocations = 0, bytes = 0;
      double t_big = run(big, one_mib, &allocations, &bytes);
      INFO("allocations " << allocations << ", bytes " << bytes);
      // A constant number per receive() call (a frame split between two
      // calls is kept), none per fragment: 1 Mi fragments in 112 calls.
      CHECK(allocations <= 64 + 2 * (big.size() / (64 * 1024) + 1));
      CHECK(bytes <= 4 * one_mib);
      std::vector<double> t_small;
      for (int i = 0; i < 3; ++i) t_small.push_back(run(small, one_mib / 16, nullptr, nullptr));
      t_big = std::min(t_big, run(big, one_mib, nullptr, nullptr));
      std::sort(t_small.begin(), t_small.end());
      INFO("CPU: 64 KiB " << t_small[1] << " s, 1 MiB " << t_big << " s");
      CHECK(t_big < 64 * std::max(t_small[1], 1e-4));
    });
  }

  TEST_CASE("the default max_fragments refuses a 1 MiB message in 1-byte fragments") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      std::string wire;
      for (std::size_t i = 0; i < 65537; ++i)
        wire += peer_frame(server, i == 0 ? 0x02 : 0x00, "z");
      auto ev = feed(c, wire, clk);
      REQUIRE(ev.size() == 1);
      check_failed(ev, 1009);
    });
  }
}

TEST_SUITE("limits: opening handshake") {
  TEST_CASE("a request with 10,000 header fields gets 431 and a handshake failure") {
    std::string req = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\n";
    for (int i = 0; i < 10000; ++i) req += "X-Field-" + std::to_string(i) + ": v\r\n";
    req += "\r\n";
    for (std::size_t chunk : {std::size_t{0}, std::size_t{1000}}) {
      CAPTURE(chunk);
      virtual_clock clk;
      server_connection srv(clk.now);
      strings ev;
      ev.reserve(4);
      std::string input = req;
      std::size_t largest = 0;
      {
        allocation_scope track;
        ev = receive_owned(srv, input, clk, chunk);
        largest = track.largest();
      }
      CHECK(ev == strings{"handshake_failure:too_large"});
      const std::string out = take_output(srv);
      INFO(out.substr(0, 200));
      CHECK(starts_with(out, "HTTP/1.1 431 "));
      CHECK(out.find("\r\n\r\n") != std::string::npos);
      CHECK(srv.state() == state::closed);
      CHECK(srv.transport_should_close());
      CHECK(srv.request() == nullptr);
      CHECK(srv.memory().total() < 64 * 1024);
      CHECK(largest < 64 * 1024);
    }
  }

  TEST_CASE("a 1 MiB header line gets a 4xx while memory stays bounded") {
    std::string req = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nX-Big: ";
    req += pattern(one_mib);
    req += "\r\n\r\n";
    virtual_clock clk;
    server_connection srv(clk.now);
    strings ev;
    std::size_t fed = 0, max_total = 0, largest = 0;
    {
      allocation_scope track;
      std::string storage;
      for (std::size_t pos = 0; pos < req.size() && ev.empty(); pos += 4096) {
        storage.assign(std::string_view(req).substr(pos, 4096));
        srv.receive(std::as_writable_bytes(std::span(storage.data(), storage.size())), clk.now);
        fed = pos + storage.size();
        while (auto e = srv.next_event(clk.now)) ev.push_back(describe(*e));
        max_total = std::max(max_total, srv.memory().total());
      }
      largest = track.largest();
    }
    CHECK(ev == strings{"handshake_failure:too_large"});
    // Refused once the line passes max_header_line (8 KiB), not at its end.
    CHECK(fed <= 16 * 1024);
    CHECK(max_total < 64 * 1024);
    CHECK(largest < 64 * 1024);
    const std::string out = take_output(srv);
    CHECK(starts_with(out, "HTTP/1.1 4"));
    CHECK(srv.transport_should_close());
  }

  TEST_CASE("a request head above max_handshake_size gets 431") {
    std::string req = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\n";
    for (int i = 0; i < 100; ++i) req += "X-F" + std::to_string(i) + ": " + pattern(200) + "\r\n";
    req += "\r\n";
    REQUIRE(req.size() > 16 * 1024);
    virtual_clock clk;
    server_connection srv(clk.now);
    CHECK(feed(srv, req, clk) == strings{"handshake_failure:too_large"});
    CHECK(starts_with(take_output(srv), "HTTP/1.1 431 "));
  }

  TEST_CASE("a client fails a response with too many header fields or a huge line") {
    SUBCASE("10,000 header fields") {
      std::string resp = "HTTP/1.1 101 Switching Protocols\r\n";
      for (int i = 0; i < 10000; ++i) resp += "X-Field-" + std::to_string(i) + ": v\r\n";
      resp += "\r\n";
      virtual_clock clk;
      gust::settings s;
      s.random = counting_random();
      client_options co;
      co.host = "h";
      client_connection cli(clk.now, co, s);
      (void)take_output(cli);
      CHECK(feed(cli, resp, clk) == strings{"handshake_failure:too_large"});
      CHECK(cli.state() == state::closed);
      CHECK(cli.transport_should_close());
    }
    SUBCASE("a 1 MiB header line") {
      std::string resp = "HTTP/1.1 101 Switching Protocols\r\nX-Big: " + pattern(one_mib) + "\r\n\r\n";
      virtual_clock clk;
      gust::settings s;
      s.random = counting_random();
      client_options co;
      co.host = "h";
      client_connection cli(clk.now, co, s);
      (void)take_output(cli);
      strings ev;
      std::size_t largest = 0;
      {
        allocation_scope track;
        ev = feed(cli, resp, clk, 4096);
        largest = track.largest();
      }
      CHECK(ev == strings{"handshake_failure:too_large"});
      CHECK(largest < 64 * 1024);
      CHECK(cli.memory().total() < 64 * 1024);
    }
  }
}

TEST_SUITE("limits: max_buffered_output") {
  TEST_CASE("data sends are refused with output_limit_reached at or above the limit") {
    for (bool server : {true, false}) {
      CAPTURE(server);
      virtual_clock clk;
      const std::string payload = pattern(600);
      // First learn what one message buffers.
      std::size_t one = 0;
      gust::settings s0;
      if (server) {
        auto p = open_server(clk, s0);
        REQUIRE(!p.send_text(payload));
        one = p.buffered_amount();
      } else {
        auto p = open_client(clk, s0);
        REQUIRE(!p.send_text(payload));
        one = p.buffered_amount();
      }
      REQUIRE(one > payload.size());

      gust::settings s;
      s.limits.max_buffered_output = 2 * one;  // reached exactly after two
      auto run = [&](connection& c) {
        REQUIRE(!c.send_text(payload));
        CHECK(c.buffered_amount() == one);
        REQUIRE(!c.send_binary(bytes(payload)));
        CHECK(c.buffered_amount() == 2 * one);
        // At the limit: every data send is refused and nothing is queued.
        CHECK(c.send_text("x") == errc::output_limit_reached);
        CHECK(c.send_binary(bytes("x")) == errc::output_limit_reached);
        CHECK(c.send(message_type::binary, bytes("x")) == errc::output_limit_reached);
        auto owner = std::make_shared<std::string>("shared");
        CHECK(c.send_shared(message_type::text, bytes(*owner), owner) == errc::output_limit_reached);
        CHECK(c.send_fragment(message_type::text, bytes("x"), false) == errc::output_limit_reached);
        CHECK(c.buffered_amount() == 2 * one);
        // Draining below the limit lets sends through again.
        const std::string first(static_cast<const char*>(c.pending_output()[0].data), 1);
        REQUIRE(!c.consume_output(1));
        CHECK(!c.send_text("x"));
        CHECK(c.buffered_amount() > 2 * one);
        CHECK(c.send_text("y") == errc::output_limit_reached);
        auto frames = parse_frames(first + take_output(c));
        REQUIRE(frames.size() == 3);
        CHECK(frames[0].payload == payload);
        CHECK(frames[1].opcode == 0x2);
        CHECK(frames[2].payload == "x");
        CHECK(!c.send_text("after drain"));
      };
      if (server) {
        auto c = open_server(clk, s);
        run(c);
      } else {
        auto c = open_client(clk, s);
        run(c);
      }
    }
  }

  TEST_CASE("ping and pong are not refused above max_buffered_output") {
    // settings.hpp: "Control frames are bounded separately and never
    // refused."
    gust::settings s;
    s.limits.max_buffered_output = 100;
    both_roles(s, [](connection& c, virtual_clock& clk, bool) {
      REQUIRE(!c.send_binary(bytes(pattern(200))));
      REQUIRE(c.buffered_amount() >= 100);
      CHECK(c.send_text("more") == errc::output_limit_reached);
      CHECK(c.ping(bytes("app-ping"), clk.now) == std::error_code{});
      CHECK(c.pong(bytes("heartbeat")) == std::error_code{});
    });
  }

  TEST_CASE("close and automatic pongs are queued above max_buffered_output") {
    gust::settings s;
    s.limits.max_buffered_output = 100;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      REQUIRE(!c.send_binary(bytes(pattern(200))));
      CHECK(feed(c, peer_frame(server, 0x89, "ping!"), clk) == strings{"ping:" + hex("ping!")});
      CHECK(!c.close(clk.now, 1000, "bye"));
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 3);
      // The pong goes before data not yet started; close() follows the
      // messages already queued (connection.hpp).
      CHECK(frames[0].opcode == 0xA);
      CHECK(frames[0].payload == "ping!");
      CHECK(frames[1].opcode == 0x2);
      CHECK(frames[1].payload == pattern(200));
      CHECK(frames[2].opcode == 0x8);
      CHECK(frames[2].payload == close_payload(1000, "bye"));
    });
  }
}

TEST_SUITE("limits: memory accounting") {
  TEST_CASE("memory().input holds a large frame and drops back once it is read") {
    gust::settings s;
    s.limits.max_message_size = 4 * one_mib;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      const std::string payload = pattern(one_mib);
      const std::string wire = peer_frame(server, 0x82, payload);
      auto buf = c.prepare(wire.size());
      REQUIRE(buf.size() >= wire.size());
      std::memcpy(buf.data(), wire.data(), wire.size());
      c.commit(wire.size(), clk.now);
      CHECK(c.memory().input >= wire.size());
      auto ev = c.next_event(clk.now);
      REQUIRE(ev);
      REQUIRE(std::holds_alternative<message_event>(*ev));
      CHECK(std::get<message_event>(*ev).data.size() == one_mib);
      CHECK(!c.next_event(clk.now));
      CHECK(c.memory().input <= 64 * 1024);
    });
  }

  // receive() lends the caller's buffer: a frame split across two calls is
  // completed from a small copy, and the frames behind it are read in place
  // from the caller's buffer (not the whole second batch copied after one
  // split frame), so the engine's input buffer stays the size of the split.
  TEST_CASE("a frame split between two receive() calls is completed without copying the batch behind it") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      std::string batch;
      std::vector<std::string> sent;
      for (int i = 0; i < 2000; ++i) {
        sent.push_back("message " + std::to_string(i));
        batch += peer_frame(server, 0x81, sent.back());
      }
      batch += peer_frame(server, 0x82, pattern(1000));
      std::size_t got = 0;
      std::size_t largest_input = 0;
      // Two batches cut inside a frame header, then inside a payload.
      for (std::size_t cut : {std::size_t{1}, std::size_t{7}, batch.size() / 2 + 3}) {
        std::string a = batch.substr(0, cut), b = batch.substr(cut);
        for (std::string* part : {&a, &b}) {
          c.receive(std::as_writable_bytes(std::span(part->data(), part->size())), clk.now);
          while (auto e = c.next_event(clk.now)) {
            auto* m = std::get_if<message_event>(&*e);
            REQUIRE(m);
            if (got % 2001 < 2000)
              CHECK(std::string(reinterpret_cast<const char*>(m->data.data()), m->data.size()) == sent[got % 2001]);
            else CHECK(m->data.size() == 1000);
            ++got;
            largest_input = std::max(largest_input, c.memory().input);
          }
        }
      }
      CHECK(got == 3 * 2001);
      CHECK(largest_input <= 1024);
      CHECK(c.memory().input == 0);
    });
  }

  TEST_CASE("with an output_pool an idle connection holds no output storage, and echoing does not allocate") {
    gust::output_pool pool;
    const gust::settings s = pooled(pool);
    both_roles(s, [&pool](connection& c, virtual_clock& clk, bool server) {
      // Drained after the handshake: the storage went back to the pool.
      (void)take_output(c);
      const std::size_t idle = c.memory().output;
      CHECK(idle == 0);  // the whole traffic state went back to the pool
      CHECK(pool.cached() >= 1);
      std::string wire;
      for (int i = 0; i < 8; ++i) wire += peer_frame(server, 0x82, std::string(100, 'e'));
      // Warm-up round, then 100 rounds of "receive 8, send 8 back, drain"
      // with no allocation at all.
      std::size_t allocations = 0;
      for (int round = 0; round < 101; ++round) {
        std::string in = wire;
        std::optional<allocation_scope> track;
        if (round > 0) track.emplace();
        c.receive(std::as_writable_bytes(std::span(in.data(), in.size())), clk.now);
        while (auto e = c.next_event(clk.now)) {
          auto* m = std::get_if<message_event>(&*e);
          REQUIRE(m);
          REQUIRE(!c.send(m->type, m->data));
        }
        CHECK(c.memory().output > idle);  // borrowed while bytes are queued
        std::size_t n = 0;
        for (const auto& b : c.pending_output()) n += b.size;
        REQUIRE(!c.consume_output(n));
        CHECK(c.memory().output == idle);
        if (track) allocations += track->count();
      }
      CHECK(allocations == 0);
    });
  }

  TEST_CASE("with an output_pool a large frame's buffers are reused, not allocated per message") {
    gust::output_pool pool;
    const gust::settings s = pooled(pool, 4 * one_mib);
    both_roles(s, [&pool](connection& c, virtual_clock& clk, bool server) {
      (void)take_output(c);
      const std::string wire = peer_frame(server, 0x82, pattern(one_mib));
      for (int round = 0; round < 3; ++round) {
        // Read in 64 KiB pieces, as a socket delivers it: the frame is
        // assembled in the engine's input buffer, then echoed.
        std::string in = wire;
        std::optional<allocation_scope> track;
        if (round > 0) track.emplace();
        std::size_t echoed = 0;
        for (std::size_t pos = 0; pos < in.size(); pos += 64 * 1024) {
          const std::size_t k = std::min<std::size_t>(64 * 1024, in.size() - pos);
          c.receive(std::as_writable_bytes(std::span(in.data() + pos, k)), clk.now);
          while (auto e = c.next_event(clk.now)) {
            auto* m = std::get_if<message_event>(&*e);
            REQUIRE(m);
            echoed += m->data.size();
            REQUIRE(!c.send(m->type, m->data));
          }
        }
        CHECK(echoed == one_mib);
        std::size_t n = 0;
        for (const auto& b : c.pending_output()) n += b.size;
        REQUIRE(!c.consume_output(n));
        CHECK(c.memory().input == 0);
        if (track) {
          INFO("round " << round << ": largest allocation " << track->largest());
          CHECK(track->largest() < 256 * 1024);  // the megabyte buffers came from the pool
        }
      }
      CHECK(pool.memory() >= 2 * one_mib);  // kept there: an input and an output buffer
    });
  }

  TEST_CASE("with an output_pool, many connections' big frames in flight at once reuse the pool's buffers") {
    // 48 connections each hold half of a 64 KiB frame, then echo it: 48
    // input buffers and 48 output buffers out at once, all given back.
    gust::output_pool pool;
    const gust::settings s = pooled(pool);
    virtual_clock clk;
    std::vector<gust::server_connection> conns;
    for (int i = 0; i < 48; ++i) {
      conns.push_back(open_server(clk, s));
      (void)take_output(conns.back());
    }
    const std::string wire = peer_frame(true, 0x82, pattern(64 * 1024));
    const std::size_t half = wire.size() / 2;
    for (int round = 0; round < 3; ++round) {
      std::vector<std::string> in(conns.size(), wire);
      std::optional<allocation_scope> track;
      if (round > 0) track.emplace();
      for (std::size_t i = 0; i < conns.size(); ++i) {
        conns[i].receive(std::as_writable_bytes(std::span(in[i].data(), half)), clk.now);
        CHECK(!conns[i].next_event(clk.now));
      }
      std::size_t echoed = 0;
      for (std::size_t i = 0; i < conns.size(); ++i) {
        conns[i].receive(std::as_writable_bytes(std::span(in[i].data() + half, wire.size() - half)), clk.now);
        while (auto e = conns[i].next_event(clk.now)) {
          auto* m = std::get_if<message_event>(&*e);
          REQUIRE(m);
          echoed += m->data.size();
          REQUIRE(!conns[i].send(m->type, m->data));
        }
      }
      CHECK(echoed == conns.size() * 64 * 1024);
      for (auto& c : conns) {
        std::size_t n = 0;
        for (const auto& b : c.pending_output()) n += b.size;
        REQUIRE(!c.consume_output(n));
      }
      if (track) {
        INFO("round " << round << ": " << track->count() << " allocations, largest " << track->largest());
        CHECK(track->count() == 0);
      }
    }
  }

  TEST_CASE("with an output_pool, 64 KiB frames split anywhere by the reads do not allocate once warm") {
    // A socket's reads cut a stream of 64 KiB frames at arbitrary places:
    // after a frame's first bytes, inside its header, just after it. The
    // split frame is held in the engine's input buffer until whole. That
    // buffer used to be sized to what had arrived and grow by doubling, so
    // a frame cut early in it started with a malloc below the pool's
    // 16 KiB blocks (here one per round, of 15,986 bytes).
    gust::output_pool pool;
    const gust::settings s = pooled(pool);
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      (void)take_output(c);
      std::string wire;
      for (int i = 0; i < 16; ++i) wire += peer_frame(server, 0x82, pattern(64 * 1024));
      // Read sizes that walk the cut through every part of a frame.
      const std::size_t reads[] = {16000, 16384, 9, 30000, 65536 + 7, 3, 12000, 1, 65536 + 13, 40000};
      std::string in = wire;
      for (int round = 0; round < 4; ++round) {
        std::copy(wire.begin(), wire.end(), in.begin());  // (unmasked in place)
        std::optional<allocation_scope> track;
        if (round > 1) track.emplace();
        std::size_t echoed = 0, messages = 0, k = 0;
        for (std::size_t pos = 0; pos < in.size(); ++k) {
          const std::size_t n = std::min(reads[k % std::size(reads)], in.size() - pos);
          c.receive(std::as_writable_bytes(std::span(in.data() + pos, n)), clk.now);
          pos += n;
          while (auto e = c.next_event(clk.now)) {
            auto* m = std::get_if<message_event>(&*e);
            REQUIRE(m);
            echoed += m->data.size();
            ++messages;
            REQUIRE(!c.send(m->type, m->data));
          }
          std::size_t out = 0;
          for (const auto& b : c.pending_output()) out += b.size;
          REQUIRE(!c.consume_output(out));
        }
        CHECK(messages == 16);
        CHECK(echoed == 16 * 64 * 1024);
        CHECK(c.memory().input == 0);
        if (track) {
          const std::size_t allocations = track->count(), largest = track->largest();
          INFO("round " << round << ": " << allocations << " allocations, largest " << largest);
          CHECK(allocations == 0);
        }
      }
    });
  }

  TEST_CASE("with an output_pool, 1 MiB messages in 4 KiB fragments or read through prepare() do not allocate once warm") {
    // The message buffer a fragmented message is reassembled in, and the
    // input buffer prepare() reads into, are given back to the pool's
    // blocks when the connection goes idle. They used to start again below
    // a block's size at the next message (4 and 8 KiB for the buffer, the
    // 4 KiB asked of prepare()), which allocated two and one buffers per
    // message before the blocks were reached.
    gust::output_pool pool;
    const gust::settings s = pooled(pool, 4 * one_mib);
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      (void)take_output(c);
      const std::string payload = pattern(one_mib);
      const std::size_t piece = 4096;
      std::string fragmented;
      for (std::size_t off = 0; off < payload.size(); off += piece) {
        const bool first = off == 0, last = off + piece >= payload.size();
        const std::uint8_t b0 = static_cast<std::uint8_t>((last ? 0x80 : 0x00) | (first ? 0x02 : 0x00));
        fragmented += peer_frame(server, b0, std::string_view(payload).substr(off, piece));
      }
      const std::string whole = peer_frame(server, 0x82, payload);
      auto drain = [&]() {
        std::size_t got = 0;
        while (auto e = c.next_event(clk.now)) {
          auto* m = std::get_if<message_event>(&*e);
          REQUIRE(m);
          REQUIRE(m->last);
          REQUIRE(m->data.size() == payload.size());
          REQUIRE(std::memcmp(m->data.data(), payload.data(), payload.size()) == 0);
          ++got;
        }
        return got;
      };
      std::string in;
      for (int round = 0; round < 5; ++round) {
        std::optional<allocation_scope> track;
        if (round > 1) track.emplace();
        // Fragments, all in one receive() (unmasked in place: a fresh copy).
        in = fragmented;
        c.receive(std::as_writable_bytes(std::span(in.data(), in.size())), clk.now);
        std::size_t messages = drain();
        // One frame, read 4 KiB at a time into the engine's own buffer.
        for (std::size_t off = 0; off < whole.size(); off += piece) {
          const std::size_t n = std::min(piece, whole.size() - off);
          std::memcpy(c.prepare(piece).data(), whole.data() + off, n);
          c.commit(n, clk.now);
          messages += drain();
        }
        CHECK(messages == 2);
        CHECK(c.memory().input == 0);
        CHECK(c.memory().message == 0);
        if (track) {
          const std::size_t allocations = track->count(), largest = track->largest();
          track.reset();  // (doctest's INFO allocates on its first use)
          INFO("round " << round << ": " << allocations << " allocations, largest " << largest);
          CHECK(allocations == 0);
        }
      }
    });
  }

  TEST_CASE("with an output_pool, 1 MiB compressed messages are inflated and compressed into the pool's blocks") {
    // The message buffer an inflated message is assembled in and the
    // compressed echo's buffer both exceed what a pooled traffic state
    // keeps: without the blocks, each message mapped, faulted and freed
    // about a dozen buffers (their sizes doubling up to 1 MiB).
    gust::output_pool pool;
    gust::settings ss;
    ss.deflate.enabled = true;
    ss.deflate.min_size = 0;
    ss.deflate.client_no_context_takeover = true;  // so one compressed frame can be replayed
    ss.limits.max_message_size = 4 * one_mib;
    ss.timeouts.ping_interval = {};
    gust::settings cs = ss;
    ss.output_pool = &pool;
    engine_pair p(cs, ss);
    p.pump();
    REQUIRE(p.server.compression_enabled());
    std::string payload(one_mib, '\0');
    std::uint32_t x = 12345;
    for (char& ch : payload) {  // incompressible: the echo is as large as the message
      x = x * 1664525u + 1013904223u;
      ch = static_cast<char>(x >> 24);
    }
    REQUIRE(!p.client.send_binary(std::as_bytes(std::span(payload))));
    const std::string wire = take_output(p.client);
    REQUIRE(wire.size() > one_mib / 2);
    std::vector<std::string> in(5, wire);
    for (std::size_t round = 0; round < in.size(); ++round) {
      // Two rounds to warm up: the pool's list of blocks grows to its size.
      std::optional<allocation_scope> track;
      if (round > 2) track.emplace();
      p.server.receive(std::as_writable_bytes(std::span(in[round].data(), in[round].size())), p.clk.now);
      std::size_t echoed = 0;
      while (auto e = p.server.next_event(p.clk.now)) {
        auto* m = std::get_if<message_event>(&*e);
        REQUIRE(m);
        REQUIRE(m->data.size() == payload.size());
        REQUIRE(std::memcmp(m->data.data(), payload.data(), payload.size()) == 0);
        REQUIRE(!p.server.send(m->type, m->data));
        ++echoed;
      }
      CHECK(echoed == 1);
      std::size_t n = 0;
      for (const auto& b : p.server.pending_output()) n += b.size;
      CHECK(n > one_mib / 2);
      REQUIRE(!p.server.consume_output(n));
      if (track) {
        const std::size_t allocations = track->count(), largest = track->largest();
        track.reset();  // (doctest's INFO allocates on its first use)
        INFO("round " << round << ": " << allocations << " allocations, largest " << largest);
        CHECK(allocations == 0);
      }
    }
  }

  TEST_CASE("with an output_pool, a reassembled message's buffer stays within twice the limit") {
    // Two fragments, together exactly at the limit.
    auto reassembled_memory = [](std::size_t limit, std::size_t first) {
      gust::output_pool pool;
      const gust::settings s = pooled(pool, limit);
      virtual_clock clk;
      auto srv = open_server(clk, s);
      (void)take_output(srv);
      std::string wire = peer_frame(true, 0x02, pattern(first)) + peer_frame(true, 0x80, pattern(limit - first));
      srv.receive(std::as_writable_bytes(std::span(wire.data(), wire.size())), clk.now);
      auto e = srv.next_event(clk.now);  // (its view keeps the buffer until the next call)
      REQUIRE(e);
      auto* m = std::get_if<message_event>(&*e);
      REQUIRE(m);
      CHECK(m->data.size() == limit);
      return srv.memory().message;
    };
    SUBCASE("a doubling past a block's size is not rounded up again") {
      // 9,000 -> 18,000 -> 32 KiB for a 9,001-byte limit.
      const std::size_t m = reassembled_memory(9001, 9000);
      CHECK(m >= 9001);
      CHECK(m <= 2 * 9001 + 64);
    }
    SUBCASE("under a limit below a block, it does not start in one") {
      // A pooled message buffer starts in one of the pool's 16 KiB blocks,
      // so that big fragmented messages do not allocate their first steps;
      // under a 300-byte limit that block would be fifty times the largest
      // message (fuzz/regressions/connection/pooled-reassembly-under-small-limit).
      const std::size_t m = reassembled_memory(300, 200);
      CHECK(m >= 300);
      CHECK(m <= 2 * 300 + 64);
    }
  }

  TEST_CASE("memory().message holds a fragmented message and drops back after it") {
    gust::settings s;
    s.limits.max_message_size = 4 * one_mib;
    both_roles(s, [](connection& c, virtual_clock& clk, bool server) {
      const std::string payload = pattern(one_mib);
      const std::size_t q = one_mib / 4;
      CHECK(c.memory().message == 0);
      CHECK(feed(c, peer_frame(server, 0x02, std::string_view(payload).substr(0, q)) +
                        peer_frame(server, 0x00, std::string_view(payload).substr(q, q)) +
                        peer_frame(server, 0x00, std::string_view(payload).substr(2 * q, q)),
                 clk)
                .empty());
      CHECK(c.memory().message >= 3 * q);
      auto ev = feed(c, peer_frame(server, 0x80, std::string_view(payload).substr(3 * q)), clk);
      REQUIRE(ev.size() == 1);
      CHECK(ev[0] == "binary:" + hex(payload));
      // The message was delivered and next_event() returned nothing: its
      // reassembly buffer is no longer needed and must not stay pinned
      // (connection.cpp: buffers above message_keep_limit, 256 KiB, "are
      // released once empty").
      CHECK(c.memory().message <= 256 * 1024);
    });
  }

  TEST_CASE("a message sent as many frames grows the output storage once, to its size") {
    // 1 MiB goes out as 16 frames of 64 KiB (max_send_frame_size). Queued
    // frame by frame, the arena doubled four times on the way and copied
    // what it held each time: 5 allocations and about 1 MiB copied twice.
    both_roles({}, [](connection& c, virtual_clock&, bool) {
      const std::string payload = pattern(one_mib);
      REQUIRE(!c.send_binary(bytes(payload)));  // warm: the segment list's capacity
      (void)take_output(c);
      std::size_t allocations = 0, largest = 0;
      {
        allocation_scope track;
        REQUIRE(!c.send_binary(std::as_bytes(std::span(payload))));
        allocations = track.count();
        largest = track.largest();
      }
      INFO(allocations << " allocations, largest " << largest);
      CHECK(allocations == 1);
      CHECK(largest >= one_mib + 16 * 14);
      CHECK(largest <= one_mib + 16 * 14 + 64);
      std::vector<wire_frame> frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 16);
      std::string echoed;
      for (const auto& f : frames) echoed += f.payload;
      CHECK(echoed == payload);
    });
  }

  TEST_CASE("memory().output holds a large queued message and drops back once written") {
    both_roles({}, [](connection& c, virtual_clock&, bool) {
      const std::size_t before = c.memory().output;
      CHECK(before < 64 * 1024);
      REQUIRE(!c.send_binary(bytes(pattern(one_mib))));
      CHECK(c.memory().output >= one_mib);
      CHECK(c.memory().total() >= one_mib);
      std::string out = take_output(c);
      CHECK(out.size() > one_mib);
      CHECK(c.memory().output <= 256 * 1024 + 16 * 1024);
    });
  }
}
