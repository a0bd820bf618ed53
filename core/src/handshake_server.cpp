// Server half of the opening handshake (RFC 6455 4.2).
#include "handshake_server.hpp"

#include <algorithm>
#include <cstddef>
#include <span>

#include "base64.hpp"
#include "http1.hpp"
#include "http_syntax.hpp"
#include "sha1.hpp"

namespace gust::detail {

namespace {

// RFC 6455 1.3: the GUID every server appends to the key.
constexpr std::string_view websocket_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// RFC 3986 3.2.2 and 3.2.3: the characters a Host value (reg-name, IPv4,
// IP-literal in brackets, then ":" port) can be made of. Anything else ("/",
// "@", whitespace) is not a host.
bool is_valid_host(std::string_view host) noexcept {
  if (host.empty()) return false;
  return std::all_of(host.begin(), host.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
      return true;
    switch (c) {
      case '-': case '.': case '_': case '~': case '!': case '$': case '&':
      case '\'': case '(': case ')': case '*': case '+': case ',': case ';':
      case '=': case '%': case ':': case '[': case ']':
        return true;
      default:
        return false;
    }
  });
}

// Field lines this code writes itself: the same names from the application
// would contradict them (two Content-Length, a second Upgrade), so they are
// left out rather than sent twice.
bool is_framing_field(std::string_view name) noexcept {
  return http::iequals(name, "Content-Length") ||
         http::iequals(name, "Transfer-Encoding") ||
         http::iequals(name, "Connection");
}

bool is_handshake_field(std::string_view name) noexcept {
  return is_framing_field(name) || http::iequals(name, "Upgrade") ||
         http::iequals(name, "Sec-WebSocket-Accept") ||
         http::iequals(name, "Sec-WebSocket-Protocol") ||
         http::iequals(name, "Sec-WebSocket-Extensions");
}

upgrade_rejection reject(handshake_error e, int status, std::string_view reason) {
  return upgrade_rejection{e, status, std::string(reason)};
}

}  // namespace

std::optional<upgrade_rejection> validate_upgrade_request(
    const http::request& req, const server_options& opts, upgrade_request& out) {
  const auto& h = req.headers;
  using enum handshake_error;
  // RFC 6455 4.2.1 item 1: an HTTP/1.1 or higher GET request. The version
  // was checked by the parser. 400 rather than 405: 405 would have to list
  // the allowed methods, and this is not a resource with methods.
  if (req.method != "GET") return reject(bad_request, 400, "method must be GET");

  // RFC 6455 4.2.1 item 2 and RFC 9112 3.2: exactly one valid Host, else
  // 400.
  const auto host_count = h.count("Host");
  if (host_count == 0) return reject(bad_request, 400, "missing Host");
  if (host_count > 1) return reject(bad_request, 400, "duplicate Host");
  if (!is_valid_host(*h.get("Host"))) return reject(bad_request, 400, "invalid Host");

  // RFC 6455 4.2.1 items 3 and 4, both ASCII case-insensitive and as token
  // lists ("Connection: keep-alive, Upgrade" is what Firefox sends).
  if (!h.has_token("Upgrade", "websocket"))
    return reject(bad_request, 400, "Upgrade: websocket required");
  if (!h.has_token("Connection", "upgrade"))
    return reject(bad_request, 400, "Connection: Upgrade required");

  // Whatever follows the head is read as frames, so a body announced by the
  // request would be misread as WebSocket data.
  if (h.contains("Transfer-Encoding"))
    return reject(bad_request, 400, "a request body is not allowed");
  for (auto v : h.get_all("Content-Length")) {
    if (v != "0") return reject(bad_request, 400, "a request body is not allowed");
  }

  // RFC 6455 4.2.2: a version the server does not speak gets 426 and a
  // Sec-WebSocket-Version field listing the ones it does (added by the
  // caller). A missing version is the same: the client speaks none of ours.
  const auto version_count = h.count("Sec-WebSocket-Version");
  if (version_count != 1 || *h.get("Sec-WebSocket-Version") != "13")
    return reject(unsupported_version, 426, "Sec-WebSocket-Version: 13 required");

  // RFC 6455 4.2.1 item 5: one key, base64 of 16 bytes. Two keys could be
  // answered differently by two parsers on the way, so they are refused.
  const auto key_count = h.count("Sec-WebSocket-Key");
  if (key_count == 0) return reject(bad_request, 400, "missing Sec-WebSocket-Key");
  if (key_count > 1) return reject(bad_request, 400, "duplicate Sec-WebSocket-Key");
  const auto key = *h.get("Sec-WebSocket-Key");
  const auto decoded = base64_decode(key);
  if (!decoded || decoded->size() != 16)
    return reject(bad_request, 400, "invalid Sec-WebSocket-Key");

  // RFC 6455 4.2.2 item 4 and 10.2: the Origin check that stops other sites'
  // pages from opening connections with the user's cookies. RFC 6454 7.3
  // allows one origin list only, so repeated fields are ambiguous.
  const auto origin_count = h.count("Origin");
  if (origin_count > 1) return reject(bad_request, 400, "duplicate Origin");
  if (!opts.allowed_origins.empty()) {
    if (origin_count == 0) {
      if (!opts.allow_missing_origin)
        return reject(forbidden_origin, 403, "Origin required");
    } else {
      const auto origin = *h.get("Origin");
      const bool allowed = std::any_of(
          opts.allowed_origins.begin(), opts.allowed_origins.end(),
          [&](const std::string& o) { return http::iequals(o, origin); });
      if (!allowed) return reject(forbidden_origin, 403, "Origin not allowed");
    }
  }

  // RFC 6455 4.2.1 item 8 and 11.3.4: Sec-WebSocket-Protocol = 1#token, over
  // any number of fields. Empty list elements are ignored (RFC 9110 5.6.1).
  std::vector<std::string_view> offers;
  for (const auto& f : h) {
    if (!http::iequals(f.name, "Sec-WebSocket-Protocol")) continue;
    const bool valid = for_each_element(f.value, [&](std::string_view element) {
      if (!is_token(element)) return false;
      offers.push_back(element);
      return true;
    });
    if (!valid) return reject(bad_request, 400, "invalid Sec-WebSocket-Protocol");
  }

  out.key.assign(key);
  out.subprotocols = std::move(offers);
  return std::nullopt;
}

