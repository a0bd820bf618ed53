// The bytes a connection wants sent: a queue of segments offered as a
// writev-ready list and released by byte count.
//
// Why segments and not one byte buffer: a server's large payload can be
// referenced where it lies (send_shared, broadcast) instead of copied behind
// its header, and a control frame can be placed between two data frames that
// are already queued, so a pong or close never waits behind megabytes
// (RFC 6455 5.4 allows control frames between fragments).
//
// Storage: copied bytes live in one arena that is reused from its start
// whenever the queue drains, so steady-state sending does not allocate.
// Auto-pongs live in two fixed slots, so a ping flood that is never read
// cannot grow the queue (see queue_pong).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "gust/connection.hpp"
#include "gust/output_pool.hpp"

namespace gust::detail {

class output_queue {
 public:
  output_queue() = default;
  ~output_queue();
  /// Borrow storage from `pool` while bytes are queued (null: keep our own).
  void use_pool(output_pool* pool) noexcept { pool_ = pool; }
  output_queue(const output_queue&) = delete;
  output_queue& operator=(const output_queue&) = delete;

  /// `n` writable bytes at the back of the queue, copied data. `frame_start`
  /// marks the first segment of a frame (where a control frame may be put
  /// before it). The pointer is valid until the next call that adds.
  [[gnu::always_inline]] std::byte* append(std::size_t n, bool frame_start, bool control = false) {
    // Inline for the common case (room in the arena and in the segment
    // list): it runs once per message sent.
    packed_open_ = false;
    if (arena_used_ + n <= arena_cap_ && segs_.size() < segs_.capacity()) [[likely]] {
      std::byte* p = arena_.get() + arena_used_;
      segs_.push_back({kind::arena, frame_start, control, false, arena_used_, n, nullptr, nullptr});
      arena_used_ += n;
      pending_bytes_ += n;
      return p;
    }
    return append_slow(n, frame_start, control);
  }
  /// `n` writable bytes for one whole small frame (a 2-byte header and at
  /// most 125 bytes of payload, unmasked: a server's small message). A run
  /// of them written back to back is one segment, so a burst of small
  /// messages costs one entry to queue, walk and release, not one each.
  /// The run is split where a control frame goes in or unsent data is
  /// dropped (split_packed_head), so both keep their frame granularity.
  [[gnu::always_inline]] std::byte* append_small_frame(std::size_t n) {
    if (packed_open_ && arena_used_ + n <= arena_cap_ && segs_.back().size + n <= packed_limit) [[likely]] {
      std::byte* p = arena_.get() + arena_used_;
      segs_.back().size += n;
      arena_used_ += n;
      pending_bytes_ += n;
      return p;
    }
    std::byte* p = append(n, true);
    segs_.back().packed = true;
    packed_open_ = true;
    return p;
  }
  /// Room for `n` more bytes of appends without the arena growing: a
  /// message queued as several frames grows it once to its size instead of
  /// doubling (and copying what it holds) frame after frame.
  void reserve(std::size_t n) {
    packed_open_ = false;
    if (arena_used_ + n > arena_cap_) make_room(n);
  }
  /// A segment referencing `n` bytes at `p`, kept alive by `owner`.
  void append_external(const std::byte* p, std::size_t n,
                       std::shared_ptr<const void> owner, bool frame_start);
  /// `n` writable bytes for one whole control frame, placed after the frame
  /// being written (if any) and after the control frames already waiting,
  /// but before every data frame not yet started.
  std::byte* insert_control(std::size_t n);
  /// A pong frame (at most 14 + 125 bytes). If a pong queued by this call
  /// earlier has not started going out, it is replaced in place: only the
  /// latest ping is answered (RFC 6455 5.5.3 allows it), and a flood of
  /// pings holds at most two pong frames.
  void queue_pong(const std::byte* frame, std::size_t n);
  /// Drops every data frame that has not started going out; the frame being
  /// written (if any) and control frames stay. For a close that must not
  /// wait: RFC 6455 5.5.1 forbids data frames after it.
  void discard_unsent_data();

  /// The queued bytes as a writev list; segments that lie end to end in
  /// memory (consecutive frames in the arena) are one entry.
  std::span<const const_buffer> pending();
  /// Releases the first `n` pending bytes; false if `n` is above size().
  bool consume(std::size_t n);

  std::size_t size() const noexcept { return pending_bytes_; }
  bool empty() const noexcept { return pending_bytes_ == 0; }
  /// Bytes of storage held (arena capacity, bookkeeping, pong slots).
  std::size_t memory() const noexcept;

