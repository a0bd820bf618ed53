// Masking (RFC 6455 5.3). The SIMD path (SSE2/AVX2 on x86-64, NEON on
// AArch64, scalar otherwise) is chosen once at run time from what the CPU
// reports, so one portable binary runs everywhere, valgrind included.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace gust::detail {

using mask_key = std::array<std::byte, 4>;

/// XORs `n` bytes in place with the key, starting at key byte `phase % 4`
/// (the payload offset of data[0]: lets a payload be unmasked in pieces).
void mask_in_place(std::byte* data, std::size_t n, mask_key key,
                   std::size_t phase = 0) noexcept;
/// dst[i] = src[i] ^ key[(phase + i) % 4]. dst and src may be equal, not
/// otherwise overlap.
void mask_copy(std::byte* dst, const std::byte* src, std::size_t n,
               mask_key key, std::size_t phase = 0) noexcept;

/// Unmasks a short payload (control frames, small messages) in place, 8
/// bytes at a time, inline: below a few dozen bytes a call through the SIMD
/// dispatch costs more than the work. Returns the OR of every unmasked byte,
/// so `(result & 0x80) == 0` means the payload is ASCII.
inline std::uint8_t unmask_small(std::byte* data, std::size_t n, mask_key key) noexcept {
  std::uint32_t k32;
  std::memcpy(&k32, key.data(), 4);
  const std::uint64_t k64 = (std::uint64_t{k32} << 32) | k32;
  std::uint64_t seen = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data + i, 8);
    w ^= k64;
    seen |= w;
    std::memcpy(data + i, &w, 8);
  }
  for (; i < n; ++i) {
    data[i] ^= key[i & 3];
    seen |= std::to_integer<std::uint8_t>(data[i]);
  }
  seen |= seen >> 32;
  seen |= seen >> 16;
  seen |= seen >> 8;
  return static_cast<std::uint8_t>(seen);
}

/// Name of the implementation selected at run time ("avx2", "sse2",
/// "neon", "scalar"), for benchmarks and logs.
const char* mask_implementation() noexcept;

}  // namespace gust::detail
