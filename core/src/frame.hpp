// RFC 6455 5.2 base framing: the header, parsed and written. The rules that
// need connection state (mask direction, RSV negotiation, fragmentation,
// limits) live in the connection; this file only knows the wire layout.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mask.hpp"

namespace gust::detail {

enum class opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

constexpr bool is_control(std::uint8_t op) noexcept { return (op & 0x8) != 0; }
constexpr bool is_known_opcode(std::uint8_t op) noexcept {
  return op <= 0x2 || (op >= 0x8 && op <= 0xA);
}

inline constexpr std::size_t max_frame_header_size = 14;
/// RFC 6455 5.5: "All control frames MUST have a payload length of 125
/// bytes or less".
inline constexpr std::size_t max_control_payload = 125;

struct frame_header {
  bool fin;
  std::uint8_t rsv;  ///< the three RSV bits, as 0x4 (RSV1), 0x2, 0x1
  std::uint8_t opcode;
  bool masked;
  std::uint64_t length;
  mask_key key;
};

enum class header_status {
  need_more,
  ok,
  length_msb_set,    ///< 64-bit length with the most significant bit set
  length_not_minimal,///< 5.2: "the minimal number of bytes MUST be used"
};

/// Parses a header from the first `n` bytes at `p`. On ok, `size` is the
/// header's length (2 to 14 bytes); need_more when `n` is too short.
header_status parse_frame_header(const std::byte* p, std::size_t n,
                                 frame_header& out, std::size_t& size) noexcept;

/// Header size for a payload of `length` bytes.
constexpr std::size_t frame_header_size(std::uint64_t length, bool masked) noexcept {
  std::size_t n = length < 126 ? 2 : (length <= 0xFFFF ? 4 : 10);
  return masked ? n + 4 : n;
}

/// Writes a header into `out` (room for max_frame_header_size bytes) and
/// returns its size. `key` is written when not null (client frames).
std::size_t write_frame_header(std::byte* out, bool fin, std::uint8_t rsv,
                               std::uint8_t opcode, std::uint64_t length,
                               const mask_key* key) noexcept;

}  // namespace gust::detail
