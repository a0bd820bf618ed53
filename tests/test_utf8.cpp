// UTF-8 validation (RFC 3629) as RFC 6455 8.1 needs it: the Autobahn
// Testsuite case 6 families (vectors written here from the UTF-8 rules),
// the exact byte at which each invalid stream fails, and agreement between
// the incremental, whole-buffer, vectorised and unmask-while-validating
// paths.
#include <doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "mask.hpp"
#include "mask_impl.hpp"
#include "utf8.hpp"
#include "utf8_impl.hpp"

using gust::detail::is_valid_utf8;
using gust::detail::mask_key;
using gust::detail::utf8_validator;
namespace impl = gust::detail::utf8_impl;
namespace mimpl = gust::detail::mask_impl;

namespace {

using bytes = std::vector<std::byte>;

bytes B(std::initializer_list<unsigned> values) {
  bytes out;
  for (unsigned v : values) out.push_back(std::byte(v));
  return out;
}

bytes S(std::string_view text) {
  bytes out;
  for (char c : text) out.push_back(std::byte(static_cast<unsigned char>(c)));
  return out;
}

bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Encoder written from the RFC 3629 section 3 table; it happily encodes
// surrogates so the tests can build them.
bytes encode(std::uint32_t cp) {
  if (cp < 0x80) return B({cp});
  if (cp < 0x800) return B({0xc0 | cp >> 6, 0x80 | (cp & 0x3f)});
  if (cp < 0x10000)
    return B({0xe0 | cp >> 12, 0x80 | (cp >> 6 & 0x3f), 0x80 | (cp & 0x3f)});
  return B({0xf0 | cp >> 18, 0x80 | (cp >> 12 & 0x3f), 0x80 | (cp >> 6 & 0x3f),
            0x80 | (cp & 0x3f)});
}

const bytes kosme = B({0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc,
                       0xce, 0xb5});  // "κόσμε", Greek

constexpr std::size_t none = static_cast<std::size_t>(-1);

// Index of the byte at which feeding one byte at a time first fails; none
// if every byte is accepted. Also checks that failure is sticky.
std::size_t fail_index(const bytes& data) {
  utf8_validator v;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (!v.feed(&data[i], 1)) {
      CHECK(v.failed());
      CHECK_FALSE(v.complete());
      for (std::size_t j = i + 1; j < data.size(); ++j)
        CHECK_FALSE(v.feed(&data[j], 1));
      CHECK_FALSE(v.feed(data.data(), 0));
      return i;
    }
    CHECK_FALSE(v.failed());
  }
  return none;
}

// Verdict for a complete message: every byte accepted and ends between
// characters.
bool valid_message(const bytes& data) {
  utf8_validator v;
  return v.feed(data.data(), data.size()) && v.complete();
}

// Reference for "the first byte at which the stream stops being a prefix
// of any valid UTF-8", worked out from code point ranges rather than from a
// byte-level state machine: a partial character can still be completed iff
// the code points it could become include one that is allowed for its
// length (and is not a surrogate).
std::size_t reference_fail_index(const bytes& data, bool* complete) {
  std::size_t i = 0;
  while (i < data.size()) {
    const unsigned lead = std::to_integer<unsigned>(data[i]);
    std::size_t len;
    std::uint32_t lo, hi, cp;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if (lead >= 0xc0 && lead < 0xe0) {
      len = 2, lo = 0x80, hi = 0x7ff, cp = lead & 0x1f;
    } else if (lead >= 0xe0 && lead < 0xf0) {
      len = 3, lo = 0x800, hi = 0xffff, cp = lead & 0x0f;
    } else if (lead >= 0xf0 && lead < 0xf8) {
      len = 4, lo = 0x10000, hi = 0x10ffff, cp = lead & 0x07;
    } else {
      return i;  // continuation without a lead, or no such lead byte
    }
    for (std::size_t k = 0; k < len; ++k) {
      std::uint32_t min_cp = cp, max_cp = cp;
      if (k > 0) {
        if (i + k >= data.size()) {
          *complete = false;
          return none;
        }
        const unsigned b = std::to_integer<unsigned>(data[i + k]);
        if ((b & 0xc0) != 0x80) return i + k;
        cp = cp << 6 | (b & 0x3f);
        min_cp = max_cp = cp;
      }
      for (std::size_t rest = k + 1; rest < len; ++rest) {
        min_cp = min_cp << 6;
        max_cp = max_cp << 6 | 0x3f;
      }
      const std::uint32_t a = std::max(min_cp, lo), z = std::min(max_cp, hi);
      const bool only_surrogates = a >= 0xd800 && z <= 0xdfff;
      if (a > z || only_surrogates) return i + k;
    }
    i += len;
  }
  *complete = true;
  return none;
}

