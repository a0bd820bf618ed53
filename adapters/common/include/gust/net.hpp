// gust/net.hpp: servers and clients over real sockets, the same for every
// adapter.
//
// The facade every adapter shares. A program picks its event-loop adapter in
// one place (`server_config::adapter`, or the `event_loop` constructor); the
// types, handlers, backpressure, timers, registry, broadcast, shutdown and
// counters below are identical whichever adapter runs them, because they are
// written once here over the sans-I/O core (gust/connection.hpp).
//
//   gust::server_config cfg;
//   cfg.port = 8765;                         // 0: any free port, see port()
//   cfg.adapter = gust::adapter::epoll;      // the one line to change
//   cfg.handlers.on_message = [](gust::websocket& ws, const gust::message_event& m) {
//     (void)ws.send(m.type, m.data);         // echo
//   };
//   gust::server srv(std::move(cfg));
//   if (auto ec = srv.listen()) return fail(ec);
//   srv.run();                               // until srv.shutdown() from anywhere
//
// Threading: an event_loop runs on one thread. A websocket, and the server's
// or client's per-connection calls, belong to the loop that runs them: call
// them from its handlers or from event_loop::post(). Thread-safe: event_loop
// stop()/post(), server shutdown()/stats()/broadcast(), client stats().
//
// Lifetime: a websocket reference is valid from the first handler that gets
// it (on_request for a server, on_open) until on_close returns (or, if the
// connection never opened, until the loop's iteration ends). Views in events
// are valid until the handler returns.
#pragma once

#include <any>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "gust/connection.hpp"
#include "gust/event.hpp"
#include "gust/handshake.hpp"
#include "gust/http.hpp"
#include "gust/prepared_message.hpp"
#include "gust/settings.hpp"
#include "gust/time.hpp"

