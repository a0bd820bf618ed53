// The traffic state (core/src/traffic.hpp): with an output_pool, a
// connection borrows its input, receive and output state only while bytes
// are in flight, and an idle one holds none; without a pool it keeps its own.
#include <doctest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <cstdlib>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "gust/connection.hpp"
#include "gust/output_pool.hpp"
#include "output_queue.hpp"
#include "support/allocations.hpp"
#include "support/roles.hpp"
#include "support/wire.hpp"
#include "traffic.hpp"

using namespace gust;
using namespace gust::test;

namespace {

constexpr std::size_t traffic_size = sizeof(detail::traffic);

std::size_t idle_states(output_pool& pool) { return pool.internals().idle_traffic.size(); }

// Settings shared by the connections of a test (so that none counts a copy
// of its own in memory().state), with the pool if any, no keepalive.
shared_settings make_settings(output_pool* pool) {
  gust::settings s;
  s.output_pool = pool;
  s.timeouts.ping_interval = {};
  return shared_settings(std::move(s));
}

// An open server that did not keep its request: its state is the engine's
// alone.
server_connection open_lean_server(virtual_clock& clk, const shared_settings& s) {
  server_options opts;
  opts.keep_request = false;
  server_connection srv(clk.now, s, std::move(opts));
  auto events = feed(srv, upgrade_request(), clk);
  REQUIRE(events == strings{"request:/chat?room=1", "open:"});
  REQUIRE(take_output(srv).rfind("HTTP/1.1 101 ", 0) == 0);
  REQUIRE(srv.state() == state::open);
  return srv;
}

client_connection open_shared_client(virtual_clock& clk, const shared_settings& s) {
  client_connection cli(clk.now, default_client_options(), s);
  const std::string request = take_output(cli);
  server_connection srv(clk.now);
  REQUIRE(feed(srv, request, clk).size() == 2);
  auto events = feed(cli, take_output(srv), clk);
  REQUIRE(events.size() == 1);
  REQUIRE(cli.state() == state::open);
  return cli;
}

std::span<std::byte> writable(std::string& s) { return std::as_writable_bytes(std::span(s.data(), s.size())); }

// Receives `wire`, echoes every message, writes all output.
strings echo(connection& c, std::string wire, virtual_clock& clk) {
  strings got;
  c.receive(writable(wire), clk.now);
  while (auto e = c.next_event(clk.now)) {
    got.push_back(describe(*e));
    if (auto* m = std::get_if<message_event>(&*e)) REQUIRE(!c.send(m->type, m->data));
  }
  (void)take_output(c);
  return got;
}

}  // namespace

