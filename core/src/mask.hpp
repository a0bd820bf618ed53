// Masking (RFC 6455 5.3). The SIMD path (SSE2/AVX2 on x86-64, NEON on
// AArch64, scalar otherwise) is chosen once at run time from what the CPU
// reports, so one portable binary runs everywhere, valgrind included.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

/// Bits that are set in a word when one of its bytes is not ASCII.
inline constexpr std::uint64_t non_ascii_bits = 0x8080808080808080u;

/// Unmasks a short payload (control frames, small messages) in place,
/// inline: below a few dozen bytes a call through the SIMD dispatch costs
/// more than the work, and a 16-byte message should cost one vector XOR.
/// Returns non-zero when an unmasked byte is not ASCII (the OR of the bytes
/// is tested once at the end rather than folded to a byte).
inline std::uint64_t unmask_small(std::byte* data, std::size_t n, mask_key key) noexcept {
  std::uint32_t k32;
  std::memcpy(&k32, key.data(), 4);
  std::uint64_t seen = 0;
  std::size_t i = 0;
#if defined(__SSE2__)
  // In vector registers, so that the caller's inlined hot path keeps its
  // general registers. The partial vectors' key is zero above their width:
  // their upper bytes must not look non-ASCII.
  const __m128i k4 = _mm_cvtsi32_si128(static_cast<int>(k32));
  const __m128i k16 = _mm_shuffle_epi32(k4, 0);
  __m128i all = _mm_setzero_si128();
  for (; i + 16 <= n; i += 16) {
    auto* at = reinterpret_cast<__m128i*>(data + i);
    const __m128i w = _mm_xor_si128(_mm_loadu_si128(at), k16);
    all = _mm_or_si128(all, w);
    _mm_storeu_si128(at, w);
  }
  if (n - i >= 8) {
    auto* at = reinterpret_cast<__m128i*>(data + i);
    const __m128i w = _mm_xor_si128(_mm_loadl_epi64(at), _mm_move_epi64(k16));
    all = _mm_or_si128(all, w);
    _mm_storel_epi64(at, w);
    i += 8;
  }
  if (n - i >= 4) {
    std::int32_t v;
    std::memcpy(&v, data + i, 4);
    const __m128i w = _mm_xor_si128(_mm_cvtsi32_si128(v), k4);
    all = _mm_or_si128(all, w);
    v = _mm_cvtsi128_si32(w);
    std::memcpy(data + i, &v, 4);
    i += 4;
  }
  seen = static_cast<std::uint64_t>(_mm_movemask_epi8(all));
#else
  const std::uint64_t k64 = (std::uint64_t{k32} << 32) | k32;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data + i, 8);
    w ^= k64;
    seen |= w & non_ascii_bits;
    std::memcpy(data + i, &w, 8);
  }
  if (n - i >= 4) {
    std::uint32_t w;
    std::memcpy(&w, data + i, 4);
    w ^= k32;
    seen |= w & 0x80808080u;
    std::memcpy(data + i, &w, 4);
    i += 4;
  }
#endif
  // At most 3 bytes left, from a multiple of 4: key bytes 0, 1, 2.
  if (n - i >= 2) {
    std::uint16_t w, k;
    std::memcpy(&w, data + i, 2);
    std::memcpy(&k, key.data(), 2);
    w ^= k;
    seen |= w & 0x8080u;
    std::memcpy(data + i, &w, 2);
    i += 2;
  }
  if (i < n) {
    const auto b = static_cast<std::uint8_t>(std::to_integer<std::uint8_t>(data[i] ^ key[i & 2]));
    data[i] = std::byte{b};
    seen |= b & 0x80u;
  }
  return seen;
}

/// Non-zero when one of `n` bytes is not ASCII, for short payloads that
/// arrive unmasked. No loop tail: the last word (16, 8 or 4 bytes) is read
/// where it ends, overlapping the one before it.
inline std::uint64_t or_small(const std::byte* data, std::size_t n) noexcept {
#if defined(__SSE2__)
  if (n >= 16) {
    __m128i all = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + n - 16));
    for (std::size_t i = 0; i + 16 < n; i += 16)
      all = _mm_or_si128(all, _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i)));
    return static_cast<std::uint64_t>(_mm_movemask_epi8(all));
  }
#endif
  if (n >= 8) {
    std::uint64_t seen;
    std::memcpy(&seen, data + n - 8, 8);
    for (std::size_t i = 0; i + 8 < n; i += 8) {
      std::uint64_t w;
      std::memcpy(&w, data + i, 8);
      seen |= w;
    }
    return seen & non_ascii_bits;
  }
  if (n >= 4) {
    std::uint32_t head, tail;
    std::memcpy(&head, data, 4);
    std::memcpy(&tail, data + n - 4, 4);
    return (head | tail) & 0x80808080u;
  }
  std::uint32_t seen = 0;
  for (std::size_t i = 0; i < n; ++i) seen |= std::to_integer<std::uint8_t>(data[i]);
  return seen & 0x80u;
}

/// Name of the implementation selected at run time ("avx2", "sse2",
/// "neon", "scalar"), for benchmarks and logs.
const char* mask_implementation() noexcept;

}  // namespace gust::detail
