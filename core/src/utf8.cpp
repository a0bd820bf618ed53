// UTF-8 validation (RFC 3629) of text frames and close reasons (RFC 6455
// 5.6, 8.1). Text is mostly ASCII, so whole vectors of bytes below 0x80 are
// skipped while between characters, and only the blocks holding other
// bytes go through the DFA. Masked payloads are unmasked and validated in
// the same pass, so a received text frame is read from memory once.
#include "utf8.hpp"

#include <array>
#include <atomic>
#include <bit>
#include <cstring>

#include "mask_impl.hpp"
#include "utf8_impl.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#define GUST_UTF8_X86 1
#define GUST_UTF8_NEON 0
#elif defined(__aarch64__)
#include <arm_neon.h>
#define GUST_UTF8_X86 0
#define GUST_UTF8_NEON 1
#else
#define GUST_UTF8_X86 0
#define GUST_UTF8_NEON 0
#endif

namespace gust::detail {
namespace utf8_impl {

namespace {

using mask_impl::key_word;

// ---------------------------------------------------------------------------
// The DFA. RFC 3629 section 4 spells out the well-formed sequences range by
// range:
//   00..7F
//   C2..DF  80..BF
//   E0      A0..BF  80..BF          (E0 80..9F would be overlong)
//   E1..EC  80..BF  80..BF
//   ED      80..9F  80..BF          (ED A0..BF would be a surrogate)
//   EE..EF  80..BF  80..BF
//   F0      90..BF  80..BF  80..BF  (F0 80..8F would be overlong)
//   F1..F3  80..BF  80..BF  80..BF
//   F4      80..8F  80..BF  80..BF  (F4 90.. would be above U+10FFFF)
// One node per "what may come next". Every byte outside the allowed range
// leads straight to `error`, so a stream fails at the first byte that no
// valid continuation could follow: C0, C1 and F5..FF fail on their own.

enum node : int {
  start,     // between characters
  error,     // absorbing
  tail1,     // one 80..BF to go
  tail2,     // two 80..BF to go
  tail3,     // three 80..BF to go
  after_e0,  // A0..BF, then tail1
  after_ed,  // 80..9F, then tail1
  after_f0,  // 90..BF, then tail2
  after_f4,  // 80..8F, then tail2
  node_count
};

constexpr bool in(unsigned b, unsigned lo, unsigned hi) {
  return b >= lo && b <= hi;
}

constexpr node next_node(int from, unsigned b) {
  switch (from) {
    case start:
      if (b < 0x80) return start;
      if (in(b, 0xc2, 0xdf)) return tail1;
      if (b == 0xe0) return after_e0;
      if (b == 0xed) return after_ed;
      if (in(b, 0xe1, 0xef)) return tail2;
      if (b == 0xf0) return after_f0;
      if (in(b, 0xf1, 0xf3)) return tail3;
      if (b == 0xf4) return after_f4;
      return error;
    case tail1:
      return in(b, 0x80, 0xbf) ? start : error;
    case tail2:
      return in(b, 0x80, 0xbf) ? tail1 : error;
    case tail3:
      return in(b, 0x80, 0xbf) ? tail2 : error;
    case after_e0:
      return in(b, 0xa0, 0xbf) ? tail1 : error;
    case after_ed:
      return in(b, 0x80, 0x9f) ? tail1 : error;
    case after_f0:
      return in(b, 0x90, 0xbf) ? tail2 : error;
    case after_f4:
      return in(b, 0x80, 0x8f) ? tail2 : error;
    default:
      return error;
  }
}

// Shift-based encoding: a state is the bit offset of its 6-bit field in a
// per-byte 64-bit row, and that field holds the next state's offset. A step
// is one load, one shift and one AND, with no second table lookup indexed
// by the state, which keeps the chain from byte to byte short.
constexpr int field_bits = 6;
static_assert(node_count * field_bits <= 64);

constexpr state offset(int n) { return static_cast<state>(n * field_bits); }
static_assert(offset(start) == accept_state);
static_assert(offset(error) == reject_state);

constexpr std::array<std::uint64_t, 256> make_rows() {
  std::array<std::uint64_t, 256> rows{};
  for (unsigned b = 0; b < 256; ++b)
    for (int from = 0; from < node_count; ++from)
      rows[b] |= std::uint64_t{offset(next_node(from, b))} << offset(from);
  return rows;
}

constexpr std::array<std::uint64_t, 256> rows = make_rows();

inline state step(state s, std::byte b) noexcept {
  return static_cast<state>(rows[std::to_integer<unsigned char>(b)] >> s) &
         63u;
}

inline bool is_ascii(std::byte b) noexcept {
  return std::to_integer<unsigned char>(b) < 0x80;
}

// Runs the DFA over p[0..len), len <= 64, where bit i of `high` is set if
// p[i] >= 0x80 (setting extra bits below len is allowed, just slower).
// Between characters an ASCII byte cannot change the state, so the loop
// jumps from one flagged byte to the next. From there it takes four steps
// without looking: that covers any one character (bytes after it are
// ASCII, which keep the start state, or start the next character), and
// testing the state once per four bytes instead of once per byte saves the
// mispredicted branch at the end of each character that would otherwise
// dominate mostly-ASCII text.
inline state dfa_block(state s, const std::byte* p, std::size_t len,
                       std::uint64_t high) noexcept {
  std::size_t i = 0;
  for (;;) {
    if (s == accept_state) {
      const std::uint64_t rest = high & (~std::uint64_t{0} << i);
      if (rest == 0) return s;
      i = static_cast<std::size_t>(std::countr_zero(rest));
    }
    if (i + 4 <= len) {
      s = step(step(step(step(s, p[i]), p[i + 1]), p[i + 2]), p[i + 3]);
      i += 4;
    } else {
      s = step(s, p[i++]);
    }
    // The error state absorbs, so checking after the group loses nothing.
    if (s == reject_state || i == len) return s;
  }
}

constexpr std::uint64_t high_bits = 0x8080808080808080;

// ---------------------------------------------------------------------------
// Scalar: 8 bytes at a time between characters. Also the tail of the vector
// versions, for fewer bytes than a vector.

inline state feed_words(const std::byte* p, std::size_t n, state s) noexcept {
  std::size_t i = 0;
  while (i < n) {
    if (s == accept_state) {
      for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, p + i, 8);
        if ((w & high_bits) != 0) break;
      }
      while (i < n && is_ascii(p[i])) ++i;
      if (i == n) break;
    }
    s = step(s, p[i++]);
    if (s == reject_state) break;
  }
  return s;
}

// A failure leaves the rest of the payload masked; the contract is that
// every byte comes back unmasked.
template <mask_impl::mask_fn mask_rest>
inline state fail_after(std::byte* rest, std::size_t n,
                        key_word key) noexcept {
  mask_rest(rest, rest, n, key);
  return reject_state;
}

inline state unmask_feed_words(std::byte* p, std::size_t n, key_word key,
                               state s) noexcept {
  const std::uint64_t k8 = mask_impl::key_word64(key);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    w ^= k8;
    std::memcpy(p + i, &w, 8);
    if (((w & high_bits) | s) == 0) continue;
    s = dfa_block(s, p + i, 8, 0xff);
    if (s == reject_state)
      return fail_after<mask_impl::mask_scalar>(p + i + 8, n - i - 8, key);
  }
  unsigned char kb[4];
  std::memcpy(kb, &key, 4);
  for (; i < n; ++i) {
    p[i] ^= std::byte{kb[i % 4]};
    if (s == accept_state && is_ascii(p[i])) continue;
    s = step(s, p[i]);
    if (s == reject_state)
      return fail_after<mask_impl::mask_scalar>(
          p + i + 1, n - i - 1, mask_impl::advance(key, i + 1));
  }
  return s;
}

