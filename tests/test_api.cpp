// The public API's contracts: error codes for local misuse, zero-copy
// paths, no allocation in steady state, moving connections.
#include <doctest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "support/allocations.hpp"
#include "support/roles.hpp"
#include "support/wire.hpp"


// ---------------------------------------------------------------------------

using namespace gust;
using namespace gust::test;

namespace {

gust::settings with_random() {
  gust::settings s;
  s.random = counting_random();
  return s;
}

std::span<const std::byte> as_span(const std::vector<std::byte>& v) { return {v.data(), v.size()}; }

}  // namespace

TEST_SUITE("API: error codes") {
  TEST_CASE("errc values, category \"gust\" and messages through std::error_code") {
    CHECK(static_cast<int>(errc::ok) == 0);
    const std::vector<errc> all = {
        errc::invalid_state,       errc::wrong_role,        errc::no_pending_request,
        errc::control_frame_too_large, errc::invalid_close_code, errc::invalid_utf8,
        errc::message_in_progress, errc::no_message_in_progress, errc::fragment_type_mismatch,
        errc::output_limit_reached, errc::consume_past_end,  errc::invalid_argument};
    std::set<std::string> messages;
    int expected_value = 1;
    for (errc e : all) {
      std::error_code ec = e;  // is_error_code_enum
      CAPTURE(ec.value());
      CHECK(ec.value() == expected_value++);
      CHECK(static_cast<bool>(ec));
      CHECK(ec == e);
      CHECK(ec == make_error_code(e));
      CHECK(&ec.category() == &error_category());
      CHECK(std::string_view(ec.category().name()) == "gust");
      const std::string msg = ec.message();
      CHECK(!msg.empty());
      CHECK(msg != "unknown gust error");
      messages.insert(msg);
    }
    CHECK(messages.size() == all.size());  // every message tells its error apart
    const std::error_code ok = errc::ok;
    CHECK(!ok);
    CHECK(std::error_code(errc::invalid_argument) != std::make_error_code(std::errc::invalid_argument));
    CHECK(error_category().message(9999) == "unknown gust error");
  }

  TEST_CASE("sending before the connection is open: invalid_state") {
    virtual_clock clk;
    auto check_refused = [&](connection& c) {
      auto owner = std::make_shared<std::string>("x");
      CHECK(c.send_text("t") == errc::invalid_state);
      CHECK(c.send_binary(bytes("b")) == errc::invalid_state);
      CHECK(c.send(message_type::text, bytes("s")) == errc::invalid_state);
      CHECK(c.send_shared(message_type::text, bytes(*owner), owner) == errc::invalid_state);
      CHECK(c.send_fragment(message_type::binary, bytes("f"), false) == errc::invalid_state);
      CHECK(c.ping(bytes("p"), clk.now) == errc::invalid_state);
      CHECK(c.pong(bytes("p")) == errc::invalid_state);
      CHECK(c.close(clk.now) == errc::invalid_state);
      CHECK(owner.use_count() == 1);
    };
    {
      INFO("server before the request");
      server_connection srv(clk.now);
      check_refused(srv);
      CHECK(take_output(srv).empty());
    }
    {
      INFO("server with an unanswered request");
      server_connection srv(clk.now);
      CHECK(feed(srv, upgrade_request(), clk, 0, feed_mode::receive, false).size() == 1);
      check_refused(srv);
      CHECK(take_output(srv).empty());
    }
    {
      INFO("client before the 101");
      client_connection cli(clk.now, default_client_options(), with_random());
      const std::size_t request_size = cli.buffered_amount();
      check_refused(cli);
      CHECK(cli.buffered_amount() == request_size);
    }
  }

  TEST_CASE("send_text with invalid UTF-8: invalid_utf8, nothing queued") {
    both_roles({}, [](connection& c, virtual_clock&, bool) {
      for (std::string_view bad : {"\xff", "abc\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"}) {
        CHECK(c.send_text(bad) == errc::invalid_utf8);
        CHECK(c.send(message_type::text, bytes(bad)) == errc::invalid_utf8);
        auto owner = std::make_shared<std::string>(bad);
        CHECK(c.send_shared(message_type::text, bytes(*owner), owner) == errc::invalid_utf8);
      }
      CHECK(c.buffered_amount() == 0);
      // The same bytes as binary are fine.
      CHECK(!c.send_binary(bytes("\xff")));
      CHECK(!c.send_text("κόσμε"));
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 2);
      CHECK(frames[1].payload == "κόσμε");
    });
  }

  TEST_CASE("send_fragment: a message in pieces, then the next one") {
    both_roles({}, [](connection& c, virtual_clock&, bool) {
      REQUIRE(!c.send_fragment(message_type::text, bytes("Hel"), false));
      REQUIRE(!c.send_fragment(message_type::text, bytes(""), false));
      REQUIRE(!c.send_fragment(message_type::text, bytes("lo"), true));
      REQUIRE(!c.send_fragment(message_type::binary, bytes("b"), true));  // a one-piece message
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 4);
      CHECK(frames[0].opcode == 0x1);
      CHECK(!frames[0].fin);
      CHECK(frames[0].payload == "Hel");
      CHECK(frames[1].opcode == 0x0);
      CHECK(!frames[1].fin);
      CHECK(frames[1].payload.empty());
      CHECK(frames[2].opcode == 0x0);
      CHECK(frames[2].fin);
      CHECK(frames[2].payload == "lo");
      CHECK(frames[3].opcode == 0x2);
      CHECK(frames[3].fin);
    });
  }

  TEST_CASE("send_fragment: a different type while a message is unfinished: fragment_type_mismatch") {
    both_roles({}, [](connection& c, virtual_clock&, bool) {
      REQUIRE(!c.send_fragment(message_type::text, bytes("a"), false));
      CHECK(c.send_fragment(message_type::binary, bytes("b"), false) == errc::fragment_type_mismatch);
      CHECK(c.send_fragment(message_type::binary, bytes("b"), true) == errc::fragment_type_mismatch);
      REQUIRE(!c.send_fragment(message_type::text, bytes("c"), true));
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 2);
      CHECK(frames[1].payload == "c");
    });
  }

  TEST_CASE("a whole message while a fragmented one is unfinished: message_in_progress") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      REQUIRE(!c.send_fragment(message_type::binary, bytes("a"), false));
      auto owner = std::make_shared<std::string>("s");
      CHECK(c.send_text("t") == errc::message_in_progress);
      CHECK(c.send_binary(bytes("b")) == errc::message_in_progress);
      CHECK(c.send(message_type::binary, bytes("b")) == errc::message_in_progress);
      CHECK(c.send_shared(message_type::binary, bytes(*owner), owner) == errc::message_in_progress);
      // Control frames may go between fragments (RFC 6455 5.4); this one
      // even goes before the first fragment, which has not started.
      CHECK(!c.ping(bytes("p"), clk.now));
      REQUIRE(!c.send_fragment(message_type::binary, bytes("z"), true));
      CHECK(!c.send_text("now fine"));
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 4);
      CHECK(frames[0].opcode == 0x9);
      CHECK(frames[1].opcode == 0x2);
      CHECK(!frames[1].fin);
      CHECK(frames[2].opcode == 0x0);
      CHECK(frames[2].fin);
      CHECK(frames[3].payload == "now fine");
    });
  }

  TEST_CASE("text fragments are checked as one UTF-8 stream") {
    both_roles({}, [](connection& c, virtual_clock&, bool) {
      // "κ" is CE BA: split across two fragments is fine.
      REQUIRE(!c.send_fragment(message_type::text, bytes("\xce"), false));
      // A byte that cannot continue the sequence is refused, and the
      // message stays where it was.
      CHECK(c.send_fragment(message_type::text, bytes("A"), false) == errc::invalid_utf8);
      CHECK(c.send_fragment(message_type::text, bytes("A"), true) == errc::invalid_utf8);
      REQUIRE(!c.send_fragment(message_type::text, bytes("\xba\xe1"), false));
      REQUIRE(!c.send_fragment(message_type::text, bytes("\xbd"), false));
      // Ending inside a sequence is refused.
      CHECK(c.send_fragment(message_type::text, bytes(""), true) == errc::invalid_utf8);
      REQUIRE(!c.send_fragment(message_type::text, bytes("\xb9"), true));
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 4);
      std::string whole;
      for (auto& f : frames) whole += f.payload;
      CHECK(whole == "\xce\xba\xe1\xbd\xb9");  // κ U+1F79
      // A fresh message starts a fresh stream: a leftover state would
      // refuse this.
      REQUIRE(!c.send_fragment(message_type::text, bytes("x"), true));
      // Binary fragments are not checked.
      REQUIRE(!c.send_fragment(message_type::binary, bytes("\xce"), true));
    });
  }

  TEST_CASE("fragments sent through a pair arrive as one message") {
    engine_pair p;
    p.pump();
    REQUIRE(!p.client.send_fragment(message_type::text, bytes("Hello \xce"), false));
    REQUIRE(!p.client.send_fragment(message_type::text, bytes("\xba"), false));
    REQUIRE(!p.client.send_fragment(message_type::text, bytes("!"), true));
    REQUIRE(!p.server.send_fragment(message_type::binary, bytes("ab"), false));
    REQUIRE(!p.server.send_fragment(message_type::binary, bytes("cd"), true));
    p.pump();
    CHECK(p.server_events == strings{"request:/", "open:", "text:Hello κ!"});
    CHECK(p.client_events == strings{"open:", "binary:" + hex("abcd")});
  }

  TEST_CASE("ping or pong payload above 125 bytes: control_frame_too_large") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool) {
      const std::string big(126, 'p'), max(125, 'p');
      CHECK(c.ping(bytes(big), clk.now) == errc::control_frame_too_large);
      CHECK(c.pong(bytes(big)) == errc::control_frame_too_large);
      CHECK(c.buffered_amount() == 0);
      CHECK(!c.ping(bytes(max), clk.now));
      CHECK(!c.pong(bytes(max)));
      CHECK(!c.ping({}, clk.now));
      auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 3);
      CHECK(frames[0].opcode == 0x9);
      CHECK(frames[0].payload == max);
      CHECK(frames[1].opcode == 0xA);
      CHECK(frames[2].payload.empty());
    });
  }

  TEST_CASE("consume_output past the end: consume_past_end, nothing consumed") {
    both_roles({}, [](connection& c, virtual_clock&, bool) {
      CHECK(!c.consume_output(0));
      CHECK(c.consume_output(1) == errc::consume_past_end);
      REQUIRE(!c.send_text("abc"));
      const std::size_t n = c.buffered_amount();
      CHECK(c.consume_output(n + 1) == errc::consume_past_end);
      CHECK(c.buffered_amount() == n);
      CHECK(!c.consume_output(2));
      CHECK(c.buffered_amount() == n - 2);
      CHECK(c.consume_output(n - 1) == errc::consume_past_end);
      CHECK(!c.consume_output(n - 2));
      CHECK(c.buffered_amount() == 0);
      CHECK(c.pending_output().empty());
    });
  }

  TEST_CASE("accept, reject or respond without a request: no_pending_request") {
    virtual_clock clk;
    server_connection srv(clk.now);
    http::response r;
    r.status = 200;
    CHECK(srv.accept(clk.now) == errc::no_pending_request);
    CHECK(srv.reject(400) == errc::no_pending_request);
    CHECK(srv.respond(r) == errc::no_pending_request);
    CHECK(feed(srv, upgrade_request().substr(0, 30), clk, 0, feed_mode::receive, false).empty());
    CHECK(srv.accept(clk.now) == errc::no_pending_request);
    CHECK(srv.state() == state::connecting);
    CHECK(take_output(srv).empty());
    // Once open, there is nothing to answer either.
    auto open = open_server(clk);
    CHECK(open.accept(clk.now) == errc::no_pending_request);
    CHECK(open.reject(500) == errc::no_pending_request);
    CHECK(open.state() == state::open);
  }
}

