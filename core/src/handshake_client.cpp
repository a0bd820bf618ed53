// Client half of the opening handshake (RFC 6455 4.1).
#include "handshake_client.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <vector>

#include "base64.hpp"
#include "handshake_server.hpp"
#include "http1.hpp"
#include "http_syntax.hpp"
#include "random.hpp"

namespace gust::detail {

namespace {

// The extension-token of one element of Sec-WebSocket-Extensions
// (RFC 6455 9.1: extension-token *( ";" extension-param )).
std::string_view extension_name(std::string_view element) noexcept {
  return trim_ows(element.substr(0, element.find(';')));
}

// Fields the request builds itself: the same names among extra_headers
// would contradict the handshake (a second key, an offer the response
// check does not know about), so they are left out.
bool is_handshake_field(std::string_view name) noexcept {
  for (std::string_view own :
       {"Host", "Upgrade", "Connection", "Content-Length", "Transfer-Encoding",
        "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions"}) {
    if (http::iequals(name, own)) return true;
  }
  return false;
}

// RFC 9112 3.2.1 origin-form; bytes a request-target cannot hold are
// percent-encoded so the request line stays one line of three parts.
void append_target(std::string& out, std::string_view target) {
  // RFC 6455 3: a WebSocket URI has no fragment, and it is never sent.
  target = target.substr(0, target.find('#'));
  if (target.empty() || target.front() != '/') out.push_back('/');
  constexpr char hex[] = "0123456789ABCDEF";
  for (char ch : target) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_vchar(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xf]);
    }
  }
}

}  // namespace

std::string make_key(const random_source& random) {
  // RFC 6455 4.1 item 7: a nonce of 16 random bytes, base64-encoded.
  std::array<std::byte, 16> nonce{};
  if (random) {
    random(std::span<std::byte>(nonce));
  } else {
    fill_random(std::span<std::byte>(nonce));
  }
  return base64_encode(std::span<const std::byte>(nonce));
}

std::string write_upgrade_request(const client_options& opts,
                                  std::string_view key) {
  // RFC 6455 4.1, items 1 to 12 of the client's requirements.
  std::string out;
  out.reserve(256 + opts.target.size() + opts.host.size());
  out.append("GET ");
  append_target(out, opts.target);
  out.append(" HTTP/1.1\r\n");
  append_field(out, "Host", opts.host);
  out.append("Upgrade: websocket\r\n");
  out.append("Connection: Upgrade\r\n");
  append_field(out, "Sec-WebSocket-Key", key);
  out.append("Sec-WebSocket-Version: 13\r\n");
  if (!opts.origin.empty()) append_field(out, "Origin", opts.origin);
  if (!opts.subprotocols.empty()) {
    std::string joined;
    for (const auto& p : opts.subprotocols) {
      if (p.empty()) continue;
      if (!joined.empty()) joined.append(", ");
      joined.append(p);
    }
    if (!joined.empty()) append_field(out, "Sec-WebSocket-Protocol", joined);
  }
  if (!opts.extensions.empty()) {
    std::string joined;
    for (const auto& e : opts.extensions) {
      if (e.empty()) continue;
      if (!joined.empty()) joined.append(", ");
      joined.append(e);
    }
    if (!joined.empty()) append_field(out, "Sec-WebSocket-Extensions", joined);
  }
  if (!opts.user_agent.empty()) append_field(out, "User-Agent", opts.user_agent);
  for (const auto& f : opts.extra_headers) {
    if (!is_handshake_field(f.name)) append_field(out, f.name, f.value);
  }
  out.append("\r\n");
  return out;
}