struct invalid_case {
  const char* name;
  bytes data;
  std::size_t fails_at;  // == data.size(): only the message end is missing
};

std::vector<invalid_case> invalid_cases() {
  std::vector<invalid_case> c;
  // 6.3 / 6.4: valid text, then a surrogate or a code point too large.
  c.push_back({"kosme + U+D800", cat({kosme, B({0xed, 0xa0, 0x80})}), 12});
  c.push_back({"kosme + F4 90 80 80 + text",
               cat({kosme, B({0xf4, 0x90, 0x80, 0x80}), S("edited")}), 12});
  // 6.2 boundary: the first code point after the last valid one.
  c.push_back({"U+110000", B({0xf4, 0x90, 0x80, 0x80}), 1});
  c.push_back({"F7 BF BF BF", B({0xf7, 0xbf, 0xbf, 0xbf}), 0});
  c.push_back({"5-byte form", B({0xf8, 0x88, 0x80, 0x80, 0x80}), 0});
  c.push_back({"6-byte form", B({0xfc, 0x84, 0x80, 0x80, 0x80, 0x80}), 0});
  // 6.8: lone continuation bytes.
  c.push_back({"lone 80", B({0x80}), 0});
  c.push_back({"lone BF", B({0xbf}), 0});
  c.push_back({"80 BF", B({0x80, 0xbf}), 0});
  c.push_back({"80 BF 80 BF 80 BF 80",
               B({0x80, 0xbf, 0x80, 0xbf, 0x80, 0xbf, 0x80}), 0});
  {
    bytes all;
    for (unsigned b = 0x80; b <= 0xbf; ++b) all.push_back(std::byte(b));
    c.push_back({"all continuation bytes", all, 0});
  }
  c.push_back({"ASCII then continuation", S("abc\x80"), 3});
  // 6.10: last continuation byte missing, for each length, at message end.
  c.push_back({"C2 (U+0080 missing last)", B({0xc2}), 1});
  c.push_back({"DF (U+07FF missing last)", B({0xdf}), 1});
  c.push_back({"E0 A0 (U+0800 missing last)", B({0xe0, 0xa0}), 2});
  c.push_back({"EF BF (U+FFFF missing last)", B({0xef, 0xbf}), 2});
  c.push_back({"F0 90 80 (U+10000 missing last)", B({0xf0, 0x90, 0x80}), 3});
  c.push_back({"F4 8F BF (U+10FFFF missing last)", B({0xf4, 0x8f, 0xbf}), 3});
  c.push_back({"kosme + E1 BD", cat({kosme, B({0xe1, 0xbd})}), 13});
  // ... and the overlong / too-large leads of those families fail early.
  c.push_back({"C0 (overlong lead)", B({0xc0}), 0});
  c.push_back({"E0 80 (overlong)", B({0xe0, 0x80}), 1});
  c.push_back({"F0 80 80 (overlong)", B({0xf0, 0x80, 0x80}), 1});
  c.push_back({"F7 BF BF", B({0xf7, 0xbf, 0xbf}), 0});
  // 6.11: incomplete sequences back to back: the next lead byte is where
  // the first one breaks.
  c.push_back({"C2 E0 A0 F0 90 80",
               B({0xc2, 0xe0, 0xa0, 0xf0, 0x90, 0x80}), 1});
  c.push_back({"E0 A0 F0 90 80 DF", B({0xe0, 0xa0, 0xf0, 0x90, 0x80, 0xdf}), 2});
  c.push_back({"F0 90 80 DF EF BF", B({0xf0, 0x90, 0x80, 0xdf, 0xef, 0xbf}), 3});
  c.push_back({"C0 E0 80 F0 80 80 DF EF BF F7 BF BF",
               B({0xc0, 0xe0, 0x80, 0xf0, 0x80, 0x80, 0xdf, 0xef, 0xbf, 0xf7,
                  0xbf, 0xbf}),
               0});
  // 6.12: impossible bytes.
  c.push_back({"FE", B({0xfe}), 0});
  c.push_back({"FF", B({0xff}), 0});
  c.push_back({"FE FE FF FF", B({0xfe, 0xfe, 0xff, 0xff}), 0});
  c.push_back({"text FE", cat({S("ok"), B({0xfe})}), 2});
  // 6.13 / 6.14: overlong '/' and the largest overlong of each length.
  c.push_back({"C0 AF", B({0xc0, 0xaf}), 0});
  c.push_back({"E0 80 AF", B({0xe0, 0x80, 0xaf}), 1});
  c.push_back({"F0 80 80 AF", B({0xf0, 0x80, 0x80, 0xaf}), 1});
  c.push_back({"F8 80 80 80 AF", B({0xf8, 0x80, 0x80, 0x80, 0xaf}), 0});
  c.push_back({"FC 80 80 80 80 AF", B({0xfc, 0x80, 0x80, 0x80, 0x80, 0xaf}), 0});
  c.push_back({"C1 BF", B({0xc1, 0xbf}), 0});
  c.push_back({"E0 9F BF", B({0xe0, 0x9f, 0xbf}), 1});
  c.push_back({"F0 8F BF BF", B({0xf0, 0x8f, 0xbf, 0xbf}), 1});
  c.push_back({"F8 87 BF BF BF", B({0xf8, 0x87, 0xbf, 0xbf, 0xbf}), 0});
  c.push_back({"FC 83 BF BF BF BF", B({0xfc, 0x83, 0xbf, 0xbf, 0xbf, 0xbf}), 0});
  // 6.15: overlong NUL.
  c.push_back({"C0 80", B({0xc0, 0x80}), 0});
  c.push_back({"E0 80 80", B({0xe0, 0x80, 0x80}), 1});
  c.push_back({"F0 80 80 80", B({0xf0, 0x80, 0x80, 0x80}), 1});
  c.push_back({"F8 80 80 80 80", B({0xf8, 0x80, 0x80, 0x80, 0x80}), 0});
  c.push_back({"FC 80 80 80 80 80", B({0xfc, 0x80, 0x80, 0x80, 0x80, 0x80}), 0});
  // 6.16: single UTF-16 surrogates: ED then A0..BF can never be valid.
  for (std::uint32_t cp : {0xd800u, 0xdb7fu, 0xdb80u, 0xdbffu, 0xdc00u,
                           0xdf80u, 0xdfffu})
    c.push_back({"single surrogate", encode(cp), 1});
  // 6.17: paired surrogates fail at the first one.
  const std::pair<std::uint32_t, std::uint32_t> pairs[] = {
      {0xd800, 0xdc00}, {0xd800, 0xdfff}, {0xdb7f, 0xdc00}, {0xdb7f, 0xdfff},
      {0xdb80, 0xdc00}, {0xdb80, 0xdfff}, {0xdbff, 0xdc00}, {0xdbff, 0xdfff}};
  for (const auto& [high, low] : pairs)
    c.push_back({"paired surrogates", cat({encode(high), encode(low)}), 1});
  // A started sequence interrupted by ASCII fails at the ASCII byte.
  c.push_back({"E2 82 then 'a'", B({0xe2, 0x82, 0x61}), 2});
  c.push_back({"F0 9F 98 then space", B({0xf0, 0x9f, 0x98, 0x20}), 3});
  c.push_back({"C3 then C3 A9", B({0xc3, 0xc3, 0xa9}), 1});
  return c;
}

