// Internals of masking (RFC 6455 5.3) shared with the UTF-8 validator and
// exposed to the tests, which check every implementation this CPU can run
// against a byte-by-byte reference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "mask.hpp"

namespace gust::detail::mask_impl {

/// The four key bytes, already rotated so that byte 0 applies to data[0],
/// loaded as they sit in memory. Repeating this word (or its 8-byte double)
/// across a vector gives the right pattern whatever the host's byte order.
using key_word = std::uint32_t;

inline key_word rotated_key(mask_key key, std::size_t phase) noexcept {
  unsigned char bytes[4];
  for (std::size_t i = 0; i < 4; ++i)
    bytes[i] = std::to_integer<unsigned char>(key[(phase + i) % 4]);
  key_word k;
  std::memcpy(&k, bytes, 4);
  return k;
}

/// The key for the byte `by` positions further on.
inline key_word advance(key_word k, std::size_t by) noexcept {
  unsigned char b[4], r[4];
  std::memcpy(b, &k, 4);
  for (std::size_t i = 0; i < 4; ++i) r[i] = b[(by + i) % 4];
  std::memcpy(&k, r, 4);
  return k;
}

inline std::uint64_t key_word64(key_word k) noexcept {
  return std::uint64_t{k} << 32 | k;
}

using mask_fn = void (*)(std::byte* dst, const std::byte* src, std::size_t n,
                         key_word key) noexcept;

enum class isa { scalar, sse2, avx2, neon };

/// The best instruction set this CPU supports, decided on first call.
isa best_isa() noexcept;
bool cpu_supports(isa which) noexcept;
const char* isa_name(isa which) noexcept;

/// Handles any n and alignment; the vector versions finish with this.
void mask_scalar(std::byte* dst, const std::byte* src, std::size_t n,
                 key_word key) noexcept;
#if defined(__x86_64__)
void mask_sse2(std::byte* dst, const std::byte* src, std::size_t n,
               key_word key) noexcept;
void mask_avx2(std::byte* dst, const std::byte* src, std::size_t n,
               key_word key) noexcept;
#endif
#if defined(__aarch64__)
void mask_neon(std::byte* dst, const std::byte* src, std::size_t n,
               key_word key) noexcept;
#endif

struct implementation {
  isa which;
  mask_fn fn;
};

/// Every implementation this CPU can run, the selected one included.
std::span<const implementation> available() noexcept;

}  // namespace gust::detail::mask_impl
