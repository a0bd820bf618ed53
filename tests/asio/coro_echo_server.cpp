// The README's coroutine echo server (gust::asio::websocket<tcp::socket>)
// as a program, to measure the coroutine API with tools/bench/echo_load
// beside tools/bench/beast_echo_server. One thread.
//
//   coro_echo_server PORT     prints "listening on ws://127.0.0.1:PORT/"
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>
#include <cstdlib>

#include "gust/asio.hpp"

using asio::ip::tcp;
constexpr auto tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

asio::awaitable<void> session(tcp::socket socket) {
  socket.set_option(tcp::no_delay(true));
  gust::asio::websocket<tcp::socket> ws(std::move(socket));
  ws.settings().limits.max_message_size = 16 << 20;
  co_await ws.async_accept(asio::use_awaitable);
  for (;;) {
    auto [ec, msg] = co_await ws.async_read(tuple_awaitable);
    if (ec) co_return;
    auto [sec] = co_await ws.async_send(msg.type, msg.bytes(), tuple_awaitable);
    if (sec) co_return;
  }
}

asio::awaitable<void> listener(tcp::acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(tuple_awaitable);
    if (ec) co_return;
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket)), asio::detached);
  }
}

int main(int argc, char** argv) {
  asio::io_context ioc(1);
  tcp::acceptor acceptor(ioc, {asio::ip::address_v4::loopback(),
                               static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 0)});
  std::printf("listening on ws://127.0.0.1:%u/\n", unsigned(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  asio::signal_set stop(ioc, SIGINT, SIGTERM);
  stop.async_wait([&](std::error_code, int) { ioc.stop(); });
  asio::co_spawn(ioc, listener(acceptor), asio::detached);
  ioc.run();
}
