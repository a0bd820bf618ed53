// Incremental UTF-8 validation (RFC 3629), failing at the first byte that
// makes the stream invalid: a truncated or overlong sequence, a surrogate or
// a code point above U+10FFFF is rejected as soon as its offending byte is
// seen (e.g. F4 90 fails at 90), which is what RFC 6455 8.1 "fail fast" and
// the Autobahn 6.x cases need. ASCII runs are skipped 16/32 bytes at a time.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mask.hpp"

namespace gust::detail {

class utf8_validator {
 public:
  /// Validates the next `n` bytes of the stream. false at the first invalid
  /// byte; the validator then stays failed.
  bool feed(const std::byte* data, std::size_t n) noexcept;
  /// True when the stream so far ends on a code point boundary (a complete
  /// message must also be complete()).
  bool complete() const noexcept { return state_ == 0; }
  bool failed() const noexcept { return state_ == reject_state; }
  void reset() noexcept { state_ = 0; }

  /// The hot path of a masked text frame: unmasks `n` bytes in place (key
  /// phase as in mask_in_place) and validates them, in one pass over the
  /// memory. Returns false at the first invalid byte; the bytes are unmasked
  /// regardless.
  bool unmask_and_feed(std::byte* data, std::size_t n, mask_key key,
                       std::size_t phase) noexcept;

  /// States are bit offsets into a transition row (see utf8.cpp): 0 is the
  /// start state, this one absorbs everything after an error.
  static constexpr std::uint32_t reject_state = 6;

 private:
  std::uint32_t state_ = 0;
};

/// Whole-buffer check, for reasons and API arguments.
bool is_valid_utf8(const void* data, std::size_t n) noexcept;

}  // namespace gust::detail
