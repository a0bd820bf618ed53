// A client over the adapter facade: connects, sends one message, prints the
// answer, closes. Reconnects with backoff if the server is not there yet.
//
//   build/examples/client ws://127.0.0.1:9001/ "hello"
#include <cstdio>
#include <string>

#include "gust/net.hpp"

int main(int argc, char** argv) {
  gust::event_loop loop(gust::adapter::epoll);  // <- the one line to change
  gust::client_config cfg;
  cfg.url = argc > 1 ? argv[1] : "ws://127.0.0.1:9001/";
  const std::string text = argc > 2 ? argv[2] : "hello";
  cfg.reconnect.enabled = true;
  cfg.reconnect.max_attempts = 5;
  cfg.handlers.on_open = [&](gust::websocket& ws) { (void)ws.send_text(text); };
  gust::client* self = nullptr;
  cfg.handlers.on_message = [&](gust::websocket&, const gust::message_event& m) {
    std::printf("%.*s\n", int(m.data.size()), reinterpret_cast<const char*>(m.data.data()));
    self->close();  // closes and stops reconnecting
  };
  cfg.on_connect_error = [](const gust::connect_error& e) {
    std::fprintf(stderr, "%s%s\n", e.message.c_str(), e.will_retry ? " (retrying)" : "");
  };
  gust::client c(loop, std::move(cfg));
  self = &c;
  if (c.connect()) return 2;  // an invalid URL
  loop.run();                 // until nothing is left to do
}
