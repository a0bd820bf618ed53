// The operating system's CSPRNG, for masking keys and handshake keys.
#pragma once

#include <cstddef>
#include <span>

namespace gust::detail {

/// Fills `out` from getrandom(2) (the kernel CSPRNG). Retries on EINTR and
/// short reads; never fails on a kernel that has getrandom.
void fill_random(std::span<std::byte> out) noexcept;

}  // namespace gust::detail
