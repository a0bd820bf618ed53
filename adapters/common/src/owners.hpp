// The state behind gust::server and gust::client (shared by every adapter).
#pragma once

#include <sys/socket.h>

#include <memory>
#include <vector>

#include "loop.hpp"

namespace gust::detail {

class server_state {
 public:
  server_config cfg;
  logger log;
  struct per_loop {
    loop_base* loop = nullptr;
    int listener = -1;  // adapter id, -1 once closed
    int fd = -1;
    // What this loop's connections share (they point to it: stable).
    std::unique_ptr<session_owner> owner = std::make_unique<session_owner>();
    bool shutting_down = false;
    bool closing_all = false;  // shutdown with close_connections
    // cfg.settings with this loop's pools, shared by its connections.
    std::shared_ptr<const gust::settings> settings;
  };
  std::vector<per_loop> per;
  endpoint bound;
  std::atomic<bool> shutting{false};
  bool listening = false;
  // Declared last: destroyed first, while the state above is still there.
  std::vector<std::unique_ptr<event_loop>> owned;

  explicit server_state(server_config c);
  per_loop& of(loop_base& l);
  /// Runs connections on `l` too.
  void add_loop(loop_base& l);
  std::error_code listen();
  void on_accept(std::size_t i, loop_base& loop, int fd, const sockaddr* remote, socklen_t len);
  void on_request(websocket& ws, const http::request& req);
  bool plain_http(websocket& ws, const handshake_failure& f);
  void do_shutdown(std::size_t i, const shutdown_options& opts);
  /// Closing everything: once no connection but idle ones (accepted, not a
  /// byte received: browsers' preconnects) is left, close those too, so
  /// they never hold the shutdown up. Until then a request arriving on one
  /// still gets its 503.
  void close_idle_when_done(loop_base& loop);
  std::vector<websocket*> local_connections(loop_base& l) const;
  void abandon_all();
};

class client_state {
 public:
  loop_base& loop;
  client_config cfg;
  ws_url url;
  session_owner owner;  // its connections point here (their counters too)
  logger log;
  websocket* current = nullptr;
  std::vector<sockaddr_storage> addrs;
  std::size_t next_addr = 0;
  std::error_code last_connect_error;
  unsigned attempt = 0;       // attempts since the last open
  std::uint64_t attempt_id = 0;
  bool user_closed = false;
  bool connecting = false;    // an attempt is under way
  bool error_reported = false;
  std::uint64_t open_timer = 0, retry_timer = 0;
  std::shared_ptr<int> alive = std::make_shared<int>(0);

  client_state(loop_base& l, client_config c);
  ~client_state();
  std::error_code connect();
  void start_attempt();
  void on_resolved(std::uint64_t id, int rc, std::vector<sockaddr_storage> found);
  void try_next();
  void on_connected(websocket& ws, std::error_code ec);
  void on_open(websocket& ws);
  void on_handshake_failure(const handshake_failure& f);
  void on_session_end(websocket& ws);
  void on_open_timeout();
  void report(std::error_code ec, std::string message,
              std::optional<handshake_failure> failure = std::nullopt);
  bool will_retry() const;
  void end_attempt();
  void close(std::uint16_t code, std::string_view reason);
};

}  // namespace gust::detail
