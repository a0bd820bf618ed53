// permessage-deflate's compressor and decompressor (RFC 7692 7.2), over
// zlib's raw deflate, with the memory of each stream counted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../message_buffer.hpp"
#include "gust/deflate_pool.hpp"

struct z_stream_s;

namespace gust::detail {

/// False in a build without zlib (meson -Ddeflate=disabled): the engine then
/// never offers nor accepts permessage-deflate.
bool deflate_available() noexcept;

/// One zlib stream's allocations, counted through zalloc/zfree.
struct zlib_memory {
  std::size_t bytes = 0;
};

class deflater {
 public:
  deflater(int window_bits, int level, int mem_level) noexcept;
  ~deflater();
  deflater(const deflater&) = delete;
  deflater& operator=(const deflater&) = delete;

  /// Compresses `in`, the next part of a message, appending to `out`. Each
  /// call ends with a sync flush, so the bytes can go out as a frame; with
  /// `final` the flush's trailing 00 00 ff ff is removed (7.2.1). false
  /// when zlib fails (out of memory). Large output storage comes from
  /// `pool`'s blocks when there is one.
  bool compress(std::span<const std::byte> in, bool final, message_buffer& out, output_pool* pool);
  /// Forgets the context: the next message starts a fresh stream
  /// (no context takeover).
  void reset() noexcept;
  std::size_t memory() const noexcept { return mem_.bytes; }
  bool matches(int window_bits, int level, int mem_level) const noexcept {
    return window_bits == window_bits_ && level == level_ && mem_level == mem_level_;
  }

 private:
  bool start() noexcept;
  z_stream_s* z_ = nullptr;
  zlib_memory mem_;
  int window_bits_, level_, mem_level_;
};

class inflater {
 public:
  explicit inflater(int window_bits) noexcept;
  ~inflater();
  inflater(const inflater&) = delete;
  inflater& operator=(const inflater&) = delete;

  enum class result { ok, too_big, corrupt, no_memory };
  /// Inflates `in`, the next part of a compressed message, appending the
  /// output to `out`. `budget` is how many more bytes the message may
  /// produce: past it, too_big, after at most `budget` bytes of output and
  /// the work to make them (a decompression bomb costs no more than a message
  /// of the maximum size).
  result inflate(std::span<const std::byte> in, message_buffer& out, std::size_t budget,
                 output_pool* pool);
  /// Ends a message: inflates the 00 00 ff ff the sender removed (7.2.2).
  result finish(message_buffer& out, std::size_t budget, output_pool* pool);
  void reset() noexcept;
  std::size_t memory() const noexcept { return mem_.bytes; }
  bool matches(int window_bits) const noexcept { return window_bits == window_bits_; }

 private:
  bool start() noexcept;
  z_stream_s* z_ = nullptr;
  zlib_memory mem_;
  int window_bits_;
  bool ended_ = false;  // the sender closed the stream with a final block
};

/// zlib refuses raw deflate with a 256-byte window (8 bits): a compressor
/// can never honour 8 (negotiation declines or fails instead). The
/// decompressor always uses 15 bits (see inflater::start), which inflates a
/// stream made with any smaller window.
constexpr int zlib_window_bits(int negotiated) noexcept { return negotiated < 9 ? 9 : negotiated; }

}  // namespace gust::detail

struct gust::deflate_pool::impl {
  std::vector<std::unique_ptr<detail::deflater>> idle_deflaters;
  std::vector<std::unique_ptr<detail::inflater>> idle_inflaters;
  std::size_t lent = 0;  // streams out with connections (they count their memory)
  detail::message_buffer scratch;  // compressed output, used within one send()

  /// A reset stream with these parameters, made if none is idle.
  std::unique_ptr<detail::deflater> take_deflater(int window_bits, int level, int mem_level);
  std::unique_ptr<detail::inflater> take_inflater(int window_bits);
  void give_back(std::unique_ptr<detail::deflater> d);
  void give_back(std::unique_ptr<detail::inflater> i);
};
