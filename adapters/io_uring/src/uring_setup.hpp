// Creating an io_uring for the adapter, and its provided buffer ring: the
// parts that decide whether io_uring is usable here, and say why not.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <memory>

namespace gust::detail::uring_setup {

/// Receive buffers: every multishot receive of a loop takes one from this
/// group (16 MiB per loop, none per connection). 128 KiB so a 64 KiB frame
/// usually arrives whole and the core reads it in place: with 32 KiB buffers
/// every such frame was split and copied to be reassembled, and 64 KiB echo
/// ran at 0.72x epoll instead of 1.3x (bench/uring_notes.md). A dry ring
/// (-ENOBUFS) is handled: those receives are re-armed after the batch.
constexpr unsigned short buffer_group = 0;
constexpr unsigned buffer_count = 128;  // a power of two
constexpr std::size_t buffer_size = 128 * 1024;

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

/// The loop's provided buffer ring: buffer_count buffers of buffer_size.
class buffer_ring {
 public:
  buffer_ring() = default;
  buffer_ring(buffer_ring&&) noexcept;
  buffer_ring& operator=(buffer_ring&&) noexcept;
  ~buffer_ring();

  std::byte* buffer(unsigned short bid) const noexcept {
    return mem_.get() + std::size_t(bid % buffer_count) * buffer_size;
  }
  /// Hands buffer `bid` back to the kernel.
  void give_back(unsigned short bid) noexcept;
  /// The kernel may still write into the buffers: never free them.
  void leak() noexcept;

 private:
  friend buffer_ring provided_buffers(io_uring& r);
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  std::size_t br_bytes_ = 0;
  std::unique_ptr<std::byte[]> mem_;
};

/// Registers buffer_group on `r`. Throws std::system_error with the reason.
buffer_ring provided_buffers(io_uring& r);

}  // namespace gust::detail::uring_setup
