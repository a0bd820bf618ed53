// Client half of the opening handshake (RFC 6455 4.1).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "gust/handshake.hpp"
#include "gust/http.hpp"
#include "gust/settings.hpp"

namespace gust::detail {

/// A fresh Sec-WebSocket-Key: 16 bytes from `random`, base64.
std::string make_key(const random_source& random);

/// GET target HTTP/1.1, Host, Upgrade, Connection, Sec-WebSocket-Key,
/// Sec-WebSocket-Version: 13, then Origin, Sec-WebSocket-Protocol (joined
/// with ", "), one Sec-WebSocket-Extensions joined from the offers,
/// User-Agent (when not empty) and opts.extra_headers.
std::string write_upgrade_request(const client_options& opts,
                                  std::string_view key);

/// What the server selected.
struct upgrade_response {
  std::string subprotocol;
  std::string extensions;
};

/// RFC 6455 4.1 (the client's checks of the server's handshake): status
/// 101, Upgrade: websocket, Connection: upgrade, Sec-WebSocket-Accept
/// matching `key`, a subprotocol only if offered (and at most one), an
/// extension only if its name was offered. Nothing when valid.
std::optional<handshake_failure> validate_upgrade_response(
    const http::response& resp, std::string_view key, const client_options& opts,
    upgrade_response& out);

}  // namespace gust::detail
