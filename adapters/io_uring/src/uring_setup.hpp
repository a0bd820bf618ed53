// Creating an io_uring for the adapter, and its provided buffer ring: the
// parts that decide whether io_uring is usable here, and say why not.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <memory>

namespace gust::detail::uring_setup {

/// Receive buffers: every multishot receive of a loop takes one from this
/// group (none per connection). 1024 of them: with 128, 1,000 connections in
/// ping-pong ran the ring dry in every batch, and each dry receive came back
/// with -ENOBUFS to be armed again (1.5 million times in 3 s, about 4 per
/// message, at 20% less throughput). That is 128 MiB of address space per
/// loop, of which only the buffers a batch has used are ever touched (see
/// below). 128 KiB so a 64 KiB frame
/// usually arrives whole and the core reads it in place: with 32 KiB buffers
/// every such frame was split and copied to be reassembled, and 64 KiB echo
/// ran at 0.72x epoll instead of 1.3x (bench/uring_notes.md). A dry ring
/// (-ENOBUFS) is handled: those receives are re-armed after the batch.
///
/// Not all of them sit in the ring at once. The kernel takes posted buffers
/// in order (FIFO), so with all of them posted, light traffic (a stream of
/// opening handshakes) would write the first page of every one: 4 MiB per
/// loop that stays resident. The ring starts with initial_posted, the rest
/// wait on a stack, and each dry ring posts as many more as receives went
/// without: a loop touches only as many buffers as its busiest batch needs.
constexpr unsigned short buffer_group = 0;
constexpr unsigned buffer_count = 1024;  // a power of two
constexpr std::size_t buffer_size = 128 * 1024;
constexpr unsigned initial_posted = 16;

/// Sends of at least this many bytes use IORING_OP_SEND_ZC. Off by default:
/// measured on loopback (bench/uring_notes.md), where the kernel copies the
/// pages anyway, zero-copy only adds the notification. GUST_URING_ZC_MIN
/// overrides it (bytes) for networks where it pays.
constexpr std::size_t default_zc_threshold = SIZE_MAX;

/// An initialised ring; io_uring_queue_exit on destruction.
struct owned_ring {
  io_uring r{};
  bool live = false;
  owned_ring() = default;
  owned_ring(owned_ring&& o) noexcept : r(o.r), live(o.live) { o.live = false; }
  owned_ring& operator=(owned_ring&& o) noexcept;
  ~owned_ring();
};

/// Creates a ring with `sq` entries and a completion queue of `cq`, checks
/// the features the adapter relies on, and runs one multishot receive into a
/// provided buffer over a socket pair. Throws std::system_error whose
/// what() names the reason (EPERM: disabled by sysctl or a sandbox; ENOSYS:
/// no io_uring in this kernel; EINVAL: a feature missing, which one).
owned_ring open_ring(unsigned sq, unsigned cq);

/// The loop's provided buffer ring: buffer_count buffers of buffer_size, of
/// which posted() are in the kernel's ring and the others on a stack of
/// spares (most recently used on top: its pages are the ones resident).
class buffer_ring {
 public:
  buffer_ring() = default;
  buffer_ring(buffer_ring&&) noexcept;
  buffer_ring& operator=(buffer_ring&&) noexcept;
  ~buffer_ring();

  std::byte* buffer(unsigned short bid) const noexcept {
    return mem_.get() + std::size_t(bid % buffer_count) * buffer_size;
  }
  /// A completion carried buffer `bid`: the kernel took it out of the ring.
  void taken() noexcept { --in_ring_; }
  /// Buffer `bid` is free again: back into the ring, or onto the spares if
  /// the ring holds its share.
  void give_back(unsigned short bid) noexcept;
  /// The ring ran dry for `starved` receives: post that many more buffers
  /// from the spares (for good: a loop that once needed them will again).
  void grow(unsigned starved) noexcept;
  /// Buffers the ring is kept at (grows, never shrinks).
  unsigned share() const noexcept { return share_; }
  /// The kernel may still write into the buffers: never free them.
  void leak() noexcept;

 private:
  friend buffer_ring provided_buffers(io_uring& r);
  void post(unsigned short bid) noexcept;
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  std::size_t br_bytes_ = 0;
  std::unique_ptr<std::byte[]> mem_;
  unsigned share_ = 0;
  unsigned in_ring_ = 0;
  unsigned spares_ = 0;
  unsigned short spare_[buffer_count] = {};
};

/// Registers buffer_group on `r`. Throws std::system_error with the reason.
buffer_ring provided_buffers(io_uring& r);

}  // namespace gust::detail::uring_setup