namespace gust {

namespace detail {
class loop_base;
class server_state;
class client_state;
struct counters;
struct session_owner;
struct session_extra;
}  // namespace detail

// ---------------------------------------------------------------------------
// Adapters

/// The event-loop implementations. Which ones exist depends on the build.
enum class adapter : std::uint8_t { epoll, io_uring, asio };

std::string_view to_string(adapter a) noexcept;
/// "epoll", "io_uring" (or "io-uring", "uring"), "asio".
std::optional<adapter> parse_adapter(std::string_view name) noexcept;
bool adapter_available(adapter a) noexcept;
/// Whether adapter `a` can run here: compiled in, and its kernel interface
/// usable (io_uring can be disabled by a sysctl or a sandbox). Creates and
/// destroys one loop. On failure `why` (if given) says what, for a person.
std::error_code adapter_usable(adapter a, std::string* why = nullptr);
/// The adapters compiled into this build, the default first.
std::span<const adapter> available_adapters() noexcept;

// ---------------------------------------------------------------------------
// Small types

enum class log_level : std::uint8_t { debug, info, warning, error };
std::string_view to_string(log_level l) noexcept;
/// Receives the library's log lines. Empty (the default): no logging. Called
/// on the loop's thread that logs; a sink shared by several loops must be
/// thread-safe.
using log_sink = std::function<void(log_level, std::string_view)>;

/// A socket address, as the peer or the listener sees it.
struct endpoint {
  enum class kind : std::uint8_t { none, ipv4, ipv6, unix_socket };
  kind family = kind::none;
  std::string address;  ///< "127.0.0.1", "::1", or the socket path
  std::uint16_t port = 0;
  /// "127.0.0.1:8765", "[::1]:8765", "unix:/run/x.sock".
  std::string to_string() const;
};

/// Backpressure, per connection. "Buffered" counts bytes queued for the
/// socket (the core's output queue) plus messages held back by a broadcast
/// with over_limit_policy::drop_oldest.
struct backpressure_config {
  /// Above this the connection is "over its limit": websocket::writable()
  /// says false, broadcasts apply their policy, and reading pauses when
  /// pause_reading_when_over is set.
  std::size_t high_watermark = 64 * 1024;
  /// Once buffered falls to this (after being over), on_drain is called and
  /// reading resumes.
  std::size_t low_watermark = 16 * 1024;
  /// Hard limit: a send that would queue past it is refused
  /// (errc::output_limit_reached; the core's limits::max_buffered_output is
  /// set to this) and, when hard_limit_close_code is not 0, the connection is
  /// failed with that code, so a peer that stops reading cannot make the
  /// server hold more than this (plus one message, plus the kernel's buffers).
  std::size_t hard_limit = 16 << 20;
  std::uint16_t hard_limit_close_code = 1008;  ///< 0: only refuse the send
  /// Stop reading a connection while it is over high_watermark (an echo or
  /// request/response peer that does not read our answers stops being read
  /// too, so its input cannot grow our output without bound).
  bool pause_reading_when_over = true;
};

/// Counters a server (or client) operator can pull. Monotonic except the
/// gauges (connections_open, bytes_buffered, memory).
struct stats {
  std::uint64_t connections_accepted = 0;  ///< transports accepted or connected
  std::uint64_t connections_open = 0;      ///< gauge: WebSocket connections OPEN or CLOSING
  std::uint64_t handshakes_accepted = 0;
  std::uint64_t handshakes_rejected = 0;   ///< 4xx/5xx answers, client handshake failures
  std::uint64_t http_responses = 0;        ///< plain HTTP answers from on_request (respond)
  std::uint64_t messages_in = 0, messages_out = 0;
  std::uint64_t bytes_in = 0, bytes_out = 0;  ///< on the wire
  std::uint64_t bytes_buffered = 0;        ///< gauge: queued for sending, all connections
  std::uint64_t memory = 0;                ///< gauge: bytes the core holds, all connections
  std::uint64_t accept_errors = 0;         ///< accept() failures (EMFILE...)
  std::uint64_t hard_limit_closes = 0;     ///< connections failed at the hard limit
  /// Close codes seen in close events (code, count), non-zero counts only.
  std::vector<std::pair<std::uint16_t, std::uint64_t>> close_codes;
  std::uint64_t close_count(std::uint16_t code) const noexcept;
  /// Core memory per open connection.
  double memory_per_connection() const noexcept {
    return connections_open ? double(memory) / double(connections_open) : 0.0;
  }
};

class websocket;

/// What the application is told. Every handler is optional.
struct handlers {
  /// Server only, the `process_request` hook: called when an opening
  /// request arrives, before the upgrade. Inspect ws.request() and
  /// ws.remote_address(); answer plain HTTP with ws.respond() (a health
  /// check, a page), refuse with ws.reject(), or accept with options with
  /// ws.accept(). Doing nothing accepts.
  std::function<void(websocket&, const http::request&)> on_request;
  std::function<void(websocket&)> on_open;
  std::function<void(websocket&, const message_event&)> on_message;
  /// Once per connection that opened: code, reason, clean, by_peer, cause.
  std::function<void(websocket&, const close_event&)> on_close;
  /// The buffered amount fell to the low watermark after passing the high one.
  std::function<void(websocket&)> on_drain;
  std::function<void(websocket&, std::span<const std::byte>)> on_ping;
  std::function<void(websocket&, const pong_event&)> on_pong;
};

// ---------------------------------------------------------------------------
// event_loop

/// One event loop, run by one thread. Servers and clients attach to it.
class event_loop {
 public:
  /// Throws std::system_error when the adapter is not available in this
  /// build or its kernel objects cannot be created.
  explicit event_loop(gust::adapter a = available_adapters().front());
  ~event_loop();
  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;

  /// Runs until stop(), or until nothing is left to do (no listener, no
  /// connection, no pending connect, resolution or timer).
  void run();
  /// Same, for at most `d`.
  void run_for(duration d);
  /// Thread-safe: makes run() return soon.
  void stop();
  /// Thread-safe: runs `fn` on the loop's thread.
  void post(std::function<void()> fn);
  /// Runs `fn` on the loop after `d`. Returns an id for cancel().
  std::uint64_t call_after(duration d, std::function<void()> fn);
  void cancel(std::uint64_t timer_id);
  /// The loop's current time (taken once per iteration).
  time_point now() const noexcept;
  gust::adapter adapter() const noexcept;

  detail::loop_base& impl() noexcept { return *impl_; }

