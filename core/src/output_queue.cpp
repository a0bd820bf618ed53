#include "output_queue.hpp"

#include "traffic.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace gust::detail {
namespace {

// Above this the arena is released when the queue drains: one large message
// should not pin its size in every idle connection.
constexpr std::size_t arena_keep_limit = 256 * 1024;
constexpr std::size_t arena_min_size = 4096;
// POSIX guarantees at least this many buffers per writev (IOV_MAX).
constexpr std::size_t max_iov = 1024;

}  // namespace

output_queue::~output_queue() = default;

// Pooled: storage is taken when the first byte is queued, with the segment
// and iovec lists that went with it, and given back when the queue drains.
void output_queue::borrow_arena() {
  auto& idle = pool_->internals().idle;
  if (idle.empty()) return;
  auto& k = idle.back();
  pool_->internals().bytes -= k.cap + k.segs.capacity() * sizeof(segment) +
                              k.iov.capacity() * sizeof(const_buffer);
  arena_ = std::move(k.arena);
  arena_cap_ = k.cap;
  if (segs_.capacity() < k.segs.capacity()) segs_.swap(k.segs);
  if (iov_.capacity() < k.iov.capacity()) iov_.swap(k.iov);
  idle.pop_back();
}

void output_queue::give_back() {
  auto& p = pool_->internals();
  if (arena_cap_ == 0 && segs_.capacity() == 0 && iov_.capacity() == 0) return;
  if (arena_cap_ > arena_keep_limit) {
    p.give_block(std::move(arena_), arena_cap_);
    arena_cap_ = 0;
  }
  if (p.idle.size() < p.max_cached) {
    p.bytes += arena_cap_ + segs_.capacity() * sizeof(segment) + iov_.capacity() * sizeof(const_buffer);
    p.idle.push_back({std::move(arena_), arena_cap_, std::move(segs_), std::move(iov_)});
  } else {
    arena_.reset();
  }
  arena_cap_ = 0;
  segs_ = {};
  iov_ = {};
}

std::byte* output_queue::arena_alloc(std::size_t n) {
  if (arena_used_ + n > arena_cap_) make_room(n);
  std::byte* p = arena_.get() + arena_used_;
  arena_used_ += n;
  return p;
}

void output_queue::make_room(std::size_t n) {
  if (pool_ && arena_cap_ == 0) borrow_arena();
  if (arena_used_ + n > arena_cap_) {
    // Slide the live bytes down to the start before growing.
    std::size_t live_start = arena_used_;
    for (std::size_t i = head_; i < segs_.size(); ++i)
      if (segs_[i].k == kind::arena) live_start = std::min(live_start, segs_[i].offset);
    if (live_start > 0) {
      std::memmove(arena_.get(), arena_.get() + live_start, arena_used_ - live_start);
      for (std::size_t i = head_; i < segs_.size(); ++i)
        if (segs_[i].k == kind::arena) segs_[i].offset -= live_start;
      arena_used_ -= live_start;
    }
    if (arena_used_ + n > arena_cap_) {
      std::size_t cap = std::max({arena_cap_ * 2, arena_used_ + n, arena_min_size});
      auto grown = output_pool::impl::take_storage(pool_, cap);
      if (arena_used_) std::memcpy(grown.get(), arena_.get(), arena_used_);
      output_pool::impl::give_storage(pool_, std::move(arena_), arena_cap_);
      arena_ = std::move(grown);
      arena_cap_ = cap;
    }
  }
}

std::byte* output_queue::append_slow(std::size_t n, bool frame_start, bool control) {
  std::byte* p = arena_alloc(n);
  segs_.push_back({kind::arena, frame_start, control, false, static_cast<std::size_t>(p - arena_.get()), n,
                   nullptr, nullptr});
  pending_bytes_ += n;
  return p;
}

void output_queue::append_external(const std::byte* p, std::size_t n,
                                   std::shared_ptr<const void> owner, bool frame_start) {
  packed_open_ = false;
  if (n == 0) return;
  if (pool_ && arena_cap_ == 0 && segs_.capacity() == 0) borrow_arena();
  segs_.push_back({kind::external, frame_start, false, false, 0, n, p, std::move(owner)});
  pending_bytes_ += n;
}

bool output_queue::started(std::size_t index) const noexcept {
  return index == head_ && (head_done_ > 0 || !segs_[index].frame_start);
}

