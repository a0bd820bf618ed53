// gust::asio::websocket<Stream>: the completion-token and coroutine API, on
// a stream of the user's own kind (tests/asio/pipe_stream.hpp) and on TCP.
// GCC 12 at -O1 with the sanitizers warns that Asio's own use_future
// promise_handler "may be used uninitialized" (asio/impl/use_future.hpp, a
// false positive inside Asio's headers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <doctest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "gust/asio.hpp"
#include "pipe_stream.hpp"

namespace {

using namespace std::chrono_literals;
using gust::test::pipe_stream;
using pipe_ws = gust::asio::websocket<pipe_stream>;
using tcp_ws = gust::asio::websocket<asio::ip::tcp::socket>;
constexpr auto tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

std::string pattern(std::size_t n, bool text) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = text ? static_cast<char>('a' + (i * 7 + i / 251) % 26) : static_cast<char>((i * 31 + i / 257) & 0xff);
  return s;
}
std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

gust::client_options client_opts() {
  gust::client_options o;
  o.host = "localhost";
  o.target = "/chat";
  return o;
}

/// Runs `ioc` until `done` or `bound` passes. Returns done.
template <class Pred>
bool run_until(asio::io_context& ioc, Pred done, std::chrono::milliseconds bound = 10s) {
  const auto end = std::chrono::steady_clock::now() + bound;
  while (!done() && std::chrono::steady_clock::now() < end) {
    ioc.run_for(5ms);
    if (ioc.stopped()) ioc.restart();
  }
  return done();
}

/// A connected TCP pair on loopback.
std::pair<asio::ip::tcp::socket, asio::ip::tcp::socket> tcp_pair(asio::io_context& ioc) {
  asio::ip::tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  asio::ip::tcp::socket a(ioc), b(ioc);
  a.connect(acc.local_endpoint());
  acc.accept(b);
  return {std::move(b), std::move(a)};  // (server side, client side)
}

asio::awaitable<void> echo_server(pipe_ws& ws, int& echoed) {
  co_await ws.async_accept(asio::use_awaitable);
  for (;;) {
    auto [ec, msg] = co_await ws.async_read(tuple_awaitable);
    if (ec) co_return;
    co_await ws.async_send(msg.type, msg.bytes(), asio::use_awaitable);
    ++echoed;
  }
}

// The README's coroutine echo server, as printed there (port 0 here).
namespace readme {
using asio::ip::tcp;
constexpr auto tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

asio::awaitable<void> session(tcp::socket socket) {
  gust::asio::websocket<tcp::socket> ws(std::move(socket));
  co_await ws.async_accept(asio::use_awaitable);  // the opening handshake
  for (;;) {
    auto [ec, msg] = co_await ws.async_read(tuple_awaitable);
    if (ec) co_return;  // error::closed: see ws.close_status()
    co_await ws.async_send(msg.type, msg.bytes(), asio::use_awaitable);
  }
}

asio::awaitable<void> listener(tcp::acceptor acceptor) {
  for (;;) {
    auto socket = co_await acceptor.async_accept(asio::use_awaitable);
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket)), asio::detached);
  }
}
}  // namespace readme

}  // namespace

TEST_SUITE("asio: the README's coroutine echo server") {
  TEST_CASE("echoes text and binary to two clients, then each closes cleanly") {
    asio::io_context ioc;
    asio::ip::tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
    const auto ep = acc.local_endpoint();
    asio::co_spawn(ioc, readme::listener(std::move(acc)), asio::detached);
    int done = 0;
    std::vector<std::unique_ptr<tcp_ws>> clients;
    for (int i = 0; i < 2; ++i) {
      clients.push_back(std::make_unique<tcp_ws>(ioc));
      asio::co_spawn(
          ioc,
          [&, ws = clients.back().get()]() -> asio::awaitable<void> {
            co_await ws->next_layer().async_connect(ep, asio::use_awaitable);
            co_await ws->async_handshake(client_opts(), asio::use_awaitable);
            const std::string bin = pattern(70000, false);
            co_await ws->async_send("hello", asio::use_awaitable);
            co_await ws->async_send(gust::message_type::binary, bytes(bin), asio::use_awaitable);
            auto a = co_await ws->async_read(asio::use_awaitable);
            auto b = co_await ws->async_read(asio::use_awaitable);
            CHECK(a.data == "hello");
            CHECK(a.type == gust::message_type::text);
            CHECK(b.data == bin);
            co_await ws->async_close(1000, {}, asio::use_awaitable);
            ++done;
          },
          asio::detached);
    }
    REQUIRE(run_until(ioc, [&] { return done == 2; }));
    for (auto& c : clients) {
      REQUIRE(c->close_status());
      CHECK(c->close_status()->clean);
    }
  }
}