 private:
  std::unique_ptr<detail::loop_base> impl_;
};

namespace detail {
/// An optional time point in 8 bytes (std::optional<time_point> takes 16,
/// once per connection): time_point::min(), a time no deadline can be, is
/// "none".
class maybe_time {
 public:
  maybe_time() = default;
  maybe_time(time_point t) noexcept : t_(t) {}
  maybe_time(std::optional<time_point> t) noexcept : t_(t ? *t : time_point::min()) {}
  explicit operator bool() const noexcept { return t_ != time_point::min(); }
  time_point operator*() const noexcept { return t_; }
  void reset() noexcept { t_ = time_point::min(); }
  friend bool operator==(maybe_time, maybe_time) noexcept = default;

 private:
  time_point t_ = time_point::min();
};

/// The adapter's per-connection socket state, inline in the websocket (a
/// separate object cost an allocation of 32 bytes per connection): every
/// adapter's fits in these 8 bytes.
struct transport_state {
  /// epoll, Asio: the socket; io_uring: its index in the adapter's table.
  /// -1: none (not attached yet, or closed).
  int handle = -1;
  bool connecting : 1 = false;  // connect() under way
  bool out_armed : 1 = false;   // write readiness watched
  bool blocked : 1 = false;     // the last write hit EAGAIN: wait for write readiness
  bool hangup : 1 = false;      // hang-up seen: read to the end
  bool on_ready : 1 = false;    // on the adapter's ready list
};

/// A peer's IP address and port in 20 bytes (an endpoint, with its string,
/// takes 48); websocket::remote_address() formats it when asked. A Unix
/// peer's path is kept beside it, in the connection's extra state.
struct peer_address {
  std::array<std::uint8_t, 16> bytes{};  // network order; IPv4 in the first 4
  std::uint16_t port = 0;
  endpoint::kind family = endpoint::kind::none;
};

/// The engine, in place in its websocket: behind a pointer it cost a
/// separate 32-byte allocation per connection. It is constructed as the
/// concrete type, server or client; the websocket's flags say which, if any.
union engine_storage {
  engine_storage() noexcept {}
  ~engine_storage() {}
  server_connection server;
  client_connection client;
};
}  // namespace detail

// ---------------------------------------------------------------------------
// websocket: one connection, server or client side

class websocket {
 public:
  websocket(const websocket&) = delete;
  websocket& operator=(const websocket&) = delete;
  ~websocket();

  // ---- sending (loop thread). Errors are the core's gust::errc. --------
  [[nodiscard]] std::error_code send_text(std::string_view text);
  [[nodiscard]] std::error_code send_binary(std::span<const std::byte> data);
  [[nodiscard]] std::error_code send(message_type type, std::span<const std::byte> data);
  /// Zero-copy for a server: `data` stays referenced (kept alive by `owner`)
  /// until written.
  [[nodiscard]] std::error_code send_shared(message_type type, std::span<const std::byte> data,
                                            std::shared_ptr<const void> owner);
  /// Streaming: one fragment of a message; `fin` ends it.
  [[nodiscard]] std::error_code send_fragment(message_type type, std::span<const std::byte> data,
                                              bool fin);
  [[nodiscard]] std::error_code ping(std::span<const std::byte> payload = {});
  /// Starts the closing handshake (after the messages already queued).
  [[nodiscard]] std::error_code close(std::uint16_t code = 1000, std::string_view reason = {});
  /// Fails the connection at once (close frame if possible, then the socket).
  void fail(std::uint16_t code = 1011, std::string_view reason = {});

  // ---- answering the opening request (server, inside on_request) --------
  [[nodiscard]] std::error_code accept(accept_options opts = {});
  [[nodiscard]] std::error_code reject(int status, std::string_view body = {});
  [[nodiscard]] std::error_code respond(const http::response& response);

  // ---- backpressure -----------------------------------------------------
  /// Bytes queued for the socket, plus held-back broadcast messages.
  std::size_t buffered_amount() const noexcept;
  /// False while over the high watermark (until it drains to the low one).
  bool writable() const noexcept { return !over_limit_; }
  /// Stops reading: no further message, ping or pong events are delivered
  /// (bytes already read wait in the core, the rest in the kernel, so TCP
  /// flow control pushes back on the peer); resume_reading() undoes it.
  void pause_reading();
  void resume_reading();
  bool reading_paused() const noexcept { return paused_by_user_ || paused_by_backpressure_; }

