#include "random.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
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

void thread_random(std::span<std::byte> out) noexcept {
  thread_local std::byte pool[4096];
  thread_local std::size_t used = sizeof(pool);
  std::size_t done = 0;
  while (done < out.size()) {
    if (used == sizeof(pool)) {
      fill_random(pool);
      used = 0;
    }
    const std::size_t n = std::min(out.size() - done, sizeof(pool) - used);
    std::memcpy(out.data() + done, pool + used, n);
    // Served bytes are wiped so a later memory disclosure cannot reveal
    // masks already used.
    std::memset(pool + used, 0, n);
    used += n;
    done += n;
  }
}

}  // namespace gust::detail