std::optional<handshake_failure> validate_upgrade_response(
    const http::response& resp, std::string_view key, const client_options& opts,
    upgrade_response& out) {
  const auto fail = [&](handshake_error e, std::string detail) {
    return std::optional<handshake_failure>(
        handshake_failure{e, std::move(detail), resp});
  };
  const auto& h = resp.headers;
  using enum handshake_error;

  // RFC 6455 4.1: "If the status code received from the server is not 101,
  // the client handles the response per HTTP procedures"; for us that is a
  // failure carrying the response.
  if (resp.status != 101) {
    std::string detail = "expected 101, got " + std::to_string(resp.status);
    if (!resp.reason.empty()) {
      detail.push_back(' ');
      detail.append(resp.reason);
    }
    return fail(unexpected_status, std::move(detail));
  }

  // RFC 6455 4.1 item 2: Upgrade MUST be "websocket" (ASCII case-insensitive):
  // any other protocol in the list is a value that does not match.
  bool upgrade_ok = false;
  const bool upgrade_parsed = std::all_of(h.begin(), h.end(), [&](const http::field& f) {
    if (!http::iequals(f.name, "Upgrade")) return true;
    return for_each_element(f.value, [&](std::string_view element) {
      if (!http::iequals(element, "websocket")) return false;
      upgrade_ok = true;
      return true;
    });
  });
  if (!upgrade_parsed || !upgrade_ok)
    return fail(invalid_upgrade, "Upgrade: websocket missing in the response");

  // RFC 6455 4.1 item 3: Connection MUST contain the token "Upgrade".
  if (!h.has_token("Connection", "upgrade"))
    return fail(invalid_upgrade, "Connection: Upgrade missing in the response");

  // RFC 6455 4.1 item 4: the accept value is compared exactly (base64 is
  // case-sensitive). Two fields are two different answers: also a failure.
  if (h.count("Sec-WebSocket-Accept") != 1)
    return fail(invalid_accept, h.contains("Sec-WebSocket-Accept")
                                    ? "more than one Sec-WebSocket-Accept"
                                    : "Sec-WebSocket-Accept missing");
  if (*h.get("Sec-WebSocket-Accept") != accept_value(key))
    return fail(invalid_accept, "Sec-WebSocket-Accept does not match the key");

  // RFC 6455 4.1 item 5: the extensions in use MUST be among those offered.
  // Only the names are checked here; their parameters are for the
  // extension's own negotiation.
  std::vector<std::string_view> offered_extensions;
  for (const auto& offer : opts.extensions) {
    for_each_element(offer, [&](std::string_view element) {
      offered_extensions.push_back(extension_name(element));
      return true;
    });
  }
  std::string unexpected;
  const auto extensions = h.get_combined("Sec-WebSocket-Extensions");
  if (extensions) {
    const bool valid = for_each_element(*extensions, [&](std::string_view element) {
      const auto name = extension_name(element);
      if (!is_token(name)) {
        unexpected = "malformed Sec-WebSocket-Extensions";
        return false;
      }
      const bool offered = std::any_of(
          offered_extensions.begin(), offered_extensions.end(),
          [&](std::string_view o) { return http::iequals(o, name); });
      if (!offered) {
        unexpected = "extension not offered: ";
        unexpected.append(name);
        return false;
      }
      return true;
    });
    if (!valid) {
      if (unexpected.empty()) unexpected = "malformed Sec-WebSocket-Extensions";
      return fail(unexpected_extension, std::move(unexpected));
    }
  }

  // RFC 6455 4.1 item 6: a subprotocol MUST be one the client offered, and
  // RFC 6455 4.2.2 lets the server select at most one.
  std::string_view subprotocol;
  if (const auto count = h.count("Sec-WebSocket-Protocol"); count != 0) {
    if (count > 1)
      return fail(unexpected_subprotocol, "more than one Sec-WebSocket-Protocol");
    subprotocol = *h.get("Sec-WebSocket-Protocol");
    if (subprotocol.find(',') != std::string_view::npos)
      return fail(unexpected_subprotocol, "more than one subprotocol selected");
    const bool offered =
        std::find(opts.subprotocols.begin(), opts.subprotocols.end(), subprotocol) !=
        opts.subprotocols.end();
    if (subprotocol.empty() || !offered) {
      std::string detail = "subprotocol not offered: ";
      detail.append(subprotocol);
      return fail(unexpected_subprotocol, std::move(detail));
    }
  }

  out.subprotocol.assign(subprotocol);
  out.extensions = extensions.value_or(std::string());
  return std::nullopt;
}

}  // namespace gust::detail
