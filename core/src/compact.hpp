// Compact forms of the fields an idle connection keeps, so that it costs
// little memory: a deadline in 8 bytes instead of 16, and a string that is
// almost always empty in 8 bytes instead of 32.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>

#include "gust/time.hpp"

namespace gust::detail {

/// An optional time_point with time_point::min() as "none" (a deadline is
/// never that far in the past). Reads like std::optional<time_point>.
class optional_time {
 public:
  optional_time() noexcept = default;
  optional_time(std::nullopt_t) noexcept {}
  optional_time(time_point t) noexcept : t_(t) {}
  explicit operator bool() const noexcept { return t_ != none(); }
  bool has_value() const noexcept { return t_ != none(); }
  time_point operator*() const noexcept { return t_; }
  void reset() noexcept { t_ = none(); }
  operator std::optional<time_point>() const noexcept {
    return has_value() ? std::optional<time_point>(t_) : std::nullopt;
  }

 private:
  static constexpr time_point none() noexcept { return time_point::min(); }
  time_point t_ = none();
};

/// An immutable string in one pointer: its size, then its bytes, in one
/// allocation; none when empty.
class small_string {
 public:
  small_string() noexcept = default;
  small_string& operator=(std::string_view s) {
    if (s.empty()) {
      p_.reset();
      return *this;
    }
    const auto n = static_cast<std::uint32_t>(s.size());
    auto p = std::make_unique_for_overwrite<char[]>(sizeof n + n);
    std::memcpy(p.get(), &n, sizeof n);
    std::memcpy(p.get() + sizeof n, s.data(), n);
    p_ = std::move(p);
    return *this;
  }
  void assign(std::string_view s) { *this = s; }
  operator std::string_view() const noexcept {
    if (!p_) return {};
    std::uint32_t n;
    std::memcpy(&n, p_.get(), sizeof n);
    return {p_.get() + sizeof n, n};
  }
  bool empty() const noexcept { return !p_; }
  std::size_t size() const noexcept { return std::string_view(*this).size(); }
  /// Bytes allocated.
  std::size_t heap() const noexcept { return p_ ? sizeof(std::uint32_t) + size() : 0; }

 private:
  std::unique_ptr<char[]> p_;
};

}  // namespace gust::detail