std::vector<bytes> valid_cases() {
  std::vector<bytes> v;
  v.push_back({});
  v.push_back(S("Hello, world! 0123456789 ~"));
  v.push_back(kosme);
  // 6.2 / 6.3: boundaries of each sequence length, both ends.
  for (std::uint32_t cp : {0x0u, 0x7fu, 0x80u, 0x7ffu, 0x800u, 0xffffu,
                           0x10000u, 0x10ffffu})
    v.push_back(encode(cp));
  // Around the surrogate block and other edges.
  for (std::uint32_t cp : {0xd7ffu, 0xe000u, 0xfffdu, 0x3ffffu, 0x40000u,
                           0xfffffu, 0x100000u})
    v.push_back(encode(cp));
  // Noncharacters are valid UTF-8 (RFC 3629 leaves them to applications).
  for (std::uint32_t cp : {0xfffeu, 0xffffu, 0xfdd0u, 0xfdefu, 0x1fffeu,
                           0x1ffffu, 0x10fffeu, 0x10ffffu})
    v.push_back(encode(cp));
  v.push_back(B({0xef, 0xbb, 0xbf}));  // a BOM is just U+FEFF
  v.push_back(cat({kosme, S(" and "), encode(0x1f600), S("!")}));
  return v;
}

struct lcg {
  std::mt19937 rng;
  explicit lcg(std::uint32_t seed) : rng(seed) {}
  std::uint32_t below(std::uint32_t n) { return rng() % n; }
};