  // ---- observation ------------------------------------------------------
  gust::state state() const noexcept;
  gust::role role() const noexcept;
  /// The peer's address (made on each call: the connection keeps it in a
  /// compact form).
  endpoint remote_address() const;
  /// Server: the opening request (path, query, headers); null before it
  /// arrived. Client: null.
  const http::request* request() const noexcept;
  /// Client: the server's 101 response once open; null otherwise.
  const http::response* response() const noexcept;
  std::string_view subprotocol() const noexcept;
  std::string_view extensions() const noexcept;
  std::optional<duration> latency() const noexcept;
  memory_usage memory() const noexcept;
  /// The per-connection user data slot.
  std::any& user_data() noexcept { return user_; }
  event_loop& loop() noexcept;
  /// The core connection underneath, for what the facade does not wrap.
  /// Only queue output through it; the loop drives its input and timers.
  connection& core() noexcept { return *conn(); }

 private:
  friend class detail::loop_base;
  friend class detail::server_state;
  friend class detail::client_state;
  websocket();
  /// Queues `m` behind the held broadcasts (there are some).
  void hold(prepared_message m);

  // The engine: null until a client's socket has connected (a server's is
  // made with the websocket), and after drop_engine().
  connection* conn() noexcept {
    if (!has_engine_) return nullptr;
    return client_engine_ ? static_cast<connection*>(&engine_.client) : &engine_.server;
  }
  const connection* conn() const noexcept { return const_cast<websocket*>(this)->conn(); }
  /// A server's engine (the caller knows there is one).
  server_connection& server_engine() noexcept { return engine_.server; }
  const server_connection& server_engine() const noexcept { return engine_.server; }
  /// Constructs the engine in place (there is none yet).
  template <class... Args>
  void make_server_engine(Args&&... args) {
    ::new (static_cast<void*>(&engine_.server)) server_connection(std::forward<Args>(args)...);
    has_engine_ = true;
    client_engine_ = false;
  }
  template <class... Args>
  void make_client_engine(Args&&... args) {
    ::new (static_cast<void*>(&engine_.client)) client_connection(std::forward<Args>(args)...);
    has_engine_ = true;
    client_engine_ = true;
  }
  void drop_engine() noexcept;

