// The pieces of the hot path alone, and the physical limit beside them.
//
//   memcpy/<n>                       copy n bytes between two warm buffers:
//                                    the bandwidth every ratio divides by
//                                    (also at the wire sizes of the batches)
//   mask/in_place/<n>                detail::mask_in_place (a server's unmask)
//   mask/copy/<n>                    detail::mask_copy (a client's send)
//   utf8/feed/<content>/<n>          utf8_validator::feed of a whole message
//   utf8/unmask_and_feed/<content>/<n>/<mode>
//                                    the fused unmask + validate of a masked
//                                    text frame; it writes in place, so it
//                                    is timed with the restore (memcpy of the
//                                    masked bytes back) and the restore is
//                                    timed alone, as in codec_receive.cpp
//   selftest/alloc/<k>               k operator new per iteration: shows
//                                    that the allocs counter counts
#include <cstring>
#include <string>

#include "common.hpp"
#include "mask.hpp"
#include "utf8.hpp"

namespace gust::bench {
namespace {

constexpr detail::mask_key test_key{std::byte{0x37}, std::byte{0xfa}, std::byte{0x21}, std::byte{0x3d}};

void set_rates(benchmark::State& state, std::size_t n) {
  const auto iters = static_cast<std::int64_t>(state.iterations());
  state.SetBytesProcessed(iters * static_cast<std::int64_t>(n));
  state.SetItemsProcessed(iters);
}

bytes reference_mask(const bytes& in, detail::mask_key key) {
  bytes out = in;
  for (std::size_t i = 0; i < out.size(); ++i) out[i] ^= key[i % 4];
  return out;
}

void run_memcpy(benchmark::State& state, std::size_t n) {
  const bytes src = random_bytes(n);
  bytes dst(n);
  std::memcpy(dst.data(), src.data(), n);
  if (!verify(state, dst == src, "memcpy")) return;
  {
    count_allocations counting(state);
    for (auto _ : state) {
      std::memcpy(dst.data(), src.data(), n);
      benchmark::DoNotOptimize(dst.data());
      benchmark::ClobberMemory();
    }
  }
  set_rates(state, n);
}

void run_mask_in_place(benchmark::State& state, std::size_t n) {
  const bytes plain = random_bytes(n);
  bytes buf = plain;
  detail::mask_in_place(buf.data(), n, test_key);
  if (!verify(state, buf == reference_mask(plain, test_key), "mask_in_place differs from the reference"))
    return;
  // Masking twice is the identity: the buffer alternates between the two
  // states, each iteration does the same work.
  {
    count_allocations counting(state);
    for (auto _ : state) {
      detail::mask_in_place(buf.data(), n, test_key);
      benchmark::ClobberMemory();
    }
  }
  set_rates(state, n);
}

void run_mask_copy(benchmark::State& state, std::size_t n) {
  const bytes plain = random_bytes(n);
  bytes dst(n);
  detail::mask_copy(dst.data(), plain.data(), n, test_key);
  if (!verify(state, dst == reference_mask(plain, test_key), "mask_copy differs from the reference")) return;
  {
    count_allocations counting(state);
    for (auto _ : state) {
      detail::mask_copy(dst.data(), plain.data(), n, test_key);
      benchmark::ClobberMemory();
    }
  }
  set_rates(state, n);
}

void run_utf8_feed(benchmark::State& state, content what, std::size_t n) {
  const bytes text = payload(what, n);
  detail::utf8_validator v;
  if (!verify(state, v.feed(text.data(), n) && v.complete(), "valid text rejected")) return;
  // And a broken copy is refused: the validator is really looking.
  bytes broken = text;
  broken[n / 2] = std::byte{0xFF};
  v.reset();
  if (!verify(state, !v.feed(broken.data(), n), "invalid text accepted")) return;
  std::size_t bad = 0;
  {
    count_allocations counting(state);
    for (auto _ : state) {
      v.reset();
      if (!v.feed(text.data(), n) || !v.complete()) ++bad;
    }
  }
  if (!verify(state, bad == 0, "valid text rejected in the timed loop")) return;
  set_rates(state, n);
}

void run_unmask_and_feed(benchmark::State& state, content what, std::size_t n, bool with_op) {
  const bytes plain = payload(what, n);
  const bytes masked = reference_mask(plain, test_key);
  bytes buf = masked;
  detail::utf8_validator v;
  if (!verify(state, v.unmask_and_feed(buf.data(), n, test_key, 0) && v.complete() && buf == plain,
              "unmask_and_feed: wrong bytes or valid text rejected"))
    return;
  std::size_t bad = 0;
  {
    count_allocations counting(state);
    for (auto _ : state) {
      std::memcpy(buf.data(), masked.data(), n);  // the restore
      if (with_op) {
        v.reset();
        if (!v.unmask_and_feed(buf.data(), n, test_key, 0) || !v.complete()) ++bad;
      }
      benchmark::ClobberMemory();
    }
  }
  if (!verify(state, bad == 0, "valid text rejected in the timed loop")) return;
  set_rates(state, n);
}

void run_alloc_selftest(benchmark::State& state, int k) {
  {
    count_allocations counting(state);
    for (auto _ : state) {
      for (int i = 0; i < k; ++i) {
        int* p = new int(i);
        benchmark::DoNotOptimize(p);
        delete p;
      }
    }
  }
  set_rates(state, 0);
}

template <class F>
void reg(const std::string& name, F f) {
  benchmark::RegisterBenchmark(name.c_str(), f);
}

int register_all() {
  const std::size_t sizes[] = {16, 125, 1024, 64 * 1024, 1024 * 1024};
  // The batches of codec_receive.cpp: 4096 frames of 16 bytes, with a
  // 2-byte header, plus the 4-byte key when masked.
  const std::size_t batch_wire[] = {4096 * (2 + 4 + 16), 4096 * (2 + 16)};
  for (std::size_t n : sizes) reg("memcpy/" + std::to_string(n), [n](auto& s) { run_memcpy(s, n); });
  for (std::size_t n : batch_wire) reg("memcpy/" + std::to_string(n), [n](auto& s) { run_memcpy(s, n); });
  for (std::size_t n : sizes) {
    const std::string size = std::to_string(n);
    reg("mask/in_place/" + size, [n](auto& s) { run_mask_in_place(s, n); });
    reg("mask/copy/" + size, [n](auto& s) { run_mask_copy(s, n); });
  }
  for (content what : {content::ascii, content::mixed})
    for (std::size_t n : sizes) {
      const std::string tail = std::string(to_string(what)) + "/" + std::to_string(n);
      reg("utf8/feed/" + tail, [=](auto& s) { run_utf8_feed(s, what, n); });
      reg("utf8/unmask_and_feed/" + tail + "/engine+restore",
          [=](auto& s) { run_unmask_and_feed(s, what, n, true); });
      reg("utf8/unmask_and_feed/" + tail + "/restore",
          [=](auto& s) { run_unmask_and_feed(s, what, n, false); });
    }
  reg("selftest/alloc/0", [](auto& s) { run_alloc_selftest(s, 0); });
  reg("selftest/alloc/1", [](auto& s) { run_alloc_selftest(s, 1); });
  return 0;
}

const int registered = register_all();

}  // namespace
}  // namespace gust::bench
