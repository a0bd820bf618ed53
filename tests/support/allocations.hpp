// Counting the global allocation functions, for tests that prove a path
// does not allocate (or allocates nothing in proportion to what a peer
// announced). A test that uses this compiles support/allocations.cpp into
// its executable, which replaces operator new and delete there.
#pragma once

#include <cstddef>

namespace gust::test {

/// Counts allocations and frees while it lives (one at a time); the counts
/// start at zero. Allocations made by any thread are counted.
class allocation_scope {
 public:
  allocation_scope() noexcept;
  ~allocation_scope();
  allocation_scope(const allocation_scope&) = delete;
  allocation_scope& operator=(const allocation_scope&) = delete;

  std::size_t count() const noexcept;    ///< allocations
  std::size_t frees() const noexcept;    ///< deallocations of non-null pointers
  std::size_t total() const noexcept;    ///< bytes asked for
  std::size_t largest() const noexcept;  ///< the largest single allocation
};

}  // namespace gust::test
