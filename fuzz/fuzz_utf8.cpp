// Fuzz target: UTF-8 validation and masking, every implementation this CPU
// runs (scalar, SSE2, AVX2 / NEON), against a byte-at-a-time reference.
//
// Input layout:
//   byte 0    bits 0-1: mask phase (the payload offset of the first byte);
//             bits 2-6: start offset of the data in memory (unaligned loads)
//   bytes 1-4 masking key
//   byte 5    n: the low 4 bits are the number of chunk-plan bytes
//   n bytes   chunk lengths, used in a cycle (0: all the rest)
//   the rest  the text
//
// Oracles: is_valid_utf8 and every implementation's feed agree with the
// reference on validity, on where a stream fails (fail fast: the chunk that
// holds the first invalid byte, no earlier and no later) and on whether it
// ends on a code point boundary; unmask_and_feed gives the same answers as
// unmasking then feeding, and leaves every byte unmasked even after a
// failure; every masking implementation matches the byte-by-byte XOR at any
// phase and alignment.
#include <cstring>
#include <string>
#include <vector>

#include "mask.hpp"
#include "mask_impl.hpp"
#include "support.hpp"
#include "utf8.hpp"
#include "utf8_impl.hpp"

using namespace gust;
using namespace gust::fuzz;

namespace {

using detail::mask_key;

std::string masked(std::string_view s, const mask_key& key, std::size_t phase) {
  std::string out(s);
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<char>(out[i] ^ std::to_integer<char>(key[(phase + i) % 4]));
  return out;
}

// A buffer whose data starts `offset` bytes into a 64-byte aligned block.
struct placed {
  std::vector<std::byte> storage;
  std::byte* p;
  placed(std::string_view s, std::size_t offset) : storage(s.size() + offset + 64) {
    auto base = reinterpret_cast<std::uintptr_t>(storage.data());
    const std::uintptr_t aligned = (base + 63) & ~std::uintptr_t{63};
    p = storage.data() + (aligned - base) + offset;
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
  }
  std::string_view view(std::size_t n) const { return {reinterpret_cast<const char*>(p), n}; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in(data, size);
  const std::uint8_t b0 = in.u8();
  const std::size_t phase = b0 & 3;
  const std::size_t offset = (b0 >> 2) & 31;
  mask_key key;
  for (auto& k : key) k = std::byte{in.u8()};
  const std::string_view plan = in.take(in.u8() & 0x0F);
  const std::string_view text = in.rest();

  std::vector<std::size_t> cuts;  // chunk lengths covering the text
  for (std::size_t pos = 0, i = 0; pos < text.size(); ++i) {
    std::size_t len = plan.empty() ? 0 : static_cast<std::uint8_t>(plan[i % plan.size()]);
    if (len == 0 || len > text.size() - pos) len = text.size() - pos;
    cuts.push_back(len);
    pos += len;
  }

  const utf8_scan ref = scan_utf8(text);
  const bool valid = ref.bad == std::string::npos && ref.complete;
  const placed whole(text, offset);
  FUZZ_CHECK_MSG(detail::is_valid_utf8(whole.p, text.size()) == valid, "is_valid_utf8 on " + hex(text));

  // The validator, fed chunk by chunk: false exactly at the chunk holding
  // the first invalid byte.
  {
    detail::utf8_validator v;
    detail::utf8_validator vm;
    placed buf(masked(text, key, phase), offset);
    std::size_t pos = 0;
    bool failed = false;
    for (const std::size_t len : cuts) {
      const bool bad_here = !failed && ref.bad != std::string::npos && ref.bad < pos + len;
      const bool ok = v.feed(whole.p + pos, len);
      FUZZ_CHECK_MSG(ok == !(failed || bad_here), "feed at " + std::to_string(pos) + " of " + hex(text));
      const bool okm = vm.unmask_and_feed(buf.p + pos, len, key, (phase + pos) & 3);
      FUZZ_CHECK_MSG(okm == ok, "unmask_and_feed disagrees with feed at " + std::to_string(pos));
      FUZZ_CHECK_MSG(buf.view(pos + len).substr(pos) == text.substr(pos, len),
                     "unmask_and_feed left bytes masked at " + std::to_string(pos));
      failed = failed || bad_here;
      FUZZ_CHECK(v.failed() == failed && vm.failed() == failed);
      pos += len;
    }
    if (!failed) {
      FUZZ_CHECK(v.complete() == ref.complete);
      FUZZ_CHECK(vm.complete() == ref.complete);
    }
  }

  // Every implementation, whole and chunked, plain and masked.
  for (const auto& impl : detail::utf8_impl::available()) {
    const char* name = detail::mask_impl::isa_name(impl.which);
    auto s = impl.feed(whole.p, text.size(), detail::utf8_impl::accept_state);
    FUZZ_CHECK_MSG((s == detail::utf8_impl::reject_state) == (ref.bad != std::string::npos),
                   std::string(name) + " feed on " + hex(text));
    if (s != detail::utf8_impl::reject_state)
      FUZZ_CHECK_MSG((s == detail::utf8_impl::accept_state) == ref.complete, std::string(name) + " boundary");
    placed buf(masked(text, key, phase), offset);
    s = detail::utf8_impl::accept_state;
    auto sm = s;
    std::size_t pos = 0;
    for (const std::size_t len : cuts) {
      const auto k = detail::mask_impl::rotated_key(key, (phase + pos) & 3);
      s = s == detail::utf8_impl::reject_state ? s : impl.feed(whole.p + pos, len, s);
      sm = impl.unmask_feed(buf.p + pos, len, k, sm);
      const bool bad_so_far = ref.bad != std::string::npos && ref.bad < pos + len;
      FUZZ_CHECK_MSG((s == detail::utf8_impl::reject_state) == bad_so_far, std::string(name) + " chunked feed");
      FUZZ_CHECK_MSG((sm == detail::utf8_impl::reject_state) == bad_so_far, std::string(name) + " unmask_feed");
      pos += len;
    }
    FUZZ_CHECK_MSG(buf.view(text.size()) == text, std::string(name) + " unmask_feed left bytes masked");
  }

  // Masking: every implementation against the byte-by-byte XOR.
  const std::string expect = masked(text, key, phase);
  {
    placed buf(text, offset);
    detail::mask_in_place(buf.p, text.size(), key, phase);
    FUZZ_CHECK_MSG(buf.view(text.size()) == expect, "mask_in_place");
    placed dst(std::string(text.size(), '\0'), (offset + 5) & 31);
    detail::mask_copy(dst.p, whole.p, text.size(), key, phase);
    FUZZ_CHECK_MSG(dst.view(text.size()) == expect, "mask_copy");
  }
  for (const auto& impl : detail::mask_impl::available()) {
    placed buf(text, offset);
    impl.fn(buf.p, buf.p, text.size(), detail::mask_impl::rotated_key(key, phase));
    FUZZ_CHECK_MSG(buf.view(text.size()) == expect,
                   std::string(detail::mask_impl::isa_name(impl.which)) + " masking");
  }
  return 0;
}
