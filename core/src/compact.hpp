// Compact forms of the fields an idle connection keeps, so that it costs
// little memory: a deadline or a round trip in 8 bytes instead of 16, and a
// string that is almost always empty in 8 bytes instead of 32.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>

#include "gust/time.hpp"

namespace gust::detail {

/// An optional time_point or duration with T::min() as "none" (a deadline
/// is never that far in the past, a round trip never that long negative).
/// Reads like std::optional<T>.
template <class T>
class optional_min {
 public:
  optional_min() noexcept = default;
  optional_min(std::nullopt_t) noexcept {}
  optional_min(T t) noexcept : t_(t) {}
  explicit operator bool() const noexcept { return t_ != none(); }
  bool has_value() const noexcept { return t_ != none(); }
  T operator*() const noexcept { return t_; }
  void reset() noexcept { t_ = none(); }
  operator std::optional<T>() const noexcept { return has_value() ? std::optional<T>(t_) : std::nullopt; }

 private:
  static constexpr T none() noexcept { return T::min(); }
  T t_ = none();
};
using optional_time = optional_min<time_point>;
using optional_duration = optional_min<duration>;

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
