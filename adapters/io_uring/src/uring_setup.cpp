#include "uring_setup.hpp"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>

namespace gust::detail::uring_setup {
namespace {

[[noreturn]] void fail(int err, const std::string& what) {
  std::string why = "gust io_uring: " + what + ": " + std::strerror(err);
  if (err == EPERM || err == EACCES)
    why += " (io_uring is disabled here: the kernel.io_uring_disabled sysctl, or a container/"
           "seccomp policy)";
  else if (err == ENOSYS)
    why += " (this kernel has no io_uring)";
  else if (err == ENOMEM)
    why += " (locked-memory limit too low? see ulimit -l)";
  throw std::system_error(std::error_code(err, std::system_category()), why);
}

// The adapter's receive path, once, end to end: a provided buffer ring, a
// multishot receive with buffer selection, one byte. A kernel older than 6.0
// (or a filter that lets io_uring_setup through but not the rest) fails here.
void probe(io_uring& r) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
    fail(errno, "probe socketpair");
  struct closer {
    int* sv;
    ~closer() {
      ::close(sv[0]);
      ::close(sv[1]);
    }
  } close_both{sv};
  constexpr unsigned short probe_group = 0x7ff0;
  void* ring_mem = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (ring_mem == MAP_FAILED) fail(errno, "probe mmap");
  struct unmapper {
    void* p;
    ~unmapper() { ::munmap(p, 4096); }
  } unmap{ring_mem};
  auto* br = static_cast<io_uring_buf_ring*>(ring_mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(br);
  reg.ring_entries = 1;
  reg.bgid = probe_group;
  if (int rc = io_uring_register_buf_ring(&r, &reg, 0); rc < 0)
    fail(-rc, "provided buffer rings (Linux 5.19+)");
  static char byte;  // (static: outlives a receive the cancel misses)
  io_uring_buf_ring_init(br);
  io_uring_buf_ring_add(br, &byte, 1, 0, io_uring_buf_ring_mask(1), 0);
  io_uring_buf_ring_advance(br, 1);
  io_uring_sqe* sqe = io_uring_get_sqe(&r);
  io_uring_prep_recv_multishot(sqe, sv[0], nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = probe_group;
  io_uring_sqe_set_data64(sqe, 1);
  (void)!::write(sv[1], "x", 1);
  int err = 0;
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec ts{1, 0};
  int rc = io_uring_submit_and_wait_timeout(&r, &cqe, 1, &ts, nullptr);
  if (rc < 0) {
    err = -rc;
  } else if (cqe->res < 0) {
    err = -cqe->res;
  } else if (cqe->res != 1 || !(cqe->flags & IORING_CQE_F_BUFFER)) {
    err = EINVAL;
  }
  if (cqe) io_uring_cqe_seen(&r, cqe);
  // Stop the receive (it may still hold a reference to the socket) and drop
  // its completions before the group goes away.
  sqe = io_uring_get_sqe(&r);
  io_uring_prep_cancel64(sqe, 1, 0);
  io_uring_sqe_set_data64(sqe, 2);
  (void)io_uring_submit(&r);
  for (int i = 0; i < 4; ++i) {
    __kernel_timespec shortwait{0, 100 * 1000 * 1000};
    if (io_uring_wait_cqe_timeout(&r, &cqe, &shortwait) != 0) break;
    const bool last = cqe->user_data == 1 && !(cqe->flags & IORING_CQE_F_MORE);
    io_uring_cqe_seen(&r, cqe);
    if (last) break;
  }
  (void)io_uring_unregister_buf_ring(&r, probe_group);
  if (err) fail(err, "multishot receive into a provided buffer (Linux 6.0+)");
}

}  // namespace

owned_ring& owned_ring::operator=(owned_ring&& o) noexcept {
  if (this != &o) {
    if (live) io_uring_queue_exit(&r);
    r = o.r;
    live = std::exchange(o.live, false);
  }
  return *this;
}

owned_ring::~owned_ring() {
  if (live) io_uring_queue_exit(&r);
}

owned_ring open_ring(unsigned sq, unsigned cq) {
  owned_ring out;
  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
            IORING_SETUP_TASKRUN_FLAG;
  p.cq_entries = cq;
  int rc = io_uring_queue_init_params(sq, &out.r, &p);
  if (rc == -EINVAL) {  // flags from 5.18/5.19 unknown: without them
    p = io_uring_params{};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = cq;
    rc = io_uring_queue_init_params(sq, &out.r, &p);
  }
  if (rc < 0) fail(-rc, "io_uring_setup");
  out.live = true;
  if (!(p.features & IORING_FEAT_EXT_ARG)) fail(EINVAL, "IORING_FEAT_EXT_ARG (Linux 5.11+)");
  if (!(p.features & IORING_FEAT_NODROP)) fail(EINVAL, "IORING_FEAT_NODROP (Linux 5.5+)");
  probe(out.r);
  return out;
}

buffer_ring::buffer_ring(buffer_ring&& o) noexcept
    : ring_(std::exchange(o.ring_, nullptr)),
      br_(std::exchange(o.br_, nullptr)),
      br_bytes_(std::exchange(o.br_bytes_, 0)),
      mem_(std::move(o.mem_)),
      share_(o.share_),
      in_ring_(o.in_ring_),
      spares_(o.spares_) {
  std::memcpy(spare_, o.spare_, sizeof spare_);
}

buffer_ring& buffer_ring::operator=(buffer_ring&& o) noexcept {
  if (this != &o) {
    this->~buffer_ring();
    new (this) buffer_ring(std::move(o));
  }
  return *this;
}

buffer_ring::~buffer_ring() {
  if (!br_) return;
  if (ring_) (void)io_uring_unregister_buf_ring(ring_, buffer_group);
  ::munmap(br_, br_bytes_);
}

void buffer_ring::post(unsigned short bid) noexcept {
  io_uring_buf_ring_add(br_, buffer(bid), static_cast<unsigned>(buffer_size), bid,
                        io_uring_buf_ring_mask(buffer_count), 0);
  io_uring_buf_ring_advance(br_, 1);
  ++in_ring_;
}

void buffer_ring::give_back(unsigned short bid) noexcept {
  if (in_ring_ < share_)
    post(bid);
  else
    spare_[spares_++] = bid;
}

void buffer_ring::grow(unsigned starved) noexcept {
  share_ = std::min(buffer_count, share_ + starved);
  while (in_ring_ < share_ && spares_ > 0) post(spare_[--spares_]);
}

void buffer_ring::leak() noexcept {
  (void)mem_.release();
  br_ = nullptr;  // (and the ring's pages)
}

buffer_ring provided_buffers(io_uring& r) {
  buffer_ring b;
  b.br_bytes_ = buffer_count * sizeof(io_uring_buf);
  void* m = ::mmap(nullptr, b.br_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (m == MAP_FAILED) fail(errno, "mmap of the buffer ring");
  b.br_ = static_cast<io_uring_buf_ring*>(m);
  b.mem_ = std::make_unique_for_overwrite<std::byte[]>(buffer_count * buffer_size);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(b.br_);
  reg.ring_entries = buffer_count;
  reg.bgid = buffer_group;
  if (int rc = io_uring_register_buf_ring(&r, &reg, 0); rc < 0) {
    ::munmap(b.br_, b.br_bytes_);
    b.br_ = nullptr;
    fail(-rc, "register the provided buffer ring");
  }
  b.ring_ = &r;
  io_uring_buf_ring_init(b.br_);
  // Spares stacked so the lowest numbers come off first.
  for (unsigned i = buffer_count; i-- > initial_posted;) b.spare_[b.spares_++] = static_cast<unsigned short>(i);
  b.share_ = initial_posted;
  for (unsigned i = 0; i < initial_posted; ++i) b.post(static_cast<unsigned short>(i));
  return b;
}

}  // namespace gust::detail::uring_setup
