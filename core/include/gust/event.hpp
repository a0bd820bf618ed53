// gust/event.hpp: what a connection tells the application.
//
// Events are pulled (connection::next_event) as a closed std::variant, so a
// visitor must handle every kind and tests can compare events directly.
// Views inside an event (spans, string_views, the request reference) stay
// valid until the next non-const call on the connection that produced it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>

#include "gust/handshake.hpp"
#include "gust/http.hpp"
#include "gust/time.hpp"

namespace gust {

enum class message_type : std::uint8_t { text = 1, binary = 2 };

/// Server only: an opening request arrived and passed the protocol checks.
/// The application must answer it, before pulling more events, with
/// server_connection::accept(), reject() or respond(). Until it does,
/// next_event() returns nothing.
struct request_event {
  const http::request* request;
};

/// The opening handshake completed; the connection is OPEN.
struct open_event {
  std::string_view subprotocol;  ///< empty if none was selected
  std::string_view extensions;   ///< the negotiated Sec-WebSocket-Extensions
  const http::request* request;   ///< server: the accepted request
  const http::response* response; ///< client: the 101 response
};

/// A data message, or with settings::deliver_partial_messages a chunk of
/// one (`last` marks the final chunk). Text is valid UTF-8 as a whole; with
/// partial delivery a chunk boundary may fall inside a code point.
struct message_event {
  message_type type;
  std::span<const std::byte> data;
  bool last = true;

  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(data.data()), data.size()};
  }
};

/// The peer sent a ping. With settings::auto_pong the pong is already queued.
struct ping_event {
  std::span<const std::byte> payload;
};

/// The peer sent a pong. `rtt` is set when it answered our latest ping.
struct pong_event {
  std::span<const std::byte> payload;
  std::optional<duration> rtt;
};

/// Why a connection ended.
enum class close_cause : std::uint8_t {
  handshake,          ///< both close frames were exchanged
  protocol_error,     ///< the peer broke RFC 6455 (we sent 1002/1007/1009/...)
  failed_locally,     ///< the application called fail()
  keepalive_timeout,  ///< no pong within timeouts::ping_timeout (1011)
  close_timeout,      ///< no closing frame within timeouts::close_timeout
  eof,                ///< the transport ended before the close handshake
};

std::string_view to_string(close_cause c) noexcept;

/// The WebSocket connection is CLOSED: nothing more is sent or delivered.
/// Emitted exactly once for a connection that was OPEN.
struct close_event {
  /// The peer's code when it sent a close frame (1005 if it had none),
  /// otherwise the code we sent, or 1006 if no close frame was exchanged.
  std::uint16_t code;
  std::string_view reason;
  /// True when the close handshake completed: we both sent and received a
  /// close frame.
  bool clean;
  /// True when the peer started the closing (its close frame came first, or
  /// it ended the transport); false when we did, including when we failed
  /// the connection because of what it sent (see `cause`).
  bool by_peer;
  close_cause cause;
};

/// The opening handshake failed; the connection is CLOSED. A server has
/// already queued its 4xx/5xx answer (flush it, then close the transport).
struct handshake_failure_event {
  const handshake_failure* failure;
};

using event = std::variant<request_event, open_event, message_event, ping_event,
                           pong_event, close_event, handshake_failure_event>;

}  // namespace gust
