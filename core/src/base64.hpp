// Base64 (RFC 4648 section 4, standard alphabet, padded).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gust::detail {

std::string base64_encode(std::span<const std::byte> data);
/// Strict: padding required, no whitespace, no other alphabet, and unused
/// bits of the last character must be zero. Nothing on any error.
std::optional<std::vector<std::byte>> base64_decode(std::string_view text);

}  // namespace gust::detail
