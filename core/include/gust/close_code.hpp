// gust/close_code.hpp: close status codes (RFC 6455 section 7.4).
#pragma once

#include <cstdint>

namespace gust::close_code {

inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
/// Never on the wire: reported when a close frame carried no code.
inline constexpr std::uint16_t no_status = 1005;
/// Never on the wire: reported when the transport ended without a close frame.
inline constexpr std::uint16_t abnormal = 1006;
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t mandatory_extension = 1010;
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t service_restart = 1012;
inline constexpr std::uint16_t try_again_later = 1013;
inline constexpr std::uint16_t bad_gateway = 1014;
/// Never on the wire: TLS handshake failure.
inline constexpr std::uint16_t tls_handshake = 1015;

/// True for a code that may appear in a close frame: 1000-1003, 1007-1014
/// (those registered with IANA) and 3000-4999. 1004, 1005, 1006, 1015,
/// 0-999, 1016-2999 and 5000+ are not, and receiving one fails with 1002.
constexpr bool valid_on_wire(std::uint16_t code) noexcept {
  if (code >= 3000 && code <= 4999) return true;
  if (code >= 1000 && code <= 1003) return true;
  return code >= 1007 && code <= 1014;
}

}  // namespace gust::close_code
