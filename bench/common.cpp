// Helpers of common.hpp and the main() of every benchmark binary: Google
// Benchmark's, plus the masking implementation in the context block and a
// non-zero exit status when any benchmark failed its verification.
#include "common.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <variant>

#include "mask.hpp"

namespace gust::bench {

namespace {
int verify_failures = 0;
}

// ---- allocation counting -------------------------------------------------

count_allocations::count_allocations(benchmark::State& state) noexcept : state_(state) {
  start_ = alloc_snapshot();
  set_counting(true);
}

count_allocations::~count_allocations() {
  set_counting(false);
  const alloc_stats end = alloc_snapshot();
  using C = benchmark::Counter;
  state_.counters["allocs"] = C(static_cast<double>(end.allocs - start_.allocs), C::kAvgIterations);
  state_.counters["alloc_bytes"] = C(static_cast<double>(end.bytes - start_.bytes), C::kAvgIterations);
}

// ---- verification --------------------------------------------------------

bool verify(benchmark::State& state, bool ok, const char* what) {
  if (ok) return true;
  ++verify_failures;
  std::fprintf(stderr, "VERIFY FAILED: %s\n", what);
  state.SkipWithError(what);
  return false;
}

void fail_setup(const char* what) {
  std::fprintf(stderr, "SETUP FAILED: %s\n", what);
  std::abort();
}

// ---- payloads ------------------------------------------------------------

std::string ascii_text(std::size_t n) {
  // Repetitive but not trivial: the shape of chat-like JSON traffic.
  static const char* words[] = {"{\"user\":", "\"alice\"", ",\"text\":", "\"hello world\"",
                                ",\"ts\":",   "1700000000", "}"};
  std::string s;
  for (std::size_t i = 0; s.size() < n; ++i) s += words[i % 7] + std::to_string(i % 97);
  s.resize(n);
  return s;
}

std::string mixed_text(std::size_t n) {
  static const char* words[] = {"{\"msg\":\"", "Привет, мир", "\",\"jp\":\"", "日本語のテキスト",
                                "\",\"zh\":\"", "漢字和标点，", "\",\"e\":\"", "😀🎉👍",
                                "\",\"de\":\"", "Grüße aus Köln", "\"} "};
  std::string s;
  for (std::size_t i = 0; s.size() < n + 4; ++i) s += words[i % 11];
  // Cut on a code point boundary (not before a continuation byte), pad.
  std::size_t cut = n;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  s.resize(cut);
  s.append(n - cut, ' ');
  return s;
}

bytes random_bytes(std::size_t n, std::uint64_t seed) {
  bytes b(n);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = 0; i < n; ++i) {
    // splitmix64
    x += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    b[i] = static_cast<std::byte>(z ^ (z >> 31));
  }
  return b;
}

const char* to_string(content c) noexcept {
  switch (c) {
    case content::binary: return "binary";
    case content::ascii: return "text";
    case content::mixed: return "text-utf8";
  }
  return "?";
}

bytes payload(content c, std::size_t n, std::uint64_t seed) {
  if (c == content::binary) return random_bytes(n, seed);
  // Text messages of a batch differ by where they start in the text.
  const std::string t = c == content::ascii ? ascii_text(n + seed % 64) : mixed_text(n);
  const std::size_t skip = c == content::ascii ? seed % 64 : 0;
  const auto b = as_bytes(t).subspan(skip, n);
  return {b.begin(), b.end()};
}

// ---- frames --------------------------------------------------------------

void append_frame(bytes& out, bool fin, std::uint8_t opcode, std::span<const std::byte> payload,
                  const std::uint8_t* key) {
  auto put = [&](unsigned v) { out.push_back(static_cast<std::byte>(v)); };
  put((fin ? 0x80u : 0u) | opcode);
  const std::uint64_t n = payload.size();
  const unsigned mask_bit = key ? 0x80u : 0u;
  if (n < 126) {
    put(mask_bit | static_cast<unsigned>(n));
  } else if (n <= 0xFFFF) {
    put(mask_bit | 126u);
    put(static_cast<unsigned>(n >> 8) & 0xFF);
    put(static_cast<unsigned>(n) & 0xFF);
  } else {
    put(mask_bit | 127u);
    for (int shift = 56; shift >= 0; shift -= 8) put(static_cast<unsigned>(n >> shift) & 0xFF);
  }
  if (key)
    for (int i = 0; i < 4; ++i) put(key[i]);
  const std::size_t start = out.size();
  out.insert(out.end(), payload.begin(), payload.end());
  if (key)
    for (std::size_t i = 0; i < payload.size(); ++i) out[start + i] ^= static_cast<std::byte>(key[i % 4]);
}