state feed_scalar(const std::byte* p, std::size_t n, state s) noexcept {
  return feed_words(p, n, s);
}

state unmask_feed_scalar(std::byte* p, std::size_t n, key_word key,
                         state s) noexcept {
  return unmask_feed_words(p, n, key, s);
}

#if GUST_UTF8_X86

// Bytes up to the next `align` boundary: the unmasking loops store aligned.
inline std::size_t misalignment(const void* p, std::size_t align) noexcept {
  return (align - reinterpret_cast<std::uintptr_t>(p) % align) % align;
}

// ---------------------------------------------------------------------------
// SSE2 (x86-64 baseline). movemask gives the high bit of each byte, which is
// both the "not ASCII" test and the `high` map the DFA block wants.

inline std::uint64_t high16(__m128i v) noexcept {
  return static_cast<std::uint32_t>(_mm_movemask_epi8(v));
}

inline __m128i load16(const std::byte* p) noexcept {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

inline void store16(std::byte* p, __m128i v) noexcept {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v);
}

inline state feed_tail16(const std::byte* p, std::size_t n, state s) noexcept {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const std::uint64_t m = high16(load16(p + i));
    if ((m | s) == 0) continue;
    s = dfa_block(s, p + i, 16, m);
    if (s == reject_state) return s;
  }
  return feed_words(p + i, n - i, s);
}

