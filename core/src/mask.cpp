// Masking (RFC 6455 5.3): every byte a client sends, and every byte a server
// receives, is XORed with a 4-byte key, so this runs over every payload.
// One binary serves every CPU: the vector width is picked at run time from
// what the CPU reports rather than from -march flags.
#include "mask.hpp"

#include <atomic>
#include <cstring>

#include "mask_impl.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#define GUST_MASK_X86 1
#define GUST_MASK_NEON 0
#elif defined(__aarch64__)
#include <arm_neon.h>
#define GUST_MASK_X86 0
#define GUST_MASK_NEON 1
#else
#define GUST_MASK_X86 0
#define GUST_MASK_NEON 0
#endif

namespace gust::detail {
namespace mask_impl {

namespace {

// 8-byte words then single bytes; callers only reach it with fewer bytes
// than a vector, or on CPUs without one.
inline void mask_tail(std::byte* dst, const std::byte* src, std::size_t n,
                      key_word key) noexcept {
  const std::uint64_t k8 = key_word64(key);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, src + i, 8);
    w ^= k8;
    std::memcpy(dst + i, &w, 8);
  }
  unsigned char kb[4];
  std::memcpy(kb, &key, 4);
  for (; i < n; ++i) dst[i] = src[i] ^ std::byte{kb[i % 4]};
}

}  // namespace

void mask_scalar(std::byte* dst, const std::byte* src, std::size_t n,
                 key_word key) noexcept {
  mask_tail(dst, src, n, key);
}

#if GUST_MASK_X86

namespace {

// Bytes needed to bring `p` to an `align` boundary. Aligned stores keep
// large payloads from splitting cache lines on every other store.
inline std::size_t misalignment(const void* p, std::size_t align) noexcept {
  return (align - reinterpret_cast<std::uintptr_t>(p) % align) % align;
}

}  // namespace

void mask_sse2(std::byte* dst, const std::byte* src, std::size_t n,
               key_word key) noexcept {
  if (n >= 64) {
    const std::size_t head = misalignment(dst, 16);
    mask_tail(dst, src, head, key);
    key = advance(key, head);
    dst += head;
    src += head;
    n -= head;
  }
  const __m128i k = _mm_set1_epi32(static_cast<int>(key));
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const auto* s = reinterpret_cast<const __m128i*>(src + i);
    auto* d = reinterpret_cast<__m128i*>(dst + i);
    const __m128i a = _mm_xor_si128(_mm_loadu_si128(s + 0), k);
    const __m128i b = _mm_xor_si128(_mm_loadu_si128(s + 1), k);
    const __m128i c = _mm_xor_si128(_mm_loadu_si128(s + 2), k);
    const __m128i e = _mm_xor_si128(_mm_loadu_si128(s + 3), k);
    _mm_storeu_si128(d + 0, a);
    _mm_storeu_si128(d + 1, b);
    _mm_storeu_si128(d + 2, c);
    _mm_storeu_si128(d + 3, e);
  }
  for (; i + 16 <= n; i += 16) {
    const auto* s = reinterpret_cast<const __m128i*>(src + i);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm_xor_si128(_mm_loadu_si128(s), k));
  }
  // i is a multiple of 4, so the key is still in phase.
  mask_tail(dst + i, src + i, n - i, key);
}

__attribute__((target("avx2"))) void mask_avx2(std::byte* dst,
                                               const std::byte* src,
                                               std::size_t n,
                                               key_word key) noexcept {
  if (n >= 128) {
    const std::size_t head = misalignment(dst, 32);
    mask_tail(dst, src, head, key);
    key = advance(key, head);
    dst += head;
    src += head;
    n -= head;
  }
  const __m256i k = _mm256_set1_epi32(static_cast<int>(key));
  std::size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    const auto* s = reinterpret_cast<const __m256i*>(src + i);
    auto* d = reinterpret_cast<__m256i*>(dst + i);
    const __m256i a = _mm256_xor_si256(_mm256_loadu_si256(s + 0), k);
    const __m256i b = _mm256_xor_si256(_mm256_loadu_si256(s + 1), k);
    const __m256i c = _mm256_xor_si256(_mm256_loadu_si256(s + 2), k);
    const __m256i e = _mm256_xor_si256(_mm256_loadu_si256(s + 3), k);
    _mm256_storeu_si256(d + 0, a);
    _mm256_storeu_si256(d + 1, b);
    _mm256_storeu_si256(d + 2, c);
    _mm256_storeu_si256(d + 3, e);
  }
  for (; i + 32 <= n; i += 32) {
    const auto* s = reinterpret_cast<const __m256i*>(src + i);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm256_xor_si256(_mm256_loadu_si256(s), k));
  }
  if (i + 16 <= n) {
    const __m128i k16 = _mm256_castsi256_si128(k);
    const auto* s = reinterpret_cast<const __m128i*>(src + i);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm_xor_si128(_mm_loadu_si128(s), k16));
    i += 16;
  }
  mask_tail(dst + i, src + i, n - i, key);
}

