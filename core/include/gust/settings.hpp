// gust/settings.hpp: limits, timeouts and behaviour of a connection.
//
// Every limit that protects the engine from a peer is a named field with its
// reason beside it. Defaults are safe for a server facing the internet.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gust/time.hpp"

namespace gust {

class deflate_pool;
class output_pool;

struct limits {
  /// Largest message delivered to the application, reassembled. Above it the
  /// connection fails with 1009 as soon as the announced or received length
  /// passes it, before anything of that size is allocated.
  std::size_t max_message_size = 1 << 20;
  /// Largest single frame payload accepted (1009 above). 0: same as
  /// max_message_size.
  std::size_t max_frame_size = 0;
  /// Fragments per message, counting empty ones: empty continuation frames
  /// cost CPU without adding bytes, so bytes alone do not bound them (1009).
  std::size_t max_fragments = 65536;
  /// Opening handshake bounds (request or response head). A peer past any of
  /// them gets 400/431 (server) or a handshake failure (client). A server
  /// also holds at most this much of what a client sends after its request
  /// while the request_event waits for accept()/reject() (RFC 6455 4.1: the
  /// client waits for the response first); past it, 400 and a failure.
  std::size_t max_handshake_size = 16 * 1024;
  std::size_t max_request_line = 8 * 1024;
  std::size_t max_header_line = 8 * 1024;
  std::size_t max_header_count = 128;
  /// Body of a non-101 response kept for the handshake_failure (client).
  std::size_t max_response_body = 64 * 1024;
  /// send_* refuses new data messages with errc::output_limit_reached while
  /// buffered_amount() is at or above this: the application's backpressure
  /// signal. Control frames are bounded separately and never refused.
  std::size_t max_buffered_output = 16 << 20;
};

struct timeouts {
  /// From construction until the opening handshake completes. 0: none.
  duration open_timeout = std::chrono::seconds(10);
  /// From sending a close frame until the peer's close arrives; for a
  /// client, also from the end of the close handshake until the server
  /// closes the transport.
  duration close_timeout = std::chrono::seconds(10);
  /// Send a keepalive ping this long after the previous one was sent, never
  /// while one is unanswered. 0: no keepalive.
  duration ping_interval = std::chrono::seconds(20);
  /// Fail with 1011 if the keepalive pong has not come by then.
  duration ping_timeout = std::chrono::seconds(20);
};

/// Fills the span with cryptographically secure random bytes. Used for
/// client masking keys and Sec-WebSocket-Key. Injectable for tests.
using random_source = std::function<void(std::span<std::byte>)>;

/// permessage-deflate (RFC 7692). A client offers it, a server accepts an
/// offer, only when `enabled`. The fields are the parameters to offer
/// (client) or the policy to answer with (server).
struct deflate_options {
  bool enabled = false;
  /// Client: ask the server not to keep its compression context between
  /// messages. Server: always answer with it (saves the server's memory).
  bool server_no_context_takeover = false;
  /// Client: promise not to keep ours. Server: require the client not to.
  bool client_no_context_takeover = false;
  /// LZ77 window of the server's compressor (8-15). Client: offered when
  /// below 15. Server: the largest it will use.
  int server_max_window_bits = 15;
  /// Window of the client's compressor (8-15). Client: offered (also
  /// without a value, to let the server choose) when below 15.
  int client_max_window_bits = 15;
  /// zlib compression level (1-9) and memory level (1-9): the operator's
  /// trade between CPU, ratio and memory per connection.
  int level = 6;
  int mem_level = 8;
  /// Messages shorter than this are sent uncompressed (RSV1 clear).
  std::size_t min_size = 64;
  /// Where a direction has no context takeover, borrow its zlib stream from
  /// this pool for one message instead of keeping one per connection (see
  /// deflate_pool.hpp). Not owned; must outlive the connection. Null: each
  /// connection keeps its own streams.
  deflate_pool* pool = nullptr;
  /// Client: further offers, sent after this one in order of preference, for
  /// servers that decline the first (say, a first offer asking for
  /// server_no_context_takeover, then a plain one). Only their negotiation
  /// fields are used; level, mem_level, min_size and pool come from here.
  std::vector<deflate_options> fallback_offers;
};

struct settings {
  gust::limits limits;
  gust::deflate_options deflate;
  gust::timeouts timeouts;
  /// Messages larger than this are sent as several frames, so control frames
  /// (pongs, close) can go out between them instead of waiting behind
  /// megabytes. 0: never split.
  std::size_t max_send_frame_size = 64 * 1024;
  /// false: each message_event holds a whole message. true: data is
  /// delivered in chunks as it arrives (message_event::last marks the end),
  /// so receive buffers can be recycled early and large messages streamed.
  bool deliver_partial_messages = false;
  /// Borrow output storage and the working state of traffic in flight
  /// from this pool while bytes are queued or being received, instead of
  /// keeping them per connection (see output_pool.hpp): idle connections
  /// then hold none. Not owned; must outlive the connection. Null: each
  /// connection keeps its own.
  gust::output_pool* output_pool = nullptr;
  /// Answer pings automatically (RFC 6455 5.5.2 requires a pong). When
  /// several pings arrive before the pong went out, only the latest one is
  /// answered (5.5.3 allows it): a ping flood cannot grow memory.
  bool auto_pong = true;
  /// Empty: the operating system's CSPRNG (getrandom).
  random_source random;
};

/// Settings shared by many connections (a server's), passed to a
/// connection's constructor instead of a copy: each connection then holds a
/// reference (about 230 bytes less per connection).
struct shared_settings {
  explicit shared_settings(std::shared_ptr<const settings> p) noexcept : ptr(std::move(p)) {}
  explicit shared_settings(settings s) : ptr(std::make_shared<const settings>(std::move(s))) {}
  std::shared_ptr<const settings> ptr;  ///< never null
};

}  // namespace gust