inline state unmask_feed_tail16(std::byte* p, std::size_t n, key_word key,
                                state s) noexcept {
  const __m128i k = _mm_set1_epi32(static_cast<int>(key));
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_xor_si128(load16(p + i), k);
    store16(p + i, v);
    const std::uint64_t m = high16(v);
    if ((m | s) == 0) continue;
    s = dfa_block(s, p + i, 16, m);
    if (s == reject_state)
      return fail_after<mask_impl::mask_scalar>(p + i + 16, n - i - 16, key);
  }
  return unmask_feed_words(p + i, n - i, key, s);
}

state feed_sse2(const std::byte* p, std::size_t n, state s) noexcept {
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m128i a = load16(p + i), b = load16(p + i + 16),
                  c = load16(p + i + 32), d = load16(p + i + 48);
    const __m128i any = _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d));
    if ((high16(any) | s) == 0) continue;
    s = dfa_block(s, p + i, 64,
                  high16(a) | high16(b) << 16 | high16(c) << 32 |
                      high16(d) << 48);
    if (s == reject_state) return s;
  }
  return feed_tail16(p + i, n - i, s);
}

state unmask_feed_sse2(std::byte* p, std::size_t n, key_word key,
                       state s) noexcept {
  if (n >= 128) {
    const std::size_t head = misalignment(p, 16);
    s = unmask_feed_words(p, head, key, s);
    key = mask_impl::advance(key, head);
    p += head;
    n -= head;
    if (s == reject_state) return fail_after<mask_impl::mask_sse2>(p, n, key);
  }
  const __m128i k = _mm_set1_epi32(static_cast<int>(key));
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m128i a = _mm_xor_si128(load16(p + i), k);
    const __m128i b = _mm_xor_si128(load16(p + i + 16), k);
    const __m128i c = _mm_xor_si128(load16(p + i + 32), k);
    const __m128i d = _mm_xor_si128(load16(p + i + 48), k);
    store16(p + i, a);
    store16(p + i + 16, b);
    store16(p + i + 32, c);
    store16(p + i + 48, d);
    const __m128i any = _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d));
    if ((high16(any) | s) == 0) continue;
    s = dfa_block(s, p + i, 64,
                  high16(a) | high16(b) << 16 | high16(c) << 32 |
                      high16(d) << 48);
    if (s == reject_state)
      return fail_after<mask_impl::mask_sse2>(p + i + 64, n - i - 64, key);
  }
  return unmask_feed_tail16(p + i, n - i, key, s);
}

// ---------------------------------------------------------------------------
// AVX2, 128 bytes per iteration: one OR-reduced test per iteration keeps the
// ASCII case bound by memory rather than by branches.

#define GUST_AVX2 __attribute__((target("avx2")))

GUST_AVX2 inline std::uint64_t high32(__m256i v) noexcept {
  return static_cast<std::uint32_t>(_mm256_movemask_epi8(v));
}

GUST_AVX2 inline __m256i load32(const std::byte* p) noexcept {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

GUST_AVX2 inline void store32(std::byte* p, __m256i v) noexcept {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
}

GUST_AVX2 inline __m256i or4(__m256i a, __m256i b, __m256i c,
                             __m256i d) noexcept {
  return _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d));
}

