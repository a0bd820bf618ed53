// The buffer a message is assembled in when it cannot be delivered where it
// lies: an inflated message, a fragmented one, a compressed one on its way
// out.
//
// Why not std::vector: growing one zero-fills the new bytes that zlib or a
// memcpy overwrites at once, and its storage cannot come from the
// output_pool's blocks. With a pool, storage of a block's size is taken from
// the pool's blocks and given back to them, so a connection echoing
// 1 MiB compressed messages reuses the same pages message after message
// instead of mapping, faulting and unmapping a fresh megabyte each time.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>

#include "output_queue.hpp"

namespace gust::detail {

class message_buffer {
 public:
  message_buffer() = default;
  message_buffer(message_buffer&&) noexcept = default;
  message_buffer& operator=(message_buffer&&) noexcept = default;

  std::byte* data() noexcept { return p_.get(); }
  const std::byte* data() const noexcept { return p_.get(); }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cap_; }
  bool empty() const noexcept { return size_ == 0; }
  operator std::span<const std::byte>() const noexcept { return {p_.get(), size_}; }

  void clear() noexcept { size_ = 0; }
  /// At least `n` writable bytes after size(), not initialised; commit()
  /// what was written. Growth doubles, so appends are amortised O(1).
  std::byte* prepare(std::size_t n, output_pool* pool) {
    if (cap_ - size_ < n) grow(size_ + n, pool);
    return p_.get() + size_;
  }
  void commit(std::size_t n) noexcept { size_ += n; }
  void append(const std::byte* p, std::size_t n, output_pool* pool) {
    if (n == 0) return;
    std::memcpy(prepare(n, pool), p, n);
    commit(n);
  }
  void push_back(std::byte b, output_pool* pool) { append(&b, 1, pool); }
  void shrink_by(std::size_t n) noexcept { size_ -= std::min(n, size_); }
  /// Storage of exactly size() bytes (for a buffer kept long, not pooled).
  void shrink_to_fit() {
    if (cap_ == size_) return;
    auto exact = size_ ? std::make_unique_for_overwrite<std::byte[]>(size_) : nullptr;
    if (size_) std::memcpy(exact.get(), p_.get(), size_);
    p_ = std::move(exact);
    cap_ = size_;
  }
  /// Gives the storage up: to the pool's blocks if it came from there.
  void release(output_pool* pool) noexcept {
    output_pool::impl::give_storage(pool, std::move(p_), cap_);
    size_ = cap_ = 0;
  }

 private:
  void grow(std::size_t need, output_pool* pool) {
    // Powers of two, pooled or not: a doubling stays one, so the pool's
    // rounding never adds to it, and the buffer is under twice its content.
    std::size_t cap = std::bit_ceil(std::max(need, cap_ * 2));
    auto grown = output_pool::impl::take_storage(pool, cap);
    const std::size_t size = size_;
    if (size) std::memcpy(grown.get(), p_.get(), size);
    release(pool);
    p_ = std::move(grown);
    cap_ = cap;
    size_ = size;
  }

  std::unique_ptr<std::byte[]> p_;
  std::size_t size_ = 0;
  std::size_t cap_ = 0;
};

}  // namespace gust::detail
