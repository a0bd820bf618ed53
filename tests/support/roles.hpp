// Test support shared by the engine suites that run a case in both roles
// (limits, timers, close, engine handshake, API): the role runner, frames
// as the peer sends them, and small string helpers.
#pragma once

#include <doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gust/connection.hpp"
#include "wire.hpp"

namespace doctest {
/// Event lists print as {"a", "b"} in failed checks.
template <>
struct StringMaker<std::vector<std::string>> {
  static String convert(const std::vector<std::string>& v) {
    std::string s = "{";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", \"" : "\"") + v[i] + "\"";
    s += "}";
    return String(s.c_str());
  }
};
}  // namespace doctest

namespace gust::test {

/// Events as describe() writes them.
using strings = std::vector<std::string>;

bool starts_with(std::string_view s, std::string_view p);
bool ends_with(std::string_view s, std::string_view p);

/// A frame as the peer of `server_side` sends it: masked towards a server.
/// `length` writes another length than the payload's (lying peers).
std::string peer_frame(bool server_side, std::uint8_t b0, std::string_view payload,
                       std::optional<std::uint64_t> length = std::nullopt);

/// `n` bytes of "abc...zabc...".
std::string pattern(std::size_t n);

/// Options of a client connecting to "server.example.com".
client_options default_client_options();

/// Receives `wire` into `keep` (which must outlive the events) and returns
/// the first event.
std::optional<event> first_event(connection& c, std::string wire, virtual_clock& clk,
                                 std::string& keep);

/// Runs `f(connection, clock, server_side)` once per role, on an open
/// connection with settings `s`.
template <class F>
void both_roles(const gust::settings& s, F&& f) {
  {
    INFO("role: server");
    virtual_clock clk;
    auto c = open_server(clk, s);
    f(static_cast<connection&>(c), clk, true);
  }
  {
    INFO("role: client");
    virtual_clock clk;
    auto c = open_client(clk, s);
    f(static_cast<connection&>(c), clk, false);
  }
}

}  // namespace gust::test