// The DFA over two 64-byte halves of a 128-byte block.
GUST_AVX2 inline state dfa_block128(state s, const std::byte* p, __m256i a,
                                    __m256i b, __m256i c,
                                    __m256i d) noexcept {
  s = dfa_block(s, p, 64, high32(a) | high32(b) << 32);
  if (s == reject_state) return s;
  return dfa_block(s, p + 64, 64, high32(c) | high32(d) << 32);
}

GUST_AVX2 state feed_avx2(const std::byte* p, std::size_t n,
                          state s) noexcept {
  std::size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    const __m256i a = load32(p + i), b = load32(p + i + 32),
                  c = load32(p + i + 64), d = load32(p + i + 96);
    if ((high32(or4(a, b, c, d)) | s) == 0) continue;
    s = dfa_block128(s, p + i, a, b, c, d);
    if (s == reject_state) return s;
  }
  for (; i + 32 <= n; i += 32) {
    const std::uint64_t m = high32(load32(p + i));
    if ((m | s) == 0) continue;
    s = dfa_block(s, p + i, 32, m);
    if (s == reject_state) return s;
  }
  return feed_tail16(p + i, n - i, s);
}

GUST_AVX2 state unmask_feed_avx2(std::byte* p, std::size_t n, key_word key,
                                 state s) noexcept {
  if (n >= 256) {
    const std::size_t head = misalignment(p, 32);
    s = unmask_feed_words(p, head, key, s);
    key = mask_impl::advance(key, head);
    p += head;
    n -= head;
    if (s == reject_state) return fail_after<mask_impl::mask_avx2>(p, n, key);
  }
  const __m256i k = _mm256_set1_epi32(static_cast<int>(key));
  std::size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    const __m256i a = _mm256_xor_si256(load32(p + i), k);
    const __m256i b = _mm256_xor_si256(load32(p + i + 32), k);
    const __m256i c = _mm256_xor_si256(load32(p + i + 64), k);
    const __m256i d = _mm256_xor_si256(load32(p + i + 96), k);
    store32(p + i, a);
    store32(p + i + 32, b);
    store32(p + i + 64, c);
    store32(p + i + 96, d);
    if ((high32(or4(a, b, c, d)) | s) == 0) continue;
    s = dfa_block128(s, p + i, a, b, c, d);
    if (s == reject_state)
      return fail_after<mask_impl::mask_avx2>(p + i + 128, n - i - 128, key);
  }
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_xor_si256(load32(p + i), k);
    store32(p + i, v);
    const std::uint64_t m = high32(v);
    if ((m | s) == 0) continue;
    s = dfa_block(s, p + i, 32, m);
    if (s == reject_state)
      return fail_after<mask_impl::mask_avx2>(p + i + 32, n - i - 32, key);
  }
  return unmask_feed_tail16(p + i, n - i, key, s);
}

#undef GUST_AVX2

#endif  // GUST_UTF8_X86

#if GUST_UTF8_NEON

// ---------------------------------------------------------------------------
// NEON has no movemask; a horizontal max per 16 bytes is cheap and flags
// which 16-byte groups the DFA must walk.

inline bool any_high(uint8x16_t v) noexcept { return vmaxvq_u8(v) >= 0x80; }

inline std::uint64_t high_group(uint8x16_t v, int group) noexcept {
  return any_high(v) ? std::uint64_t{0xffff} << (16 * group) : 0;
}

inline uint8x16_t load16(const std::byte* p) noexcept {
  return vld1q_u8(reinterpret_cast<const std::uint8_t*>(p));
}

inline void store16(std::byte* p, uint8x16_t v) noexcept {
  vst1q_u8(reinterpret_cast<std::uint8_t*>(p), v);
}

inline std::uint64_t high64(uint8x16_t a, uint8x16_t b, uint8x16_t c,
                            uint8x16_t d) noexcept {
  return high_group(a, 0) | high_group(b, 1) | high_group(c, 2) |
         high_group(d, 3);
}

inline uint8x16_t or4(uint8x16_t a, uint8x16_t b, uint8x16_t c,
                      uint8x16_t d) noexcept {
  return vorrq_u8(vorrq_u8(a, b), vorrq_u8(c, d));
}

inline uint8x16_t key_vector(key_word key) noexcept {
  // From memory, so the pattern does not depend on the host's byte order.
  unsigned char pattern[16];
  for (int j = 0; j < 16; j += 4) std::memcpy(pattern + j, &key, 4);
  return vld1q_u8(pattern);
}

