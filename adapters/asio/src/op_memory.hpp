// Memory for the Asio loop's own operations: the wait on the inner epoll
// set, the deadline timer's wait, the accept waits and the posted turns.
//
// Asio allocates every operation it starts through the handler's associated
// allocator. The default recycles through a per-thread cache of two blocks
// per kind, and the loop's waits and posts, interleaved when big messages
// leave input for a later turn, outgrew it: heaptrack counted about one
// allocation per 64 KiB echo. These blocks are recycled by size class
// instead. A lock, because in attached mode an operation may be freed on
// whichever thread of the user's pool completes it; shared, because such an
// operation may be freed after the loop is gone.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace gust::detail {

class op_memory {
 public:
  op_memory() = default;
  op_memory(const op_memory&) = delete;
  op_memory& operator=(const op_memory&) = delete;
  ~op_memory() {
    for (auto& list : free_)
      for (void* p : list) ::operator delete(p);
  }

  void* allocate(std::size_t n) {
    const std::size_t k = size_class(n);
    if (k < classes) {
      std::lock_guard lk(m_);
      if (!free_[k].empty()) {
        void* p = free_[k].back();
        free_[k].pop_back();
        return p;
      }
    }
    return ::operator new(k < classes ? k * granule : n);
  }

  void deallocate(void* p, std::size_t n) noexcept {
    const std::size_t k = size_class(n);
    if (k < classes) {
      std::lock_guard lk(m_);
      // (push_back below the reserved capacity cannot throw)
      if (free_[k].size() < free_[k].capacity()) {
        free_[k].push_back(p);
        return;
      }
    }
    ::operator delete(p);
  }

 private:
  static constexpr std::size_t granule = 64;
  static constexpr std::size_t classes = 17;       // blocks up to 1 KiB
  static constexpr std::size_t kept_per_class = 16;  // a loop has a few in flight
  static std::size_t size_class(std::size_t n) noexcept { return (n + granule - 1) / granule; }

  std::mutex m_;
  std::array<std::vector<void*>, classes> free_ = [] {
    std::array<std::vector<void*>, classes> a;
    for (auto& v : a) v.reserve(kept_per_class);
    return a;
  }();
};

/// An Allocator over an op_memory (asio::bind_allocator).
template <class T>
struct op_allocator {
  using value_type = T;
  std::shared_ptr<op_memory> mem;

  explicit op_allocator(std::shared_ptr<op_memory> m) noexcept : mem(std::move(m)) {}
  template <class U>
  op_allocator(const op_allocator<U>& o) noexcept : mem(o.mem) {}

  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "op_memory hands out operator new's alignment");
    return static_cast<T*>(mem->allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { mem->deallocate(p, n * sizeof(T)); }

  template <class U>
  bool operator==(const op_allocator<U>& o) const noexcept { return mem == o.mem; }
};

}  // namespace gust::detail