std::uint32_t random_scalar_value(lcg& r, std::size_t len) {
  switch (len) {
    case 2:
      return 0x80 + r.below(0x800 - 0x80);
    case 3: {
      std::uint32_t cp;
      do cp = 0x800 + r.below(0x10000 - 0x800);
      while (cp >= 0xd800 && cp <= 0xdfff);
      return cp;
    }
    default:
      return 0x10000 + r.below(0x110000 - 0x10000);
  }
}

// Mostly ASCII runs of random length, with multibyte characters that land
// at arbitrary offsets (so across 16/32/64-byte blocks), and, when
// `corrupt`, a chance of one bad byte.
bytes random_text(lcg& r, std::size_t n, bool corrupt) {
  bytes out;
  while (out.size() < n) {
    const std::uint32_t pick = r.below(10);
    if (pick < 5) {
      // Now and then a run long enough to fill whole vector blocks.
      const std::size_t run = r.below(pick == 0 ? 300 : 48);
      for (std::size_t i = 0; i < run; ++i)
        out.push_back(std::byte(0x20 + r.below(0x5f)));
    } else {
      const auto bytes_of = encode(random_scalar_value(r, 2 + pick % 3));
      out.insert(out.end(), bytes_of.begin(), bytes_of.end());
    }
  }
  out.resize(n);  // may cut the last character: an incomplete message
  if (corrupt && n > 0 && r.below(2) == 0) {
    static const unsigned bad[] = {0x80, 0xbf, 0xc0, 0xc1, 0xe0, 0xed,
                                   0xf4, 0xf5, 0xff, 0x41, 0xc2};
    out[r.below(static_cast<std::uint32_t>(n))] =
        std::byte(bad[r.below(std::size(bad))]);
  }
  return out;
}

void reference_mask(std::byte* p, std::size_t n, mask_key key,
                    std::size_t phase) {
  for (std::size_t i = 0; i < n; ++i) p[i] ^= key[(phase + i) % 4];
}

// The DFA's own state sequence, one byte per call: what every vector
// implementation has to agree with, state for state.
impl::state byte_state(const bytes& data, std::size_t n) {
  const auto scalar = impl::available().front();
  impl::state s = impl::accept_state;
  for (std::size_t i = 0; i < n && s != impl::reject_state; ++i)
    s = scalar.feed(&data[i], 1, s);
  return s;
}

// A pointer into `buf` that is `offset` bytes past a 64-byte boundary.
std::byte* aligned_at(bytes& buf, std::size_t offset) {
  const auto addr = reinterpret_cast<std::uintptr_t>(buf.data());
  return buf.data() + (64 - addr % 64) % 64 + offset;
}

}  // namespace