state feed_neon(const std::byte* p, std::size_t n, state s) noexcept {
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const uint8x16_t a = load16(p + i), b = load16(p + i + 16),
                     c = load16(p + i + 32), d = load16(p + i + 48);
    if (s == accept_state && !any_high(or4(a, b, c, d))) continue;
    s = dfa_block(s, p + i, 64, high64(a, b, c, d));
    if (s == reject_state) return s;
  }
  return feed_words(p + i, n - i, s);
}

state unmask_feed_neon(std::byte* p, std::size_t n, key_word key,
                       state s) noexcept {
  const uint8x16_t k = key_vector(key);
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const uint8x16_t a = veorq_u8(load16(p + i), k);
    const uint8x16_t b = veorq_u8(load16(p + i + 16), k);
    const uint8x16_t c = veorq_u8(load16(p + i + 32), k);
    const uint8x16_t d = veorq_u8(load16(p + i + 48), k);
    store16(p + i, a);
    store16(p + i + 16, b);
    store16(p + i + 32, c);
    store16(p + i + 48, d);
    if (s == accept_state && !any_high(or4(a, b, c, d))) continue;
    s = dfa_block(s, p + i, 64, high64(a, b, c, d));
    if (s == reject_state)
      return fail_after<mask_impl::mask_neon>(p + i + 64, n - i - 64, key);
  }
  return unmask_feed_words(p + i, n - i, key, s);
}

#endif  // GUST_UTF8_NEON

// Ordered so that the implementations a CPU supports form a prefix.
constexpr implementation all_implementations[] = {
    {mask_impl::isa::scalar, &feed_scalar, &unmask_feed_scalar},
#if GUST_UTF8_X86
    {mask_impl::isa::sse2, &feed_sse2, &unmask_feed_sse2},
    {mask_impl::isa::avx2, &feed_avx2, &unmask_feed_avx2},
#endif
#if GUST_UTF8_NEON
    {mask_impl::isa::neon, &feed_neon, &unmask_feed_neon},
#endif
};

// Relaxed is enough: every thread that races here stores the same value.
std::atomic<const implementation*> chosen{nullptr};

const implementation& selected() noexcept {
  const implementation* impl = chosen.load(std::memory_order_relaxed);
  if (impl == nullptr) [[unlikely]] {
    impl = &all_implementations[0];
    for (const auto& candidate : all_implementations)
      if (candidate.which == mask_impl::best_isa()) impl = &candidate;
    chosen.store(impl, std::memory_order_relaxed);
  }
  return *impl;
}

}  // namespace

std::span<const implementation> available() noexcept {
  std::size_t count = 0;
  for (const auto& impl : all_implementations) {
    if (!mask_impl::cpu_supports(impl.which)) break;
    ++count;
  }
  return {all_implementations, count};
}

}  // namespace utf8_impl

namespace {
constexpr std::size_t small_payload = 64;
}  // namespace

bool utf8_validator::feed(const std::byte* data, std::size_t n) noexcept {
  if (state_ == reject_state) return false;
  // Short payloads (small messages, control frames) are done a word at a
  // time: dispatch and SIMD alignment set-up would cost more than the bytes.
  state_ = n < small_payload ? utf8_impl::feed_words(data, n, state_)
                             : utf8_impl::selected().feed(data, n, state_);
  return state_ != reject_state;
}

bool utf8_validator::unmask_and_feed(std::byte* data, std::size_t n,
                                     mask_key key,
                                     std::size_t phase) noexcept {
  if (state_ == reject_state) {
    mask_in_place(data, n, key, phase);
    return false;
  }
  const auto k = mask_impl::rotated_key(key, phase);
  state_ = n < small_payload ? utf8_impl::unmask_feed_words(data, n, k, state_)
                             : utf8_impl::selected().unmask_feed(data, n, k, state_);
  return state_ != reject_state;
}

bool is_valid_utf8(const void* data, std::size_t n) noexcept {
  return utf8_impl::selected().feed(static_cast<const std::byte*>(data), n,
                                    utf8_impl::accept_state) ==
         utf8_impl::accept_state;
}

}  // namespace gust::detail
