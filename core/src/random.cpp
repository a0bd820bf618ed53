#include "random.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>

namespace gust::detail {

void fill_random(std::span<std::byte> out) noexcept {
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      // Predictable masks would defeat RFC 6455 10.3; sending with weak ones
      // is worse than stopping.
      std::abort();
    }
  }
}

}  // namespace gust::detail