TEST_CASE("utf8: Autobahn 6.x valid texts are accepted") {
  for (const auto& data : valid_cases()) {
    CAPTURE(data.size());
    CHECK(fail_index(data) == none);
    CHECK(valid_message(data));
    CHECK(is_valid_utf8(data.data(), data.size()));
  }
}

TEST_CASE("utf8: Autobahn 6.x invalid texts fail at the exact byte") {
  for (const auto& c : invalid_cases()) {
    CAPTURE(c.name);
    const std::size_t at = fail_index(c.data);
    if (c.fails_at == c.data.size()) {
      // Every byte is fine; only the end of the message is missing.
      CHECK(at == none);
      utf8_validator v;
      CHECK(v.feed(c.data.data(), c.data.size()));
      CHECK_FALSE(v.complete());
      CHECK_FALSE(v.failed());
    } else {
      CHECK(at == c.fails_at);
      // Whole-buffer feeding agrees: the prefix passes, one more byte fails.
      utf8_validator prefix;
      CHECK(prefix.feed(c.data.data(), c.fails_at));
      utf8_validator whole;
      CHECK_FALSE(whole.feed(c.data.data(), c.data.size()));
      CHECK(whole.failed());
    }
    bool complete = false;
    const std::size_t expected = reference_fail_index(c.data, &complete);
    CHECK(expected == (c.fails_at == c.data.size() ? none : c.fails_at));
    CHECK_FALSE(valid_message(c.data));
    CHECK_FALSE(is_valid_utf8(c.data.data(), c.data.size()));
  }
}

TEST_CASE("utf8: every lead byte followed by a space (Autobahn 6.9)") {
  for (unsigned lead = 0xc0; lead <= 0xff; ++lead) {
    CAPTURE(lead);
    const bool starts_sequence = lead >= 0xc2 && lead <= 0xf4;
    CHECK(fail_index(B({lead, 0x20})) == (starts_sequence ? 1u : 0u));
  }
  for (unsigned b = 0xf5; b <= 0xff; ++b) CHECK(fail_index(B({b})) == 0);
}

TEST_CASE("utf8: all one- and two-byte inputs against the range reference") {
  for (unsigned a = 0; a < 256; ++a) {
    bool complete = false;
    const bytes one = B({a});
    const std::size_t expected = reference_fail_index(one, &complete);
    REQUIRE(fail_index(one) == expected);
    CHECK(valid_message(one) == (expected == none && complete));
    for (unsigned b = 0; b < 256; ++b) {
      const bytes two = B({a, b});
      const std::size_t want = reference_fail_index(two, &complete);
      utf8_validator v;
      const bool first = v.feed(&two[0], 1);
      const bool second = first && v.feed(&two[1], 1);
      const std::size_t got = !first ? 0 : !second ? 1 : none;
      if (got != want || v.complete() != (want == none && complete)) {
        CAPTURE(a);
        CAPTURE(b);
        CHECK(got == want);
        CHECK(v.complete() == (want == none && complete));
      }
    }
  }
}

TEST_CASE("utf8: longer sequences around every range boundary") {
  // Each position takes a value at or next to a boundary of the tables.
  const unsigned interesting[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f,
                                  0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0,
                                  0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1,
                                  0xf3, 0xf4, 0xf5, 0xff};
  std::size_t mismatches = 0;
  for (unsigned a : interesting)
    for (unsigned b : interesting)
      for (unsigned c : interesting)
        for (unsigned d : interesting) {
          const bytes data = B({a, b, c, d});
          bool complete = false;
          const std::size_t want = reference_fail_index(data, &complete);
          if (fail_index(data) != want ||
              valid_message(data) != (want == none && complete))
            ++mismatches;
        }
  CHECK(mismatches == 0);
}

