// Reference HTTP pieces for the handshake fuzz targets, written from RFC
// 9110/9112 and RFC 6455 4 without looking at the engine's helpers: list
// splitting with quoted-strings, tokens, the Sec-WebSocket-Key check, a
// whole-input request-head parser and the two upgrade validations. Where
// RFC 6455 leaves a choice (which check answers first, which status), the
// choice the engine documents is taken.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gust/handshake.hpp"
#include "gust/http.hpp"

namespace gust::fuzz::ref {

inline char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

inline bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

inline bool tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  for (char t : std::string_view("!#$%&'*+-.^_`|~"))
    if (c == t) return true;
  return false;
}

inline bool token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!tchar(c)) return false;
  return true;
}

inline std::string_view trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

/// RFC 9110 5.6.1 list elements, trimmed, empty ones included; commas
/// inside a quoted-string (5.6.4, with quoted-pairs) do not split. Nothing
/// when a quoted-string is left open.
inline std::optional<std::vector<std::string_view>> list(std::string_view v) {
  std::vector<std::string_view> out;
  enum { plain, quoted, escaped } st = plain;
  std::size_t start = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (st == escaped) {
      st = quoted;
    } else if (st == quoted) {
      if (c == '\\') st = escaped;
      else if (c == '"') st = plain;
    } else if (c == '"') {
      st = quoted;
    } else if (c == ',') {
      out.push_back(trim(v.substr(start, i - start)));
      start = i + 1;
    }
  }
  if (st != plain) return std::nullopt;
  out.push_back(trim(v.substr(start)));
  return out;
}

/// The non-empty elements of every field called `name`; nothing when one is
/// malformed.
inline std::optional<std::vector<std::string_view>> elements(const http::headers& h, std::string_view name) {
  std::vector<std::string_view> out;
  for (const auto& f : h) {
    if (!ieq(f.name, name)) continue;
    auto l = list(f.value);
    if (!l) return std::nullopt;
    for (auto e : *l)
      if (!e.empty()) out.push_back(e);
  }
  return out;
}

/// A field called `name` whose list holds `tok` (ASCII case-insensitive).
/// In a field with a quoted-string left open, the elements before the one
/// holding the open quote still count (that one, holding a quote, is never
/// a token).
inline bool field_has(const http::headers& h, std::string_view name, std::string_view tok) {
  for (const auto& f : h) {
    if (!ieq(f.name, name)) continue;
    const std::string_view v = f.value;
    std::vector<std::string_view> elems;
    enum { plain, quoted, escaped } st = plain;
    std::size_t start = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const char c = v[i];
      if (st == escaped) {
        st = quoted;
      } else if (st == quoted) {
        if (c == '\\') st = escaped;
        else if (c == '"') st = plain;
      } else if (c == '"') {
        st = quoted;
      } else if (c == ',') {
        elems.push_back(trim(v.substr(start, i - start)));
        start = i + 1;
      }
    }
    elems.push_back(trim(v.substr(start)));  // with an open quote: not a token
    for (auto e : elems)
      if (!e.empty() && ieq(e, tok)) return true;
  }
  return false;
}

inline std::size_t count(const http::headers& h, std::string_view name) {
  std::size_t n = 0;
  for (const auto& f : h) n += ieq(f.name, name);
  return n;
}

inline std::optional<std::string_view> first(const http::headers& h, std::string_view name) {
  for (const auto& f : h)
    if (ieq(f.name, name)) return std::string_view(f.value);
  return std::nullopt;
}

/// RFC 6455 4.1 item 7 / 4.2.1 item 5: base64 (RFC 4648 4, canonical) of
/// exactly 16 bytes: 22 alphabet characters, the last with its low 4 bits
/// clear, then "==".
inline bool key_ok(std::string_view k) {
  static const std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (k.size() != 24 || k.substr(22) != "==") return false;
  for (std::size_t i = 0; i < 22; ++i)
    if (alphabet.find(k[i]) == std::string_view::npos) return false;
  return (alphabet.find(k[21]) & 0x0F) == 0;
}

/// RFC 3986 3.2.2/3.2.3 host and port characters.
inline bool host_ok(std::string_view h) {
  if (h.empty()) return false;
  for (char c : h) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && std::string_view("-._~!$&'()*+,;=%:[]").find(c) == std::string_view::npos) return false;
  }
  return true;
}