TEST_SUITE("traffic state lent by the output_pool") {
  TEST_CASE("an idle open server holds no traffic state, and gives it to the pool") {
    output_pool pool;
    const shared_settings shared = make_settings(&pool);
    virtual_clock clk;
    server_connection srv(clk.now, shared, [] {
      server_options o;
      o.keep_request = false;
      return o;
    }());
    // Nothing received yet: nothing borrowed (the handshake's own state is
    // counted until open).
    const std::size_t connecting = srv.memory().state;
    CHECK(idle_states(pool) == 0);
    std::string request = upgrade_request();
    srv.receive(writable(request), clk.now);
    CHECK(srv.memory().state == connecting + traffic_size);  // borrowed (made: the pool was empty)
    CHECK(drain(srv, clk) == strings{"request:/chat?room=1", "open:"});
    CHECK(srv.memory().output > 0);  // the 101 is queued
    CHECK(idle_states(pool) == 0);
    (void)take_output(srv);
    // Open and idle: back in the pool. What is left is the engine itself
    // (88 B on x86-64; the traffic state alone is above 300 B).
    const memory_usage m = srv.memory();
    const std::size_t bare = m.state;
    CHECK(idle_states(pool) == 1);
    CHECK(m.state <= 96);
    CHECK(m.input == 0);
    CHECK(m.message == 0);
    CHECK(m.output == 0);
    CHECK(traffic_size > 300);
    // Read-only calls need none.
    CHECK(srv.buffered_amount() == 0);
    CHECK(srv.pending_output().empty());
    CHECK_FALSE(srv.close_may_follow());
    CHECK(!srv.consume_output(0));
    CHECK(srv.consume_output(1) == errc::consume_past_end);
    CHECK(srv.memory().state == bare);
    // And it still speaks: a message in, its echo out, idle again.
    CHECK(echo(srv, peer_frame(true, 0x81, "hi"), clk) == strings{"text:hi"});
    CHECK(srv.memory().state == bare);
    CHECK(idle_states(pool) == 1);
  }

  TEST_CASE("an idle open client holds no traffic state") {
    output_pool pool;
    virtual_clock clk;
    auto pooled = open_shared_client(clk, make_settings(&pool));
    auto own = open_shared_client(clk, make_settings(nullptr));
    CHECK(idle_states(pool) == 1);
    CHECK(pooled.memory().state + traffic_size == own.memory().state);
    CHECK(pooled.memory().total() == pooled.memory().state);
    CHECK(echo(pooled, peer_frame(false, 0x82, "abc"), clk) == strings{"binary:616263"});
    CHECK(pooled.memory().state + traffic_size == own.memory().state);
  }

  TEST_CASE("a connection with traffic in flight keeps its state and finishes intact") {
    output_pool pool;
    const shared_settings shared = make_settings(&pool);
    virtual_clock clk;
    auto srv = open_lean_server(clk, shared);
    const std::size_t bare = srv.memory().state;
    REQUIRE(idle_states(pool) == 1);
    auto held = [&] { return srv.memory().state == bare + traffic_size; };

    SUBCASE("a partial frame") {
      const std::string wire = peer_frame(true, 0x81, std::string(100, 'p'));
      std::string head = wire.substr(0, 5), rest = wire.substr(5);
      srv.receive(writable(head), clk.now);
      CHECK_FALSE(srv.next_event(clk.now));
      CHECK(held());
      CHECK(idle_states(pool) == 0);
      // Another connection borrows meanwhile: it must get a state of its own.
      auto other = open_lean_server(clk, shared);
      CHECK(echo(other, peer_frame(true, 0x81, "other"), clk) == strings{"text:other"});
      CHECK(held());
      srv.receive(writable(rest), clk.now);
      CHECK(drain(srv, clk) == strings{"text:" + std::string(100, 'p')});
      CHECK(srv.memory().state == bare);
    }
    SUBCASE("a partial fragmented message") {
      std::string first = peer_frame(true, 0x01, "hello ");
      srv.receive(writable(first), clk.now);
      CHECK(drain(srv, clk).empty());
      CHECK(held());
      auto other = open_lean_server(clk, shared);
      CHECK(echo(other, peer_frame(true, 0x82, "x"), clk) == strings{"binary:78"});
      std::string last = peer_frame(true, 0x80, "world");
      srv.receive(writable(last), clk.now);
      CHECK(drain(srv, clk) == strings{"text:hello world"});
      CHECK(srv.memory().state == bare);
    }
    SUBCASE("queued output") {
      REQUIRE(!srv.send_text("queued"));
      CHECK_FALSE(srv.next_event(clk.now));
      CHECK(held());
      CHECK(srv.buffered_amount() == 8);
      const auto frames = parse_frames(take_output(srv));
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].payload == "queued");
      CHECK(srv.memory().state == bare);
    }
    SUBCASE("output partly written") {
      REQUIRE(!srv.send_text("twelve bytes"));
      REQUIRE(!srv.consume_output(3));
      CHECK_FALSE(srv.next_event(clk.now));
      CHECK(held());
      REQUIRE(!srv.consume_output(11));
      CHECK(srv.memory().state == bare);
    }
    SUBCASE("in the middle of a fragmented send") {
      REQUIRE(!srv.send_fragment(message_type::text, std::as_bytes(std::span("ab", 2)), false));
      std::string out = take_output(srv);
      CHECK_FALSE(srv.next_event(clk.now));
      CHECK(held());  // nothing queued, but the message is not finished
      auto other = open_lean_server(clk, shared);
      REQUIRE(!other.send_text("between"));
      (void)take_output(other);
      REQUIRE(!srv.send_fragment(message_type::text, std::as_bytes(std::span("cd", 2)), true));
      out += take_output(srv);
      const auto frames = parse_frames(out);
      REQUIRE(frames.size() == 2);
      CHECK((!frames[0].fin && frames[0].opcode == 1 && frames[0].payload == "ab"));
      CHECK((frames[1].fin && frames[1].opcode == 0 && frames[1].payload == "cd"));
      CHECK(srv.memory().state == bare);
    }
    SUBCASE("ping, then the close handshake") {
      // (ping() keeps its payload apart, to time the pong: count states.)
      REQUIRE(!srv.ping({}, clk.now));
      CHECK(idle_states(pool) == 0);
      CHECK(parse_frames(take_output(srv)).at(0).opcode == 0x9);
      CHECK(idle_states(pool) == 1);
      REQUIRE(!srv.close(clk.now));
      CHECK(idle_states(pool) == 0);
      CHECK(parse_frames(take_output(srv)).at(0).opcode == 0x8);
      CHECK(idle_states(pool) == 1);
      std::string answer = peer_frame(true, 0x88, close_payload(1000));
      srv.receive(writable(answer), clk.now);
      const auto events = drain(srv, clk);
      REQUIRE(events.size() == 1);
      CHECK(starts_with(events[0], "close:1000"));
      CHECK(srv.transport_should_close());
    }
  }

  TEST_CASE("the keepalive ping borrows a traffic state from on_timeout") {
    output_pool pool;
    gust::settings s;
    s.output_pool = &pool;
    s.timeouts.ping_interval = std::chrono::seconds(10);
    const shared_settings shared(std::move(s));
    virtual_clock clk;
    auto srv = open_lean_server(clk, shared);
    const std::size_t bare = srv.memory().state;
    clk.advance(std::chrono::seconds(11));
    srv.on_timeout(clk.now);
    CHECK(srv.memory().state == bare + traffic_size);
    const auto frames = parse_frames(take_output(srv));
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].opcode == 0x9);
    CHECK(srv.memory().state == bare);
    std::string pong = peer_frame(true, 0x8A, frames[0].payload);
    srv.receive(writable(pong), clk.now);
    CHECK(drain(srv, clk).size() == 1);
    CHECK(srv.latency().has_value());
    CHECK(srv.memory().state == bare);
  }

  TEST_CASE("connections echoing in turn share as many traffic states as were in flight at once") {
    output_pool pool;
    const shared_settings shared = make_settings(&pool);
    virtual_clock clk;
    std::vector<server_connection> conns;
    for (int i = 0; i < 40; ++i) conns.push_back(open_lean_server(clk, shared));
    CHECK(idle_states(pool) == 1);  // one handshake at a time
    for (int round = 0; round < 3; ++round)
      for (auto& c : conns) CHECK(echo(c, peer_frame(true, 0x81, "in turn"), clk) == strings{"text:in turn"});
    CHECK(idle_states(pool) == 1);
    // Three at once with a fragmented message each, interleaved.
    std::vector<std::string> first(3), second(3);
    for (std::size_t i = 0; i < 3; ++i) {
      first[i] = peer_frame(true, 0x01, "part" + std::to_string(i) + " ");
      conns[i].receive(writable(first[i]), clk.now);
      CHECK(drain(conns[i], clk).empty());
    }
    CHECK(idle_states(pool) == 0);
    for (std::size_t i = 0; i < 3; ++i) {
      second[i] = peer_frame(true, 0x80, "end" + std::to_string(i));
      CHECK(echo(conns[i], second[i], clk) == strings{"text:part" + std::to_string(i) + " end" + std::to_string(i)});
    }
    CHECK(idle_states(pool) == 3);
    for (auto& c : conns) CHECK(echo(c, peer_frame(true, 0x82, "z"), clk) == strings{"binary:7a"});
    CHECK(idle_states(pool) == 3);
    // Each state given back is idle: its buffers were cleared, not leaked
    // into the next borrower's messages.
    for (const auto& t : pool.internals().idle_traffic) CHECK(t->idle());
  }

  TEST_CASE("echoing with a pool, in turn on several connections, does not allocate") {
    output_pool pool;
    const shared_settings shared = make_settings(&pool);
    virtual_clock clk;
    std::vector<server_connection> servers;
    for (int i = 0; i < 4; ++i) servers.push_back(open_lean_server(clk, shared));
    auto client = open_shared_client(clk, shared);
    std::string server_wire, client_wire;
    for (int i = 0; i < 8; ++i) {
      server_wire += peer_frame(true, 0x82, std::string(100, 'e'));
      client_wire += peer_frame(false, 0x81, std::string(20, 't'));
    }
    // Input copied afresh each round (it is unmasked in place), into
    // buffers made before counting.
    std::string in = server_wire, cin = client_wire;
    std::size_t allocated = 0;
    for (int round = 0; round < 51; ++round) {
      std::optional<allocation_scope> count;
      if (round > 0) count.emplace();  // the first round warms up
      for (auto& srv : servers) {
        std::copy(server_wire.begin(), server_wire.end(), in.begin());
        srv.receive(writable(in), clk.now);
        std::size_t n = 0;
        while (auto e = srv.next_event(clk.now)) {
          auto* m = std::get_if<message_event>(&*e);
          REQUIRE(m);
          REQUIRE(!srv.send(m->type, m->data));
          ++n;
        }
        CHECK(n == 8);
        std::size_t bytes = 0;
        for (const auto& b : srv.pending_output()) bytes += b.size;
        REQUIRE(!srv.consume_output(bytes));
      }
      std::copy(client_wire.begin(), client_wire.end(), cin.begin());
      client.receive(writable(cin), clk.now);
      while (auto e = client.next_event(clk.now)) {
        auto* m = std::get_if<message_event>(&*e);
        REQUIRE(m);
        REQUIRE(!client.send(m->type, m->data));
      }
      std::size_t bytes = 0;
      for (const auto& b : client.pending_output()) bytes += b.size;
      REQUIRE(!client.consume_output(bytes));
      if (count) allocated += count->count();
    }
    CHECK(allocated == 0);
    CHECK(idle_states(pool) == 1);
  }

  // connection::impl is 88 B on x86-64 (a 96-byte malloc chunk; a
  // static_assert in connection.cpp holds it there). With a pool and
  // default settings (keepalive on) that is all an idle open server that
  // keeps no request holds; a client adds the 101 response it keeps. What
  // few connections need (a subprotocol, an extension, an application
  // ping, a close reason, deflate streams) is made on first need.
  TEST_CASE("an idle open connection holds the bare engine until a feature needs more") {
    constexpr std::size_t engine_bound = 88;
    output_pool pool;
    gust::settings s;  // default timeouts: keepalive every 20 s
    s.output_pool = &pool;
    const shared_settings shared(std::move(s));
    virtual_clock clk;
    auto srv = open_lean_server(clk, shared);
    auto cli = open_shared_client(clk, shared);
    const memory_usage m = srv.memory();
    CHECK(m.total() == m.state);
    CHECK(m.state <= engine_bound);
    const memory_usage cm = cli.memory();
    CHECK(cm.total() == cm.state);
    // (The kept response's body is empty: its capacity is the string's own.)
    CHECK(cm.state <= engine_bound + sizeof(http::response) + sizeof(std::string));

    // Traffic, keepalive pings and their pongs need nothing more: the state
    // after each is the bare one, and once warm the engine allocates
    // nothing for them (counted around the engine's calls only).
    std::size_t allocated = 0;
    auto counted = [&](bool on, auto&& f) {
      std::optional<allocation_scope> count;
      if (on) count.emplace();
      f();
      if (count) allocated += count->count();
    };
    auto echo_counted = [&](connection& c, const std::string& wire, std::string& in, bool on) {
      std::copy(wire.begin(), wire.end(), in.begin());  // (unmasked in place)
      counted(on, [&] {
        c.receive(writable(in), clk.now);
        std::size_t n = 0;
        while (auto e = c.next_event(clk.now)) {
          auto* msg = std::get_if<message_event>(&*e);
          REQUIRE(msg);
          REQUIRE(!c.send(msg->type, msg->data));
          ++n;
        }
        CHECK(n == 1);
        std::size_t bytes = 0;
        for (const auto& b : c.pending_output()) bytes += b.size;
        REQUIRE(!c.consume_output(bytes));
      });
    };
    auto keepalive = [&](connection& c, bool peer_masks, bool on) {
      counted(on, [&] { c.on_timeout(clk.now); });
      const auto frames = parse_frames(take_output(c));
      REQUIRE(frames.size() == 1);
      REQUIRE(frames[0].opcode == 0x9);
      std::string pong = peer_frame(peer_masks, 0x8A, frames[0].payload);
      counted(on, [&] {
        c.receive(writable(pong), clk.now);
        std::size_t n = 0;
        while (auto e = c.next_event(clk.now)) n += std::holds_alternative<pong_event>(*e);
        CHECK(n == 1);
      });
      CHECK(c.latency().has_value());
    };
    const std::string to_server = peer_frame(true, 0x81, "hi"), to_client = peer_frame(false, 0x82, "abc");
    std::string in_server = to_server, in_client = to_client;
    for (int round = 0; round < 3; ++round) {
      const bool on = round > 0;  // the first round warms the pool up
      echo_counted(srv, to_server, in_server, on);
      echo_counted(cli, to_client, in_client, on);
      clk.advance(std::chrono::seconds(21));
      keepalive(srv, true, on);
      keepalive(cli, false, on);
      CHECK(srv.memory().state == m.state);
      CHECK(cli.memory().state == cm.state);
    }
    CHECK(allocated == 0);
    CHECK(srv.memory().total() <= engine_bound);

    // A close without a reason needs nothing more either.
    std::string bye = peer_frame(true, 0x88, close_payload(1000));
    srv.receive(writable(bye), clk.now);
    CHECK(drain(srv, clk).size() == 1);
    (void)take_output(srv);
    CHECK(srv.memory().state == m.state);

    SUBCASE("an application ping makes the rare state") {
      REQUIRE(!cli.ping({}, clk.now));
      (void)take_output(cli);
      CHECK(cli.memory().state > cm.state);
    }
    SUBCASE("a close with a reason makes it") {
      std::string reasoned = peer_frame(false, 0x88, close_payload(1001, "going away"));
      cli.receive(writable(reasoned), clk.now);
      CHECK(drain(cli, clk).size() == 1);
      CHECK(cli.memory().state > cm.state);
    }
    SUBCASE("a subprotocol makes it") {
      server_options opts;
      opts.keep_request = false;
      opts.subprotocols = {"chat"};
      server_connection chat(clk.now, shared, std::move(opts));
      std::string request = upgrade_request("Sec-WebSocket-Protocol: chat\r\n");
      chat.receive(writable(request), clk.now);
      REQUIRE(drain(chat, clk) == strings{"request:/chat?room=1", "open:chat"});
      (void)take_output(chat);
      CHECK(chat.subprotocol() == "chat");
      CHECK(chat.memory().state > m.state);
    }
  }

  TEST_CASE("a large message's buffers are trimmed before its state goes back to the pool") {
    output_pool pool;
    const shared_settings shared = make_settings(&pool);
    virtual_clock clk;
    auto srv = open_lean_server(clk, shared);
    // Fragmented (reassembled in the message buffer) and split across two
    // inputs (the first frame's tail kept in the input buffer).
    const std::string a(100 * 1024, 'a'), b(50 * 1024, 'b');
    const std::string wire = peer_frame(true, 0x02, a) + peer_frame(true, 0x80, b);
    std::string head = wire.substr(0, 70 * 1024), rest = wire.substr(70 * 1024);
    srv.receive(writable(head), clk.now);
    CHECK(drain(srv, clk).empty());
    CHECK(srv.memory().message + srv.memory().input > 64 * 1024);
    srv.receive(writable(rest), clk.now);
    auto e = srv.next_event(clk.now);
    REQUIRE(e);
    auto* m = std::get_if<message_event>(&*e);
    REQUIRE(m);
    CHECK(m->data.size() == a.size() + b.size());
    CHECK_FALSE(srv.next_event(clk.now));
    REQUIRE(idle_states(pool) == 1);
    const detail::traffic& t = *pool.internals().idle_traffic.back();
    CHECK(t.msg_buf.capacity() <= 16 * 1024);
    CHECK(t.icap <= 16 * 1024);
    // The large buffers went to the pool's blocks (bounded, for the next
    // large message on any connection), not with the traffic state.
    CHECK(pool.memory() - pool.internals().block_bytes < 64 * 1024);
    CHECK(pool.internals().block_bytes <= output_pool::impl::max_block_bytes);
  }

  TEST_CASE("a connection reading through prepare() gives its buffer back with its state") {
    output_pool pool;
    const shared_settings shared = make_settings(&pool);
    virtual_clock clk;
    auto srv = open_lean_server(clk, shared);
    const std::size_t bare = srv.memory().state;
    const std::string wire = peer_frame(true, 0x81, "read");
    auto buf = srv.prepare();
    REQUIRE(buf.size() >= wire.size());
    std::memcpy(buf.data(), wire.data(), wire.size());
    srv.commit(wire.size(), clk.now);
    CHECK(srv.memory().input > 0);
    CHECK(drain(srv, clk) == strings{"text:read"});
    const memory_usage m = srv.memory();
    CHECK(m.state == bare);
    CHECK(m.input == 0);
    CHECK(pool.memory() > 0);  // the buffer waits in the pool for the next reader
  }

  TEST_CASE("stop_borrowing keeps what is left of a lent buffer, and allocates nothing when nothing is") {
    // An adapter that stops reading events early (backpressure) reuses its
    // read buffer at once: the connection must have copied the rest.
    for (output_pool* pool : {static_cast<output_pool*>(nullptr), new output_pool}) {
      std::unique_ptr<output_pool> owned(pool);
      const shared_settings shared = make_settings(pool);
      virtual_clock clk;
      auto srv = open_lean_server(clk, shared);
      const std::string wire = peer_frame(true, 0x81, "first") + peer_frame(true, 0x81, "second") +
                               peer_frame(true, 0x81, "thi");
      std::string in = wire;
      srv.receive(writable(in), clk.now);
      auto e = srv.next_event(clk.now);
      REQUIRE(e);
      CHECK(describe(*e) == "text:first");
      srv.stop_borrowing();
      std::fill(in.begin(), in.end(), '\xee');  // the caller reuses its buffer
      e = srv.next_event(clk.now);
      REQUIRE(e);
      CHECK(describe(*e) == "text:second");
      e = srv.next_event(clk.now);
      REQUIRE(e);
      CHECK(describe(*e) == "text:thi");
      CHECK(!srv.next_event(clk.now));
      REQUIRE(!srv.consume_output(srv.buffered_amount()));

      // Everything read: nothing to keep, nothing allocated.
      std::string again = peer_frame(true, 0x81, "whole");
      srv.receive(writable(again), clk.now);
      e = srv.next_event(clk.now);
      REQUIRE(e);
      CHECK(describe(*e) == "text:whole");
      std::size_t allocated = 0;
      {
        allocation_scope count;
        srv.stop_borrowing();
        allocated = count.count();
      }
      CHECK(allocated == 0);
      CHECK(!srv.next_event(clk.now));
      CHECK(srv.memory().input == 0);
    }
  }

  TEST_CASE("without a pool a connection makes its traffic state once and keeps it") {
    output_pool pool;
    virtual_clock clk;
    const shared_settings pooled_settings = make_settings(&pool);
    auto pooled = open_lean_server(clk, pooled_settings);
    const shared_settings own_settings = make_settings(nullptr);
    auto own = open_lean_server(clk, own_settings);
    CHECK(own.memory().state == pooled.memory().state + traffic_size);
    const std::string wire = peer_frame(true, 0x82, "kept");
    std::string in = wire;
    std::size_t allocated = 0, echoed = 0;
    for (int round = 0; round < 21; ++round) {
      std::optional<allocation_scope> count;
      if (round > 0) count.emplace();
      std::copy(wire.begin(), wire.end(), in.begin());
      own.receive(writable(in), clk.now);
      while (auto e = own.next_event(clk.now)) {
        auto* m = std::get_if<message_event>(&*e);
        REQUIRE(m);
        REQUIRE(!own.send(m->type, m->data));
        ++echoed;
      }
      REQUIRE(!own.consume_output(own.buffered_amount()));
      if (count) allocated += count->count();
      CHECK(own.memory().state == pooled.memory().state + traffic_size);
    }
    CHECK(echoed == 21);
    CHECK(allocated == 0);
  }
}
