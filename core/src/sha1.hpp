// SHA-1 (FIPS 180-4), only for Sec-WebSocket-Accept (RFC 6455 4.2.2).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace gust::detail {

class sha1 {
 public:
  sha1() noexcept;
  void update(std::span<const std::byte> data) noexcept;
  void update(std::string_view data) noexcept;
  std::array<std::byte, 20> finish() noexcept;

 private:
  std::uint32_t h_[5];
  std::uint64_t length_ = 0;  // bytes
  std::byte block_[64];
  std::size_t used_ = 0;
};

}  // namespace gust::detail