TEST_CASE("utf8: every scalar value is valid, every surrogate is not") {
  bytes all;
  for (std::uint32_t cp = 0; cp <= 0x10ffff; ++cp) {
    if (cp == 0xd800) cp = 0xe000;
    const auto e = encode(cp);
    all.insert(all.end(), e.begin(), e.end());
  }
  CHECK(is_valid_utf8(all.data(), all.size()));
  for (const auto& candidate : impl::available()) {
    CAPTURE(mimpl::isa_name(candidate.which));
    CHECK(candidate.feed(all.data(), all.size(), impl::accept_state) ==
          impl::accept_state);
  }
  std::size_t accepted = 0;
  for (std::uint32_t cp = 0xd800; cp <= 0xdfff; ++cp) {
    const auto e = encode(cp);
    if (fail_index(e) != 1) ++accepted;
  }
  CHECK(accepted == 0);
}

TEST_CASE("utf8: any split of a stream gives the same verdict as whole") {
  std::vector<bytes> inputs = valid_cases();
  for (auto& c : invalid_cases()) inputs.push_back(c.data);
  inputs.push_back(cat({S("abc"), kosme, encode(0x10ffff), encode(0x800),
                        S("xyz"), B({0xed, 0xa0, 0x80})}));
  for (const auto& data : inputs) {
    utf8_validator whole;
    const bool whole_ok = whole.feed(data.data(), data.size());
    for (std::size_t i = 0; i <= data.size(); ++i) {
      for (std::size_t j = i; j <= data.size(); ++j) {
        utf8_validator v;
        bool ok = v.feed(data.data(), i);
        ok = v.feed(data.data() + i, j - i) && ok;
        ok = v.feed(data.data() + j, data.size() - j) && ok;
        if (ok != whole_ok || v.complete() != whole.complete()) {
          CAPTURE(i);
          CAPTURE(j);
          CHECK(ok == whole_ok);
          CHECK(v.complete() == whole.complete());
        }
      }
    }
  }
}

