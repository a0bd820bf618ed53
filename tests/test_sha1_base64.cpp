// SHA-1 (FIPS 180-4) and base64 (RFC 4648) against published vectors, and
// the Sec-WebSocket-Accept computation of RFC 6455 1.3.
#include <doctest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base64.hpp"
#include "sha1.hpp"

using gust::detail::base64_decode;
using gust::detail::base64_encode;
using gust::detail::sha1;

namespace {

std::string hex(std::span<const std::byte> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::byte b : bytes) {
    const auto v = std::to_integer<unsigned>(b);
    out += digits[v >> 4];
    out += digits[v & 15];
  }
  return out;
}

std::string sha1_hex(std::string_view text) {
  sha1 h;
  h.update(text);
  const auto digest = h.finish();
  return hex(digest);
}

std::span<const std::byte> as_bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

std::string decoded_text(std::string_view b64) {
  const auto out = base64_decode(b64);
  REQUIRE(out.has_value());
  return std::string(reinterpret_cast<const char*>(out->data()), out->size());
}

}  // namespace

TEST_CASE("sha1: FIPS 180 example messages") {
  CHECK(sha1_hex("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(sha1_hex("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  CHECK(sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  CHECK(sha1_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                 "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu") ==
        "a49b2446a02c645bf419f995b67091253a04a259");
}

TEST_CASE("sha1: one million 'a' fed in odd-sized chunks") {
  const std::string chunk_source(1000, 'a');
  const std::size_t sizes[] = {1, 3, 7, 13, 63, 64, 65, 127, 999};
  sha1 h;
  std::size_t fed = 0;
  for (std::size_t k = 0; fed < 1000000; ++k) {
    std::size_t take = sizes[k % std::size(sizes)];
    if (take > 1000000 - fed) take = 1000000 - fed;
    h.update(std::string_view(chunk_source).substr(0, take));
    fed += take;
  }
  CHECK(hex(h.finish()) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST_CASE("sha1: padding boundaries around one block") {
  // Bytes 0, 1, 2, ...: lengths where the length field does or does not fit
  // in the last block. Digests from an independent implementation.
  struct vector_case {
    std::size_t n;
    const char* digest;
  } cases[] = {
      {55, "8ae2d46729cfe68ff927af5eec9c7d1b66d65ac2"},
      {56, "636e2ec698dac903498e648bd2f3af641d3c88cb"},
      {63, "6d942da0c4392b123528f2905c713a3ce28364bd"},
      {64, "c6138d514ffa2135bfce0ed0b8fac65669917ec7"},
      {65, "69bd728ad6e13cd76ff19751fde427b00e395746"},
      {119, "41c89d06001bab4ab78736b44efe7ce18ce6ae08"},
      {120, "d3dbd653bd8597b7475321b60a36891278e6a04a"},
  };
  for (const auto& c : cases) {
    std::vector<std::byte> data(c.n);
    for (std::size_t i = 0; i < c.n; ++i) data[i] = std::byte(i);
    CAPTURE(c.n);
    sha1 whole;
    whole.update(std::span<const std::byte>(data));
    CHECK(hex(whole.finish()) == c.digest);
    // Every two-piece split gives the same digest.
    for (std::size_t cut = 0; cut <= c.n; ++cut) {
      sha1 split;
      split.update(std::span<const std::byte>(data).first(cut));
      split.update(std::span<const std::byte>(data).subspan(cut));
      CHECK(hex(split.finish()) == c.digest);
    }
  }
}

TEST_CASE("sha1: a finished hasher starts over") {
  sha1 h;
  h.update("something else");
  (void)h.finish();
  h.update("abc");
  CHECK(hex(h.finish()) == "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST_CASE("base64: RFC 4648 section 10 vectors, both directions") {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
      {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& vector : vectors) {
    const std::string_view plain = vector.first, encoded = vector.second;
    CAPTURE(plain);
    CHECK(base64_encode(as_bytes(plain)) == encoded);
    CHECK(decoded_text(encoded) == plain);
  }
}

TEST_CASE("base64: strict decoding rejects") {
  const std::string_view bad[] = {
      "Zg",          // missing padding
      "Zg=",         // incomplete padding
      "Zm9vYg",      // missing padding after whole quanta
      "Zm9vY",       // length not a multiple of 4
      "Z",           //
      "Zh==",        // non-zero bits after the last whole byte
      "Zm9=",        // same, one padding character
      "Zm8=Zm8=",    // padding before the end
      "Zg==Zg==",    //
      "Z===",        // padding cannot cover three characters
      "====",        //
      "=Zm9",        //
      "Zm=v",        //
      "Zm9v\n",      // whitespace
      "Zm9v Zm9v",   //
      " Zm9",        //
      "Zm\t9",       //
      "Zm9-",        // URL-safe alphabet is a different encoding
      "Zm9_",        //
      "Zm9*",        // outside any alphabet
      "Zm9\x80",     //
      std::string_view("Zm9\0", 4),
  };
  for (std::string_view text : bad) {
    CAPTURE(text);
    CHECK_FALSE(base64_decode(text).has_value());
  }
}

TEST_CASE("base64: every byte value round-trips at every length mod 3") {
  std::vector<std::byte> all(256);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = std::byte(i);
  for (std::size_t n = 0; n <= all.size(); ++n) {
    const auto span = std::span<const std::byte>(all).subspan(all.size() - n);
    const std::string text = base64_encode(span);
    CHECK(text.size() == (n + 2) / 3 * 4);
    const auto back = base64_decode(text);
    REQUIRE(back.has_value());
    CHECK(std::equal(back->begin(), back->end(), span.begin(), span.end()));
  }
}

TEST_CASE("base64: the alphabet, in order") {
  // 0x00 0x10 0x83 0x10 0x51 0x87 ... packs sextets 0, 1, 2, ..., 63.
  std::vector<std::byte> packed;
  for (unsigned s = 0; s < 64; s += 4) {
    const std::uint32_t v = s << 18 | (s + 1) << 12 | (s + 2) << 6 | (s + 3);
    packed.push_back(std::byte(v >> 16));
    packed.push_back(std::byte(v >> 8));
    packed.push_back(std::byte(v));
  }
  const std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  CHECK(base64_encode(packed) == alphabet);
  const auto back = base64_decode(alphabet);
  REQUIRE(back.has_value());
  CHECK(*back == packed);
}

TEST_CASE("RFC 6455 1.3: Sec-WebSocket-Accept for the sample nonce") {
  const std::string_view key = "dGhlIHNhbXBsZSBub25jZQ==";
  CHECK(decoded_text(key) == "the sample nonce");
  sha1 h;
  h.update(key);
  h.update("258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  const auto digest = h.finish();
  CHECK(base64_encode(digest) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
