// gust/deflate_pool.hpp: zlib state shared by the connections of one thread.
//
// With no context takeover, a compressor or decompressor is needed only
// while one message is being compressed or inflated. Connections that share
// a pool (settings.deflate.pool) borrow a stream for that message and give it
// back, so an idle connection holds no zlib memory at all: the pool holds as
// many streams as messages were in progress at once, not one per connection.
// A pool is not thread-safe: one per event loop or thread, outliving the
// connections that use it.
#pragma once

#include <cstddef>
#include <memory>

namespace gust {

class deflate_pool {
 public:
  deflate_pool();
  ~deflate_pool();
  deflate_pool(const deflate_pool&) = delete;
  deflate_pool& operator=(const deflate_pool&) = delete;

  /// Bytes zlib holds in the pool's idle streams. A stream lent to a
  /// connection is counted in that connection's memory().compression.
  std::size_t memory() const noexcept;
  /// Streams kept, idle or lent.
  std::size_t streams() const noexcept;

  struct impl;
  impl& internals() noexcept { return *impl_; }

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace gust