TEST_SUITE("API: zero copy") {
  TEST_CASE("receive(): a whole single-frame message is delivered where it lies") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      for (std::size_t n : {5u, 125u, 300u, 70000u}) {
        CAPTURE(n);
        std::string payload(n, 'q');
        std::string storage = peer_frame(server, 0x81, payload) + peer_frame(server, 0x82, payload);
        const std::byte* lo = reinterpret_cast<const std::byte*>(storage.data());
        const std::byte* hi = lo + storage.size();
        c.receive(std::as_writable_bytes(std::span(storage.data(), storage.size())), clk.now);
        for (int i = 0; i < 2; ++i) {
          auto ev = c.next_event(clk.now);
          REQUIRE(ev);
          REQUIRE(std::holds_alternative<message_event>(*ev));
          const auto& m = std::get<message_event>(*ev);
          CHECK(m.data.size() == n);
          CHECK(m.data.data() >= lo);
          CHECK(m.data.data() + m.data.size() <= hi);
          CHECK(std::string_view(reinterpret_cast<const char*>(m.data.data()), m.data.size()) == payload);
        }
        CHECK(!c.next_event(clk.now));
      }
    });
  }

  TEST_CASE("send_shared on a server references the payload without copying it") {
    virtual_clock clk;
    auto srv = open_server(clk);
    auto owner = std::make_shared<std::vector<std::byte>>(1000);
    for (std::size_t i = 0; i < owner->size(); ++i) (*owner)[i] = static_cast<std::byte>(i);
    const std::byte* data = owner->data();
    REQUIRE(!srv.send_shared(message_type::binary, as_span(*owner), owner));
    CHECK(owner.use_count() > 1);
    auto bufs = srv.pending_output();
    bool found = false;
    for (auto& b : bufs) {
      if (b.data == data) {
        found = true;
        CHECK(b.size == 1000);
      }
    }
    CHECK(found);
    // Written in two steps: the owner lives until the last byte is consumed.
    const std::size_t total = srv.buffered_amount();
    CHECK(total == 4 + 1000);
    std::string out;
    for (auto& b : bufs) out.append(static_cast<const char*>(b.data), b.size);
    REQUIRE(!srv.consume_output(total - 1));
    CHECK(owner.use_count() > 1);
    REQUIRE(!srv.consume_output(1));
    CHECK(owner.use_count() == 1);
    auto frames = parse_frames(out);
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].opcode == 0x2);
    CHECK(std::memcmp(frames[0].payload.data(), data, 1000) == 0);
  }

  TEST_CASE("send_shared of a large payload references every frame's part in place") {
    gust::settings s;
    s.max_send_frame_size = 16 * 1024;
    virtual_clock clk;
    auto srv = open_server(clk, s);
    auto owner = std::make_shared<std::vector<std::byte>>(100 * 1024, std::byte{'s'});
    REQUIRE(!srv.send_shared(message_type::text, as_span(*owner), owner));
    const std::byte* lo = owner->data();
    const std::byte* hi = lo + owner->size();
    std::size_t referenced = 0;
    for (auto& b : srv.pending_output()) {
      auto p = static_cast<const std::byte*>(b.data);
      if (p >= lo && p < hi) referenced += b.size;
    }
    CHECK(referenced == owner->size());
    auto frames = parse_frames(take_output(srv));
    CHECK(frames.size() == 7);
    CHECK(owner.use_count() == 1);
  }

  TEST_CASE("send_shared on a client copies (it must mask) and does not keep the owner") {
    virtual_clock clk;
    auto cli = open_client(clk);
    auto owner = std::make_shared<std::vector<std::byte>>(1000, std::byte{'c'});
    REQUIRE(!cli.send_shared(message_type::binary, as_span(*owner), owner));
    const std::byte* lo = owner->data();
    const std::byte* hi = lo + owner->size();
    for (auto& b : cli.pending_output()) {
      auto p = static_cast<const std::byte*>(b.data);
      CHECK(!(p >= lo && p < hi));
    }
    CHECK(owner.use_count() == 1);
    auto frames = parse_frames(take_output(cli));
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].masked);
    CHECK(frames[0].payload == std::string(1000, 'c'));
  }
}