void append_message(bytes& out, std::uint8_t opcode, std::span<const std::byte> payload,
                    std::size_t fragment, const std::uint8_t* key) {
  if (fragment == 0 || payload.size() <= fragment) {
    append_frame(out, true, opcode, payload, key);
    return;
  }
  for (std::size_t pos = 0; pos < payload.size(); pos += fragment) {
    const std::size_t n = std::min(fragment, payload.size() - pos);
    append_frame(out, pos + n == payload.size(), pos == 0 ? opcode : 0, payload.subspan(pos, n), key);
  }
}

bool decode_messages(std::span<const std::byte> wire, std::vector<decoded_message>& out) {
  std::size_t i = 0;
  decoded_message cur;
  bool in_message = false;
  auto at = [&](std::size_t k) { return std::to_integer<unsigned>(wire[k]); };
  while (i < wire.size()) {
    if (wire.size() - i < 2) return false;
    const bool fin = (at(i) & 0x80) != 0;
    const unsigned opcode = at(i) & 0x0F;
    const bool masked = (at(i + 1) & 0x80) != 0;
    std::uint64_t len = at(i + 1) & 0x7F;
    std::size_t h = 2;
    if (len == 126) {
      if (wire.size() - i < 4) return false;
      len = (at(i + 2) << 8) | at(i + 3);
      h = 4;
    } else if (len == 127) {
      if (wire.size() - i < 10) return false;
      len = 0;
      for (int k = 0; k < 8; ++k) len = (len << 8) | at(i + 2 + static_cast<std::size_t>(k));
      h = 10;
    }
    std::uint8_t key[4] = {0, 0, 0, 0};
    if (masked) {
      if (wire.size() - i < h + 4) return false;
      for (int k = 0; k < 4; ++k) key[k] = static_cast<std::uint8_t>(at(i + h + static_cast<std::size_t>(k)));
      h += 4;
    }
    if (wire.size() - i - h < len) return false;
    const std::byte* p = wire.data() + i + h;
    i += h + static_cast<std::size_t>(len);
    if (opcode >= 0x8) continue;  // control
    if (opcode != 0) {
      if (in_message) return false;
      cur = decoded_message{};
      cur.opcode = static_cast<std::uint8_t>(opcode);
      in_message = true;
    } else if (!in_message) {
      return false;
    }
    const std::size_t base = cur.payload.size();
    cur.payload.insert(cur.payload.end(), p, p + len);
    for (std::size_t k = 0; k < len; ++k) cur.payload[base + k] ^= static_cast<std::byte>(key[k % 4]);
    cur.all_masked = cur.all_masked && masked;
    cur.none_masked = cur.none_masked && !masked;
    ++cur.frames;
    if (fin) {
      out.push_back(std::move(cur));
      in_message = false;
    }
  }
  return !in_message;
}

// ---- the engine ----------------------------------------------------------

bytes drain_output(connection& c) {
  bytes out;
  for (auto b : c.pending_output()) {
    const auto* p = static_cast<const std::byte*>(b.data);
    out.insert(out.end(), p, p + b.size);
  }
  if (c.consume_output(out.size())) fail_setup("consume_output");
  return out;
}

namespace {
gust::client_options localhost() {
  gust::client_options o;
  o.host = "localhost";
  return o;
}
}  // namespace

pair::pair(const gust::settings& s) : client(now, localhost(), s), server(now, s) {
  bytes req = drain_output(client);
  server.receive(req, now);
  bool opened = false;
  while (auto ev = server.next_event(now)) {
    if (std::holds_alternative<request_event>(*ev) && server.accept(now)) fail_setup("accept");
    if (std::holds_alternative<open_event>(*ev)) opened = true;
  }
  bytes resp = drain_output(server);
  client.receive(resp, now);
  while (auto ev = client.next_event(now)) {}
  if (!opened || client.state() != state::open || server.state() != state::open)
    fail_setup("the pair did not open");
}

gust::settings codec_settings(gust::output_pool* pool) {
  gust::settings s;
  s.output_pool = pool;
  s.limits.max_message_size = 4 << 20;
  s.timeouts.ping_interval = {};
  return s;
}

}  // namespace gust::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("gust_mask", gust::detail::mask_implementation());
#ifdef NDEBUG
  benchmark::AddCustomContext("gust_assertions", "off");
#else
  benchmark::AddCustomContext("gust_assertions", "on (not a release build)");
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (gust::bench::verify_failures) {
    std::fprintf(stderr, "%d benchmark(s) failed verification\n", gust::bench::verify_failures);
    return 1;
  }
  return 0;
}
