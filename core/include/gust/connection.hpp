// gust/connection.hpp: one WebSocket connection, without I/O.
//
// The pump an adapter runs, in this order, every time the socket or the
// timer wakes it:
//   1. input:  read into prepare(), then commit(n, now); or hand over a
//              buffer you own with receive(bytes, now); receive_eof(now) at
//              end of stream.
//   2. events: while (auto ev = next_event(now)) handle(*ev);
//   3. output: write pending_output() (writev-ready), then consume_output(n).
//   4. close the transport once transport_should_close() is true and the
//      output is written.
//   5. re-arm the timer from next_deadline(); on expiry call on_timeout(now).
//
// Anything the application calls between events (send_*, ping, close, ...)
// only appends to the output: there is no re-entrancy. Nothing here throws
// or aborts because of what a peer sent; local misuse returns an errc.
//
// Lifetime rule, for every view this class hands out (events, the spans of
// prepare() and pending_output()): valid until the next non-const call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>

#include "gust/close_code.hpp"
#include "gust/error.hpp"
#include "gust/event.hpp"
#include "gust/handshake.hpp"
#include "gust/settings.hpp"
#include "gust/time.hpp"

namespace gust {

class prepared_message;

enum class role : std::uint8_t { client, server };

/// RFC 6455 connection states. CLOSED means the WebSocket protocol is done:
/// the transport may still need closing (see transport_should_close()).
enum class state : std::uint8_t { connecting, open, closing, closed };

std::string_view to_string(state s) noexcept;

/// Same layout as POSIX `struct iovec`, without depending on it.
struct const_buffer {
  const void* data;
  std::size_t size;
};

/// Bytes a connection holds, for per-connection memory accounting.
struct memory_usage {
  std::size_t input = 0;    ///< receive buffer (partial frames, unread data)
  std::size_t message = 0;  ///< reassembly of a fragmented message
  std::size_t output = 0;   ///< queued output storage (capacity, not only used)
  std::size_t compression = 0;  ///< zlib streams held (permessage-deflate)
  /// The engine itself: its state, and what it keeps of the opening
  /// handshake (the handshake's working state until open, then the request
  /// for a server). Its working state for traffic in flight counts while
  /// held: always without settings.output_pool, only while bytes are in
  /// flight with one. Not counted: the caller's own objects.
  std::size_t state = 0;
  std::size_t total() const noexcept { return input + message + output + compression + state; }
};

class connection {
 public:
  connection(connection&&) noexcept;
  connection& operator=(connection&&) noexcept;
  ~connection();

  gust::role role() const noexcept;
  gust::state state() const noexcept;

  // ---- input -------------------------------------------------------------

  /// A writable buffer of at least `min_size` bytes (a sensible default when
  /// 0) to read the socket into. Call commit() with what was read.
  std::span<std::byte> prepare(std::size_t min_size = 0);
  /// `n` bytes were written at the start of the last prepare() span.
  void commit(std::size_t n, time_point now);
  /// Hands over bytes the caller owns (an io_uring provided buffer). They are
  /// used in place where possible (unmasked in place, so they must be
  /// writable) and must stay valid until next_event() has returned nothing;
  /// after that the connection has copied whatever it still needs.
  void receive(std::span<std::byte> data, time_point now);
  /// Copies what the connection still needs of the buffer last handed to
  /// receive(), so that the caller may reuse that buffer before
  /// next_event() has returned nothing (a reader that stops early, for
  /// backpressure). Allocates nothing when nothing is left.
  void stop_borrowing();
  /// The peer closed its sending direction.
  void receive_eof(time_point now);

  /// The next event, or nothing when more input (or, for a server in the
  /// handshake, an answer to the request_event) is needed.
  std::optional<event> next_event(time_point now);

  /// Whether the input not processed yet may hold a close frame or a frame
  /// that fails the connection. Not needed to keep data: a failure the
  /// peer's input causes queues its close frame after the frames already
  /// queued (see fail()). A caller may still write its output early when
  /// this is true, so the answers to the messages before such a frame are on
  /// the wire before the connection ends. Each frame header is read once per
  /// input buffer; true when the engine cannot tell (a frame cut by the end
  /// of the input is looked at later).
  bool close_may_follow() const noexcept;

  // ---- output ------------------------------------------------------------

  /// Bytes to send, as a list of buffers ready for writev/sendmsg (at most
  /// 1024 of them, IOV_MAX: call again after consume_output() for the rest).
  /// Empty when nothing is queued.
  std::span<const const_buffer> pending_output();
  /// `n` bytes of pending_output() were written.
  [[nodiscard]] std::error_code consume_output(std::size_t n);
  /// Queued bytes not yet consumed: the backpressure signal.
  std::size_t buffered_amount() const noexcept;
  /// True once the transport should be closed after the pending output is
  /// written: the server closes first after the close handshake (RFC 6455
  /// 7.1.1); a client waits for the server, up to close_timeout, then says
  /// true; after a failure or a rejected handshake both say true.
  bool transport_should_close() const noexcept;

  // ---- time --------------------------------------------------------------

  /// When on_timeout() should next be called; nothing when no timer runs.
  std::optional<time_point> next_deadline() const noexcept;
  /// Handles every deadline at or before `now`: open and close timeouts,
  /// keepalive ping and pong timeout.
  void on_timeout(time_point now);

  // ---- sending -----------------------------------------------------------

