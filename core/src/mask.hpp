// Masking (RFC 6455 5.3). The SIMD path (SSE2/AVX2 on x86-64, NEON on
// AArch64, scalar otherwise) is chosen once at run time from what the CPU
// reports, so one portable binary runs everywhere, valgrind included.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

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

/// Name of the implementation selected at run time ("avx2", "sse2",
/// "neon", "scalar"), for benchmarks and logs.
const char* mask_implementation() noexcept;

}  // namespace gust::detail