// ---------------------------------------------------------------------------
// Steady state: two engines driven directly, with buffers allocated before
// measuring.

namespace {

struct steady_pair {
  virtual_clock clk;
  server_connection server{clk.now};
  client_connection client{clk.now, default_client_options()};
  std::vector<std::byte> wire = std::vector<std::byte>(1 << 20);  // one transfer
  std::size_t messages_to_server = 0, messages_to_client = 0;
  std::size_t bytes_to_server = 0, bytes_to_client = 0;
  std::size_t pongs = 0, other_events = 0, bad_content = 0, errors = 0;

  steady_pair() {
    // Handshake (allocates; not measured).
    move(client, server, true);
    move(server, client, false);
    REQUIRE(server.state() == state::open);
    REQUIRE(client.state() == state::open);
  }

  // Every pending byte of `from` into `to`, and every event `to` then has.
  void move(connection& from, connection& to, bool to_server) {
    for (;;) {
      auto bufs = from.pending_output();
      if (bufs.empty()) return;
      std::size_t n = 0;
      for (const auto& b : bufs) {
        const std::size_t k = std::min(b.size, wire.size() - n);
        std::memcpy(wire.data() + n, b.data, k);
        n += k;
        if (n == wire.size()) break;
      }
      if (from.consume_output(n)) ++errors;
      to.receive(std::span(wire.data(), n), clk.now);
      while (auto ev = to.next_event(clk.now)) {
        if (auto* r = std::get_if<request_event>(&*ev)) {
          (void)r;
          if (static_cast<server_connection&>(to).accept(clk.now)) ++errors;
        } else if (auto* m = std::get_if<message_event>(&*ev)) {
          (to_server ? messages_to_server : messages_to_client) += 1;
          (to_server ? bytes_to_server : bytes_to_client) += m->data.size();
          if (!m->data.empty() && m->data[0] != std::byte{'m'}) ++bad_content;
        } else if (std::holds_alternative<pong_event>(*ev)) {
          ++pongs;
        } else if (!std::holds_alternative<open_event>(*ev) && !std::holds_alternative<ping_event>(*ev)) {
          ++other_events;
        }
      }
    }
  }

