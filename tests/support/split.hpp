// Test support for incremental parsers: the same input fed whole, one byte
// at a time and cut in two at every point must mean the same. Header-only,
// for test binaries that link only gust_detail and doctest.
#pragma once

#include <doctest.h>

#include <array>
#include <cstddef>
#include <string_view>

namespace gust::test {

/// One way of cutting an input into the pieces a parser is fed.
struct cutting {
  enum class kind { whole, bytewise, split };
  kind how = kind::whole;
  std::size_t at = 0;  ///< split: where the first piece ends

  static cutting whole() { return {kind::whole, 0}; }
  static cutting bytewise() { return {kind::bytewise, 0}; }
  static cutting split_at(std::size_t at) { return {kind::split, at}; }
};

/// Feeds `input`, cut as `c`, to `feed` (a piece in, how many of its bytes
/// were used out) while `more()` holds; returns how many bytes were used.
/// Like a transport would, bytes not used are offered again with the next
/// piece. One byte at a time, a byte that is not used ends the run: a
/// parser that still needs more has to take what it is given.
template <class More, class Feed>
std::size_t feed_cut(std::string_view input, cutting c, More&& more, Feed&& feed) {
  std::size_t consumed = 0;
  if (c.how == cutting::kind::bytewise) {
    while (consumed < input.size() && more()) {
      const std::size_t n = feed(input.substr(consumed, 1));
      if (n == 0) break;
      consumed += n;
    }
    return consumed;
  }
  const std::array<std::size_t, 2> ends{c.how == cutting::kind::split ? c.at : input.size(),
                                        input.size()};
  const std::size_t pieces = c.how == cutting::kind::split ? 2 : 1;
  for (std::size_t i = 0; i < pieces; ++i) {
    if (!more()) break;
    if (ends[i] <= consumed) continue;
    consumed += feed(input.substr(consumed, ends[i] - consumed));
  }
  return consumed;
}

/// Checks that `run(cutting)`, which feeds the input cut that way and
/// returns everything observable (compared with ==), gives `whole`, the
/// outcome of the input fed whole, when the input is fed one byte at a time
/// and when it is cut in two at every point up to `last_cut`. The first
/// cut that differs is reported, not every one after it.
template <class Outcome, class Run>
void check_every_split(const Outcome& whole, std::size_t last_cut, Run&& run) {
  CHECK(run(cutting::bytewise()) == whole);
  for (std::size_t cut = 0; cut <= last_cut; ++cut) {
    const auto split = run(cutting::split_at(cut));
    if (!(split == whole)) {
      CAPTURE(cut);
      CHECK(split == whole);
      break;
    }
  }
}

}  // namespace gust::test
