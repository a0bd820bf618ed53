// The facade (gust/net.hpp) attached to a user's Asio executor: one thread,
// and an io_context run by four threads (the loop's strand keeps handlers
// serialized; the thread sanitizer build checks it).
#include <doctest.h>

#include <asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gust/asio_loop.hpp"

namespace {

using namespace std::chrono_literals;

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds bound = 20s) {
  const auto end = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// An echo server on `loop` whose on_open counts, plus `n` gust clients on
/// the same loop that each send `per` messages and count the echoes.
struct echo_fixture {
  gust::event_loop& loop;
  std::unique_ptr<gust::server> srv;
  std::vector<std::unique_ptr<gust::client>> clients;
  std::atomic<int> echoes{0}, opened{0}, closed{0}, broadcasts{0};

  explicit echo_fixture(gust::event_loop& l) : loop(l) {
    gust::server_config cfg;
    cfg.adapter = gust::adapter::asio;
    cfg.handlers.on_message = [](gust::websocket& ws, const gust::message_event& m) {
      (void)ws.send(m.type, m.data);
    };
    srv = std::make_unique<gust::server>(loop, std::move(cfg));
  }

  void add_clients(int n, int per) {
    for (int i = 0; i < n; ++i) {
      gust::client_config cc;
      cc.url = srv->url();
      cc.handlers.on_open = [this, per](gust::websocket& ws) {
        ++opened;
        for (int k = 0; k < per; ++k) (void)ws.send_text("message " + std::to_string(k));
      };
      cc.handlers.on_message = [this](gust::websocket&, const gust::message_event& m) {
        if (m.text().starts_with("message ")) ++echoes;
        if (m.text() == "to all") ++broadcasts;
      };
      cc.handlers.on_close = [this](gust::websocket&, const gust::close_event& e) {
        if (e.code == 1001) ++closed;
      };
      clients.push_back(std::make_unique<gust::client>(loop, std::move(cc)));
      REQUIRE(!clients.back()->connect());
    }
  }
};

void run_attached(int threads) {
  asio::io_context ioc(threads);
  gust::event_loop loop(gust::adapter::asio);
  REQUIRE(!gust::asio::attach(loop, ioc.get_executor()));
  echo_fixture f(loop);
  REQUIRE(!f.srv->listen());
  constexpr int n = 40, per = 20;
  f.add_clients(n, per);
  std::vector<std::thread> pool;
  std::atomic<int> running{threads};
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&] {
      ioc.run();
      --running;
    });
  CHECK(wait_until([&] { return f.echoes.load() == n * per; }));
  // Thread-safe calls from this (foreign) thread: stats, broadcast, post.
  CHECK(f.srv->stats().connections_open == n);
  const std::string payload = "to all";
  auto r = f.srv->broadcast(gust::message_type::text, std::as_bytes(std::span(payload.data(), payload.size())));
  CHECK(r.status.empty());  // not a loop thread: done by a posted task
  CHECK(wait_until([&] { return f.broadcasts.load() == n; }));
  std::atomic<bool> posted_ran{false};
  loop.post([&] { posted_ran = true; });
  CHECK(wait_until([&] { return posted_ran.load(); }));
  // Graceful shutdown: every connection closed with 1001, then ioc.run()
  // returns on every thread at once, as nothing is left to do (no timer
  // left armed for a connection that has ended: that would hold it 20 s,
  // the keepalive interval).
  f.srv->shutdown();
  CHECK(wait_until([&] { return f.closed.load() == n; }));
  CHECK(wait_until([&] { return running.load() == 0; }, 5s));
  if (running.load() != 0) ioc.stop();
  for (auto& t : pool) t.join();
  CHECK(f.srv->stats().connections_open == 0);
}

}  // namespace

TEST_SUITE("asio: the facade on the user's executor") {
  TEST_CASE("attach: server and clients on a one-thread io_context; echo, broadcast, post, shutdown") {
    run_attached(1);
  }
  TEST_CASE("attach: the same on an io_context run by four threads") { run_attached(4); }

  TEST_CASE("attach refuses another adapter's loop and a loop already in use") {
    if (gust::adapter_available(gust::adapter::epoll)) {
      gust::event_loop other(gust::adapter::epoll);
      asio::io_context ioc;
      CHECK(gust::asio::attach(other, ioc.get_executor()) == gust::errc::invalid_argument);
    }
    asio::io_context ioc;
    gust::event_loop loop(gust::adapter::asio);
    gust::server_config cfg;
    cfg.adapter = gust::adapter::asio;
    gust::server srv(loop, std::move(cfg));
    REQUIRE(!srv.listen());
    CHECK(gust::asio::attach(loop, ioc.get_executor()) == gust::errc::invalid_state);
  }

  TEST_CASE("owned mode: event_loop(adapter::asio) runs a server and a client by itself") {
    gust::event_loop loop(gust::adapter::asio);
    echo_fixture f(loop);
    REQUIRE(!f.srv->listen());
    f.add_clients(5, 10);
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (f.echoes.load() < 50 && std::chrono::steady_clock::now() < end) loop.run_for(5ms);
    CHECK(f.echoes.load() == 50);
  }
}