TEST_SUITE("asio: websocket<Stream> over a stream of the user's own kind") {
  TEST_CASE("handshake, echo of 0 B to 300 KiB text and binary split in 1000-byte reads, ping, clean close") {
    asio::io_context ioc;
    auto [s, c] = pipe_stream::make_pair(ioc.get_executor());
    pipe_ws server(std::move(s)), client(std::move(c));
    int echoed = 0;
    bool client_done = false;
    std::vector<std::string> got;
    const std::vector<std::size_t> sizes = {0, 1, 125, 126, 65535, 65536, 300 * 1024};
    asio::co_spawn(ioc, echo_server(server, echoed), asio::detached);
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          co_await client.async_handshake(client_opts(), asio::use_awaitable);
          for (std::size_t n : sizes) {
            for (bool text : {true, false}) {
              const std::string p = pattern(n, text);
              co_await client.async_send(text ? gust::message_type::text : gust::message_type::binary, bytes(p),
                                         asio::use_awaitable);
              auto msg = co_await client.async_read(asio::use_awaitable);
              CHECK(msg.type == (text ? gust::message_type::text : gust::message_type::binary));
              got.push_back(msg.data);
              CHECK(msg.data == p);
            }
          }
          co_await client.async_ping(bytes("hi"), asio::use_awaitable);
          co_await client.async_close(1000, "bye", asio::use_awaitable);
          client_done = true;
        },
        asio::detached);
    REQUIRE(run_until(ioc, [&] { return client_done && server.close_status().has_value(); }));
    CHECK(got.size() == sizes.size() * 2);
    CHECK(echoed == int(sizes.size() * 2));
    REQUIRE(client.close_status());
    CHECK(client.close_status()->code == 1000);
    CHECK(client.close_status()->clean);
    CHECK(!client.close_status()->by_peer);
    REQUIRE(server.close_status());
    CHECK(server.close_status()->code == 1000);
    CHECK(server.close_status()->reason == "bye");
    CHECK(server.close_status()->by_peer);
    CHECK(server.state() == gust::state::closed);
  }

  TEST_CASE("completion tokens: callbacks, deferred, use_future") {
    asio::io_context ioc;
    auto [s, c] = pipe_stream::make_pair(ioc.get_executor());
    pipe_ws server(std::move(s)), client(std::move(c));
    // No keepalive timer: the io_context must run out of work by itself
    // once the futures are set (see below).
    server.settings().timeouts.ping_interval = client.settings().timeouts.ping_interval = gust::duration::zero();
    std::error_code accept_ec = asio::error::would_block, hs_ec = asio::error::would_block;
    server.async_accept([&](std::error_code ec) { accept_ec = ec; });
    client.async_handshake(client_opts(), [&](std::error_code ec) { hs_ec = ec; });
    CHECK(accept_ec == asio::error::would_block);  // never called from inside the initiation
    REQUIRE(run_until(ioc, [&] { return !accept_ec && !hs_ec; }));

    // deferred: nothing happens until the operation is launched.
    auto op = client.async_send("deferred", asio::experimental::deferred);
    ioc.poll();
    CHECK(client.next_layer().bytes_written() < 300);  // only the request so far
    bool sent = false;
    std::move(op)([&](std::error_code ec) { sent = !ec; });
    std::string got;
    server.async_read([&](std::error_code ec, gust::asio::message m) {
      if (!ec) got = m.data;
    });
    REQUIRE(run_until(ioc, [&] { return sent && !got.empty(); }));
    CHECK(got == "deferred");

    // use_future, with the io_context run by another thread.
    auto fut_send = client.async_send("future", asio::use_future);
    auto fut_read = server.async_read(asio::use_future);
    // use_future completes on Asio's system executor (its own thread),
    // which releases the operations' hold on `ioc` after setting the
    // promise: wait for run() to return (no work left) before `ioc` goes.
    std::atomic<bool> returned{false};
    std::thread t([&] {
      ioc.restart();
      ioc.run();
      returned = true;
    });
    const bool read_ready = fut_read.wait_for(5s) == std::future_status::ready;
    for (int i = 0; i < 5000 && !returned; ++i) std::this_thread::sleep_for(1ms);
    if (!returned) ioc.stop();
    t.join();
    CHECK(returned);
    REQUIRE(read_ready);
    CHECK(fut_read.get().data == "future");
    CHECK_NOTHROW(fut_send.get());
  }

  TEST_CASE("errors: read before the handshake, a second pending read, invalid UTF-8, send after close") {
    asio::io_context ioc;
    auto [s, c] = pipe_stream::make_pair(ioc.get_executor());
    pipe_ws server(std::move(s)), client(std::move(c));
    std::error_code e1, e2, e3, e4, e5;
    client.async_read([&](std::error_code ec, gust::asio::message) { e1 = ec; });
    REQUIRE(run_until(ioc, [&] { return bool(e1); }));
    CHECK(e1 == gust::asio::error::not_connected);

    bool open = false;
    server.async_accept([&](std::error_code) {});
    client.async_handshake(client_opts(), [&](std::error_code ec) { open = !ec; });
    REQUIRE(run_until(ioc, [&] { return open; }));
    client.async_read([&](std::error_code ec, gust::asio::message) { e2 = ec; });
    client.async_read([&](std::error_code ec, gust::asio::message) { e3 = ec; });
    client.async_send(gust::message_type::text, bytes("\xff\xfe"), [&](std::error_code ec) { e4 = ec; });
    REQUIRE(run_until(ioc, [&] { return e3 && e4; }));
    CHECK(e3 == gust::asio::error::read_in_progress);
    CHECK(e4 == gust::errc::invalid_utf8);
    CHECK(!e2);  // still pending
    bool closed = false;
    client.async_close(1000, {}, [&](std::error_code ec) { closed = !ec; });
    server.async_read([](std::error_code, gust::asio::message) {});
    REQUIRE(run_until(ioc, [&] { return closed && e2; }));
    CHECK(e2 == gust::asio::error::closed);
    client.async_send("late", [&](std::error_code ec) { e5 = ec; });
    REQUIRE(run_until(ioc, [&] { return bool(e5); }));
    CHECK(e5 == gust::errc::invalid_state);
  }
}