TEST_CASE("utf8: failure is sticky until reset") {
  utf8_validator v;
  const auto bad = B({0xff});
  const auto good = S("fine");
  CHECK_FALSE(v.feed(bad.data(), 1));
  CHECK(v.failed());
  CHECK_FALSE(v.feed(good.data(), good.size()));
  CHECK_FALSE(v.complete());

  // Bytes are still unmasked after a failure.
  const mask_key key{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  auto masked = good;
  reference_mask(masked.data(), masked.size(), key, 0);
  CHECK_FALSE(v.unmask_and_feed(masked.data(), masked.size(), key, 0));
  CHECK(masked == good);

  v.reset();
  CHECK(v.complete());
  CHECK_FALSE(v.failed());
  CHECK(v.feed(good.data(), good.size()));
  CHECK(v.complete());
}

TEST_CASE("utf8: ASCII fast path boundaries") {
  const mask_key fast_path_key{std::byte{0xaa}, std::byte{0x55},
                               std::byte{0x80}, std::byte{0x7f}};
  bytes scratch(512);
  for (const auto& candidate : impl::available()) {
    CAPTURE(mimpl::isa_name(candidate.which));
    // Sizes that end exactly on 16/32/64/128-byte blocks make a skipped
    // all-ASCII block the last thing seen, as well as ones that do not.
    for (std::size_t size : {16u, 48u, 64u, 71u, 96u, 100u, 128u, 160u, 200u,
                             256u, 288u, 300u, 384u}) {
      CAPTURE(size);
      bytes text(size, std::byte{'a'});
      // A bad byte anywhere is seen, whatever block it falls in.
      for (std::size_t pos = 0; pos <= 70 && pos < size; ++pos) {
        for (unsigned bad : {0x80u, 0xbfu, 0xc0u, 0xf5u, 0xffu}) {
          bytes t = text;
          t[pos] = std::byte(bad);
          if (candidate.feed(t.data(), t.size(), impl::accept_state) !=
              impl::reject_state) {
            CAPTURE(pos);
            CAPTURE(bad);
            FAIL_CHECK("invalid byte not detected");
          }
        }
      }
      // A lead byte followed by ASCII: the open sequence must carry into
      // the next block even when that block is all ASCII.
      for (std::size_t pos = 0; pos < size; ++pos) {
        bytes t = text;
        t[pos] = std::byte{0xe2};
        const impl::state want =
            pos + 1 == size ? byte_state(t, t.size()) : impl::reject_state;
        if (candidate.feed(t.data(), t.size(), impl::accept_state) != want) {
          CAPTURE(pos);
          FAIL_CHECK("open sequence before ASCII not rejected");
        }
        // The same through unmasking. Its blocks are counted from an
        // aligned address, so try starts at several alignments.
        for (std::size_t align : {0u, 3u, 16u, 29u}) {
          std::byte* data = aligned_at(scratch, align);
          std::memcpy(data, t.data(), t.size());
          reference_mask(data, t.size(), fast_path_key, 1);
          const impl::state s = candidate.unmask_feed(
              data, t.size(), mimpl::rotated_key(fast_path_key, 1),
              impl::accept_state);
          if (s != want || std::memcmp(data, t.data(), t.size()) != 0) {
            CAPTURE(pos);
            CAPTURE(align);
            FAIL_CHECK("unmask: open sequence before ASCII not rejected");
          }
        }
      }
      // Multibyte characters straddling every block boundary.
      for (std::size_t pos = 0; pos + 4 <= size; ++pos) {
        for (std::uint32_t cp : {0xe9u, 0x20acu, 0x1f600u}) {
          bytes t = text;
          const auto e = encode(cp);
          if (pos + e.size() > size) continue;
          for (std::size_t k = 0; k < e.size(); ++k) t[pos + k] = e[k];
          if (candidate.feed(t.data(), t.size(), impl::accept_state) !=
              impl::accept_state) {
            CAPTURE(pos);
            CAPTURE(cp);
            FAIL_CHECK("valid character rejected");
          }
        }
      }
    }
  }
  // The specific case: a 4-byte character across the 32-byte boundary.
  bytes t(64, std::byte{'x'});
  const auto e = encode(0x1f600);
  for (std::size_t k = 0; k < e.size(); ++k) t[30 + k] = e[k];
  CHECK(is_valid_utf8(t.data(), t.size()));
  CHECK(fail_index(t) == none);
}

TEST_CASE("utf8: every implementation agrees with the DFA, state for state") {
  lcg r(20240601);
  for (int trial = 0; trial < 3000; ++trial) {
    const std::size_t n = r.below(1001);
    const bytes data = random_text(r, n, true);
    const impl::state want = byte_state(data, data.size());
    for (const auto& candidate : impl::available()) {
      const impl::state got =
          candidate.feed(data.data(), data.size(), impl::accept_state);
      if (got != want) {
        CAPTURE(mimpl::isa_name(candidate.which));
        CAPTURE(trial);
        CHECK(got == want);
      }
    }
  }
}

TEST_CASE("utf8: unmask_and_feed equals mask_in_place + feed") {
  lcg r(6455);
  const mask_key key{std::byte{0x9b}, std::byte{0x80}, std::byte{0x7f},
                     std::byte{0x01}};
  std::size_t failures = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    const std::size_t n = r.below(1001);
    const std::size_t offset = r.below(32);  // misaligns the buffer
    const bytes plain = random_text(r, n, trial % 2 == 1);
    for (std::size_t phase = 0; phase < 4; ++phase) {
      bytes masked(offset + n);
      std::copy(plain.begin(), plain.end(),
                masked.begin() + static_cast<long>(offset));
      reference_mask(masked.data() + offset, n, key, phase);

      bytes a = masked;
      utf8_validator va;
      const bool ok_a = va.unmask_and_feed(a.data() + offset, n, key, phase);

      bytes b = masked;
      gust::detail::mask_in_place(b.data() + offset, n, key, phase);
      utf8_validator vb;
      const bool ok_b = vb.feed(b.data() + offset, n);

      const bool same = ok_a == ok_b && va.complete() == vb.complete() &&
                        va.failed() == vb.failed() && a == b &&
                        std::equal(plain.begin(), plain.end(),
                                   a.begin() + static_cast<long>(offset));
      if (!same) ++failures;

      // Every implementation, directly: same state, same bytes.
      for (const auto& candidate : impl::available()) {
        bytes c = masked;
        const impl::state s = candidate.unmask_feed(
            c.data() + offset, n, mimpl::rotated_key(key, phase),
            impl::accept_state);
        if (s != byte_state(plain, plain.size()) || c != b) {
          CAPTURE(mimpl::isa_name(candidate.which));
          CAPTURE(trial);
          CAPTURE(phase);
          CHECK(s == byte_state(plain, plain.size()));
          CHECK(c == b);
        }
      }

      // In pieces, each unmasked at its payload offset.
      bytes d = masked;
      utf8_validator vd;
      bool ok_d = true;
      const auto n32 = static_cast<std::uint32_t>(n);
      const std::size_t cut1 = r.below(n32 + 1);
      const std::size_t cut2 =
          cut1 + r.below(n32 - static_cast<std::uint32_t>(cut1) + 1);
      const std::size_t cuts[] = {0, cut1, cut2, n};
      for (int k = 0; k < 3; ++k) {
        const std::size_t from = cuts[k], len = cuts[k + 1] - from;
        ok_d = vd.unmask_and_feed(d.data() + offset + from, len, key,
                                  phase + from) &&
               ok_d;
      }
      if (ok_d != ok_b || vd.complete() != vb.complete() || d != b)
        ++failures;
    }
  }
  CHECK(failures == 0);
}

