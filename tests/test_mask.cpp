// Masking (RFC 6455 5.3): every implementation this CPU can run against a
// byte-by-byte reference, over lengths, key phases and alignments that hit
// the vector bodies, their heads and their tails.
#include <doctest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "mask.hpp"
#include "mask_impl.hpp"

using gust::detail::mask_key;
namespace impl = gust::detail::mask_impl;

namespace {

void reference_mask(std::byte* dst, const std::byte* src, std::size_t n,
                    mask_key key, std::size_t phase) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = src[i] ^ key[(phase + i) % 4];
}

std::vector<std::byte> random_bytes(std::size_t n, std::mt19937& rng) {
  std::vector<std::byte> out(n);
  for (auto& b : out) b = std::byte(rng());
  return out;
}

constexpr mask_key test_key{std::byte{0x37}, std::byte{0xfa}, std::byte{0x21},
                            std::byte{0x3d}};

// Canary value around the destination, to catch writes past either end.
constexpr std::byte guard{0xa5};
constexpr std::size_t slack = 64;

}  // namespace

TEST_CASE("mask: an implementation is selected and reported") {
  const std::string name = gust::detail::mask_implementation();
  CHECK_FALSE(name.empty());
  CHECK((name == "avx2" || name == "sse2" || name == "neon" ||
         name == "scalar"));
  const auto all = impl::available();
  REQUIRE_FALSE(all.empty());
  // The best one the CPU runs is the one in use.
  CHECK(name == impl::isa_name(all.back().which));
  CHECK(all.front().which == impl::isa::scalar);
  MESSAGE("mask implementation: " << name);
}

TEST_CASE("mask: RFC 6455 5.7 masked \"Hello\"") {
  std::array<std::byte, 5> payload{std::byte{0x7f}, std::byte{0x9f},
                                   std::byte{0x4d}, std::byte{0x51},
                                   std::byte{0x58}};
  gust::detail::mask_in_place(payload.data(), payload.size(), test_key);
  CHECK(std::string_view(reinterpret_cast<const char*>(payload.data()),
                         payload.size()) == "Hello");
}

TEST_CASE("mask: every implementation matches the reference") {
  std::mt19937 rng(6455);
  const mask_key key{std::byte{0x01}, std::byte{0x80}, std::byte{0xfe},
                     std::byte{0x5a}};
  // Room for the largest length at the largest offset plus guard bytes.
  const std::vector<std::byte> source = random_bytes(300 + 32 + 2 * slack, rng);
  std::vector<std::byte> dst_buf(source.size());
  std::vector<std::byte> expected(300);

  for (const auto& candidate : impl::available()) {
    CAPTURE(impl::isa_name(candidate.which));
    bool all_ok = true;
    for (std::size_t n = 0; n <= 300 && all_ok; ++n) {
      for (std::size_t phase = 0; phase < 4 && all_ok; ++phase) {
        const auto k = impl::rotated_key(key, phase);
        for (std::size_t src_off = 0; src_off < 32 && all_ok; ++src_off) {
          const std::byte* src = source.data() + slack + src_off;
          reference_mask(expected.data(), src, n, key, phase);

          // Copying, at every destination misalignment.
          for (std::size_t dst_off = 0; dst_off < 32; ++dst_off) {
            std::fill(dst_buf.begin(), dst_buf.end(), guard);
            std::byte* dst = dst_buf.data() + slack + dst_off;
            candidate.fn(dst, src, n, k);
            const bool body = std::memcmp(dst, expected.data(), n) == 0;
            const bool before = dst[-1] == guard;
            const bool after = dst[n] == guard;
            if (!(body && before && after)) {
              CAPTURE(n);
              CAPTURE(phase);
              CAPTURE(src_off);
              CAPTURE(dst_off);
              CHECK(body);
              CHECK(before);
              CHECK(after);
              all_ok = false;
              break;
            }
          }

          // In place, at this misalignment.
          std::fill(dst_buf.begin(), dst_buf.end(), guard);
          std::byte* data = dst_buf.data() + slack + src_off;
          std::memcpy(data, src, n);
          candidate.fn(data, data, n, k);
          const bool body = std::memcmp(data, expected.data(), n) == 0;
          const bool edges = data[-1] == guard && data[n] == guard;
          if (!(body && edges)) {
            CAPTURE(n);
            CAPTURE(phase);
            CAPTURE(src_off);
            CHECK(body);
            CHECK(edges);
            all_ok = false;
          }
        }
      }
    }
    CHECK(all_ok);
  }
}

