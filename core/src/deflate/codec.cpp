#include "codec.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace gust::detail {
namespace {

// zlib's allocations go through these so each stream knows what it holds:
// the number a server operator needs per connection.
void* counted_alloc(void* opaque, unsigned items, unsigned size) {
  const std::size_t n = std::size_t{items} * size;
  auto* p = static_cast<std::size_t*>(std::malloc(n + sizeof(std::max_align_t)));
  if (!p) return Z_NULL;
  *p = n;
  static_cast<zlib_memory*>(opaque)->bytes += n;
  return reinterpret_cast<std::byte*>(p) + sizeof(std::max_align_t);
}

void counted_free(void* opaque, void* address) {
  if (!address) return;
  auto* p = reinterpret_cast<std::size_t*>(static_cast<std::byte*>(address) - sizeof(std::max_align_t));
  static_cast<zlib_memory*>(opaque)->bytes -= *p;
  std::free(p);
}

z_stream* new_stream(zlib_memory& mem) {
  auto* z = static_cast<z_stream*>(counted_alloc(&mem, 1, sizeof(z_stream)));
  if (!z) return nullptr;
  std::memset(z, 0, sizeof(z_stream));
  z->zalloc = counted_alloc;
  z->zfree = counted_free;
  z->opaque = &mem;
  return z;
}

// 7.2.1: the sync flush's empty stored block, removed by the sender.
constexpr std::byte trailer[4] = {std::byte{0x00}, std::byte{0x00}, std::byte{0xff}, std::byte{0xff}};

constexpr std::size_t out_step = 16 * 1024;

}  // namespace

bool deflate_available() noexcept { return true; }

// ---------------------------------------------------------------------------
// deflater

deflater::deflater(int window_bits, int level, int mem_level) noexcept
    : window_bits_(window_bits), level_(level), mem_level_(mem_level) {}

deflater::~deflater() {
  if (!z_) return;
  deflateEnd(z_);
  counted_free(&mem_, z_);
}

bool deflater::start() noexcept {
  if (z_) return true;
  z_ = new_stream(mem_);
  if (!z_) return false;
  // Negative window bits: raw deflate, no zlib header (7.2.1).
  if (deflateInit2(z_, level_, Z_DEFLATED, -zlib_window_bits(window_bits_), mem_level_,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    counted_free(&mem_, z_);
    z_ = nullptr;
    return false;
  }
  return true;
}

bool deflater::compress(std::span<const std::byte> in, bool final, message_buffer& out, output_pool* pool) {
  if (!start()) return false;
  z_->next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(in.data()));
  z_->avail_in = static_cast<uInt>(in.size());
  // Z_SYNC_FLUSH: every byte given so far is in the output, ending on a byte
  // boundary with 00 00 ff ff; loop until zlib leaves room unused.
  for (;;) {
    const std::size_t room = std::max<std::size_t>(out_step, deflateBound(z_, z_->avail_in) + 16);
    z_->next_out = reinterpret_cast<Bytef*>(out.prepare(room, pool));
    z_->avail_out = static_cast<uInt>(room);
    const int rc = ::deflate(z_, Z_SYNC_FLUSH);
    out.commit(room - z_->avail_out);
    if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
    if (z_->avail_out != 0 && z_->avail_in == 0) break;
  }
  if (final && out.size() >= 4 && std::memcmp(out.data() + out.size() - 4, trailer, 4) == 0)
    out.shrink_by(4);
  return true;
}

void deflater::reset() noexcept {
  if (z_) deflateReset(z_);
}

// ---------------------------------------------------------------------------
// inflater

inflater::inflater(int window_bits) noexcept : window_bits_(window_bits) {}

inflater::~inflater() {
  if (!z_) return;
  inflateEnd(z_);
  counted_free(&mem_, z_);
}

bool inflater::start() noexcept {
  if (z_) return true;
  z_ = new_stream(mem_);
  if (!z_) return false;
  // Always the largest window: every valid stream fits it, and zlib checks a
  // smaller one only against what is still in its output buffer, so a peer
  // breaking the negotiated window would be refused or not depending on how
  // its bytes were split. The negotiated bits bind the peer, not us.
  if (inflateInit2(z_, -15) != Z_OK) {
    counted_free(&mem_, z_);
    z_ = nullptr;
    return false;
  }
  return true;
}