std::string accept_value(std::string_view key) {
  // RFC 6455 4.2.2 item 5.4: base64 of the SHA-1 of the key as sent (not
  // decoded) followed by the GUID.
  sha1 h;
  h.update(key);
  h.update(websocket_guid);
  const auto digest = h.finish();
  return base64_encode(std::span<const std::byte>(digest));
}

std::optional<std::string> select_subprotocol(
    const http::request& req, const std::vector<std::string_view>& offered,
    const server_options& opts) {
  const auto was_offered = [&](std::string_view p) {
    return std::find(offered.begin(), offered.end(), p) != offered.end();
  };
  if (opts.select_subprotocol) {
    auto chosen = opts.select_subprotocol(
        req, std::span<const std::string_view>(offered.data(), offered.size()));
    // RFC 6455 4.2.2 item 5.4: the selected value MUST be one the client
    // offered, or the client fails the connection (4.1); a choice outside
    // the offers is dropped rather than sent.
    if (chosen && !was_offered(*chosen)) return std::nullopt;
    return chosen;
  }
  // Subprotocol names are compared exactly: RFC 6455 does not make them
  // case-insensitive, and the client checks the echo the same way.
  for (const auto& mine : opts.subprotocols) {
    if (was_offered(mine)) return mine;
  }
  return std::nullopt;
}

std::string write_switching_protocols(std::string_view accept,
                                      std::string_view subprotocol,
                                      std::string_view extensions,
                                      const http::headers& extra,
                                      std::string_view server_header) {
  // RFC 6455 4.2.2 item 5.
  std::string out;
  out.reserve(160 + subprotocol.size() + extensions.size());
  out.append("HTTP/1.1 101 Switching Protocols\r\n");
  out.append("Upgrade: websocket\r\n");
  out.append("Connection: Upgrade\r\n");
  append_field(out, "Sec-WebSocket-Accept", accept);
  if (!subprotocol.empty()) append_field(out, "Sec-WebSocket-Protocol", subprotocol);
  if (!extensions.empty()) append_field(out, "Sec-WebSocket-Extensions", extensions);
  if (!server_header.empty()) append_field(out, "Server", server_header);
  for (const auto& f : extra) {
    if (!is_handshake_field(f.name)) append_field(out, f.name, f.value);
  }
  out.append("\r\n");
  return out;
}

std::string write_response(int status, std::string_view reason_phrase,
                           const http::headers& fields, std::string_view body,
                           std::string_view server_header) {
  // RFC 9112 4: status-code is three digits.
  if (status < 100 || status > 999) status = 500;
  if (reason_phrase.empty() || !is_field_value(reason_phrase))
    reason_phrase = status_reason(status);
  std::string out;
  out.reserve(128 + body.size());
  out.append("HTTP/1.1 ");
  out.append(std::to_string(status));
  out.push_back(' ');
  out.append(reason_phrase);
  out.append("\r\n");
  if (!server_header.empty()) append_field(out, "Server", server_header);
  bool has_content_type = false;
  for (const auto& f : fields) {
    if (is_framing_field(f.name)) continue;
    if (http::iequals(f.name, "Content-Type") && is_field_value(f.value))
      has_content_type = true;
    append_field(out, f.name, f.value);
  }
  if (!has_content_type && !body.empty())
    out.append("Content-Type: text/plain; charset=utf-8\r\n");
  out.append("Content-Length: ");
  out.append(std::to_string(body.size()));
  out.append("\r\n");
  // The connection ends after this answer: whatever the client sent after
  // the request would otherwise have to be read as a next request.
  out.append("Connection: close\r\n\r\n");
  out.append(body);
  return out;
}

}  // namespace gust::detail