  void exchange() {
    while (client.buffered_amount() || server.buffered_amount()) {
      move(client, server, true);
      move(server, client, false);
    }
  }

  void send_whole(std::span<const std::byte> payload, message_type type) {
    if (client.send(type, payload)) ++errors;
    if (server.send(type, payload)) ++errors;
    exchange();
  }

  void send_fragmented(std::span<const std::byte> payload, message_type type) {
    const std::size_t q = payload.size() / 4;
    for (connection* c : {static_cast<connection*>(&client), static_cast<connection*>(&server)}) {
      for (std::size_t i = 0; i < 4; ++i) {
        const std::size_t n = i == 3 ? payload.size() - 3 * q : q;
        if (c->send_fragment(type, payload.subspan(i * q, n), i == 3)) ++errors;
      }
    }
    exchange();
  }

  void ping_both(std::span<const std::byte> payload) {
    if (client.ping(payload, clk.now)) ++errors;
    if (server.ping(payload, clk.now)) ++errors;
    exchange();
  }
};


std::vector<std::byte> message_payload(std::size_t n) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>(i == 0 ? 'm' : 'a' + i % 26);
  return v;
}

constexpr std::size_t sizes[] = {16, 1024, 64 * 1024};
constexpr int rounds = 1000;

}  // namespace

