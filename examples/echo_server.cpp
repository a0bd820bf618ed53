// The smallest complete server over the adapter facade: an echo server with
// a health check. Switching the event loop is the one line marked below.
//
//   build/examples/echo_server 9001      then connect to ws://127.0.0.1:9001/
#include <cstdio>
#include <cstdlib>

#include "gust/net.hpp"

int main(int argc, char** argv) {
  gust::server_config cfg;
  cfg.adapter = gust::adapter::epoll;  // <- gust::adapter::io_uring, gust::adapter::asio
  cfg.port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 9001);
  cfg.handlers.on_request = [](gust::websocket& ws, const gust::http::request& req) {
    if (req.path() == "/healthz") {
      gust::http::response ok;
      ok.status = 200;
      ok.body = "ok\n";
      (void)ws.respond(ok);
    }
  };
  cfg.handlers.on_message = [](gust::websocket& ws, const gust::message_event& m) {
    (void)ws.send(m.type, m.data);
  };
  gust::server srv(std::move(cfg));
  if (auto ec = srv.listen()) {
    std::fprintf(stderr, "listen: %s\n", ec.message().c_str());
    return 1;
  }
  std::printf("listening on %s\n", srv.url().c_str());
  std::fflush(stdout);
  srv.run();  // until srv.shutdown() (from a signal thread, say)
}
