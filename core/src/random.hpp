// The operating system's CSPRNG, for masking keys and handshake keys.
#pragma once

#include <cstddef>
#include <span>

namespace gust::detail {

/// Fills `out` from getrandom(2) (the kernel CSPRNG). Retries on EINTR and
/// short reads; never fails on a kernel that has getrandom.
void fill_random(std::span<std::byte> out) noexcept;

/// Bytes from the same CSPRNG, served from a per-thread buffer refilled 4 KiB
/// at a time: a client masks every frame with fresh random bytes (RFC 6455
/// 5.3), and a system call per frame would cost more than the frame.
void thread_random(std::span<std::byte> out) noexcept;

}  // namespace gust::detail