// The frames of a packed run after the one going out become a segment of
// their own, so that what follows "the frame being written" is the next
// segment, as for any other frame. When the head's bytes out end exactly at
// a frame boundary, the head is released instead: it has nothing left.
void output_queue::split_packed_head() {
  if (head_ >= segs_.size() || !segs_[head_].packed || head_done_ == 0) return;
  segment& s = segs_[head_];
  const std::byte* f = arena_.get() + s.offset;
  std::size_t end = 0;
  while (end < head_done_) end += 2 + (std::to_integer<std::size_t>(f[end + 1]) & 0x7f);
  if (end >= s.size) return;  // the frame going out is the run's last
  const segment rest{kind::arena, true, false, true, s.offset + end, s.size - end, nullptr, nullptr};
  s.size = end;
  segs_.insert(segs_.begin() + static_cast<std::ptrdiff_t>(head_ + 1), rest);
  if (head_done_ == end) release_front();
}

std::size_t output_queue::control_insert_position() const noexcept {
  std::size_t pos = head_;
  if (pos < segs_.size() && started(pos)) {
    ++pos;  // finish the frame that is going out
    while (pos < segs_.size() && !segs_[pos].frame_start) ++pos;
  }
  while (pos < segs_.size() && segs_[pos].control) ++pos;
  return pos;
}

std::byte* output_queue::insert_control(std::size_t n) {
  packed_open_ = false;
  split_packed_head();
  std::byte* p = arena_alloc(n);
  const std::size_t pos = control_insert_position();
  segs_.insert(segs_.begin() + static_cast<std::ptrdiff_t>(pos),
               segment{kind::arena, true, true, false, static_cast<std::size_t>(p - arena_.get()), n,
                       nullptr, nullptr});
  pending_bytes_ += n;
  return p;
}

void output_queue::queue_pong(const std::byte* frame, std::size_t n) {
  packed_open_ = false;
  n = std::min(n, pong_slot_size);
  if (pool_ && arena_cap_ == 0 && segs_.capacity() == 0) borrow_arena();
  if (!pong_slots_) pong_slots_ = std::make_unique<pong_slot[]>(2);
  split_packed_head();
  for (std::size_t i = head_; i < segs_.size(); ++i) {
    segment& s = segs_[i];
    if (s.k == kind::pong && !started(i)) {
      std::memcpy(pong_slots_[s.offset], frame, n);
      pending_bytes_ = pending_bytes_ - s.size + n;
      s.size = n;
      return;
    }
  }
  // At most one pong is going out and none waits: a free slot exists.
  const std::size_t slot = pong_in_use_[0] ? 1 : 0;
  pong_in_use_[slot] = true;
  std::memcpy(pong_slots_[slot], frame, n);
  const std::size_t pos = control_insert_position();
  segs_.insert(segs_.begin() + static_cast<std::ptrdiff_t>(pos),
               segment{kind::pong, true, true, false, slot, n, nullptr, nullptr});
  pending_bytes_ += n;
}

void output_queue::discard_unsent_data() {
  packed_open_ = false;
  split_packed_head();
  std::size_t pos = head_;
  if (pos < segs_.size() && started(pos)) {
    ++pos;
    while (pos < segs_.size() && !segs_[pos].frame_start) ++pos;
  }
  std::size_t keep = pos;
  for (std::size_t i = pos; i < segs_.size(); ++i) {
    if (segs_[i].control) {
      if (keep != i) segs_[keep] = std::move(segs_[i]);
      ++keep;
    } else {
      pending_bytes_ -= segs_[i].size;
    }
  }
  segs_.resize(keep);  // releases the owners of dropped external segments
}

const std::byte* output_queue::data_of(const segment& s) const noexcept {
  switch (s.k) {
    case kind::arena: return arena_.get() + s.offset;
    case kind::external: return s.ptr;
    case kind::pong: return pong_slots_[s.offset];
  }
  return nullptr;
}

std::span<const const_buffer> output_queue::pending() {
  iov_.clear();
  if (head_ == segs_.size()) return iov_;
  // Fewer entries, less for the kernel to walk: a run of small frames
  // written back to back in the arena goes out as one buffer.
  const std::byte* run = data_of(segs_[head_]) + head_done_;
  std::size_t run_size = segs_[head_].size - head_done_;
  const std::byte* const arena = arena_.get();
  for (std::size_t i = head_ + 1; i < segs_.size(); ++i) {
    const segment& sg = segs_[i];
    const std::byte* d = sg.k == kind::arena ? arena + sg.offset : data_of(sg);
    if (d == run + run_size) {
      run_size += sg.size;
      continue;
    }
    iov_.push_back({run, run_size});
    if (iov_.size() == max_iov) return iov_;
    run = d;
    run_size = sg.size;
  }
  iov_.push_back({run, run_size});
  return iov_;
}

