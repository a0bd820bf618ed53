// Shared by the benchmark binaries: allocation counting, verification,
// payloads, a frame encoder and decoder independent of the engine, and a
// client/server pair that has completed its opening handshake.
//
// Habit 10 (STYLE.md): every benchmark checks its result against a
// reference before it times anything. A failed check marks the benchmark
// skipped with the reason and makes the binary exit non-zero, so the smoke
// run (meson test --benchmark) fails on a wrong answer, never on a time.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gust/connection.hpp"
#include "gust/output_pool.hpp"

namespace gust::bench {

// ---- allocation counting -------------------------------------------------
//
// alloc_count.cpp replaces the global operator new/delete of the binary
// (the shared libgust resolves to them too). Only calls made while counting
// is on are counted: operator new of every form, not malloc (zlib allocates
// with malloc, so the deflate benchmarks count only what the engine itself
// allocates with new).

struct alloc_stats {
  std::uint64_t allocs = 0;
  std::uint64_t bytes = 0;
};
void set_counting(bool on) noexcept;
alloc_stats alloc_snapshot() noexcept;

/// Counts allocations from construction to destruction and reports them as
/// per-iteration counters: `allocs` (operator new calls) and `alloc_bytes`.
/// Make it right before the timed loop, in the benchmark's outer scope.
class count_allocations {
 public:
  explicit count_allocations(benchmark::State& state) noexcept;
  ~count_allocations();
  count_allocations(const count_allocations&) = delete;
  count_allocations& operator=(const count_allocations&) = delete;

 private:
  benchmark::State& state_;
  alloc_stats start_;
};

// ---- verification --------------------------------------------------------

/// false: records the failure (exit status), skips the benchmark with
/// `what`. Use as `if (!verify(state, ok, "...")) return;` before the loop.
bool verify(benchmark::State& state, bool ok, const char* what);
/// For checks that cannot skip (setup outside a benchmark).
void fail_setup(const char* what);

// ---- payloads ------------------------------------------------------------

using bytes = std::vector<std::byte>;

inline std::span<const std::byte> as_bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}
inline std::string_view as_text(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// Chat-like JSON: ASCII only, the common case of text traffic.
std::string ascii_text(std::size_t n);
/// Valid UTF-8 with about half of its bytes in 2-, 3- and 4-byte sequences
/// (Cyrillic, CJK, emoji between ASCII words), cut on a code point boundary
/// and padded with spaces to exactly n bytes.
std::string mixed_text(std::size_t n);
/// Pseudo-random bytes (fixed seed).
bytes random_bytes(std::size_t n, std::uint64_t seed = 1);

enum class content : std::uint8_t { binary, ascii, mixed };
const char* to_string(content c) noexcept;
/// `n` bytes of that content.
bytes payload(content c, std::size_t n, std::uint64_t seed = 1);

// ---- frames (RFC 6455 5.2), written and read without the engine ---------

/// Appends one frame to `out`; masked with `key` when `key` is not null.
void append_frame(bytes& out, bool fin, std::uint8_t opcode, std::span<const std::byte> payload,
                  const std::uint8_t* key);
/// Appends a message as frames of at most `fragment` payload bytes
/// (0: one frame). `key` as above; every frame uses the same key.
void append_message(bytes& out, std::uint8_t opcode, std::span<const std::byte> payload,
                    std::size_t fragment, const std::uint8_t* key);

struct decoded_message {
  std::uint8_t opcode = 0;
  bytes payload;
  bool all_masked = true;
  bool none_masked = true;
  std::size_t frames = 0;
};
/// Reassembles the data messages in `wire` (control frames are skipped).
/// false on malformed framing or a truncated tail.
bool decode_messages(std::span<const std::byte> wire, std::vector<decoded_message>& out);

// ---- the engine ----------------------------------------------------------

/// Copies every pending output buffer into one string and consumes it.
bytes drain_output(connection& c);

/// A client and a server that have completed the opening handshake in
/// memory, both OPEN, their handshake events and output drained.
struct pair {
  time_point now = clock::now();
  client_connection client;
  server_connection server;
  explicit pair(const gust::settings& s);
};

/// The settings of the codec benchmarks: the defaults, with room for the
/// 1 MiB case above max_message_size's default (exactly 1 MiB) and no
/// keepalive timer. With `pool`, the connections borrow their storage from
/// it, as every adapter's connections do from their loop's pool.
gust::settings codec_settings(gust::output_pool* pool = nullptr);

}  // namespace gust::bench