#endif  // GUST_MASK_X86

#if GUST_MASK_NEON

void mask_neon(std::byte* dst, const std::byte* src, std::size_t n,
               key_word key) noexcept {
  // Built from memory rather than vdupq_n_u32 so the byte order of the
  // pattern does not depend on the host's endianness.
  unsigned char pattern[16];
  for (int j = 0; j < 16; j += 4) std::memcpy(pattern + j, &key, 4);
  const uint8x16_t k = vld1q_u8(pattern);
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const auto* s = reinterpret_cast<const std::uint8_t*>(src + i);
    auto* d = reinterpret_cast<std::uint8_t*>(dst + i);
    const uint8x16_t a = veorq_u8(vld1q_u8(s + 0), k);
    const uint8x16_t b = veorq_u8(vld1q_u8(s + 16), k);
    const uint8x16_t c = veorq_u8(vld1q_u8(s + 32), k);
    const uint8x16_t e = veorq_u8(vld1q_u8(s + 48), k);
    vst1q_u8(d + 0, a);
    vst1q_u8(d + 16, b);
    vst1q_u8(d + 32, c);
    vst1q_u8(d + 48, e);
  }
  for (; i + 16 <= n; i += 16) {
    const auto* s = reinterpret_cast<const std::uint8_t*>(src + i);
    vst1q_u8(reinterpret_cast<std::uint8_t*>(dst + i), veorq_u8(vld1q_u8(s), k));
  }
  mask_tail(dst + i, src + i, n - i, key);
}

#endif  // GUST_MASK_NEON

namespace {

isa detect_isa() noexcept {
#if GUST_MASK_X86
  // SSE2 is part of the x86-64 baseline; AVX2 needs both the CPU and the OS
  // (saved YMM state), which __builtin_cpu_supports checks.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") ? isa::avx2 : isa::sse2;
#elif GUST_MASK_NEON
  return isa::neon;  // part of the AArch64 baseline
#else
  return isa::scalar;
#endif
}

// Ordered so that the implementations a CPU supports form a prefix.
constexpr implementation all_implementations[] = {
    {isa::scalar, &mask_scalar},
#if GUST_MASK_X86
    {isa::sse2, &mask_sse2},
    {isa::avx2, &mask_avx2},
#endif
#if GUST_MASK_NEON
    {isa::neon, &mask_neon},
#endif
};

// Relaxed is enough: every thread that races here computes the same value.
std::atomic<int> chosen_isa{-1};
std::atomic<mask_fn> chosen_fn{nullptr};

mask_fn fn_for(isa which) noexcept {
  for (const auto& impl : all_implementations)
    if (impl.which == which) return impl.fn;
  return &mask_scalar;
}

mask_fn selected_fn() noexcept {
  mask_fn fn = chosen_fn.load(std::memory_order_relaxed);
  if (fn == nullptr) [[unlikely]] {
    fn = fn_for(best_isa());
    chosen_fn.store(fn, std::memory_order_relaxed);
  }
  return fn;
}

}  // namespace

isa best_isa() noexcept {
  int v = chosen_isa.load(std::memory_order_relaxed);
  if (v < 0) [[unlikely]] {
    v = static_cast<int>(detect_isa());
    chosen_isa.store(v, std::memory_order_relaxed);
  }
  return static_cast<isa>(v);
}

bool cpu_supports(isa which) noexcept {
  switch (which) {
    case isa::scalar:
      return true;
    case isa::sse2:
      return GUST_MASK_X86 == 1;
    case isa::avx2:
      return best_isa() == isa::avx2;
    case isa::neon:
      return GUST_MASK_NEON == 1;
  }
  return false;
}

const char* isa_name(isa which) noexcept {
  switch (which) {
    case isa::scalar:
      return "scalar";
    case isa::sse2:
      return "sse2";
    case isa::avx2:
      return "avx2";
    case isa::neon:
      return "neon";
  }
  return "unknown";
}

std::span<const implementation> available() noexcept {
  std::size_t count = 0;
  for (const auto& impl : all_implementations) {
    if (!cpu_supports(impl.which)) break;
    ++count;
  }
  return {all_implementations, count};
}

}  // namespace mask_impl

void mask_in_place(std::byte* data, std::size_t n, mask_key key,
                   std::size_t phase) noexcept {
  mask_impl::selected_fn()(data, data, n, mask_impl::rotated_key(key, phase));
}

void mask_copy(std::byte* dst, const std::byte* src, std::size_t n,
               mask_key key, std::size_t phase) noexcept {
  mask_impl::selected_fn()(dst, src, n, mask_impl::rotated_key(key, phase));
}

const char* mask_implementation() noexcept {
  return mask_impl::isa_name(mask_impl::best_isa());
}

}  // namespace gust::detail