  /// Queues a whole message. Text must be UTF-8. The payload is copied (and
  /// masked, for a client) into the output queue.
  [[nodiscard]] std::error_code send_text(std::string_view text);
  [[nodiscard]] std::error_code send_binary(std::span<const std::byte> data);
  /// With permessage-deflate negotiated, `compress` false sends this one
  /// message uncompressed (data already compressed, say); messages below
  /// settings.deflate.min_size are never compressed.
  [[nodiscard]] std::error_code send(message_type type,
                                     std::span<const std::byte> data,
                                     bool compress = true);
  /// Zero-copy send: the output queue references `data` instead of copying
  /// it, and keeps `owner` alive until those bytes are consumed. Only a
  /// server can send without copying (a client must mask); a client copies.
  [[nodiscard]] std::error_code send_shared(message_type type,
                                            std::span<const std::byte> data,
                                            std::shared_ptr<const void> owner);
  /// Sends a message prepared once for many connections (a broadcast; see
  /// prepared_message.hpp): no UTF-8 check here, its compressed form shared
  /// where this connection's permessage-deflate agreement allows, its
  /// payload referenced (server) or copied to be masked (client).
  [[nodiscard]] std::error_code send_prepared(const prepared_message& message);
  /// Sends one fragment of a message: the first call fixes the type, the
  /// call with `fin` ends it. Text fragments are checked as one UTF-8 stream.
  [[nodiscard]] std::error_code send_fragment(message_type type,
                                              std::span<const std::byte> data,
                                              bool fin);
  /// Ping with an application payload (at most 125 bytes). Records `now` so
  /// the matching pong reports the round-trip time. Control frames are not
  /// subject to max_buffered_output.
  [[nodiscard]] std::error_code ping(std::span<const std::byte> payload,
                                     time_point now);
  /// Unsolicited pong (a unidirectional heartbeat, RFC 6455 5.5.3).
  [[nodiscard]] std::error_code pong(std::span<const std::byte> payload);
  /// Starts the closing handshake. `code` must be valid on the wire (or
  /// 1005 to send a close frame without a code); reason at most 123 bytes,
  /// UTF-8. The close frame follows the messages already queued, so a
  /// send_text() then close() delivers the text; so does the engine's answer
  /// to the peer's close, and the close the engine sends when the peer's
  /// input fails the connection (see fail() for the one that drops data).
  /// Once a close frame is queued (the state leaves OPEN), send_*, ping(),
  /// pong() and close() return errc::invalid_state: RFC 6455 5.5.1 allows no
  /// data after a close.
  [[nodiscard]] std::error_code close(time_point now,
                                      std::uint16_t code = close_code::normal,
                                      std::string_view reason = {});
  /// Fails the connection (RFC 6455 7.1.7): sends a close frame with `code`
  /// if still possible, discards further input and asks for the transport to
  /// be closed. The close goes out right after the frame being written (a
  /// frame is never cut); data frames not yet started are dropped, control
  /// frames already queued stay. This is what fail() is for: stopping now.
  /// The engine's own failures differ by cause. When the peer's input fails
  /// the connection (1002, 1007, 1009: a broken rule, invalid UTF-8,
  /// corrupt compressed data, a size or fragment limit; 1011 when inflating
  /// it runs out of memory), every frame queued before stays and the close
  /// frame follows them, then nothing; a fragmented message of ours may so
  /// be left unfinished. A keepalive timeout (1011) drops unsent data as
  /// fail() does. Either way transport_should_close() turns true at once:
  /// write pending_output() first, bounded by a timeout, as for any close.
  void fail(time_point now, std::uint16_t code = close_code::internal_error,
            std::string_view reason = {});

  // ---- observation -------------------------------------------------------

  /// The subprotocol selected in the opening handshake, empty if none.
  std::string_view subprotocol() const noexcept;
  /// The negotiated Sec-WebSocket-Extensions value, empty if none.
  std::string_view extensions() const noexcept;
  /// True once permessage-deflate was negotiated.
  bool compression_enabled() const noexcept;
  /// Round-trip time measured by the latest answered ping.
  std::optional<duration> latency() const noexcept;
  memory_usage memory() const noexcept;
  const gust::settings& settings() const noexcept;

  struct impl;

 protected:
  explicit connection(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

/// The server side: answers one opening request, then speaks WebSocket.
class server_connection : public connection {
 public:
  explicit server_connection(time_point now, gust::settings s = {},
                             server_options opts = {});
  /// The same with settings shared by many connections (a server's).
  server_connection(time_point now, shared_settings s, server_options opts = {});

  /// Answers the pending request_event with 101 Switching Protocols.
  [[nodiscard]] std::error_code accept(time_point now, accept_options opts = {});
  /// Answers it with an HTTP error (status 400-599) and a plain-text body.
  [[nodiscard]] std::error_code reject(int status, std::string_view body = {});
  /// Answers it with any HTTP response (health checks, static pages). The
  /// connection then closes: Content-Length and Connection: close are added.
  [[nodiscard]] std::error_code respond(const http::response& response);

  /// The opening request once fully received (path, query, headers), for
  /// the life of the connection; null before.
  const http::request* request() const noexcept;
};

/// The client side: its opening request is queued on construction.
class client_connection : public connection {
 public:
  explicit client_connection(time_point now, client_options opts,
                             gust::settings s = {});
  /// With settings shared by many connections.
  client_connection(time_point now, client_options opts, shared_settings s);
};

}  // namespace gust
