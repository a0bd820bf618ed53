// The reference for the echo measurement: a small Boost.Beast WebSocket echo
// server (asynchronous, one thread, one io_context), in the shape of Beast's
// own websocket_server_async example. Compression off, like `gust serve`,
// unless --deflate (permessage-deflate offered, Beast's default settings),
// like `gust serve --deflate`.
//
//   beast_echo_server PORT [--deflate]   prints "listening on ws://127.0.0.1:PORT/"
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket&& s, bool deflate) : ws_(std::move(s)) {
    if (deflate) {
      websocket::permessage_deflate pmd;
      pmd.server_enable = true;
      ws_.set_option(pmd);
    }
  }
  void run() {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true));
    ws_.read_message_max(64 << 20);
    ws_.async_accept([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->read();
    });
  }

 private:
  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return;
      self->ws_.text(self->ws_.got_text());
      self->ws_.async_write(self->buffer_.data(), [self](beast::error_code ec, std::size_t) {
        if (ec) return;
        self->buffer_.consume(self->buffer_.size());
        self->read();
      });
    });
  }
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
};

class listener : public std::enable_shared_from_this<listener> {
 public:
  listener(net::io_context& ioc, tcp::endpoint ep, bool deflate) : ioc_(ioc), acceptor_(ioc), deflate_(deflate) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(net::socket_base::max_listen_connections);
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  void accept() {
    acceptor_.async_accept(net::make_strand(ioc_), [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
      if (!ec) std::make_shared<session>(std::move(s), self->deflate_)->run();
      self->accept();
    });
  }

 private:
  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  bool deflate_;
};

int main(int argc, char** argv) {
  const auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 0);
  const bool deflate = argc > 2 && std::string_view(argv[2]) == "--deflate";
  // The idle measurement holds 10,000 connections.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  net::io_context ioc{1};
  auto l = std::make_shared<listener>(ioc, tcp::endpoint{net::ip::make_address("127.0.0.1"), port}, deflate);
  l->accept();
  std::printf("listening on ws://127.0.0.1:%u/\n", unsigned(l->port()));
  std::fflush(stdout);
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) { ioc.stop(); });
  ioc.run();
}
