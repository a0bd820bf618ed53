// RFC 9110 syntax pieces shared by the HTTP/1.1 head parser (http1.cpp),
// the header container (http.cpp) and both halves of the opening handshake
// (handshake_server.cpp, handshake_client.cpp). Internal, not installed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace gust::detail {

// RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
// "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
constexpr bool is_tchar(unsigned char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// RFC 9110 5.6.2: token = 1*tchar
constexpr bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// RFC 9110 5.6.3: OWS = *( SP / HTAB )
constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// RFC 5234 B.1: VCHAR = %x21-7E, the visible US-ASCII characters.
constexpr bool is_vchar(unsigned char c) noexcept { return c > 0x20 && c < 0x7f; }

// RFC 9110 5.5: field-vchar = VCHAR / obs-text, plus SP and HTAB inside the
// value. Every other control byte (NUL, CR and LF above all) is refused:
// RFC 9110 5.5 allows rejecting them, a value that means different things
// to different parsers is how requests get smuggled, and a CR or LF written
// into a message would inject lines into it.
constexpr bool is_field_value_char(unsigned char c) noexcept {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

constexpr bool is_field_value(std::string_view v) noexcept {
  for (char c : v) {
    if (!is_field_value_char(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Calls f(element) for every element of an RFC 9110 5.6.1 comma-separated
// list, OWS trimmed, empty elements included. A comma inside a
// quoted-string (RFC 9110 5.6.4) does not split. False when f returns false
// or a quoted-string is left open (then its element may not reach f).
template <class F>
constexpr bool split_list(std::string_view list, F&& f) {
  std::size_t start = 0;
  bool quoted = false;
  for (std::size_t i = 0; i <= list.size(); ++i) {
    if (i < list.size()) {
      const char c = list[i];
      if (quoted) {
        if (c == '\\') {
          ++i;  // quoted-pair: the next byte is literal
        } else if (c == '"') {
          quoted = false;
        }
        continue;
      }
      if (c == '"') {
        quoted = true;
        continue;
      }
      if (c != ',') continue;
    }
    if (!f(trim_ows(list.substr(start, i - start)))) return false;
    start = i + 1;
  }
  return !quoted;
}

// The same, for the non-empty elements only: RFC 9110 5.6.1.2 has a
// recipient ignore empty list elements.
template <class F>
constexpr bool for_each_element(std::string_view list, F&& f) {
  return split_list(list, [&](std::string_view element) {
    return element.empty() || f(element);
  });
}

// Writes one field line (RFC 9112 5.1) of a message this code sends. A name
// that is not a token or a value with CR, LF or another control byte would
// let application data inject lines into the message, so such a field is
// dropped.
inline void append_field(std::string& out, std::string_view name,
                         std::string_view value) {
  if (!is_token(name) || !is_field_value(value)) return;
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

}  // namespace gust::detail
