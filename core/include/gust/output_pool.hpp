// gust/output_pool.hpp: output storage, and the working state of
// connections with traffic in flight, shared by the connections of one
// thread.
//
// A connection queues what it sends in an arena of its own (so steady-state
// sending does not allocate). Connections that share a pool
// (settings.output_pool) borrow that storage when they queue bytes and give
// it back once everything queued was written: an idle connection holds no
// output storage, and the pool holds about as many arenas as connections
// had output in flight at once, not one per connection. The pool keeps at
// most `max_cached` idle ones. Storage of 16 KiB and more (an arena on its
// way up, one grown past 256 KiB, input buffers, the buffers a fragmented,
// inflated or compressed message is built in) comes from and goes back to
// a cache of large blocks (at most 128 of them and 32 MiB in all) that the
// next big message on any connection of the pool reuses, so that big
// messages do not allocate either once it is warm.
//
// The same goes for the rest of a connection's working state (input
// buffer, frame and message being received, output queue, fragmented send):
// borrowed when bytes arrive or are queued, given back when the connection
// is idle again (no input retained, nothing half received or half sent,
// nothing queued), so an open idle connection keeps only its protocol
// state. At most `max_cached` idle ones are kept, their buffers trimmed.
//
// Not thread-safe: one per event loop or thread, outliving the connections
// that use it.
#pragma once

#include <cstddef>
#include <memory>

namespace gust {

class output_pool {
 public:
  explicit output_pool(std::size_t max_cached = 256);
  ~output_pool();
  output_pool(const output_pool&) = delete;
  output_pool& operator=(const output_pool&) = delete;

  /// Bytes held by idle storage in the pool (storage lent to a connection
  /// is counted in its memory()).
  std::size_t memory() const noexcept;
  /// Idle arenas kept.
  std::size_t cached() const noexcept;

  struct impl;
  impl& internals() noexcept { return *impl_; }

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace gust
