// Internals of the UTF-8 validator, exposed so the tests can run every
// implementation this CPU supports, not only the one picked at run time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "mask_impl.hpp"
#include "utf8.hpp"

namespace gust::detail::utf8_impl {

using state = std::uint32_t;
inline constexpr state accept_state = 0;
inline constexpr state reject_state = utf8_validator::reject_state;

/// Run the DFA from `s` over `n` bytes; reject_state at the first invalid
/// byte (the rest is not looked at).
using feed_fn = state (*)(const std::byte* data, std::size_t n,
                          state s) noexcept;
/// Unmask `n` bytes in place with `key` (already rotated to data[0]) while
/// running the DFA; all bytes are unmasked even after a failure.
using unmask_feed_fn = state (*)(std::byte* data, std::size_t n,
                                 mask_impl::key_word key, state s) noexcept;

struct implementation {
  mask_impl::isa which;
  feed_fn feed;
  unmask_feed_fn unmask_feed;
};

/// Every implementation this CPU can run, the selected one included.
std::span<const implementation> available() noexcept;

}  // namespace gust::detail::utf8_impl
