// Two gust engines, a client and a server, talking through memory: what the
// `gust` command line will do over sockets, without any I/O at all. Prints
// every event and every byte count that crosses.
#include <cstdio>
#include <string>
#include <variant>

#include "gust/connection.hpp"

namespace {

template <class... F>
struct overloaded : F... { using F::operator()...; };
template <class... F>
overloaded(F...) -> overloaded<F...>;

// Moves everything `from` wants sent into `to`, like a socket would.
std::size_t transfer(gust::connection& from, gust::connection& to, gust::time_point now) {
  std::string wire;
  for (auto b : from.pending_output()) wire.append(static_cast<const char*>(b.data), b.size);
  if (wire.empty()) return 0;
  (void)from.consume_output(wire.size());
  auto in = to.prepare(wire.size());
  wire.copy(reinterpret_cast<char*>(in.data()), wire.size());
  to.commit(wire.size(), now);
  return wire.size();
}

void print_events(const char* who, gust::connection& c, gust::time_point now) {
  while (auto ev = c.next_event(now)) {
    std::visit(overloaded{
        [&](const gust::request_event& e) {
          std::printf("%s: request %s %s\n", who, e.request->method.c_str(), e.request->target.c_str());
          (void)static_cast<gust::server_connection&>(c).accept(now);
        },
        [&](const gust::open_event& e) {
          std::printf("%s: open (subprotocol '%.*s')\n", who, int(e.subprotocol.size()), e.subprotocol.data());
        },
        [&](const gust::message_event& e) {
          std::printf("%s: %s message, %zu bytes: %.*s\n", who,
                      e.type == gust::message_type::text ? "text" : "binary", e.data.size(),
                      int(std::min<std::size_t>(e.data.size(), 60)), reinterpret_cast<const char*>(e.data.data()));
          if (e.type == gust::message_type::text && c.role() == gust::role::server)
            (void)c.send_text("echo: " + std::string(e.text()));
        },
        [&](const gust::ping_event& e) { std::printf("%s: ping (%zu bytes)\n", who, e.payload.size()); },
        [&](const gust::pong_event& e) {
          std::printf("%s: pong%s\n", who, e.rtt ? " (answers our ping)" : "");
        },
        [&](const gust::close_event& e) {
          std::printf("%s: closed %u '%.*s' %s, %s by %s\n", who, e.code, int(e.reason.size()), e.reason.data(),
                      e.clean ? "cleanly" : "uncleanly", std::string(to_string(e.cause)).c_str(),
                      e.by_peer ? "the peer" : "us");
        },
        [&](const gust::handshake_failure_event& e) {
          std::printf("%s: handshake failed: %s\n", who, e.failure->detail.c_str());
        }},
        *ev);
  }
}

}  // namespace

int main() {
  gust::time_point now = gust::clock::now();
  gust::client_options opts;
  opts.host = "example.com";
  opts.target = "/chat";
  opts.subprotocols = {"chat"};
  gust::server_options sopts;
  sopts.subprotocols = {"chat"};

  gust::client_connection client(now, opts);
  gust::server_connection server(now, {}, sopts);

  auto pump = [&] {
    for (;;) {
      std::size_t a = transfer(client, server, now);
      if (a) std::printf("  client -> server: %zu bytes\n", a);
      print_events("server", server, now);
      std::size_t b = transfer(server, client, now);
      if (b) std::printf("  server -> client: %zu bytes\n", b);
      print_events("client", client, now);
      if (!a && !b) break;
    }
  };

  pump();
  (void)client.send_text("Hello, gust!");
  (void)client.ping({}, now);
  pump();
  (void)client.send_fragment(gust::message_type::text, std::as_bytes(std::span("frag", 4)), false);
  (void)client.send_fragment(gust::message_type::text, std::as_bytes(std::span("mented", 6)), true);
  pump();
  (void)client.close(now, gust::close_code::normal, "done");
  pump();
  std::printf("server: state %s, close the transport: %s\n", std::string(to_string(server.state())).c_str(),
              server.transport_should_close() ? "yes" : "no");
  client.receive_eof(now);
  print_events("client", client, now);
  std::printf("client: state %s, close the transport: %s\n", std::string(to_string(client.state())).c_str(),
              client.transport_should_close() ? "yes" : "no");
  return server.state() == gust::state::closed && client.state() == gust::state::closed ? 0 : 1;
}
