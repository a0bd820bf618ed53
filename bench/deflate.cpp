// permessage-deflate through the engine: a server compresses a message
// (send_text), a client inflates it (next_event). Bytes/s count the
// uncompressed message, next to memcpy of the same buffer. The allocs
// counter counts the engine's operator new only: zlib's own allocations go
// through malloc and are not counted (see common.hpp).
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "common.hpp"

namespace {

using gust::bench::bytes;
using gust::bench::drain_output;
using gust::bench::verify;

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

// A server and a client that negotiated permessage-deflate.
struct pair : gust::bench::pair {
  explicit pair(bool no_context) : gust::bench::pair(deflate_settings(no_context)) {
    if (!client.compression_enabled()) gust::bench::fail_setup("permessage-deflate not negotiated");
  }
};

void BM_deflate_compress(benchmark::State& state) {
  pair p(state.range(1) != 0);
  const std::string msg = gust::bench::ascii_text(static_cast<std::size_t>(state.range(0)));
  // Verify before timing: the client inflates the server's frames back to
  // the message.
  if (!verify(state, !p.server.send_text(msg), "send failed")) return;
  bytes wire0 = drain_output(p.server);
  p.client.receive(wire0, p.now);
  auto ev = p.client.next_event(p.now);
  const auto* m = ev ? std::get_if<gust::message_event>(&*ev) : nullptr;
  if (!verify(state, m && m->text() == msg, "the compressed message does not inflate to the message"))
    return;
  std::size_t wire = 0, failures = 0;
  {
    gust::bench::count_allocations counting(state);
    for (auto _ : state) {
      if (p.server.send_text(msg)) ++failures;
      for (auto b : p.server.pending_output()) wire += b.size;
      if (p.server.consume_output(p.server.buffered_amount())) ++failures;
    }
  }
  if (!verify(state, failures == 0, "a timed send failed")) return;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * msg.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["ratio"] = static_cast<double>(msg.size() * state.iterations()) / static_cast<double>(wire);
}

void BM_deflate_decompress(benchmark::State& state) {
  pair p(state.range(1) != 0);
  const std::string msg = gust::bench::ascii_text(static_cast<std::size_t>(state.range(0)));
  // Verify before timing: the client receives exactly the message.
  (void)p.server.send_text(msg);
  bytes copy = drain_output(p.server);
  p.client.receive(copy, p.now);
  auto ev = p.client.next_event(p.now);
  const auto* m = ev ? std::get_if<gust::message_event>(&*ev) : nullptr;
  if (!verify(state, m && m->text() == msg, "the inflated message differs")) return;
  // With context takeover each message depends on the last: pre-compress a
  // run of them in order and inflate the same run.
  std::vector<bytes> frames;
  auto refill = [&] {
    frames.clear();
    for (int k = 0; k < 64; ++k) {
      (void)p.server.send_text(msg);
      frames.push_back(drain_output(p.server));
    }
  };
  refill();
  std::size_t i = 0, delivered = 0;
  bytes buf;
  buf.reserve(2 * msg.size() + 1024);  // above any frame: the copy below never allocates
  {
    gust::bench::count_allocations counting(state);
    for (auto _ : state) {
      if (i == frames.size()) {
        state.PauseTiming();
        gust::bench::set_counting(false);
        refill();
        gust::bench::set_counting(true);
        i = 0;
        state.ResumeTiming();
      }
      buf = frames[i++];
      p.client.receive(buf, p.now);
      auto e = p.client.next_event(p.now);
      if (e)
        if (const auto* mm = std::get_if<gust::message_event>(&*e)) delivered += mm->data.size();
      benchmark::DoNotOptimize(e);
    }
  }
  if (!verify(state, delivered == state.iterations() * msg.size(), "the timed loop delivered the wrong bytes"))
    return;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * msg.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_memcpy(benchmark::State& state) {
  const std::string msg = gust::bench::ascii_text(static_cast<std::size_t>(state.range(0)));
  std::vector<char> dst(msg.size());
  {
    gust::bench::count_allocations counting(state);
    for (auto _ : state) {
      std::memcpy(dst.data(), msg.data(), msg.size());
      benchmark::ClobberMemory();
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * msg.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

}  // namespace

// Args: message size, no context takeover (0/1).
BENCHMARK(BM_deflate_compress)->Args({1024, 0})->Args({65536, 0})->Args({1 << 20, 0})->Args({1024, 1})->Args({65536, 1});
BENCHMARK(BM_deflate_decompress)->Args({1024, 0})->Args({65536, 0})->Args({1 << 20, 0})->Args({1024, 1})->Args({65536, 1});
BENCHMARK(BM_memcpy)->Arg(1024)->Arg(65536)->Arg(1 << 20);
