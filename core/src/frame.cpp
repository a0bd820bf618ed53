#include "frame.hpp"

#include <cstring>

namespace gust::detail {

header_status parse_frame_header(const std::byte* p, std::size_t n,
                                 frame_header& out, std::size_t& size) noexcept {
  if (n < 2) return header_status::need_more;
  const auto b0 = static_cast<std::uint8_t>(p[0]);
  const auto b1 = static_cast<std::uint8_t>(p[1]);
  out.fin = (b0 & 0x80) != 0;
  out.rsv = static_cast<std::uint8_t>((b0 >> 4) & 0x7);
  out.opcode = b0 & 0x0F;
  out.masked = (b1 & 0x80) != 0;
  const std::uint8_t len7 = b1 & 0x7F;
  std::size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (out.masked ? 4 : 0);
  if (n < need) return header_status::need_more;

  std::size_t pos = 2;
  if (len7 < 126) {
    out.length = len7;
  } else if (len7 == 126) {
    out.length = (std::uint64_t{static_cast<std::uint8_t>(p[2])} << 8) |
                 static_cast<std::uint8_t>(p[3]);
    pos = 4;
    if (out.length < 126) return header_status::length_not_minimal;
  } else {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(p[2 + i]);
    pos = 10;
    // 5.2: "the most significant bit MUST be 0".
    if (v >> 63) return header_status::length_msb_set;
    if (v <= 0xFFFF) return header_status::length_not_minimal;
    out.length = v;
  }
  if (out.masked) {
    std::memcpy(out.key.data(), p + pos, 4);
    pos += 4;
  }
  size = pos;
  return header_status::ok;
}

std::size_t write_frame_header(std::byte* out, bool fin, std::uint8_t rsv,
                               std::uint8_t opcode, std::uint64_t length,
                               const mask_key* key) noexcept {
  out[0] = static_cast<std::byte>((fin ? 0x80 : 0) | ((rsv & 0x7) << 4) | (opcode & 0x0F));
  const std::uint8_t mask_bit = key ? 0x80 : 0;
  std::size_t pos;
  if (length < 126) {
    out[1] = static_cast<std::byte>(mask_bit | length);
    pos = 2;
  } else if (length <= 0xFFFF) {
    out[1] = static_cast<std::byte>(mask_bit | 126);
    out[2] = static_cast<std::byte>(length >> 8);
    out[3] = static_cast<std::byte>(length);
    pos = 4;
  } else {
    out[1] = static_cast<std::byte>(mask_bit | 127);
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::byte>(length >> (56 - 8 * i));
    pos = 10;
  }
  if (key) {
    std::memcpy(out + pos, key->data(), 4);
    pos += 4;
  }
  return pos;
}

}  // namespace gust::detail
