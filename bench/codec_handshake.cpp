// The opening handshake (RFC 6455 4), one connection per iteration, so the
// figures include constructing the connection and its allocations.
//
//   handshake/server            construct a server_connection, receive a
//                               typical Chrome request, request_event,
//                               accept() (which writes the 101), open_event,
//                               take the 101 from pending_output()
//   handshake/client/construct  construct a client_connection (it writes its
//                               request) and take the request
//   handshake/client            the same, then receive a typical 101 and
//                               get open_event: the difference between the
//                               two is the client's parsing and checking of
//                               the response
// The client's random source is fixed (RFC 6455's sample nonce) so that the
// prepared 101 carries the matching Sec-WebSocket-Accept: the client figure
// leaves out the getrandom call a real client makes for its key.
//
// Bytes/s count the request and the response bytes of one handshake.
#include <algorithm>
#include <string>
#include <string_view>
#include <variant>

#include "common.hpp"

namespace gust::bench {
namespace {

// Chrome 124 on Linux, as it opens wss://example.com/chat (the key is the
// RFC 6455 sample, so the accept value below is the RFC's).
constexpr std::string_view chrome_request =
    "GET /chat HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: https://example.com\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n";

constexpr std::string_view sample_accept = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";

// A 101 as servers commonly send it.
constexpr std::string_view typical_101 =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "\r\n";

constexpr std::string_view sample_nonce = "the sample nonce";

struct server_result {
  bool request = false, open = false;
  std::size_t response_bytes = 0;
  bytes response;
};

// One whole server handshake; `keep` copies the response for checking.
template <bool keep>
server_result server_handshake(bytes& input, const time_point now) {
  server_result r;
  server_connection s(now, settings{});
  s.receive(input, now);
  while (auto ev = s.next_event(now)) {
    if (std::holds_alternative<request_event>(*ev)) {
      r.request = true;
      if (s.accept(now)) return r;
    } else if (std::holds_alternative<open_event>(*ev)) {
      r.open = true;
    }
  }
  for (const const_buffer& b : s.pending_output()) {
    if constexpr (keep) {
      const auto* p = static_cast<const std::byte*>(b.data);
      r.response.insert(r.response.end(), p, p + b.size);
    }
    benchmark::DoNotOptimize(b.data);
    r.response_bytes += b.size;
  }
  if (s.consume_output(r.response_bytes)) r.open = false;
  return r;
}

void run_server(benchmark::State& state) {
  const time_point now = clock::now();
  const bytes request(as_bytes(chrome_request).begin(), as_bytes(chrome_request).end());
  bytes input = request;
  {
    const server_result r = server_handshake<true>(input, now);
    const std::string_view resp = as_text(r.response);
    const bool ok = r.request && r.open && resp.starts_with("HTTP/1.1 101 ") &&
                    resp.find(sample_accept) != std::string_view::npos && resp.ends_with("\r\n\r\n") &&
                    input == request;
    if (!verify(state, ok, "the server did not answer the request with the right 101")) return;
  }
  std::size_t bad = 0, wire = 0;
  {
    count_allocations counting(state);
    for (auto _ : state) {
      const server_result r = server_handshake<false>(input, now);
      if (!r.open) ++bad;
      wire += request.size() + r.response_bytes;
    }
  }
  const auto iters = static_cast<std::int64_t>(state.iterations());
  if (!verify(state, bad == 0, "a timed handshake failed")) return;
  state.SetBytesProcessed(static_cast<std::int64_t>(wire));
  state.SetItemsProcessed(iters);
}

settings fixed_key_settings() {
  settings s;
  s.random = [](std::span<std::byte> out) {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::byte>(sample_nonce[i % 16]);
  };
  return s;
}

void run_client(benchmark::State& state, bool parse_response) {
  const time_point now = clock::now();
  const settings cfg = fixed_key_settings();
  client_options opts;
  opts.host = "example.com";
  opts.target = "/chat";
  opts.origin = "https://example.com";
  const bytes response(as_bytes(typical_101).begin(), as_bytes(typical_101).end());
  bytes input = response;
  std::size_t request_size = 0;
  {
    client_connection c(now, opts, cfg);
    const bytes req = drain_output(c);
    request_size = req.size();
    c.receive(input, now);
    bool open = false;
    while (auto ev = c.next_event(now)) open = open || std::holds_alternative<open_event>(*ev);
    const bool ok = as_text(req).starts_with("GET /chat HTTP/1.1\r\n") &&
                    as_text(req).find("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n") != std::string_view::npos &&
                    open && c.state() == gust::state::open && input == response;
    if (!verify(state, ok, "the client did not open on the 101")) return;
  }
  std::size_t bad = 0;
  {
    count_allocations counting(state);
    for (auto _ : state) {
      client_connection c(now, opts, cfg);
      std::size_t n = 0;
      for (const const_buffer& b : c.pending_output()) {
        benchmark::DoNotOptimize(b.data);
        n += b.size;
      }
      if (c.consume_output(n) || n != request_size) ++bad;
      if (parse_response) {
        c.receive(input, now);
        bool open = false;
        while (auto ev = c.next_event(now)) open = open || std::holds_alternative<open_event>(*ev);
        if (!open) ++bad;
      }
    }
  }
  const auto iters = static_cast<std::int64_t>(state.iterations());
  if (!verify(state, bad == 0, "a timed handshake failed")) return;
  const std::size_t per = request_size + (parse_response ? response.size() : 0);
  state.SetBytesProcessed(iters * static_cast<std::int64_t>(per));
  state.SetItemsProcessed(iters);
}

int register_all() {
  benchmark::RegisterBenchmark("handshake/server", run_server);
  benchmark::RegisterBenchmark("handshake/client/construct", [](benchmark::State& s) { run_client(s, false); });
  benchmark::RegisterBenchmark("handshake/client", [](benchmark::State& s) { run_client(s, true); });
  return 0;
}

const int registered = register_all();

}  // namespace
}  // namespace gust::bench