/// The verdict on an upgrade request: nothing when valid (then `offers`
/// holds the subprotocols in order), else the status to answer.
inline std::optional<int> validate_request(const http::request& r, const server_options& o,
                                           std::vector<std::string_view>& offers) {
  const auto& h = r.headers;
  if (r.method != "GET") return 400;
  if (count(h, "Host") != 1 || !host_ok(*first(h, "Host"))) return 400;
  if (!field_has(h, "Upgrade", "websocket")) return 400;
  if (!field_has(h, "Connection", "upgrade")) return 400;
  if (count(h, "Transfer-Encoding")) return 400;
  for (const auto& f : h)
    if (ieq(f.name, "Content-Length") && f.value != "0") return 400;
  if (count(h, "Sec-WebSocket-Version") != 1 || *first(h, "Sec-WebSocket-Version") != "13") return 426;
  if (count(h, "Sec-WebSocket-Key") != 1 || !key_ok(*first(h, "Sec-WebSocket-Key"))) return 400;
  const auto origins = count(h, "Origin");
  if (origins > 1) return 400;
  if (!o.allowed_origins.empty()) {
    if (origins == 0) {
      if (!o.allow_missing_origin) return 403;
    } else {
      bool allowed = false;
      for (const auto& a : o.allowed_origins) allowed = allowed || ieq(a, *first(h, "Origin"));
      if (!allowed) return 403;
    }
  }
  auto protos = elements(h, "Sec-WebSocket-Protocol");
  if (!protos) return 400;
  for (auto p : *protos)
    if (!token(p)) return 400;
  offers = *protos;
  return std::nullopt;
}

/// The verdict on a response to our request: nothing when valid (then the
/// selected subprotocol), else the error.
inline std::optional<handshake_error> validate_response(const http::response& r, std::string_view accept,
                                                        const client_options& o, std::string& subprotocol) {
  const auto& h = r.headers;
  if (r.status != 101) return handshake_error::unexpected_status;
  bool upgrade = false;
  for (const auto& f : h) {
    if (!ieq(f.name, "Upgrade")) continue;
    auto l = list(f.value);
    if (!l) return handshake_error::invalid_upgrade;
    for (auto e : *l) {
      if (e.empty()) continue;
      if (!ieq(e, "websocket")) return handshake_error::invalid_upgrade;
      upgrade = true;
    }
  }
  if (!upgrade) return handshake_error::invalid_upgrade;
  if (!field_has(h, "Connection", "upgrade")) return handshake_error::invalid_upgrade;
  if (count(h, "Sec-WebSocket-Accept") != 1 || *first(h, "Sec-WebSocket-Accept") != accept)
    return handshake_error::invalid_accept;
  if (count(h, "Sec-WebSocket-Extensions")) {
    std::vector<std::string_view> offered;
    for (const auto& e : o.extensions) {
      auto l = list(e);
      if (!l) continue;  // an offer we could not have sent whole; its names do not count
      for (auto x : *l)
        if (!x.empty()) offered.push_back(trim(x.substr(0, x.find(';'))));
    }
    std::string combined;
    for (const auto& f : h) {
      if (!ieq(f.name, "Sec-WebSocket-Extensions")) continue;
      if (!combined.empty()) combined += ", ";
      combined += f.value;
    }
    auto l = list(combined);
    if (!l) return handshake_error::unexpected_extension;
    for (auto x : *l) {
      if (x.empty()) continue;
      const auto name = trim(x.substr(0, x.find(';')));
      if (!token(name)) return handshake_error::unexpected_extension;
      bool was = false;
      for (auto of : offered) was = was || ieq(of, name);
      if (!was) return handshake_error::unexpected_extension;
    }
  }
  subprotocol.clear();
  if (const auto n = count(h, "Sec-WebSocket-Protocol"); n != 0) {
    if (n > 1) return handshake_error::unexpected_subprotocol;
    const auto v = *first(h, "Sec-WebSocket-Protocol");
    if (v.empty() || v.find(',') != std::string_view::npos) return handshake_error::unexpected_subprotocol;
    bool was = false;
    for (const auto& p : o.subprotocols) was = was || p == v;
    if (!was) return handshake_error::unexpected_subprotocol;
    subprotocol.assign(v);
  }
  return std::nullopt;
}

}  // namespace gust::fuzz::ref
