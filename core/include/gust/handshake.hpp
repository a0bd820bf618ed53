// gust/handshake.hpp: what each role says and decides in the opening
// handshake (RFC 6455 section 4).
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gust/http.hpp"

namespace gust {

/// Options of a client's opening request.
struct client_options {
  /// Host header; include ":port" when it is not the scheme's default.
  std::string host;
  /// Request target in origin-form: path and query.
  std::string target = "/";
  /// Origin header; empty sends none (browsers always send one).
  std::string origin;
  /// Sec-WebSocket-Protocol offers, in order of preference.
  std::vector<std::string> subprotocols;
  /// Sec-WebSocket-Extensions offers, as header values.
  std::vector<std::string> extensions;
  /// Sent as they are after the handshake fields.
  http::headers extra_headers;
  /// User-Agent header; empty sends none.
  std::string user_agent = "gust";
};

/// A server's own policy, applied to every request.
struct server_options {
  /// Subprotocols this server speaks, in its order of preference: the first
  /// one the client also offered is selected.
  std::vector<std::string> subprotocols;
  /// Overrides the list above: gets the request and the client's offers in
  /// the client's order; returns the one to select, or nothing.
  std::function<std::optional<std::string>(const http::request&,
                                           std::span<const std::string_view>)>
      select_subprotocol;
  /// Cross-site WebSocket hijacking defence: when not empty, a request
  /// whose Origin is not in this list (exact, case-insensitive match) gets
  /// 403. A request without Origin is allowed only if allow_missing_origin.
  std::vector<std::string> allowed_origins;
  bool allow_missing_origin = true;
  /// Server header in every response; empty sends none.
  std::string server_header = "gust";
  /// Keep the opening request for the life of the connection
  /// (server_connection::request()). false: it stays readable until the
  /// open_event has been handled (the next next_event() call), then it is
  /// freed: a few hundred bytes per connection, more with cookies, for
  /// servers that take what they need from it at open.
  bool keep_request = true;
};

/// How the application accepts a request (server_connection::accept).
struct accept_options {
  /// Replaces the subprotocol selected by server_options.
  std::optional<std::string> subprotocol;
  /// Added to the 101 response.
  http::headers extra_headers;
};

enum class handshake_error {
  malformed,             ///< not parseable HTTP/1.1
  too_large,             ///< a handshake size limit was exceeded
  bad_request,           ///< server: not a valid WebSocket upgrade request (400)
  unsupported_version,   ///< server: Sec-WebSocket-Version is not 13 (426)
  forbidden_origin,      ///< server: Origin not allowed (403)
  rejected,              ///< server: the application answered with reject()/respond()
  unexpected_status,     ///< client: the response is not 101
  invalid_upgrade,       ///< client: Upgrade/Connection fields wrong
  invalid_accept,        ///< client: Sec-WebSocket-Accept does not match the key
  unexpected_subprotocol,///< client: a subprotocol it did not offer
  unexpected_extension,  ///< client: an extension it did not offer
  timeout,               ///< open_timeout passed
  eof,                   ///< the transport ended during the handshake
};

std::string_view to_string(handshake_error e) noexcept;

/// Why an opening handshake did not complete. For a client that received a
/// response, `response` holds its status, headers and (bounded) body.
struct handshake_failure {
  handshake_error error;
  std::string detail;
  std::optional<http::response> response;
};

}  // namespace gust
