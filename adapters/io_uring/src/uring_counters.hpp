// Process-wide counts of the io_uring adapter's rare paths, so tests can show
// that a hazard they provoke (the buffer ring running dry, a short write, a
// send still in flight at close) really happened rather than passing by
// luck. Relaxed atomics, bumped only on those paths.
#pragma once

#include <atomic>
#include <cstdint>

namespace gust::detail {

struct uring_counters {
  std::atomic<std::uint64_t> enobufs{0};        // multishot receive stopped: ring empty
  std::atomic<std::uint64_t> short_sends{0};    // a send wrote part of its bytes
  std::atomic<std::uint64_t> send_errors{0};    // a send failed (EPIPE, ECONNRESET...)
  std::atomic<std::uint64_t> retired_sends{0};  // closed with a send in flight
  std::atomic<std::uint64_t> zc_sends{0};       // IORING_OP_SEND_ZC submitted
  std::atomic<std::uint64_t> zc_notifs{0};      // their notifications
  std::atomic<std::uint64_t> ring_grown{0};     // buffers added to the ring's share (it ran dry)
  std::atomic<std::uint64_t> handshake_reads{0};  // recv(2) of a connection in its opening handshake
  std::atomic<std::uint64_t> direct_sends{0};     // sendmsg(2) of large output from the core's buffers
};

uring_counters& uring_debug_counters() noexcept;

}  // namespace gust::detail
