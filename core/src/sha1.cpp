// SHA-1 (FIPS 180-4 section 6.1). Only Sec-WebSocket-Accept needs it (RFC
// 6455 4.2.2), so the code favours clarity over speed: one block at a time,
// portable big-endian loads, no platform intrinsics.
#include "sha1.hpp"

#include <cstring>

namespace gust::detail {

namespace {

constexpr std::uint32_t rotl(std::uint32_t x, int s) noexcept {
  return (x << s) | (x >> (32 - s));
}

// The message schedule is defined on big-endian words whatever the host.
std::uint32_t load_be32(const std::byte* p) noexcept {
  return (std::uint32_t{std::to_integer<std::uint8_t>(p[0])} << 24) |
         (std::uint32_t{std::to_integer<std::uint8_t>(p[1])} << 16) |
         (std::uint32_t{std::to_integer<std::uint8_t>(p[2])} << 8) |
         std::uint32_t{std::to_integer<std::uint8_t>(p[3])};
}

void store_be32(std::byte* p, std::uint32_t v) noexcept {
  p[0] = std::byte(v >> 24);
  p[1] = std::byte(v >> 16);
  p[2] = std::byte(v >> 8);
  p[3] = std::byte(v);
}

void compress(std::uint32_t (&h)[5], const std::byte* block) noexcept {
  std::uint32_t w[80];
  for (int t = 0; t < 16; ++t) w[t] = load_be32(block + 4 * t);
  for (int t = 16; t < 80; ++t)
    w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);

  std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int t = 0; t < 80; ++t) {
    std::uint32_t f, k;
    if (t < 20) {
      f = (b & c) | (~b & d);  // Ch
      k = 0x5a827999;
    } else if (t < 40) {
      f = b ^ c ^ d;  // Parity
      k = 0x6ed9eba1;
    } else if (t < 60) {
      f = (b & c) | (b & d) | (c & d);  // Maj
      k = 0x8f1bbcdc;
    } else {
      f = b ^ c ^ d;
      k = 0xca62c1d6;
    }
    const std::uint32_t temp = rotl(a, 5) + f + e + k + w[t];
    e = d;
    d = c;
    c = rotl(b, 30);
    b = a;
    a = temp;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

}  // namespace

sha1::sha1() noexcept
    : h_{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0},
      block_{} {}

void sha1::update(std::span<const std::byte> data) noexcept {
  length_ += data.size();
  const std::byte* p = data.data();
  std::size_t n = data.size();
  if (used_ != 0) {
    const std::size_t take = n < 64 - used_ ? n : 64 - used_;
    std::memcpy(block_ + used_, p, take);
    used_ += take;
    p += take;
    n -= take;
    if (used_ < 64) return;
    compress(h_, block_);
    used_ = 0;
  }
  // Whole blocks straight from the caller's buffer: no copy.
  for (; n >= 64; p += 64, n -= 64) compress(h_, p);
  if (n != 0) std::memcpy(block_, p, n);
  used_ = n;
}

void sha1::update(std::string_view data) noexcept {
  update(std::as_bytes(std::span(data.data(), data.size())));
}

std::array<std::byte, 20> sha1::finish() noexcept {
  // Padding (FIPS 180-4 5.1.1): a 1 bit, zeros, then the bit length in the
  // last 8 bytes of a block.
  const std::uint64_t bits = length_ * 8;
  block_[used_++] = std::byte{0x80};
  if (used_ > 56) {
    std::memset(block_ + used_, 0, 64 - used_);
    compress(h_, block_);
    used_ = 0;
  }
  std::memset(block_ + used_, 0, 56 - used_);
  store_be32(block_ + 56, static_cast<std::uint32_t>(bits >> 32));
  store_be32(block_ + 60, static_cast<std::uint32_t>(bits));
  compress(h_, block_);

  std::array<std::byte, 20> digest;
  for (int i = 0; i < 5; ++i) store_be32(digest.data() + 4 * i, h_[i]);
  *this = sha1();  // a finished hasher is ready for a new message
  return digest;
}

}  // namespace gust::detail