TEST_SUITE("API: no allocation in steady state") {
  TEST_CASE("the counter sees allocations made inside the engine") {
    // The control for the tests below: a first large message grows the
    // output queue, and that must be counted.
    steady_pair p;
    const auto big = message_payload(1 << 20);
    std::size_t allocs = 0;
    {
      allocation_scope count;
      if (p.server.send_binary(as_span(big))) ++p.errors;
      allocs = count.count();
    }
    CHECK(p.errors == 0);
    CHECK(allocs > 0);
  }

  TEST_CASE("whole messages of 16 B, 1 KiB and 64 KiB, both ways") {
    steady_pair p;
    std::vector<std::vector<std::byte>> payloads;
    for (std::size_t n : sizes) payloads.push_back(message_payload(n));
    auto round = [&](int i) {
      const auto type = i % 2 ? message_type::binary : message_type::text;
      for (auto& pl : payloads) p.send_whole(as_span(pl), type);
    };
    for (int i = 0; i < 4; ++i) round(i);  // warm-up
    const std::size_t before = p.messages_to_server;
    std::size_t allocs = 0, frees = 0;
    {
      allocation_scope count;
      for (int i = 0; i < rounds; ++i) round(i);
      allocs = count.count();
      frees = count.frees();
    }
    CHECK(p.errors == 0);
    CHECK(p.bad_content == 0);
    CHECK(p.other_events == 0);
    CHECK(p.messages_to_server - before == 3 * rounds);
    CHECK(p.messages_to_client == p.messages_to_server);
    CHECK(p.bytes_to_client == p.bytes_to_server);
    CHECK(allocs == 0);
    CHECK(frees == 0);
  }

  TEST_CASE("fragmented messages of 16 B, 1 KiB and 64 KiB, both ways") {
    steady_pair p;
    std::vector<std::vector<std::byte>> payloads;
    for (std::size_t n : sizes) payloads.push_back(message_payload(n));
    auto round = [&](int i) {
      const auto type = i % 2 ? message_type::binary : message_type::text;
      for (auto& pl : payloads) p.send_fragmented(as_span(pl), type);
    };
    for (int i = 0; i < 4; ++i) round(i);
    const std::size_t before = p.messages_to_server;
    const std::size_t bytes_before = p.bytes_to_server;
    std::size_t allocs = 0, frees = 0;
    {
      allocation_scope count;
      for (int i = 0; i < rounds; ++i) round(i);
      allocs = count.count();
      frees = count.frees();
    }
    CHECK(p.errors == 0);
    CHECK(p.bad_content == 0);
    CHECK(p.other_events == 0);
    CHECK(p.messages_to_server - before == 3 * rounds);
    CHECK(p.bytes_to_server - bytes_before == rounds * (16 + 1024 + 64 * 1024));
    CHECK(p.messages_to_client == p.messages_to_server);
    CHECK(allocs == 0);
    CHECK(frees == 0);
  }

  TEST_CASE("pings and automatic pongs, both ways") {
    steady_pair p;
    const auto payload = message_payload(100);
    for (int i = 0; i < 4; ++i) p.ping_both(as_span(payload));
    const std::size_t before = p.pongs;
    std::size_t allocs = 0;
    {
      allocation_scope count;
      for (int i = 0; i < rounds; ++i) p.ping_both(as_span(payload));
      allocs = count.count();
    }
    CHECK(p.errors == 0);
    CHECK(p.pongs - before == 2 * rounds);
    CHECK(allocs == 0);
  }
}