TEST_CASE("mask: public entry points use the phase modulo 4") {
  std::mt19937 rng(1);
  const auto plain = random_bytes(1000, rng);
  for (std::size_t phase : {0u, 1u, 2u, 3u, 4u, 5u, 7u, 1001u, 65538u}) {
    CAPTURE(phase);
    std::vector<std::byte> expected(plain.size());
    reference_mask(expected.data(), plain.data(), plain.size(), test_key,
                   phase);

    auto in_place = plain;
    gust::detail::mask_in_place(in_place.data(), in_place.size(), test_key,
                                phase);
    CHECK(in_place == expected);

    std::vector<std::byte> copied(plain.size());
    gust::detail::mask_copy(copied.data(), plain.data(), plain.size(),
                            test_key, phase);
    CHECK(copied == expected);
  }
}

TEST_CASE("mask: a payload unmasked in pieces equals unmasked whole") {
  std::mt19937 rng(2);
  const auto plain = random_bytes(4096, rng);
  std::vector<std::byte> whole(plain.size());
  reference_mask(whole.data(), plain.data(), plain.size(), test_key, 0);

  for (int trial = 0; trial < 50; ++trial) {
    auto pieces = plain;
    std::size_t offset = 0;
    while (offset < pieces.size()) {
      std::size_t take = rng() % 300;
      if (take > pieces.size() - offset) take = pieces.size() - offset;
      // The phase is the payload offset of the piece's first byte.
      gust::detail::mask_in_place(pieces.data() + offset, take, test_key,
                                  offset);
      offset += take;
    }
    CHECK(pieces == whole);
  }
}

TEST_CASE("mask: masking twice restores the data; empty input is a no-op") {
  std::mt19937 rng(3);
  const auto plain = random_bytes(777, rng);
  auto data = plain;
  gust::detail::mask_in_place(data.data(), data.size(), test_key, 3);
  CHECK(data != plain);
  gust::detail::mask_in_place(data.data(), data.size(), test_key, 3);
  CHECK(data == plain);

  gust::detail::mask_in_place(nullptr, 0, test_key, 2);
  gust::detail::mask_copy(nullptr, nullptr, 0, test_key, 1);
}

TEST_CASE("mask: large buffers at every alignment") {
  // Long enough for the aligning prologue and the unrolled loop to matter.
  std::mt19937 rng(4);
  const auto plain = random_bytes(70000, rng);
  std::vector<std::byte> expected(plain.size());
  for (const auto& candidate : impl::available()) {
    CAPTURE(impl::isa_name(candidate.which));
    for (std::size_t off = 0; off < 32; off += 3) {
      const std::size_t n = plain.size() - 32 - off % 5;
      reference_mask(expected.data(), plain.data() + off, n, test_key, off);
      std::vector<std::byte> out(plain.size(), guard);
      candidate.fn(out.data() + (31 - off), plain.data() + off, n,
                   impl::rotated_key(test_key, off));
      CHECK(std::memcmp(out.data() + (31 - off), expected.data(), n) == 0);
      CHECK(out[31 - off + n] == guard);
    }
  }
}

TEST_CASE("mask: unmask_small and or_small at every short length, key and alignment") {
  // The inline small-frame unmask: vector, 8-, 4- and 1-byte steps. Its
  // result must be non-zero exactly when an unmasked byte is above 0x7F,
  // wherever that byte is (its upper lanes must not leak the key).
  std::mt19937 rng(6455);
  const std::array<mask_key, 3> keys{mask_key{std::byte{0x37}, std::byte{0xfa}, std::byte{0x21}, std::byte{0x3d}},
                                     mask_key{std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}},
                                     mask_key{}};
  for (const mask_key& key : keys) {
    for (std::size_t n = 0; n <= 130; ++n) {
      for (std::size_t align = 0; align < 3; ++align) {
        CAPTURE(n);
        CAPTURE(align);
        // ASCII plain text, with a guard byte on either side.
        std::vector<std::byte> plain(n);
        for (auto& b : plain) b = std::byte(rng() & 0x7F);
        std::vector<std::byte> buf(n + align + 2, std::byte{0x5a});
        std::byte* data = buf.data() + align + 1;
        reference_mask(data, plain.data(), n, key, 0);
        CHECK(gust::detail::unmask_small(data, n, key) == 0);
        CHECK((n == 0 || std::memcmp(data, plain.data(), n) == 0));  // (no null pointer to memcmp)
        CHECK(buf[align] == std::byte{0x5a});
        CHECK(buf[align + 1 + n] == std::byte{0x5a});
        CHECK(gust::detail::or_small(data, n) == 0);
        for (std::size_t at = 0; at < n; ++at) {
          auto high = plain;
          high[at] |= std::byte{0x80};
          reference_mask(data, high.data(), n, key, 0);
          const bool flagged = gust::detail::unmask_small(data, n, key) != 0;
          const bool ored = gust::detail::or_small(data, n) != 0;
          const bool same = std::memcmp(data, high.data(), n) == 0;
          if (!flagged || !ored || !same) {
            CAPTURE(at);
            CHECK(flagged);
            CHECK(ored);
            CHECK(same);
            break;
          }
        }
      }
    }
  }
}
