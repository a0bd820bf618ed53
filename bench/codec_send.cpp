// The send path: send_text()/send_binary() frame the message into the
// output queue (a client also draws a masking key and masks while copying),
// then pending_output() and consume_output() as an adapter's write would.
// Default settings: a message above max_send_frame_size (64 KiB) goes out
// as frames of 64 KiB, so 1 MiB is 16 frames. A client's keys come from the
// operating system's CSPRNG, 4 KiB (1,024 keys) per getrandom call and
// thread, as in production.
//
// Names: send/<role>/<content>/<size>, send_pooled/<role>/binary/<size>
// (the connection's storage borrowed from a gust::output_pool, as in the
// adapters), and send_shared/server/binary/<size> (a server's zero-copy
// send: the queue references the payload).
//
// Verification: the output of one send, decoded by common.cpp's own
// decoder, is exactly the message, masked if and only if a client sent it,
// and every timed send must succeed.
#include <memory>
#include <string>

#include "common.hpp"

namespace gust::bench {
namespace {

enum class how : std::uint8_t { copy, shared };

void run_send(benchmark::State& state, role who, content what, std::size_t size, how h,
              bool pooled = false) {
  output_pool pool;  // outlives the pair
  pair p(codec_settings(pooled ? &pool : nullptr));
  connection& c = who == role::server ? static_cast<connection&>(p.server)
                                      : static_cast<connection&>(p.client);
  auto holder = std::make_shared<const bytes>(payload(what, size));
  const std::shared_ptr<const void> owner = holder;
  const std::span<const std::byte> data = *holder;
  const message_type type = what == content::binary ? message_type::binary : message_type::text;

  auto send_once = [&]() -> std::error_code {
    if (h == how::shared) return c.send_shared(type, data, owner);
    if (type == message_type::text) return c.send_text(as_text(data));
    return c.send_binary(data);
  };

  {
    if (!verify(state, !send_once(), "send failed")) return;
    const bytes out = drain_output(c);
    std::vector<decoded_message> msgs;
    const std::size_t frames = size == 0 ? 1 : (size + 65535) / 65536;
    const bool ok = decode_messages(out, msgs) && msgs.size() == 1 &&
                    msgs[0].opcode == static_cast<std::uint8_t>(type) && msgs[0].payload == *holder &&
                    msgs[0].frames == frames &&
                    (who == role::client ? msgs[0].all_masked : msgs[0].none_masked);
    if (!verify(state, ok, "the frames sent do not decode to the message")) return;
  }

  std::size_t failures = 0, wire = 0;
  {
    count_allocations counting(state);
    for (auto _ : state) {
      if (send_once()) ++failures;
      std::size_t n = 0;
      for (const const_buffer& b : c.pending_output()) {
        benchmark::DoNotOptimize(b.data);
        n += b.size;
      }
      if (c.consume_output(n)) ++failures;
      wire += n;
    }
  }
  const auto iters = static_cast<std::size_t>(state.iterations());
  if (!verify(state, failures == 0 && wire > iters * size, "a timed send failed")) return;
  state.SetBytesProcessed(static_cast<std::int64_t>(iters * size));
  state.SetItemsProcessed(static_cast<std::int64_t>(iters));
  state.counters["wire_bytes"] = static_cast<double>(wire) / static_cast<double>(iters);
}

int register_all() {
  const std::size_t sizes[] = {16, 125, 1024, 64 * 1024, 1024 * 1024};
  for (role who : {role::server, role::client})
    for (content what : {content::ascii, content::binary})
      for (std::size_t size : sizes) {
        const std::string name = std::string("send/") + (who == role::server ? "server/" : "client/") +
                                 to_string(what) + "/" + std::to_string(size);
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
          run_send(s, who, what, size, how::copy);
        });
      }
  // Big messages with a pool, as the adapters send them: the output arena
  // grown for 1 MiB goes back to the pool's block cache instead of being
  // freed after the message.
  for (role who : {role::server, role::client})
    for (std::size_t size : {std::size_t{64 * 1024}, std::size_t{1024 * 1024}}) {
      const std::string name = std::string("send_pooled/") + (who == role::server ? "server/" : "client/") +
                               "binary/" + std::to_string(size);
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        run_send(s, who, content::binary, size, how::copy, true);
      });
    }
  for (std::size_t size : sizes) {
    const std::string name = "send_shared/server/binary/" + std::to_string(size);
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
      run_send(s, role::server, content::binary, size, how::shared);
    });
  }
  return 0;
}

const int registered = register_all();

}  // namespace
}  // namespace gust::bench
