#include "roles.hpp"

#include <span>
#include <utility>

namespace gust::test {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

std::string peer_frame(bool server_side, std::uint8_t b0, std::string_view payload,
                       std::optional<std::uint64_t> length) {
  return frame(b0, payload, server_side, 0x37fa213d, length);
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

client_options default_client_options() {
  client_options o;
  o.host = "server.example.com";
  return o;
}

std::optional<event> first_event(connection& c, std::string wire, virtual_clock& clk,
                                 std::string& keep) {
  keep = std::move(wire);
  c.receive(std::as_writable_bytes(std::span(keep.data(), keep.size())), clk.now);
  return c.next_event(clk.now);
}

}  // namespace gust::test