 private:
  enum class kind : std::uint8_t { arena, external, pong };
  struct segment {
    kind k;
    bool frame_start;
    bool control;
    bool packed;  // arena: whole small frames only (append_small_frame)
    std::size_t offset;  // arena: offset; pong: slot index
    std::size_t size;
    const std::byte* ptr;  // external only
    std::shared_ptr<const void> owner;
  };
  static constexpr std::size_t pong_slot_size = 14 + 125;
  // Bounds the walk of split_packed_head() (at most ~8,000 frames).
  static constexpr std::size_t packed_limit = 16 * 1024;

  std::byte* arena_alloc(std::size_t n);
  void make_room(std::size_t n);
  std::byte* append_slow(std::size_t n, bool frame_start, bool control);
  const std::byte* data_of(const segment& s) const noexcept;
  std::size_t control_insert_position() const noexcept;
  bool started(std::size_t index) const noexcept;
  void split_packed_head();
  void release_front();

  std::vector<segment> segs_;
  std::size_t head_ = 0;       // first unconsumed segment
  std::size_t head_done_ = 0;  // bytes of segs_[head_] already consumed
  std::size_t pending_bytes_ = 0;
  // The last segment is a packed run that ends where the arena's next bytes
  // go and has not started going out: the next small frame may join it.
  // Everything else that touches the list's tail or the head clears it.
  bool packed_open_ = false;

  std::unique_ptr<std::byte[]> arena_;
  std::size_t arena_cap_ = 0;
  std::size_t arena_used_ = 0;

  // Made at the first pong: a connection that is never pinged holds none.
  using pong_slot = std::byte[pong_slot_size];
  std::unique_ptr<pong_slot[]> pong_slots_;
  bool pong_in_use_[2] = {false, false};

  std::vector<const_buffer> iov_;
  output_pool* pool_ = nullptr;

  void borrow_arena();
  void give_back();
  friend struct gust::output_pool::impl;
};

}  // namespace gust::detail

namespace gust::detail {
struct traffic;
}

namespace gust {

struct output_pool::impl {
  std::size_t max_cached;
  struct kit {
    std::unique_ptr<std::byte[]> arena;
    std::size_t cap = 0;
    std::vector<detail::output_queue::segment> segs;
    std::vector<const_buffer> iov;
  };
  std::vector<kit> idle;
  // Large buffers (input of a big frame, output of a big message) kept for
  // the next big message on any connection: freeing them would hand the
  // pages back to the kernel and fault them in again each time.
  struct block {
    std::unique_ptr<std::byte[]> p;
    std::size_t cap = 0;
  };
  // As many as the connections with a big message in flight at once (100
  // connections echoing 64 KiB need a few dozen), within a bound on bytes:
  // four were too few, and the misses allocated on every few messages.
  static constexpr std::size_t max_blocks = 128;
  static constexpr std::size_t max_block_bytes = std::size_t{32} << 20;
  // Buffers from this size up are taken from and given back to the blocks:
  // an input buffer, an output arena or a message buffer growing by
  // doubling on its way to a large message reuses blocks at every step,
  // not only the last.
  static constexpr std::size_t min_block = 16 * 1024;
  std::vector<block> blocks;
  std::size_t block_bytes = 0;  // of blocks
  std::size_t bytes = 0;        // of everything kept

  /// A kept block of `min` rounded up to a power of two (its size in
  /// `cap`), or a new one of that size.
  std::unique_ptr<std::byte[]> take_block(std::size_t min, std::size_t& cap);
  /// Keeps `p` for reuse, or frees it (too big, or only smaller than every
  /// kept one while the pool is full).
  void give_block(std::unique_ptr<std::byte[]> p, std::size_t cap) noexcept;

  /// Storage of `cap` bytes for a growing buffer (input, arena, message):
  /// a block when `pool` is given and `cap` is a block's size (then `cap`
  /// is rounded up as take_block does), else a fresh allocation.
  static std::unique_ptr<std::byte[]> take_storage(output_pool* pool, std::size_t& cap) {
    if (pool && cap >= min_block) return pool->internals().take_block(cap, cap);
    return std::make_unique_for_overwrite<std::byte[]>(cap);
  }
  /// Gives up storage from take_storage(): back to the blocks if it is a
  /// block's size, else freed.
  static void give_storage(output_pool* pool, std::unique_ptr<std::byte[]> p, std::size_t cap) noexcept {
    if (pool && cap >= min_block) pool->internals().give_block(std::move(p), cap);
  }

  // The traffic states (traffic.hpp) of connections gone idle, at most
  // max_cached: about as many exist as connections had traffic in flight
  // at once. Each is idle as given back, ready for any connection.
  std::vector<std::unique_ptr<detail::traffic>> idle_traffic;
  /// An idle traffic state, or null when none is kept.
  std::unique_ptr<detail::traffic> take_traffic() noexcept;
  /// Keeps `t` (idle) for the next connection, or frees it if full.
  void give_traffic(std::unique_ptr<detail::traffic> t);
  ~impl();
};

}  // namespace gust
