#include "wire.hpp"

#include <doctest.h>

#include <cstring>
#include <sstream>

namespace gust::test {

std::string frame(std::uint8_t first_byte, std::string_view payload, bool mask, std::uint32_t key,
                  std::optional<std::uint64_t> length_override) {
  std::string out;
  out.push_back(static_cast<char>(first_byte));
  const std::uint64_t len = length_override.value_or(payload.size());
  const char mbit = mask ? static_cast<char>(0x80) : 0;
  if (len < 126) {
    out.push_back(static_cast<char>(mbit | static_cast<char>(len)));
  } else if (len <= 0xFFFF) {
    out.push_back(static_cast<char>(mbit | 126));
    out.push_back(static_cast<char>(len >> 8));
    out.push_back(static_cast<char>(len & 0xFF));
  } else {
    out.push_back(static_cast<char>(mbit | 127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
  }
  char k[4] = {static_cast<char>(key >> 24), static_cast<char>(key >> 16),
               static_cast<char>(key >> 8), static_cast<char>(key)};
  if (mask) out.append(k, 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    out.push_back(mask ? static_cast<char>(payload[i] ^ k[i % 4]) : payload[i]);
  return out;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xFF));
  p.append(reason);
  return p;
}

std::string hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

namespace {
std::string_view as_sv(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
}  // namespace

std::string describe(const event& ev) {
  struct visitor {
    std::string operator()(const request_event& e) { return "request:" + e.request->target; }
    std::string operator()(const open_event& e) { return "open:" + std::string(e.subprotocol); }
    std::string operator()(const message_event& e) {
      std::string s = e.type == message_type::text ? "text:" + std::string(e.text())
                                                   : "binary:" + hex(as_sv(e.data));
      return e.last ? s : s + ":more";
    }
    std::string operator()(const ping_event& e) { return "ping:" + hex(as_sv(e.payload)); }
    std::string operator()(const pong_event& e) { return "pong:" + hex(as_sv(e.payload)); }
    std::string operator()(const close_event& e) {
      std::ostringstream o;
      o << "close:" << e.code << ":" << e.reason << ":" << (e.clean ? "clean" : "unclean") << ":"
        << (e.by_peer ? "peer" : "local") << ":" << to_string(e.cause);
      return o.str();
    }
    std::string operator()(const handshake_failure_event& e) {
      return "handshake_failure:" + std::string(to_string(e.failure->error));
    }
  };
  return std::visit(visitor{}, ev);
}

std::vector<std::string> drain(connection& c, virtual_clock& clk, bool accept) {
  std::vector<std::string> out;
  while (auto ev = c.next_event(clk.now)) {
    out.push_back(describe(*ev));
    if (accept && std::holds_alternative<request_event>(*ev)) {
      auto& s = static_cast<server_connection&>(c);
      REQUIRE(!s.accept(clk.now));
    }
  }
  return out;
}

static void hand_over(connection& c, std::string_view piece, virtual_clock& clk, feed_mode mode,
                      std::vector<std::string>& events, bool accept, std::string& storage) {
  if (mode == feed_mode::receive) {
    storage.assign(piece);  // receive() unmasks in place: give it writable bytes
    c.receive(std::as_writable_bytes(std::span(storage.data(), storage.size())), clk.now);
  } else {
    auto buf = c.prepare(piece.size());
    REQUIRE(buf.size() >= piece.size());
    std::memcpy(buf.data(), piece.data(), piece.size());
    c.commit(piece.size(), clk.now);
  }
  for (auto& e : drain(c, clk, accept)) events.push_back(std::move(e));
  // The borrowed bytes may be reused now: scribble over them to catch views
  // that outlive their contract.
  std::memset(storage.data(), 0xEE, storage.size());
}

std::vector<std::string> feed(connection& c, std::string_view input, virtual_clock& clk,
                              std::size_t chunk, feed_mode mode, bool accept) {
  std::vector<std::string> events;
  std::string storage;
  if (chunk == 0) chunk = input.size() ? input.size() : 1;
  for (std::size_t pos = 0; pos < input.size(); pos += chunk)
    hand_over(c, input.substr(pos, chunk), clk, mode, events, accept, storage);
  return events;
}

std::vector<std::string> feed_split(connection& c, std::string_view input, virtual_clock& clk,
                                    const std::vector<std::size_t>& cuts, bool accept) {
  std::vector<std::string> events;
  std::string storage;
  std::size_t pos = 0;
  for (std::size_t cut : cuts) {
    if (cut <= pos || cut >= input.size()) continue;
    hand_over(c, input.substr(pos, cut - pos), clk, feed_mode::receive, events, accept, storage);
    pos = cut;
  }
  hand_over(c, input.substr(pos), clk, feed_mode::receive, events, accept, storage);
  return events;
}

std::string take_output(connection& c) {
  std::string out;
  for (;;) {
    auto bufs = c.pending_output();
    if (bufs.empty()) break;
    std::size_t n = 0;
    for (auto& b : bufs) {
      out.append(static_cast<const char*>(b.data), b.size);
      n += b.size;
    }
    REQUIRE(!c.consume_output(n));
  }
  return out;
}

std::vector<wire_frame> parse_frames(std::string_view b) {
  std::vector<wire_frame> frames;
  std::size_t pos = 0;
  while (pos < b.size()) {
    REQUIRE(b.size() - pos >= 2);
    auto u = [&](std::size_t i) { return static_cast<unsigned char>(b[pos + i]); };
    wire_frame f;
    f.fin = u(0) & 0x80;
    f.rsv = (u(0) >> 4) & 7;
    f.opcode = u(0) & 0x0F;
    f.masked = u(1) & 0x80;
    std::uint64_t len = u(1) & 0x7F;
    std::size_t h = 2;
    if (len == 126) {
      REQUIRE(b.size() - pos >= 4);
      len = (std::uint64_t{u(2)} << 8) | u(3);
      CHECK(len >= 126);
      h = 4;
    } else if (len == 127) {
      REQUIRE(b.size() - pos >= 10);
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | u(2 + static_cast<std::size_t>(i));
      CHECK(len > 0xFFFF);
      h = 10;
    }
    char key[4] = {};
    if (f.masked) {
      REQUIRE(b.size() - pos >= h + 4);
      std::memcpy(key, b.data() + pos + h, 4);
      h += 4;
    }
    REQUIRE(b.size() - pos - h >= len);
    f.payload.assign(b.substr(pos + h, len));
    if (f.masked)
      for (std::size_t i = 0; i < f.payload.size(); ++i) f.payload[i] ^= key[i % 4];
    frames.push_back(std::move(f));
    pos += h + len;
  }
  return frames;
}

std::string upgrade_request(std::string_view extra_headers, std::string_view key) {
  std::string r =
      "GET /chat?room=1 HTTP/1.1\r\n"
      "Host: server.example.com\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Key: ";
  r += key;
  r += "\r\nSec-WebSocket-Version: 13\r\n";
  r += extra_headers;
  r += "\r\n";
  return r;
}

random_source counting_random(std::uint8_t start) {
  return [n = start](std::span<std::byte> out) mutable {
    for (auto& b : out) b = static_cast<std::byte>(n++);
  };
}

server_connection open_server(virtual_clock& clk, gust::settings s, server_options opts) {
  server_connection srv(clk.now, std::move(s), std::move(opts));
  auto events = feed(srv, upgrade_request(), clk);
  REQUIRE(events.size() == 2);
  REQUIRE(events[0] == "request:/chat?room=1");
  REQUIRE(events[1] == "open:");
  std::string out = take_output(srv);
  REQUIRE(out.rfind("HTTP/1.1 101 ", 0) == 0);
  REQUIRE(srv.state() == state::open);
  return srv;
}

client_connection open_client(virtual_clock& clk, gust::settings s, client_options opts) {
  if (!s.random) s.random = counting_random();
  if (opts.host.empty()) opts.host = "server.example.com";
  client_connection cli(clk.now, opts, std::move(s));
  std::string request = take_output(cli);
  // Answer it with a real server engine, so the 101 is what we would send.
  server_connection srv(clk.now);
  auto events = feed(srv, request, clk);
  REQUIRE(events.size() == 2);
  std::string response = take_output(srv);
  auto client_events = feed(cli, response, clk);
  REQUIRE(client_events.size() == 1);
  REQUIRE(client_events[0].rfind("open:", 0) == 0);
  REQUIRE(cli.state() == state::open);
  return cli;
}

engine_pair::engine_pair(gust::settings cs, gust::settings ss, client_options co,
                         server_options so)
    : client(clk.now,
             [&] {
               if (co.host.empty()) co.host = "localhost";
               return co;
             }(),
             [&] {
               if (!cs.random) cs.random = counting_random();
               return cs;
             }()),
      server(clk.now, std::move(ss), std::move(so)) {}

void engine_pair::pump(std::size_t max_write) {
  std::string storage;
  auto move = [&](connection& from, connection& to, std::vector<std::string>& to_events) {
    bool moved = false;
    for (;;) {
      auto bufs = from.pending_output();
      if (bufs.empty()) break;
      std::string chunk;
      for (auto& b : bufs) chunk.append(static_cast<const char*>(b.data), b.size);
      if (max_write && chunk.size() > max_write) chunk.resize(max_write);
      REQUIRE(!from.consume_output(chunk.size()));
      storage = std::move(chunk);
      to.receive(std::as_writable_bytes(std::span(storage.data(), storage.size())), clk.now);
      for (auto& e : drain(to, clk, true)) to_events.push_back(std::move(e));
      moved = true;
    }
    return moved;
  };
  for (int rounds = 0; rounds < 1000000; ++rounds) {
    bool a = move(client, server, server_events);
    bool b = move(server, client, client_events);
    if (!a && !b) break;
  }
  for (auto& e : drain(client, clk, true)) client_events.push_back(std::move(e));
  for (auto& e : drain(server, clk, true)) server_events.push_back(std::move(e));
}

void engine_pair::close_transports() {
  if (server.transport_should_close() && server.buffered_amount() == 0) {
    client.receive_eof(clk.now);
    server.receive_eof(clk.now);
  } else if (client.transport_should_close() && client.buffered_amount() == 0) {
    server.receive_eof(clk.now);
    client.receive_eof(clk.now);
  }
  for (auto& e : drain(client, clk, true)) client_events.push_back(std::move(e));
  for (auto& e : drain(server, clk, true)) server_events.push_back(std::move(e));
}

std::string repetitive(std::size_t n) {
  std::string s(n, '\0');
  const char* words = "the quick brown fox jumps over the lazy dog ";
  for (std::size_t i = 0; i < n; ++i) s[i] = words[i % 44];
  return s;
}

}  // namespace gust::test