TEST_SUITE("API: moving a connection") {
  TEST_CASE("connections are movable, not copyable") {
    static_assert(std::is_nothrow_move_constructible_v<connection>);
    static_assert(std::is_nothrow_move_constructible_v<server_connection>);
    static_assert(std::is_nothrow_move_constructible_v<client_connection>);
    static_assert(std::is_nothrow_move_assignable_v<server_connection>);
    static_assert(!std::is_copy_constructible_v<server_connection>);
    static_assert(!std::is_copy_assignable_v<client_connection>);
    CHECK(true);
  }

  TEST_CASE("a moved connection carries its state, partial input and queued output") {
    both_roles({}, [](connection& c, virtual_clock& clk, bool server) {
      REQUIRE(!c.send_text("queued before the move"));
      const std::string wire = peer_frame(server, 0x81, "split across the move");
      CHECK(feed(c, wire.substr(0, 7), clk).empty());
      auto run = [&](connection& moved) {
        CHECK(moved.state() == state::open);
        CHECK(moved.role() == (server ? role::server : role::client));
        CHECK(feed(moved, wire.substr(7), clk) == strings{"text:split across the move"});
        auto frames = parse_frames(take_output(moved));
        REQUIRE(frames.size() == 1);
        CHECK(frames[0].payload == "queued before the move");
        REQUIRE(!moved.send_text("after"));
        CHECK(parse_frames(take_output(moved)).size() == 1);
      };
      if (server) {
        server_connection moved(std::move(static_cast<server_connection&>(c)));
        run(moved);
      } else {
        client_connection moved(std::move(static_cast<client_connection&>(c)));
        run(moved);
      }
    });
  }

  TEST_CASE("move assignment and a vector of connections") {
    virtual_clock clk;
    server_connection target(clk.now);  // a connecting one, replaced
    target = open_server(clk);
    CHECK(target.state() == state::open);
    CHECK(feed(target, cframe(0x81, "hi"), clk) == strings{"text:hi"});
    std::vector<server_connection> all;
    for (int i = 0; i < 20; ++i) {
      all.push_back(open_server(clk));  // reallocations move the others
      REQUIRE(!all.back().send_text("n" + std::to_string(i)));
    }
    for (int i = 0; i < 20; ++i) {
      auto frames = parse_frames(take_output(all[static_cast<std::size_t>(i)]));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].payload == "n" + std::to_string(i));
      CHECK(feed(all[static_cast<std::size_t>(i)], cframe(0x82, "x"), clk) == strings{"binary:78"});
    }
  }

  TEST_CASE("a server moved while its request awaits an answer can still accept it") {
    virtual_clock clk;
    server_connection a(clk.now);
    CHECK(feed(a, upgrade_request() + cframe(0x81, "pipelined"), clk, 0, feed_mode::receive, false).size() == 1);
    server_connection b(std::move(a));
    REQUIRE(b.request());
    CHECK(b.request()->path() == "/chat");
    REQUIRE(!b.accept(clk.now));
    CHECK(drain(b, clk) == strings{"open:", "text:pipelined"});
  }
}