inflater::result inflater::inflate(std::span<const std::byte> in, message_buffer& out,
                                   std::size_t budget, output_pool* pool) {
  if (in.empty()) return result::ok;
  if (!start()) return result::no_memory;
  // After a final block the stream is over; what follows in this message is
  // padding (RFC 7692 7.2.3.4 ends "f3 ... 07 00" with one more 00) and the
  // trailer we append. zlib ignores it the same way.
  if (ended_) return result::ok;
  z_->next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(in.data()));
  z_->avail_in = static_cast<uInt>(in.size());
  std::size_t produced = 0;
  for (;;) {
    // One byte past the budget tells "too big" from "exactly at the limit".
    // All the room the buffer has (it doubles as it grows), never more than
    // the budget allows.
    const std::size_t cap = budget - produced + 1;
    std::byte* dst = out.prepare(std::min(out_step, cap), pool);
    const std::size_t room = std::min({out.capacity() - out.size(), cap, std::size_t{UINT32_MAX}});
    z_->next_out = reinterpret_cast<Bytef*>(dst);
    z_->avail_out = static_cast<uInt>(room);
    const int rc = ::inflate(z_, Z_SYNC_FLUSH);
    const std::size_t got = room - z_->avail_out;
    out.commit(got);
    produced += got;
    if (produced > budget) return result::too_big;
    if (rc == Z_STREAM_END) {
      ended_ = true;
      return result::ok;
    }
    if (rc == Z_BUF_ERROR) return result::ok;  // needs more input
    if (rc != Z_OK) return rc == Z_MEM_ERROR ? result::no_memory : result::corrupt;
    if (z_->avail_in == 0 && z_->avail_out != 0) return result::ok;
  }
}

inflater::result inflater::finish(message_buffer& out, std::size_t budget, output_pool* pool) {
  if (ended_) {
    // The sender ended the stream with BFINAL: the next message starts anew.
    ended_ = false;
    if (z_) inflateReset(z_);
    return result::ok;
  }
  return inflate(trailer, out, budget, pool);
}

void inflater::reset() noexcept {
  ended_ = false;
  if (z_) inflateReset(z_);
}

}  // namespace gust::detail

// ---------------------------------------------------------------------------
// the pool

namespace gust {

using detail::deflater;
using detail::inflater;

std::unique_ptr<deflater> deflate_pool::impl::take_deflater(int window_bits, int level,
                                                            int mem_level) {
  ++lent;
  for (auto it = idle_deflaters.begin(); it != idle_deflaters.end(); ++it) {
    if ((*it)->matches(window_bits, level, mem_level)) {
      auto d = std::move(*it);
      idle_deflaters.erase(it);
      return d;
    }
  }
  return std::make_unique<deflater>(window_bits, level, mem_level);
}

std::unique_ptr<inflater> deflate_pool::impl::take_inflater(int window_bits) {
  ++lent;
  for (auto it = idle_inflaters.begin(); it != idle_inflaters.end(); ++it) {
    if ((*it)->matches(window_bits)) {
      auto i = std::move(*it);
      idle_inflaters.erase(it);
      return i;
    }
  }
  return std::make_unique<inflater>(window_bits);
}

void deflate_pool::impl::give_back(std::unique_ptr<deflater> d) {
  --lent;
  d->reset();
  idle_deflaters.push_back(std::move(d));
}

void deflate_pool::impl::give_back(std::unique_ptr<inflater> i) {
  --lent;
  i->reset();
  idle_inflaters.push_back(std::move(i));
}

deflate_pool::deflate_pool() : impl_(std::make_unique<impl>()) {}
deflate_pool::~deflate_pool() = default;

std::size_t deflate_pool::memory() const noexcept {
  std::size_t n = impl_->scratch.capacity();
  for (auto& d : impl_->idle_deflaters) n += d->memory();
  for (auto& i : impl_->idle_inflaters) n += i->memory();
  return n;
}

std::size_t deflate_pool::streams() const noexcept {
  return impl_->idle_deflaters.size() + impl_->idle_inflaters.size() + impl_->lent;
}

}  // namespace gust