TEST_CASE("utf8: large masked payloads, ASCII and mixed") {
  lcg r(99);
  const mask_key key{std::byte{0x12}, std::byte{0x34}, std::byte{0x56},
                     std::byte{0x78}};
  for (bool mixed : {false, true}) {
    bytes plain = mixed ? random_text(r, 65536, false)
                        : bytes(65536, std::byte{'q'});
    // Keep the end on a character boundary so the message is complete.
    while (!plain.empty() && byte_state(plain, plain.size()) != 0)
      plain.pop_back();
    for (std::size_t offset : {0u, 1u, 17u, 31u}) {
      bytes buf(offset + plain.size());
      std::copy(plain.begin(), plain.end(),
                buf.begin() + static_cast<long>(offset));
      reference_mask(buf.data() + offset, plain.size(), key, 2);
      utf8_validator v;
      CHECK(v.unmask_and_feed(buf.data() + offset, plain.size(), key, 2));
      CHECK(v.complete());
      CHECK(std::equal(plain.begin(), plain.end(),
                       buf.begin() + static_cast<long>(offset)));
      // One bad byte late in the payload: rejected, and still all unmasked.
      bytes bad = plain;
      bad[plain.size() - 1000] = std::byte{0xff};
      std::copy(bad.begin(), bad.end(),
                buf.begin() + static_cast<long>(offset));
      reference_mask(buf.data() + offset, bad.size(), key, 2);
      utf8_validator w;
      CHECK_FALSE(w.unmask_and_feed(buf.data() + offset, bad.size(), key, 2));
      CHECK(std::equal(bad.begin(), bad.end(),
                       buf.begin() + static_cast<long>(offset)));
    }
  }
}

TEST_CASE("utf8: is_valid_utf8 on whole buffers") {
  CHECK(is_valid_utf8(nullptr, 0));
  CHECK(is_valid_utf8("plain ASCII", 11));
  CHECK(is_valid_utf8(kosme.data(), kosme.size()));
  const auto truncated = B({0xe2, 0x82});
  CHECK_FALSE(is_valid_utf8(truncated.data(), truncated.size()));
  const auto euro = B({0xe2, 0x82, 0xac});
  CHECK(is_valid_utf8(euro.data(), euro.size()));
  const std::string long_ascii(1000, 'z');
  CHECK(is_valid_utf8(long_ascii.data(), long_ascii.size()));
  std::string long_bad = long_ascii;
  long_bad[999] = '\xc3';
  CHECK_FALSE(is_valid_utf8(long_bad.data(), long_bad.size()));
  // A close reason (RFC 6455 7.1.6) with a surrogate in it.
  const auto reason = cat({S("bye "), B({0xed, 0xbf, 0xbf})});
  CHECK_FALSE(is_valid_utf8(reason.data(), reason.size()));
}
