// The receive path of the engine: bytes in through connection::receive()
// (or prepare()/commit()), events out through next_event(), for both roles.
// A server's path is parse, unmask, validate UTF-8 (text), deliver; a
// client's is the same without the unmasking.
//
// Names: recv/<role>/<content>/<delivery>/<message size>/<mode>
//   content   text (ASCII JSON), text-utf8 (half multi-byte), binary
//   delivery  whole      each message one frame, the wire in one receive()
//             frag4k     each message in frames of 4 KiB (continuations),
//                        the wire in one receive(); the engine reassembles
//             read4k     one frame, handed over in receive() calls of 4 KiB,
//                        events drained after each (a socket read at a time)
//             prepare4k  one frame, copied 4 KiB at a time into prepare()
//                        and commit()ed (the copy stands for read(2))
//             batch4096  4096 messages back to back in one receive()
//             and the same with "-pooled" (whole-pooled, frag4k-pooled...):
//                        the connections borrow their buffers from a
//                        gust::output_pool, as every adapter's do
//   mode      see "Restoring the input" below
//
// Restoring the input. The engine unmasks in place, so after one pass the
// buffer holds the plain payload and the next pass would read garbage. The
// honest measurement we chose:
//   engine+restore  each iteration first copies the pristine masked wire
//                   back into the buffer (memcpy, timed), then receives it.
//                   The copy is what a socket read does anyway, and it
//                   leaves the buffer in cache as a read would.
//   restore         the same loop without the receive: the memcpy alone,
//                   on the same buffers, in the same binary. ratios.py
//                   reports the engine's time as the difference.
//   zero-key        a cross-check that needs no restore: frames masked with
//                   the key 00 00 00 00. The engine does exactly the same
//                   work (mask.cpp and utf8.cpp have no special case for a
//                   zero key; the XOR runs, it just changes nothing), so the
//                   buffer is unchanged after a pass (verified) and can be
//                   received again as it is. Its figure should agree with
//                   engine+restore minus restore.
//   engine          a client's input is never written to (nothing to
//                   unmask), so no restore is needed (verified: the buffer
//                   is unchanged after a pass); prepare4k copies the wire
//                   into the engine's own buffer each time.
// PauseTiming/ResumeTiming around the restore was rejected: it costs about
// a microsecond per call, more than receiving a small message.
//
// Verification: one pass before timing must deliver exactly the expected
// messages (type and bytes) and no other event; the timed loop must
// deliver the expected number of bytes.
#include <algorithm>
#include <cstring>
#include <string>
#include <variant>

#include "common.hpp"