  // Owned by the loop: everything below is the facade's per-connection
  // state; the transport (socket) state is the adapter's. Kept small (the
  // size is asserted in tests/adapters/test_adapters.cpp): an idle server
  // holds one per connection (in the loop's record pages, no allocation of
  // its own). What only some connections need (a plain
  // HTTP answer, held broadcasts, a closing transport's linger, a client's
  // response, a Unix peer's path) lives in extra_, made on first use.
  detail::session_owner* owner_ = nullptr;  // loop, handlers, counters, server or client
  detail::engine_storage engine_;  // see conn()
  detail::transport_state tx_;
  std::unique_ptr<detail::session_extra> extra_;
  std::any user_;
  detail::maybe_time armed_;  // deadline pushed on the loop's heap
  // The gauges last added to the owner's counters (bytes buffered, bytes
  // the core holds), in 48 bits each to share words with the flags: 256 TiB,
  // more than a process can map with x86-64's or AArch64's usual 47- or
  // 48-bit user address space, so no connection can reach it.
  std::uint64_t gauge_buffered_ : 48 = 0;
  bool answered_ : 1 = false;        // server: on_request answered
  bool received_ : 1 = false;        // any byte read from the peer
  bool opened_ : 1 = false;          // open event delivered
  bool closed_delivered_ : 1 = false;
  bool over_limit_ : 1 = false;
  bool paused_by_user_ : 1 = false;
  bool paused_by_backpressure_ : 1 = false;
  bool holds_borrowed_ : 1 = false;  // the loop's read buffer is lent to the core
  bool dirty_ : 1 = false;           // on the loop's flush list
  bool closing_transport_ : 1 = false;
  bool write_shut_ : 1 = false;
  bool eof_ : 1 = false;
  bool finished_ : 1 = false;        // transport closed, waiting to be destroyed
  bool abandoned_ : 1 = false;       // its owner went away: no more handlers
  std::uint64_t gauge_memory_ : 48 = 0;
  bool has_engine_ : 1 = false;     // engine_ holds one
  bool client_engine_ : 1 = false;  // ... a client_connection (else a server_connection)
  std::uint32_t slot_ = 0, serial_ = 0;
  std::uint32_t open_index_ = UINT32_MAX;
  detail::peer_address remote_;
};

// ---------------------------------------------------------------------------
// Broadcast

/// What a broadcast does with a connection over its high watermark.
enum class over_limit_policy : std::uint8_t {
  queue,        ///< send anyway (the hard limit still applies)
  skip,         ///< do not send to it
  drop_oldest,  ///< hold the message back; past max_held, drop the oldest held
  close,        ///< fail the connection with close_code (1008 or 1013)
};

struct broadcast_options {
  over_limit_policy policy = over_limit_policy::skip;
  std::uint16_t close_code = 1013;  ///< policy close: 1008 or 1013 (try again later)
  std::size_t max_held = 16;        ///< policy drop_oldest: messages held per connection
};

/// The outcome for one connection.
enum class send_status : std::uint8_t {
  sent,            ///< queued for the socket
  held,            ///< drop_oldest: held back until the connection drains
  dropped_oldest,  ///< held back, and the oldest held message was dropped
  skipped,         ///< over its limit, policy skip
  closed,          ///< over its limit (or its hard limit), failed with a close code
  not_open,        ///< not OPEN (connecting or closing)
  error,           ///< refused by the core (e.g. invalid UTF-8 text)
};
std::string_view to_string(send_status s) noexcept;

struct broadcast_result {
  /// One per target, in the targets' order (empty for a broadcast that ran
  /// on other loops only).
  std::vector<send_status> status;
  std::size_t sent = 0, held = 0, dropped_oldest = 0, skipped = 0, closed = 0, not_open = 0,
              errors = 0;
};

/// Prepares the message once (see gust/prepared_message.hpp: UTF-8 checked
/// once; compressed once for the targets that negotiated permessage-deflate
/// without context takeover on our side) and shares it by reference across
/// every target's send queue (a server's queue references the one buffer; a
/// client's must mask, so it copies). All targets must belong to the calling
/// thread's loop. Text that is not UTF-8: every status is `error`.
broadcast_result broadcast(std::span<websocket* const> targets, message_type type,
                           std::span<const std::byte> data, const broadcast_options& opts = {});
/// The same with a message the caller prepared (and may send again).
broadcast_result broadcast(std::span<websocket* const> targets, const prepared_message& message,
                           const broadcast_options& opts = {});

// ---------------------------------------------------------------------------
// Server

struct server_config {
  gust::adapter adapter = available_adapters().front();
  /// IPv4 or IPv6 literal, or a host name resolved at listen(). "::" (or
  /// "" / "*") listens dual-stack on every address.
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: a free port, see server::port()
  /// Listen on this Unix socket path instead of host and port.
  std::string unix_path;
  /// SO_REUSEPORT, so several processes can share the port (always on when
  /// threads > 1: each loop has its own listener on the same port).
  bool reuse_port = false;
  int threads = 1;
  int backlog = 1024;
  gust::settings settings;       ///< limits, timeouts, keepalive, deflate
  gust::server_options options;  ///< subprotocols, origins, Server header
  backpressure_config backpressure;
  gust::handlers handlers;
  log_sink log;
};

struct shutdown_options {
  /// Close every open connection with this code (1001 going away, 1012
  /// service restart, ...) and wait for the close handshakes, bounded by
  /// settings.timeouts.close_timeout. false: stop accepting and let the
  /// open connections run until they end.
  bool close_connections = true;
  std::uint16_t code = 1001;
  std::string reason = "server shutting down";
};

class server {
 public:
  /// A server with its own loops (config.threads of them), run by run().
  explicit server(server_config cfg);
  /// A server on a loop the caller runs (config.threads must be 1).
  server(event_loop& loop, server_config cfg);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds and listens. Errors: address in use, permission, bad host...
  [[nodiscard]] std::error_code listen();
  /// The bound port (after listen(); the chosen one for port 0).
  std::uint16_t port() const noexcept;
  /// The bound address (host and port, or the Unix path).
  const endpoint& local_endpoint() const noexcept;
  /// "ws://127.0.0.1:8765/", "ws://[::1]:8765/", "ws+unix:/path".
  std::string url() const;

