// HTTP message types of the opening handshake, and the names of handshake
// errors.
#include "gust/http.hpp"

#include "gust/handshake.hpp"
#include "http_syntax.hpp"

namespace gust::http {

namespace {

constexpr char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

void headers::add(std::string_view name, std::string_view value) {
  fields_.push_back(field{std::string(name), std::string(value)});
}

std::optional<std::string_view> headers::get(std::string_view name) const {
  for (const auto& f : fields_) {
    if (iequals(f.name, name)) return std::string_view(f.value);
  }
  return std::nullopt;
}

std::optional<std::string> headers::get_combined(std::string_view name) const {
  std::optional<std::string> out;
  for (const auto& f : fields_) {
    if (!iequals(f.name, name)) continue;
    if (out) {
      out->append(", ");
      out->append(f.value);
    } else {
      out.emplace(f.value);
    }
  }
  return out;
}

std::vector<std::string_view> headers::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& f : fields_) {
    if (iequals(f.name, name)) out.emplace_back(f.value);
  }
  return out;
}

std::size_t headers::count(std::string_view name) const {
  std::size_t n = 0;
  for (const auto& f : fields_) {
    if (iequals(f.name, name)) ++n;
  }
  return n;
}

bool headers::has_token(std::string_view name, std::string_view token) const {
  // RFC 9110 5.3: repeated fields mean the same as one field whose value is
  // the comma-joined list, so every field of the name is searched. RFC 9110
  // 5.6.1: elements are separated by "," with optional whitespace, and
  // empty elements are ignored; a comma inside a quoted-string (5.6.4) does
  // not separate.
  bool found = false;
  for (const auto& f : fields_) {
    if (!iequals(f.name, name)) continue;
    detail::for_each_element(f.value, [&](std::string_view element) {
      found = iequals(element, token);
      return !found;
    });
    if (found) return true;
  }
  return false;
}

std::string_view request::path() const {
  const std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view request::query() const {
  const std::string_view t = target;
  const auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

}  // namespace gust::http

namespace gust {

std::string_view to_string(handshake_error e) noexcept {
  switch (e) {
    case handshake_error::malformed: return "malformed";
    case handshake_error::too_large: return "too_large";
    case handshake_error::bad_request: return "bad_request";
    case handshake_error::unsupported_version: return "unsupported_version";
    case handshake_error::forbidden_origin: return "forbidden_origin";
    case handshake_error::rejected: return "rejected";
    case handshake_error::unexpected_status: return "unexpected_status";
    case handshake_error::invalid_upgrade: return "invalid_upgrade";
    case handshake_error::invalid_accept: return "invalid_accept";
    case handshake_error::unexpected_subprotocol: return "unexpected_subprotocol";
    case handshake_error::unexpected_extension: return "unexpected_extension";
    case handshake_error::timeout: return "timeout";
    case handshake_error::eof: return "eof";
  }
  return "unknown";
}

}  // namespace gust
