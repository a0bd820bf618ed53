// Server half of the opening handshake (RFC 6455 4.2).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gust/handshake.hpp"
#include "gust/http.hpp"

namespace gust::detail {

/// What a valid upgrade request asked for.
struct upgrade_request {
  std::string key;                          ///< Sec-WebSocket-Key as sent
  std::vector<std::string_view> subprotocols;  ///< offers, client order (views into the request)
};

/// Why a request cannot be upgraded, and the answer to send.
struct upgrade_rejection {
  handshake_error error;  ///< bad_request, unsupported_version, forbidden_origin
  int status;             ///< 400, 426, 403
  std::string reason;     ///< short text for the body and the failure detail
};

/// RFC 6455 4.2.1: GET, HTTP/1.1, Host, Upgrade: websocket, Connection:
/// upgrade (token lists, case-insensitive), exactly one Sec-WebSocket-Key
/// that base64-decodes to 16 bytes, Sec-WebSocket-Version: 13 (else 426),
/// and the Origin policy of `opts`.
std::optional<upgrade_rejection> validate_upgrade_request(
    const http::request& req, const server_options& opts, upgrade_request& out);

/// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string accept_value(std::string_view key);

/// The subprotocol to select: opts.select_subprotocol if set, else the
/// first of opts.subprotocols (server preference) that the client offered.
std::optional<std::string> select_subprotocol(
    const http::request& req, const std::vector<std::string_view>& offered,
    const server_options& opts);

/// "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection,
/// Sec-WebSocket-Accept, and Sec-WebSocket-Protocol / -Extensions when not
/// empty, Server when not empty, then `extra`.
std::string write_switching_protocols(std::string_view accept,
                                      std::string_view subprotocol,
                                      std::string_view extensions,
                                      const http::headers& extra,
                                      std::string_view server_header);

/// Any other response: status line, Server (when not empty), the fields of
/// `fields`, Content-Length, Connection: close, and the body. Adds
/// Content-Type: text/plain; charset=utf-8 when `fields` has no
/// Content-Type and the body is not empty.
std::string write_response(int status, std::string_view reason_phrase,
                           const http::headers& fields, std::string_view body,
                           std::string_view server_header);

}  // namespace gust::detail
