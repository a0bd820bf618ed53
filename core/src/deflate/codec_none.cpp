// The codec in a build without zlib: nothing is ever negotiated, so none of
// this runs; it exists so the engine links the same way.
#include "codec.hpp"

namespace gust::detail {

bool deflate_available() noexcept { return false; }

deflater::deflater(int window_bits, int level, int mem_level) noexcept
    : window_bits_(window_bits), level_(level), mem_level_(mem_level) {}
deflater::~deflater() = default;
bool deflater::start() noexcept { return false; }
bool deflater::compress(std::span<const std::byte>, bool, message_buffer&, output_pool*) { return false; }
void deflater::reset() noexcept {}

inflater::inflater(int window_bits) noexcept : window_bits_(window_bits) {}
inflater::~inflater() = default;
bool inflater::start() noexcept { return false; }
inflater::result inflater::inflate(std::span<const std::byte>, message_buffer&, std::size_t, output_pool*) {
  return result::corrupt;
}
inflater::result inflater::finish(message_buffer&, std::size_t, output_pool*) { return result::corrupt; }
void inflater::reset() noexcept {}

}  // namespace gust::detail

namespace gust {

std::unique_ptr<detail::deflater> deflate_pool::impl::take_deflater(int w, int l, int m) {
  return std::make_unique<detail::deflater>(w, l, m);
}
std::unique_ptr<detail::inflater> deflate_pool::impl::take_inflater(int w) {
  return std::make_unique<detail::inflater>(w);
}
void deflate_pool::impl::give_back(std::unique_ptr<detail::deflater>) {}
void deflate_pool::impl::give_back(std::unique_ptr<detail::inflater>) {}
deflate_pool::deflate_pool() : impl_(std::make_unique<impl>()) {}
deflate_pool::~deflate_pool() = default;
std::size_t deflate_pool::memory() const noexcept { return 0; }
std::size_t deflate_pool::streams() const noexcept { return 0; }

}  // namespace gust
