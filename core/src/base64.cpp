// Base64 (RFC 4648 section 4). Used for Sec-WebSocket-Key and
// Sec-WebSocket-Accept (RFC 6455 4.1, 4.2.2), where a strict decoder lets
// the handshake reject a key that is not exactly 16 bytes of canonical
// base64.
#include "base64.hpp"

#include <array>
#include <cstdint>

namespace gust::detail {

namespace {

constexpr char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::uint8_t invalid = 0xff;

constexpr std::array<std::uint8_t, 256> make_decode_table() {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = invalid;
  for (std::uint8_t i = 0; i < 64; ++i)
    t[static_cast<unsigned char>(alphabet[i])] = i;
  return t;
}

constexpr auto decode_table = make_decode_table();

std::uint8_t sextet(char c) noexcept {
  return decode_table[static_cast<unsigned char>(c)];
}

}  // namespace

std::string base64_encode(std::span<const std::byte> data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte_at = [&](std::size_t k) {
    return std::uint32_t{std::to_integer<std::uint8_t>(data[k])};
  };
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t v =
        byte_at(i) << 16 | byte_at(i + 1) << 8 | byte_at(i + 2);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  const std::size_t rest = data.size() - i;
  if (rest == 1) {
    const std::uint32_t v = byte_at(i) << 16;
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    const std::uint32_t v = byte_at(i) << 16 | byte_at(i + 1) << 8;
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::vector<std::byte>> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::vector<std::byte> out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    // Padding may only end the final quantum, and covers 1 or 2 characters.
    std::size_t pad = 0;
    if (last && text[i + 3] == '=') pad = text[i + 2] == '=' ? 2 : 1;
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4 - pad; ++k) {
      const std::uint8_t s = sextet(text[i + k]);
      if (s == invalid) return std::nullopt;
      v |= std::uint32_t{s} << (18 - 6 * k);
    }
    out.push_back(std::byte(v >> 16));
    if (pad == 2) {
      // RFC 4648 3.5: the bits past the last whole byte must be zero, or two
      // different texts would decode to the same bytes.
      if ((v & 0xffff) != 0) return std::nullopt;
      break;
    }
    out.push_back(std::byte(v >> 8));
    if (pad == 1) {
      if ((v & 0xff) != 0) return std::nullopt;
      break;
    }
    out.push_back(std::byte(v));
  }
  return out;
}

}  // namespace gust::detail