TEST_SUITE("asio: websocket<Stream> over Unix sockets") {
  TEST_CASE("asio::local::stream_protocol: handshake, a 1 MiB message, clean close") {
    asio::io_context ioc;
    asio::local::stream_protocol::socket a(ioc), b(ioc);
    asio::local::connect_pair(a, b);
    using unix_ws = gust::asio::websocket<asio::local::stream_protocol::socket>;
    unix_ws server(std::move(a)), client(std::move(b));
    const std::string big = pattern(1 << 20, true);
    bool done = false;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          co_await server.async_accept(asio::use_awaitable);
          auto m = co_await server.async_read(asio::use_awaitable);
          co_await server.async_send(m.type, m.bytes(), asio::use_awaitable);
          auto [ec, m2] = co_await server.async_read(tuple_awaitable);
          CHECK(ec == gust::asio::error::closed);
        },
        asio::detached);
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          co_await client.async_handshake(client_opts(), asio::use_awaitable);
          co_await client.async_send(big, asio::use_awaitable);
          auto m = co_await client.async_read(asio::use_awaitable);
          CHECK(m.data == big);
          co_await client.async_close(1000, {}, asio::use_awaitable);
          done = true;
        },
        asio::detached);
    REQUIRE(run_until(ioc, [&] { return done && server.close_status().has_value(); }));
    CHECK(client.close_status()->clean);
  }
}

