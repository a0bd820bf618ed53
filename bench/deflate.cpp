// permessage-deflate through the engine: a server compresses a message
// (send_text), a client inflates it (next_event). Bytes/s count the
// uncompressed message, next to memcpy of the same buffer.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "gust/connection.hpp"

namespace {

std::string text_payload(std::size_t n) {
  // Repetitive but not trivial: the ratio of chat-like JSON traffic.
  static const char* words[] = {"{\"user\":", "\"alice\"", ",\"text\":", "\"hello world\"", ",\"ts\":", "1700000000", "}"};
  std::string s;
  for (std::size_t i = 0; s.size() < n; ++i) s += words[i % 7] + std::to_string(i % 97);
  s.resize(n);
  return s;
}

gust::settings deflate_settings(bool no_context) {
  gust::settings s;
  s.deflate.enabled = true;
  s.deflate.min_size = 0;
  s.deflate.server_no_context_takeover = no_context;
  s.deflate.client_no_context_takeover = no_context;
  s.limits.max_message_size = 64 << 20;
  s.max_send_frame_size = 0;
  s.timeouts.ping_interval = {};
  return s;
}

std::string drain_output(gust::connection& c) {
  std::string out;
  for (auto b : c.pending_output()) out.append(static_cast<const char*>(b.data), b.size);
  (void)c.consume_output(out.size());
  return out;
}

void feed(gust::connection& c, std::string& bytes, gust::time_point now) {
  c.receive(std::as_writable_bytes(std::span(bytes.data(), bytes.size())), now);
}

// A server and a client that negotiated permessage-deflate.
struct pair {
  gust::time_point now = gust::clock::now();
  gust::client_connection client;
  gust::server_connection server;
  explicit pair(bool no_context)
      : client(now, gust::client_options{"localhost"}, deflate_settings(no_context)),
        server(now, deflate_settings(no_context)) {
    std::string req = drain_output(client);
    feed(server, req, now);
    while (auto ev = server.next_event(now))
      if (std::holds_alternative<gust::request_event>(*ev)) (void)server.accept(now);
    std::string resp = drain_output(server);
    feed(client, resp, now);
    while (client.next_event(now)) {}
    if (!client.compression_enabled()) std::abort();
  }
};

void BM_deflate_compress(benchmark::State& state) {
  pair p(state.range(1) != 0);
  const std::string msg = text_payload(static_cast<std::size_t>(state.range(0)));
  std::size_t wire = 0;
  for (auto _ : state) {
    if (p.server.send_text(msg)) state.SkipWithError("send failed");
    for (auto b : p.server.pending_output()) wire += b.size;
    (void)p.server.consume_output(p.server.buffered_amount());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * msg.size()));
  state.counters["ratio"] = static_cast<double>(msg.size() * state.iterations()) / static_cast<double>(wire);
}

void BM_deflate_decompress(benchmark::State& state) {
  pair p(state.range(1) != 0);
  const std::string msg = text_payload(static_cast<std::size_t>(state.range(0)));
  // Verify before timing: the client receives exactly the message.
  (void)p.server.send_text(msg);
  std::string wire = drain_output(p.server);
  std::string copy = wire;
  feed(p.client, copy, p.now);
  auto ev = p.client.next_event(p.now);
  if (!ev || std::get<gust::message_event>(*ev).text() != msg) std::abort();
  // With context takeover each message depends on the last: pre-compress a
  // run of them in order and inflate the same run.
  std::vector<std::string> frames;
  for (int i = 0; i < 64; ++i) {
    (void)p.server.send_text(msg);
    frames.push_back(drain_output(p.server));
  }
  std::size_t i = 0;
  std::string buf;
  for (auto _ : state) {
    if (i == frames.size()) {
      state.PauseTiming();
      frames.clear();
      for (int k = 0; k < 64; ++k) {
        (void)p.server.send_text(msg);
        frames.push_back(drain_output(p.server));
      }
      i = 0;
      state.ResumeTiming();
    }
    buf = frames[i++];
    feed(p.client, buf, p.now);
    auto e = p.client.next_event(p.now);
    benchmark::DoNotOptimize(e);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * msg.size()));
}

void BM_memcpy(benchmark::State& state) {
  const std::string msg = text_payload(static_cast<std::size_t>(state.range(0)));
  std::vector<char> dst(msg.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), msg.data(), msg.size());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * msg.size()));
}

}  // namespace

// Args: message size, no context takeover (0/1).
BENCHMARK(BM_deflate_compress)->Args({1024, 0})->Args({65536, 0})->Args({1 << 20, 0})->Args({1024, 1})->Args({65536, 1});
BENCHMARK(BM_deflate_decompress)->Args({1024, 0})->Args({65536, 0})->Args({1 << 20, 0})->Args({1024, 1})->Args({65536, 1});
BENCHMARK(BM_memcpy)->Arg(1024)->Arg(65536)->Arg(1 << 20);
BENCHMARK_MAIN();