void output_queue::release_front() {
  segment& s = segs_[head_];
  if (s.k == kind::pong) pong_in_use_[s.offset] = false;
  s.owner.reset();
  ++head_;
  head_done_ = 0;
}

bool output_queue::consume(std::size_t n) {
  packed_open_ = false;
  if (n > pending_bytes_) return false;
  if (n == pending_bytes_) {
    // Everything went out (the usual case): no segment-by-segment release;
    // clearing the list drops the owners, and no pong slot is in use.
    pending_bytes_ = 0;
    pong_in_use_[0] = pong_in_use_[1] = false;
    head_ = segs_.size();
    head_done_ = 0;
    n = 0;
  }
  pending_bytes_ -= n;
  while (n > 0) {
    const std::size_t left = segs_[head_].size - head_done_;
    if (n < left) {
      head_done_ += n;
      break;
    }
    n -= left;
    release_front();
  }
  if (head_ == segs_.size()) {
    segs_.clear();
    head_ = 0;
    arena_used_ = 0;
    if (pool_) {
      give_back();
    } else if (arena_cap_ > arena_keep_limit) {
      arena_.reset();
      arena_cap_ = 0;
    }
  } else if (head_ >= 64 && head_ * 2 >= segs_.size()) {
    segs_.erase(segs_.begin(), segs_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  return true;
}

std::size_t output_queue::memory() const noexcept {
  return arena_cap_ + segs_.capacity() * sizeof(segment) +
         iov_.capacity() * sizeof(const_buffer) + (pong_slots_ ? 2 * pong_slot_size : 0);
}

}  // namespace gust::detail

namespace gust {

output_pool::output_pool(std::size_t max_cached) : impl_(std::make_unique<impl>()) {
  impl_->max_cached = max_cached;
}
output_pool::~output_pool() = default;

std::unique_ptr<std::byte[]> output_pool::impl::take_block(std::size_t min, std::size_t& cap) {
  // Blocks are powers of two: the same few sizes recur (the input of a
  // frame and the output of its echo, a few bytes apart, share one), and a
  // buffer is at most twice what it asked for. A kept block serves only a
  // request of its own size: a buffer never gets more than a fresh block
  // would give it (a 20 KiB message buffer does not take a 2 MiB arena's
  // block), so what each holds stays within its own bound.
  const std::size_t fresh = std::bit_ceil(min);
  std::size_t best = blocks.size();
  for (std::size_t i = 0; i < blocks.size(); ++i)
    if (blocks[i].cap >= min && blocks[i].cap <= fresh && (best == blocks.size() || blocks[i].cap < blocks[best].cap))
      best = i;
  if (best == blocks.size()) {
    cap = fresh;
    return std::make_unique_for_overwrite<std::byte[]>(cap);
  }
  auto p = std::move(blocks[best].p);
  cap = blocks[best].cap;
  bytes -= cap;
  block_bytes -= cap;
  blocks[best] = std::move(blocks.back());
  blocks.pop_back();
  return p;
}

void output_pool::impl::give_block(std::unique_ptr<std::byte[]> p, std::size_t cap) noexcept {
  if (!p || cap > max_block_bytes) return;
  // Full (in number or in bytes): smaller blocks make room for a larger
  // one, never the other way round.
  while (blocks.size() == max_blocks || block_bytes + cap > max_block_bytes) {
    auto smallest = std::min_element(blocks.begin(), blocks.end(),
                                     [](const block& a, const block& b) { return a.cap < b.cap; });
    if (smallest->cap >= cap) return;
    bytes -= smallest->cap;
    block_bytes -= smallest->cap;
    *smallest = std::move(blocks.back());
    blocks.pop_back();
  }
  bytes += cap;
  block_bytes += cap;
  blocks.push_back({std::move(p), cap});
}
output_pool::impl::~impl() = default;

std::unique_ptr<detail::traffic> output_pool::impl::take_traffic() noexcept {
  if (idle_traffic.empty()) return nullptr;
  std::unique_ptr<detail::traffic> t = std::move(idle_traffic.back());
  idle_traffic.pop_back();
  bytes -= t->memory();
  return t;
}

void output_pool::impl::give_traffic(std::unique_ptr<detail::traffic> t) {
  if (idle_traffic.size() >= max_cached) return;  // freed
  bytes += t->memory();
  idle_traffic.push_back(std::move(t));
}

std::size_t output_pool::memory() const noexcept { return impl_->bytes; }
std::size_t output_pool::cached() const noexcept { return impl_->idle.size(); }

}  // namespace gust
