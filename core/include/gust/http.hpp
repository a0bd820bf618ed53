// gust/http.hpp: the HTTP/1.1 messages of the opening handshake.
//
// These own their strings: a handshake happens once per connection, and
// owning makes the request safe to keep after the event that carried it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gust::http {

struct field {
  std::string name;
  std::string value;
};

/// Header fields in the order received. Look-ups are case-insensitive on the
/// name; repeated fields are kept (get_all / get_combined).
class headers {
 public:
  void add(std::string_view name, std::string_view value);
  /// The first field with this name.
  std::optional<std::string_view> get(std::string_view name) const;
  /// Every value of this name, joined with ", " (RFC 9110 5.3).
  std::optional<std::string> get_combined(std::string_view name) const;
  std::vector<std::string_view> get_all(std::string_view name) const;
  std::size_t count(std::string_view name) const;
  bool contains(std::string_view name) const { return count(name) != 0; }
  /// True when a comma-separated token list in any field of this name holds
  /// `token` (case-insensitive): `Connection: keep-alive, Upgrade`.
  bool has_token(std::string_view name, std::string_view token) const;

  auto begin() const { return fields_.begin(); }
  auto end() const { return fields_.end(); }
  std::size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  /// Releases spare capacity (a request kept for a connection's lifetime).
  void shrink_to_fit() { fields_.shrink_to_fit(); }

 private:
  std::vector<field> fields_;
};

struct request {
  std::string method;
  std::string target;  ///< origin-form: "/path?query"
  http::headers headers;

  std::string_view path() const;   ///< target up to '?'
  std::string_view query() const;  ///< after '?', empty if none
};

struct response {
  int status = 0;
  std::string reason;
  http::headers headers;
  std::string body;
};

/// Case-insensitive ASCII comparison.
bool iequals(std::string_view a, std::string_view b) noexcept;

}  // namespace gust::http
