// Replaces the global operator new and delete of the benchmark binaries so
// a benchmark can count the allocations of its timed loop (see
// count_allocations in common.hpp). Every form is replaced (plain, array,
// aligned, nothrow; the deletes to match), counting only while counting is
// on, so the rest of the program (Google Benchmark's bookkeeping, setup)
// runs untouched. Single-threaded: the benchmarks run on one thread.
#include <cstdlib>
#include <new>

#include "common.hpp"

namespace gust::bench {
namespace {

bool counting = false;
alloc_stats stats;

void* allocate(std::size_t n) {
  if (counting) {
    ++stats.allocs;
    stats.bytes += n;
  }
  if (n == 0) n = 1;
  return std::malloc(n);
}

void* allocate_aligned(std::size_t n, std::align_val_t al) {
  if (counting) {
    ++stats.allocs;
    stats.bytes += n;
  }
  const auto a = static_cast<std::size_t>(al);
  // aligned_alloc wants a size that is a multiple of the alignment.
  std::size_t rounded = (n + a - 1) / a * a;
  if (rounded == 0) rounded = a;
  return std::aligned_alloc(a, rounded);
}

}  // namespace

void set_counting(bool on) noexcept { counting = on; }
alloc_stats alloc_snapshot() noexcept { return stats; }

}  // namespace gust::bench

using gust::bench::allocate;
using gust::bench::allocate_aligned;

void* operator new(std::size_t n) {
  if (void* p = allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new(std::size_t n, std::align_val_t al) {
  if (void* p = allocate_aligned(n, al)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t al) {
  if (void* p = allocate_aligned(n, al)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return allocate_aligned(n, al);
}
void* operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return allocate_aligned(n, al);
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