namespace gust::bench {
namespace {

enum class delivery : std::uint8_t { whole, frag4k, read4k, prepare4k, batch };
enum class mode : std::uint8_t { engine, engine_restore, restore, zero_key };

constexpr std::size_t piece = 4096;
constexpr std::size_t batch_count = 4096;

const char* to_string(delivery d) {
  switch (d) {
    case delivery::whole: return "whole";
    case delivery::frag4k: return "frag4k";
    case delivery::read4k: return "read4k";
    case delivery::prepare4k: return "prepare4k";
    case delivery::batch: return "batch4096";
  }
  return "?";
}
const char* to_string(mode m) {
  switch (m) {
    case mode::engine: return "engine";
    case mode::engine_restore: return "engine+restore";
    case mode::restore: return "restore";
    case mode::zero_key: return "zero-key";
  }
  return "?";
}

struct receive_case {
  role who;
  content what;
  std::size_t size;
  delivery how;
  mode m;
  bool pooled = false;
};

// One pass over the input, handing every event to `on_event`.
template <class F>
void receive_pass(connection& c, delivery how, bytes& buf, const bytes& wire, time_point now,
                  F&& on_event) {
  switch (how) {
    case delivery::read4k:
      for (std::size_t off = 0; off < buf.size(); off += piece) {
        c.receive({buf.data() + off, std::min(piece, buf.size() - off)}, now);
        while (auto ev = c.next_event(now)) on_event(*ev);
      }
      break;
    case delivery::prepare4k:
      for (std::size_t off = 0; off < wire.size(); off += piece) {
        const std::size_t n = std::min(piece, wire.size() - off);
        std::memcpy(c.prepare(piece).data(), wire.data() + off, n);
        c.commit(n, now);
        while (auto ev = c.next_event(now)) on_event(*ev);
      }
      break;
    default:
      c.receive(buf, now);
      while (auto ev = c.next_event(now)) on_event(*ev);
      break;
  }
}

// The timed pass, out of line so that callgrind can collect exactly the
// timed passes and nothing else (bench/callgrind.py toggles collection on
// this function's name). The restore is outside it.
[[gnu::noinline]] void timed_receive_pass(connection& c, delivery how, bytes& buf, const bytes& wire,
                                          time_point now, std::size_t& delivered) {
  receive_pass(c, how, buf, wire, now, [&](const event& ev) {
    if (const auto* m = std::get_if<message_event>(&ev)) {
      delivered += m->data.size();
      benchmark::DoNotOptimize(m->data.data());
    }
  });
}

void run_receive(benchmark::State& state, const receive_case rc) {
  output_pool pool;  // outlives the pair
  pair p(codec_settings(rc.pooled ? &pool : nullptr));
  connection& c = rc.who == role::server ? static_cast<connection&>(p.server)
                                         : static_cast<connection&>(p.client);
  const std::size_t count = rc.how == delivery::batch ? batch_count : 1;
  const std::uint8_t opcode = rc.what == content::binary ? 2 : 1;
  const message_type type = rc.what == content::binary ? message_type::binary : message_type::text;

  std::vector<bytes> expected;
  bytes wire;
  for (std::size_t i = 0; i < count; ++i) {
    expected.push_back(payload(rc.what, rc.size, i + 1));
    std::uint8_t key[4] = {0, 0, 0, 0};
    if (rc.m != mode::zero_key) {
      const auto k = random_bytes(4, 1000 + i);
      for (int j = 0; j < 4; ++j) key[j] = std::to_integer<std::uint8_t>(k[static_cast<std::size_t>(j)]);
    }
    append_message(wire, opcode, expected.back(), rc.how == delivery::frag4k ? piece : 0,
                   rc.who == role::server ? key : nullptr);
  }
  bytes buf = wire;  // what the engine reads (and, for a server, unmasks)

  auto pass = [&](auto&& on_event) { receive_pass(c, rc.how, buf, wire, p.now, on_event); };

  // Verify before timing.
  {
    std::size_t matched = 0, other = 0;
    pass([&](const event& ev) {
      const auto* m = std::get_if<message_event>(&ev);
      if (!m) {
        ++other;
        return;
      }
      const std::size_t k = matched + other;
      if (m->last && m->type == type && k < expected.size() &&
          std::equal(m->data.begin(), m->data.end(), expected[k].begin(), expected[k].end()))
        ++matched;
      else
        ++other;
    });
    if (!verify(state, matched == count && other == 0 && c.state() == gust::state::open,
                "the delivered messages differ from the payloads sent"))
      return;
    const bool restores = rc.m == mode::engine_restore || rc.m == mode::restore;
    if (!restores && rc.how != delivery::prepare4k &&
        !verify(state, buf == wire, "the input buffer changed: this mode needs a restore"))
      return;
    buf = wire;
  }

  std::size_t delivered = 0;
  const bool restore = rc.m == mode::engine_restore || rc.m == mode::restore;
  const bool receive = rc.m != mode::restore;
  {
    count_allocations counting(state);
    for (auto _ : state) {
      if (restore) std::memcpy(buf.data(), wire.data(), wire.size());
      if (receive) timed_receive_pass(c, rc.how, buf, wire, p.now, delivered);
      benchmark::ClobberMemory();
    }
  }
  const auto iters = static_cast<std::size_t>(state.iterations());
  if (receive && !verify(state, delivered == iters * count * rc.size && c.state() == gust::state::open,
                         "the timed loop delivered the wrong number of bytes"))
    return;
  state.SetBytesProcessed(static_cast<std::int64_t>(iters * count * rc.size));
  state.SetItemsProcessed(static_cast<std::int64_t>(iters * count));
  state.counters["wire_bytes"] = static_cast<double>(wire.size());
}

void add(const receive_case& rc) {
  const std::string name = std::string("recv/") + (rc.who == role::server ? "server/" : "client/") +
                           bench::to_string(rc.what) + "/" + to_string(rc.how) +
                           (rc.pooled ? "-pooled/" : "/") +
                           std::to_string(rc.size) + "/" + to_string(rc.m);
  benchmark::RegisterBenchmark(name.c_str(), [rc](benchmark::State& s) { run_receive(s, rc); });
}

// A server's input needs restoring: each case as engine+restore and as
// restore alone, and the zero-key cross-check where asked. A client's
// does not.
void add_modes(role who, content what, std::size_t size, delivery how, bool zero_key,
               bool pooled = false) {
  if (who == role::client || how == delivery::prepare4k) {
    add({who, what, size, how, mode::engine, pooled});
    return;
  }
  add({who, what, size, how, mode::engine_restore, pooled});
  add({who, what, size, how, mode::restore, pooled});
  if (zero_key) add({who, what, size, how, mode::zero_key, pooled});
}

int register_all() {
  const std::size_t sizes[] = {16, 125, 1024, 64 * 1024, 1024 * 1024};
  for (role who : {role::server, role::client}) {
    for (content what : {content::ascii, content::binary}) {
      for (std::size_t size : sizes) add_modes(who, what, size, delivery::whole, true);
      // 4 KiB fragments or reads only change anything above 4 KiB.
      for (delivery how : {delivery::frag4k, delivery::read4k, delivery::prepare4k})
        for (std::size_t size : {std::size_t{64 * 1024}, std::size_t{1024 * 1024}})
          add_modes(who, what, size, how, false);
      // Big messages with the storage the adapters give them: without a
      // pool a connection frees buffers above 256 KiB after each message
      // (an idle connection must not keep a megabyte); with one they go
      // back to the pool's block cache and the next message reuses them.
      for (delivery how : {delivery::whole, delivery::frag4k, delivery::read4k, delivery::prepare4k})
        for (std::size_t size : {std::size_t{64 * 1024}, std::size_t{1024 * 1024}})
          add_modes(who, what, size, how, false, true);
      add_modes(who, what, 16, delivery::batch, true);
    }
    // Text that is not ASCII: the validator's slow path.
    add_modes(who, content::mixed, 64 * 1024, delivery::whole, true);
  }
  return 0;
}

const int registered = register_all();

}  // namespace
}  // namespace gust::bench
