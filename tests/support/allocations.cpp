#include "allocations.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {

std::atomic<bool> counting{false};
std::atomic<std::size_t> n_allocs{0}, n_frees{0}, n_bytes{0}, n_largest{0};

void note(std::size_t n) noexcept {
  if (!counting.load(std::memory_order_relaxed)) return;
  n_allocs.fetch_add(1, std::memory_order_relaxed);
  n_bytes.fetch_add(n, std::memory_order_relaxed);
  std::size_t cur = n_largest.load(std::memory_order_relaxed);
  while (n > cur && !n_largest.compare_exchange_weak(cur, n, std::memory_order_relaxed)) {
  }
}

void* allocate(std::size_t n) {
  note(n);
  void* p = std::malloc(n ? n : 1);
  if (!p) std::abort();
  return p;
}

void* allocate_aligned(std::size_t n, std::align_val_t al) {
  note(n);
  const std::size_t a = static_cast<std::size_t>(al);
  void* p = std::aligned_alloc(a, ((n ? n : 1) + a - 1) / a * a);
  if (!p) std::abort();
  return p;
}

void release(void* p) noexcept {
  if (p && counting.load(std::memory_order_relaxed)) n_frees.fetch_add(1, std::memory_order_relaxed);
  std::free(p);
}

}  // namespace

namespace gust::test {

allocation_scope::allocation_scope() noexcept {
  n_allocs = 0;
  n_frees = 0;
  n_bytes = 0;
  n_largest = 0;
  counting = true;
}
allocation_scope::~allocation_scope() { counting = false; }
std::size_t allocation_scope::count() const noexcept { return n_allocs.load(); }
std::size_t allocation_scope::frees() const noexcept { return n_frees.load(); }
std::size_t allocation_scope::total() const noexcept { return n_bytes.load(); }
std::size_t allocation_scope::largest() const noexcept { return n_largest.load(); }

}  // namespace gust::test

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
