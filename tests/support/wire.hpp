// Test support: build frames byte by byte, drive a connection on a virtual
// clock, record its events as comparable strings, and wire a client and a
// server engine to each other in memory (h11's connection-pair idea).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gust/connection.hpp"

namespace gust::test {

using namespace std::chrono_literals;

/// A clock that moves only when told to.
struct virtual_clock {
  time_point now = time_point{} + std::chrono::hours(1);
  void advance(duration d) { now += d; }
};

inline std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

/// A raw frame. `first_byte` holds FIN, RSV and opcode (0x81 = FIN text).
/// With `mask`, the payload is masked with `key` and the mask bit set.
/// `length_override` writes another length than the payload's (lying peers).
std::string frame(std::uint8_t first_byte, std::string_view payload, bool mask,
                  std::uint32_t key = 0x37fa213d,
                  std::optional<std::uint64_t> length_override = std::nullopt);
/// Masked (client-to-server) and unmasked (server-to-client) shorthands.
inline std::string cframe(std::uint8_t b0, std::string_view p) { return frame(b0, p, true); }
inline std::string sframe(std::uint8_t b0, std::string_view p) { return frame(b0, p, false); }
/// A close frame payload: code (big-endian) and reason.
std::string close_payload(std::uint16_t code, std::string_view reason = {});

/// One event as a string: "open:<subprotocol>", "request:<target>",
/// "text:<data>", "binary:<hex>" (with ":more" for a non-last chunk),
/// "ping:<hex>", "pong:<hex>", "close:<code>:<reason>:<clean|unclean>:
/// <peer|local>:<cause>", "handshake_failure:<error>".
std::string describe(const event& ev);
std::string hex(std::string_view s);

/// How input is handed over.
enum class feed_mode { receive, prepare_commit };

/// Feeds `input` in pieces of `chunk` bytes (0: whole), pulling events
/// after each piece; then EOF if asked. Server requests are accepted when
/// `accept` is set. Returns the events.
std::vector<std::string> feed(connection& c, std::string_view input, virtual_clock& clk,
                              std::size_t chunk = 0, feed_mode mode = feed_mode::receive,
                              bool accept = true);
/// Feeds at the given split points.
std::vector<std::string> feed_split(connection& c, std::string_view input, virtual_clock& clk,
                                    const std::vector<std::size_t>& cuts, bool accept = true);
/// Pulls every event available now.
std::vector<std::string> drain(connection& c, virtual_clock& clk, bool accept = true);
/// Takes (and consumes) all pending output.
std::string take_output(connection& c);

/// A parsed frame from output.
struct wire_frame {
  bool fin;
  std::uint8_t rsv;
  std::uint8_t opcode;
  bool masked;
  std::string payload;  ///< unmasked
};
/// Parses frames; fails the doctest check on malformed framing.
std::vector<wire_frame> parse_frames(std::string_view bytes);

/// A valid opening request from a client, as bytes.
std::string upgrade_request(std::string_view extra_headers = {},
                            std::string_view key = "dGhlIHNhbXBsZSBub25jZQ==");

/// A server that has completed its handshake and drained its 101.
server_connection open_server(virtual_clock& clk, gust::settings s = {},
                              server_options opts = {});
/// A client that has completed its handshake (fixed random source).
client_connection open_client(virtual_clock& clk, gust::settings s = {},
                              client_options opts = {});

/// `n` bytes of English words repeated: text that compresses well.
std::string repetitive(std::size_t n);

/// A deterministic random source for tests.
random_source counting_random(std::uint8_t start = 1);

/// A client and a server engine wired to each other in memory.
struct engine_pair {
  virtual_clock clk;
  client_connection client;
  server_connection server;
  std::vector<std::string> client_events;
  std::vector<std::string> server_events;

  explicit engine_pair(gust::settings cs = {}, gust::settings ss = {},
                       client_options co = {}, server_options so = {});
  /// Moves bytes both ways, pulling events (the server accepts requests),
  /// until nothing moves. `max_write` bounds each transfer (0: all).
  void pump(std::size_t max_write = 0);
  /// Delivers EOF to the side whose peer closed its transport, as an
  /// adapter would once transport_should_close() is true.
  void close_transports();
};

}  // namespace gust::test