TEST_SUITE("asio: coroutines") {
  TEST_CASE("cancellation while waiting for a message: by a cancellation slot, and by a timer race") {
    asio::io_context ioc;
    auto [s, c] = tcp_pair(ioc);
    tcp_ws server(std::move(s)), client(std::move(c));
    bool done = false;
    asio::co_spawn(ioc, server.async_accept(asio::use_awaitable), asio::detached);
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          co_await client.async_handshake(client_opts(), asio::use_awaitable);
          // 1. A cancellation signal emitted by a timer.
          asio::cancellation_signal sig;
          asio::steady_timer t(ioc, 30ms);
          t.async_wait([&](std::error_code) { sig.emit(asio::cancellation_type::terminal); });
          const auto t0 = std::chrono::steady_clock::now();
          auto [ec, msg] = co_await client.async_read(
              asio::bind_cancellation_slot(sig.slot(), tuple_awaitable));
          CHECK(ec == asio::error::operation_aborted);
          CHECK(std::chrono::steady_clock::now() - t0 >= 25ms);
          // 2. The awaitable operators' race: a read against a timeout.
          using namespace asio::experimental::awaitable_operators;
          asio::steady_timer timeout(ioc, 30ms);
          auto r = co_await (client.async_read(asio::use_awaitable) || timeout.async_wait(asio::use_awaitable));
          CHECK(r.index() == 1);  // the timer won; the read was cancelled
          // 3. Still usable: a message sent now arrives whole.
          co_await server.async_send("after", asio::use_awaitable);
          auto m = co_await client.async_read(asio::use_awaitable);
          CHECK(m.data == "after");
          done = true;
        },
        asio::detached);
    REQUIRE(run_until(ioc, [&] { return done; }));
  }

  TEST_CASE("timeouts: the opening timeout fails async_accept; a peer that answers no ping is closed with 1011") {
    asio::io_context ioc;
    {
      auto [s, c] = tcp_pair(ioc);  // the client side says nothing
      gust::asio::websocket<asio::ip::tcp::socket> server(std::move(s));
      server.settings().timeouts.open_timeout = 100ms;
      std::error_code ec = asio::error::would_block;
      const auto t0 = std::chrono::steady_clock::now();
      server.async_accept([&](std::error_code e) { ec = e; });
      REQUIRE(run_until(ioc, [&] { return ec != asio::error::would_block; }));
      CHECK(ec == gust::asio::error::handshake_failed);
      CHECK(std::chrono::steady_clock::now() - t0 >= 90ms);
      REQUIRE(server.handshake_failure());
      CHECK(server.handshake_failure()->error == gust::handshake_error::timeout);
    }
    {
      auto [s, c] = tcp_pair(ioc);
      tcp_ws server(std::move(s)), client(std::move(c));
      server.settings().timeouts.ping_interval = 30ms;
      server.settings().timeouts.ping_timeout = 60ms;
      bool open = false;
      server.async_accept([&](std::error_code) {});
      client.async_handshake(client_opts(), [&](std::error_code ec) { open = !ec; });
      REQUIRE(run_until(ioc, [&] { return open; }));
      // The client never reads, so it never answers the server's pings.
      std::error_code ec;
      bool read_done = false;
      server.async_read([&](std::error_code e, gust::asio::message) { ec = e, read_done = true; });
      REQUIRE(run_until(ioc, [&] { return read_done; }, 5000ms));
      CHECK(ec == gust::asio::error::closed);
      REQUIRE(server.close_status());
      CHECK(server.close_status()->code == 1011);
      CHECK(server.close_status()->cause == gust::close_cause::keepalive_timeout);
    }
  }

  TEST_CASE("keepalive answered: a reading peer stays open past several ping intervals") {
    asio::io_context ioc;
    auto [s, c] = tcp_pair(ioc);
    tcp_ws server(std::move(s)), client(std::move(c));
    server.settings().timeouts.ping_interval = 20ms;
    server.settings().timeouts.ping_timeout = 40ms;
    bool open = false;
    server.async_accept([&](std::error_code) {});
    client.async_handshake(client_opts(), [&](std::error_code ec) { open = !ec; });
    REQUIRE(run_until(ioc, [&] { return open; }));
    std::error_code sec, cec;
    bool sdone = false, cdone = false;
    server.async_read([&](std::error_code e, gust::asio::message) { sec = e, sdone = true; });
    client.async_read([&](std::error_code e, gust::asio::message) { cec = e, cdone = true; });
    run_until(ioc, [] { return false; }, 250ms);
    CHECK(!sdone);
    CHECK(!cdone);
    CHECK(server.latency().has_value());  // pongs came back
  }

  TEST_CASE("close during a pending read: the read ends with error::closed, the close completes") {
    asio::io_context ioc;
    auto [s, c] = tcp_pair(ioc);
    tcp_ws server(std::move(s)), client(std::move(c));
    bool done = false, server_done = false;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          co_await server.async_accept(asio::use_awaitable);
          auto [ec, m] = co_await server.async_read(tuple_awaitable);
          CHECK(ec == gust::asio::error::closed);
          server_done = true;
        },
        asio::detached);
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          co_await client.async_handshake(client_opts(), asio::use_awaitable);
          std::error_code read_ec;
          bool read_done = false;
          client.async_read([&](std::error_code e, gust::asio::message) { read_ec = e, read_done = true; });
          asio::steady_timer t(ioc, 20ms);
          co_await t.async_wait(asio::use_awaitable);
          CHECK(!read_done);
          co_await client.async_close(1001, "going away", asio::use_awaitable);
          asio::steady_timer t2(ioc, 1ms);
          co_await t2.async_wait(asio::use_awaitable);
          CHECK(read_done);
          CHECK(read_ec == gust::asio::error::closed);
          done = true;
        },
        asio::detached);
    REQUIRE(run_until(ioc, [&] { return done && server_done; }));
    REQUIRE(client.close_status());
    CHECK(client.close_status()->code == 1001);
    CHECK(client.close_status()->clean);
    REQUIRE(server.close_status());
    CHECK(server.close_status()->reason == "going away");
  }

  TEST_CASE("an io_context run by four threads: 50 TCP pairs, each on its own strand, echo 20 messages") {
    asio::io_context ioc(4);
    asio::ip::tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
    constexpr int pairs = 50, messages = 20;
    std::vector<std::unique_ptr<gust::asio::websocket<asio::ip::tcp::socket>>> servers, clients;
    std::atomic<int> finished{0}, bad{0}, server_closed{0};
    for (int i = 0; i < pairs; ++i) {
      auto strand_s = asio::make_strand(ioc), strand_c = asio::make_strand(ioc);
      asio::ip::tcp::socket a(strand_c), b(strand_s);
      a.connect(acc.local_endpoint());
      acc.accept(b);
      servers.push_back(std::make_unique<tcp_ws>(std::move(b)));
      clients.push_back(std::make_unique<tcp_ws>(std::move(a)));
      asio::co_spawn(
          strand_s,
          [&, ws = servers.back().get()]() -> asio::awaitable<void> {
            co_await ws->async_accept(asio::use_awaitable);
            for (;;) {
              auto [ec, m] = co_await ws->async_read(tuple_awaitable);
              if (ec) break;
              co_await ws->async_send(m.type, m.bytes(), asio::use_awaitable);
            }
            ++server_closed;
          },
          asio::detached);
      asio::co_spawn(
          strand_c,
          [&, ws = clients.back().get(), i]() -> asio::awaitable<void> {
            co_await ws->async_handshake(client_opts(), asio::use_awaitable);
            for (int k = 0; k < messages; ++k) {
              const std::string p = std::to_string(i) + "/" + std::to_string(k);
              co_await ws->async_send(p, asio::use_awaitable);
              auto m = co_await ws->async_read(asio::use_awaitable);
              if (m.data != p) ++bad;
            }
            co_await ws->async_close(1000, {}, asio::use_awaitable);
            ++finished;
          },
          asio::detached);
    }
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t) pool.emplace_back([&] { ioc.run_for(30s); });
    const auto end = std::chrono::steady_clock::now() + 30s;
    while ((finished < pairs || server_closed < pairs) && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(2ms);
    ioc.stop();
    for (auto& t : pool) t.join();
    CHECK(finished == pairs);
    CHECK(server_closed == pairs);
    CHECK(bad == 0);
  }

  TEST_CASE("thousands of coroutines on one thread: 2,000 pairs, 10 messages each") {
    asio::io_context ioc(1);
    constexpr int pairs = 2000, messages = 10;
    std::vector<std::unique_ptr<pipe_ws>> servers, clients;
    int echoed = 0, finished = 0, bad = 0;
    for (int i = 0; i < pairs; ++i) {
      auto [s, c] = pipe_stream::make_pair(ioc.get_executor());
      servers.push_back(std::make_unique<pipe_ws>(std::move(s)));
      clients.push_back(std::make_unique<pipe_ws>(std::move(c)));
      asio::co_spawn(ioc, echo_server(*servers.back(), echoed), asio::detached);
      asio::co_spawn(
          ioc,
          [&, ws = clients.back().get(), i]() -> asio::awaitable<void> {
            co_await ws->async_handshake(client_opts(), asio::use_awaitable);
            for (int k = 0; k < messages; ++k) {
              const std::string p = "pair " + std::to_string(i) + " message " + std::to_string(k);
              co_await ws->async_send(p, asio::use_awaitable);
              auto m = co_await ws->async_read(asio::use_awaitable);
              if (m.data != p) ++bad;
            }
            co_await ws->async_close(1000, {}, asio::use_awaitable);
            ++finished;
          },
          asio::detached);
    }
    REQUIRE(run_until(ioc, [&] { return finished == pairs; }, 60s));
    CHECK(echoed == pairs * messages);
    CHECK(bad == 0);
  }
}