  /// Runs the server's own loops (this thread and threads - 1 more) until a
  /// shutdown has completed.
  void run();
  /// Thread-safe. Stops accepting (a request that arrives meanwhile gets
  /// 503), then closes or keeps the open connections (see shutdown_options).
  /// run() returns once every connection has ended.
  void shutdown(shutdown_options opts = {});
  bool shutting_down() const noexcept;

  /// Thread-safe: the sum of every loop's counters.
  gust::stats stats() const;

  /// Broadcast to every open connection of every loop: the calling loop's
  /// connections at once (their results are returned), the other loops' by a
  /// task posted to them, sharing one copy of the payload. Thread-safe.
  broadcast_result broadcast(message_type type, std::span<const std::byte> data,
                             const broadcast_options& opts = {});
  /// The same with a message the caller prepared (compressed, if wanted,
  /// with this server's settings.deflate; see prepare()).
  broadcast_result broadcast(const prepared_message& message, const broadcast_options& opts = {});
  /// A message prepared with this server's deflate settings, compressed
  /// once when permessage-deflate is enabled.
  prepared_message prepare(message_type type, std::span<const std::byte> data) const;
  /// The open connections of the calling thread's loop (loop thread only).
  std::vector<websocket*> connections() const;

  const server_config& config() const noexcept;

 private:
  std::unique_ptr<detail::server_state> s_;
};

// ---------------------------------------------------------------------------
// Client

/// Automatic reconnection (Python websockets' `async for ws in connect()`):
/// after a connection ends, or an attempt fails, wait and connect again.
/// Delay n (from 0) = min(max_delay, initial_delay * factor^n), then
/// multiplied by a random factor in [1 - jitter, 1]. Reset once a
/// connection opens.
struct reconnect_config {
  bool enabled = false;
  duration initial_delay = std::chrono::milliseconds(500);
  duration max_delay = std::chrono::seconds(60);
  double factor = 1.618;
  double jitter = 0.5;
  /// 0: no limit. Counts attempts since the last successful open.
  unsigned max_attempts = 0;
};

/// Why a connection attempt failed.
struct connect_error {
  std::error_code code;     ///< errno-style, or gust::errc
  std::string message;      ///< one line, for a person
  std::optional<handshake_failure> failure;  ///< the server answered, but not 101
  unsigned attempt = 0;     ///< 1 for the first attempt
  bool will_retry = false;  ///< reconnection scheduled
};

struct client_config {
  std::string url;  ///< ws://host[:port][/path][?query]; [v6] literals
  std::vector<std::string> subprotocols;
  http::headers headers;   ///< extra request headers
  std::string origin;
  /// Limits, timeouts, keepalive; deflate.enabled offers permessage-deflate.
  gust::settings settings;
  /// From connect() (resolution, TCP, handshake) until OPEN.
  duration open_timeout = std::chrono::seconds(10);
  reconnect_config reconnect;
  backpressure_config backpressure;
  gust::handlers handlers;
  std::function<void(const connect_error&)> on_connect_error;
  log_sink log;
};

/// A parsed ws:// URL.
struct ws_url {
  std::string host;  ///< without brackets
  std::uint16_t port = 80;
  std::string target = "/";  ///< path and query
  bool ipv6_literal = false;
  /// Host header value: host, plus ":port" when not 80; brackets for IPv6.
  std::string host_header() const;
};
/// Parses a ws:// URL; errc::invalid_argument with `why` filled otherwise
/// (wss:// is refused: no TLS in this build).
std::error_code parse_ws_url(std::string_view url, ws_url& out, std::string* why = nullptr);

class client {
 public:
  client(event_loop& loop, client_config cfg);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Starts connecting (host resolution runs off the loop's thread). An
  /// invalid URL is reported here; anything later through on_connect_error.
  [[nodiscard]] std::error_code connect();
  /// Closes the current connection (close handshake) and stops reconnecting.
  void close(std::uint16_t code = 1000, std::string_view reason = {});
  /// The current connection, null while there is none.
  websocket* connection() noexcept;
  gust::stats stats() const;
  const client_config& config() const noexcept;

 private:
  std::unique_ptr<detail::client_state> s_;
};

}  // namespace gust
