// The io_uring adapter: completions instead of readiness.
//
// What it relies on (Linux >= 6.0, liburing >= 2.3), checked when the loop
// is created (a socket pair, a multishot receive into the buffer ring, one
// byte), so an unusable kernel or a sandbox that blocks io_uring fails
// there with the reason instead of later with a confusing transport error:
//   - IORING_FEAT_EXT_ARG (5.11): the wait takes its timeout directly, so
//     the loop's single timer (the shared heap's earliest deadline) costs no
//     SQE and no timerfd;
//   - provided buffer rings (5.19) and multishot receive (6.0): an idle
//     connection holds no receive buffer; a receive takes one from the ring
//     and the buffer goes back right after on_input (the core copies what it
//     keeps, see connection::receive). Only open connections receive that
//     way; one in its opening handshake polls and reads with recv(2) (see
//     arm_recv);
//   - multishot accept (5.19), SEND and SEND_ZC (6.0), ASYNC_CANCEL by
//     user_data, IOSQE_CQE_SKIP_SUCCESS for cancels (5.17);
//   - COOP_TASKRUN | TASKRUN_FLAG | SUBMIT_ALL when accepted (retried
//     without them otherwise): completions are posted when we enter the
//     kernel anyway, so no inter-processor interrupts for task work.
// SQEs are only queued while events are handled; they are submitted together
// with the next wait (one io_uring_enter per loop iteration).
//
// Sends copy the core's pending output into a buffer the adapter owns and
// consume it from the core at once. The core's output queue is written for
// synchronous writes: its arena slides and grows on append, a pong not yet
// started is rewritten in place, control frames are inserted before data not
// yet consumed. None of that is safe while the kernel still reads those bytes
// asynchronously, and the application may queue output at any time. The copy
// (bounded by send_chunk per connection) is what makes every in-flight byte
// immutable until its completion, and what lets a zero-copy send (SEND_ZC,
// above zc_threshold) hold its bytes until the kernel's notification.
//
// Completions are matched through user_data = op | generation | index, into
// tables this adapter owns (connections, listeners, sends), never a pointer:
// a connection the facade has closed is "retired" (its websocket is gone,
// the entry stays) until its last operation completes, so every completion
// finds a live or a retired entry, and a recycled entry has a new generation.
// A retired connection with a send in flight keeps its descriptor until the
// send completes (the close frame goes out), at most retire_bound, then the
// send is cancelled.
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <system_error>

#include "loop.hpp"
#include "uring_counters.hpp"
#include "uring_setup.hpp"

namespace gust::detail {

uring_counters& uring_debug_counters() noexcept {
  static uring_counters c;
  return c;
}

namespace {

void count(std::atomic<std::uint64_t>& a) noexcept { a.fetch_add(1, std::memory_order_relaxed); }

constexpr unsigned sq_entries = 4096;
constexpr unsigned cq_entries = 16384;  // cancels of 10,000 closing connections fit
constexpr std::size_t send_chunk = 256 * 1024;  // bytes taken from the core per send
constexpr std::size_t pool_keep_size = 256 * 1024;
constexpr std::size_t pool_keep_count = 64;
constexpr std::size_t small_send = 512;             // see take_buffer
constexpr std::size_t min_send_buffer = 16 * 1024;  // larger sends: at least this
constexpr std::size_t direct_send_min = 16 * 1024;  // see send_direct
constexpr unsigned cqe_batch = 256;
constexpr std::size_t handshake_read = 16 * 1024;  // bytes per recv(2) in the opening handshake
constexpr duration retire_bound = std::chrono::seconds(1);

enum class op : std::uint8_t { none = 0, wake, accept, recv, send, connect };

// user_data: op (8 bits) | generation (24 bits) | index (32 bits).
constexpr std::uint64_t gen_mask = 0xFFFFFF;
constexpr std::uint32_t conn_gen_mask = 0x7FFFFF;  // conn_io::gen's 23 bits
constexpr std::uint64_t user_data(op o, std::uint32_t gen, std::uint32_t idx) {
  return (std::uint64_t(o) << 56) | ((gen & gen_mask) << 32) | idx;
}

// A connection's socket state; outlives its websocket while operations run.
// One per connection (16 bytes): the generation shares a word with the
// flags, and the websocket is named by its slot in the loop's session store.
struct conn_io {
  static constexpr std::uint32_t no_session = UINT32_MAX;
  std::uint32_t gen : 23 = 0;  // (conn_gen_mask)
  bool in_use : 1 = false;
  bool connecting : 1 = false;  // POLLOUT poll in flight
  bool recv_armed : 1 = false;  // a read in flight: the multishot receive, or the poll below
  bool polling : 1 = false;     // that read is a POLLIN poll (opening handshake, see arm_recv)
  bool recv_cancelling : 1 = false;
  bool eof : 1 = false;
  bool shut_pending : 1 = false;  // shutdown(SHUT_WR) once the send completes
  bool held : 1 = false;          // retired with operations in flight: run() waits for them
  bool give_up : 1 = false;       // retired past retire_bound: no more resubmits
  int fd = -1;
  std::uint32_t session = no_session;  // the websocket's slot; no_session once the facade closed it (retired)
  std::int32_t send = -1;              // index of the send in flight
  bool retired() const noexcept { return session == no_session; }
};
static_assert(sizeof(conn_io) <= 16, "one per connection");

struct out_buffer {
  std::unique_ptr<std::byte[]> p;
  std::size_t cap = 0;
};

struct send_rec {
  std::uint32_t gen = 0;
  bool in_use = false;
  bool active = false;  // the send itself has not completed
  bool zc = false;
  unsigned notifs = 0;  // zero-copy notifications still owed
  out_buffer buf;
  std::size_t off = 0, len = 0;
  std::uint32_t conn = 0, conn_gen = 0;
};

struct listener {
  int fd = -1;
  std::uint32_t gen = 0;
  loop_base::accept_fn on_accept;
  logger log;
  counters* ctr = nullptr;
  bool active = false;
  bool armed = false;
  time_point last_log{};
};

class uring_loop final : public loop_base {
 public:
  uring_loop() : loop_base(gust::adapter::io_uring) {
    ring_ = uring_setup::open_ring(sq_entries, cq_entries);  // throws with the reason
    bufs_ = uring_setup::provided_buffers(ring_.r);       // (same)
    if (const char* z = std::getenv("GUST_URING_ZC_MIN"); z && *z)
      zc_threshold_ = static_cast<std::size_t>(std::strtoull(z, nullptr, 10));
    if (const char* d = std::getenv("GUST_URING_DIRECT_MIN"); d && *d)
      direct_threshold_ = static_cast<std::size_t>(std::strtoull(d, nullptr, 10));
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw std::system_error(last_error(), "gust io_uring: eventfd");
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    arm_wake();
  }

  ~uring_loop() override {
    join_helpers();
    teardown();
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (reserve_fd_ >= 0) ::close(reserve_fd_);
  }

  // ---- waiting -------------------------------------------------------------

  void backend_poll(std::optional<time_point> deadline, bool nonblocking) override {
    io_uring* r = &ring_.r;
    if (!nonblocking && deadline && *deadline <= clock::now()) nonblocking = true;
    if (nonblocking) {
      (void)io_uring_submit_and_get_events(r);
    } else {
      io_uring_cqe* cqe = nullptr;
      __kernel_timespec ts{};
      if (deadline) {
        const auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(*deadline - clock::now()).count();
        ts.tv_sec = ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
      }
      (void)io_uring_submit_and_wait_timeout(r, &cqe, 1, deadline ? &ts : nullptr, nullptr);
    }
    now_ = clock::now();
    // A bounded number of rounds: completions keep arriving while handlers
    // run, and timers and posted work must get their turn.
    for (int round = 0; round < 8; ++round) {
      io_uring_cqe* batch[cqe_batch];
      const unsigned n = io_uring_peek_batch_cqe(r, batch, cqe_batch);
      if (n == 0) break;
      // Copied out and released first: handlers may queue (and submit) SQEs.
      struct done {
        std::uint64_t ud;
        std::int32_t res;
        std::uint32_t flags;
      } got[cqe_batch];
      for (unsigned i = 0; i < n; ++i) got[i] = {batch[i]->user_data, batch[i]->res, batch[i]->flags};
      io_uring_cq_advance(r, n);
      for (unsigned i = 0; i < n; ++i) complete(got[i].ud, got[i].res, got[i].flags);
      rearm_starved();
      if (n < cqe_batch) break;
    }
  }

  void backend_wake() override {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }

  // ---- listeners -----------------------------------------------------------

  int backend_add_listener(int fd, accept_fn on_accept, logger log, counters* c,
                           bool /*exclusive: multishot accept wakes one waiter*/) override {
    const int id = static_cast<int>(listeners_.size());
    listener l;
    l.fd = fd;
    l.on_accept = std::move(on_accept);
    l.log = log;
    l.ctr = c;
    l.active = true;
    listeners_.push_back(std::move(l));
    arm_accept(static_cast<std::size_t>(id));
    ++listeners;
    return id;
  }

  void backend_remove_listener(int id) override {
    if (id < 0 || std::size_t(id) >= listeners_.size() || !listeners_[id].active) return;
    listener& l = listeners_[id];
    if (l.armed) cancel(user_data(op::accept, l.gen, std::uint32_t(id)));
    ::close(l.fd);  // the accept in flight holds its own reference until cancelled
    l.fd = -1;
    l.active = false;
    l.on_accept = nullptr;
    --listeners;
  }

  // ---- connections ---------------------------------------------------------

  void backend_attach(websocket& ws, int fd, bool connecting) override {
    const std::uint32_t idx = new_conn();
    conn_io& io = conns_[idx];
    io.fd = fd;
    io.session = slot_of(ws);
    tx(ws).handle = static_cast<int>(idx);  // (the table stays far below INT_MAX)
    if (connecting) {
      io_uring_sqe* sqe = get_sqe();
      io_uring_prep_poll_add(sqe, fd, POLLOUT);
      io_uring_sqe_set_data64(sqe, user_data(op::connect, io.gen, idx));
      io.connecting = true;
      ++inflight_;
      return;
    }
    arm_recv(idx);
  }

  bool backend_write(websocket& ws) override {
    conn_io* io = io_of(ws);
    if (!io || io->fd < 0 || io->connecting || io->send >= 0) return true;  // resumed by the completion
    start_send(*io, ws);
    return true;
  }

  void backend_resume_read(websocket& ws) override {
    if (const int idx = tx(ws).handle; idx >= 0) arm_recv(static_cast<std::uint32_t>(idx));
  }

  void backend_shutdown_write(websocket& ws) override {
    conn_io* io = io_of(ws);
    if (!io || io->fd < 0) return;
    if (io->send >= 0) {
      io->shut_pending = true;  // after the bytes already taken from the core
      return;
    }
    ::shutdown(io->fd, SHUT_WR);
  }

  void backend_close(websocket& ws) override {
    if (tx(ws).handle < 0) return;
    const auto idx = static_cast<std::uint32_t>(tx(ws).handle);
    conn_io& io = conns_[idx];
    if (!io.in_use || io.session != slot_of(ws)) return;
    io.session = conn_io::no_session;
    if (io.recv_armed && !io.recv_cancelling) {
      cancel(user_data(op::recv, io.gen, idx));
      io.recv_cancelling = true;
    }
    if (io.connecting) cancel(user_data(op::connect, io.gen, idx));
    if (io.send >= 0) {
      // Let the last bytes (a close frame) go out, but not forever.
      count(uring_debug_counters().retired_sends);
      const std::uint32_t gen = io.gen;
      call_at(now_ + retire_bound, [this, idx, gen] { cancel_stuck_send(idx, gen); },
              /*keep_alive=*/false);
    } else if (io.fd >= 0) {
      ::close(io.fd);  // (the socket itself closes when the receive lets go of it)
      io.fd = -1;
    }
    // Until its last completion, run() must not return: the cancels have to
    // reach the kernel, and the socket is only closed once they did.
    if (io.recv_armed || io.connecting || io.send >= 0) {
      io.held = true;
      hold();
    }
    maybe_release(idx);
  }

 private:
  // ---- submission helpers --------------------------------------------------

  io_uring_sqe* get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_.r);
    while (!sqe) {  // full: hand the queued ones to the kernel now
      (void)io_uring_submit(&ring_.r);
      sqe = io_uring_get_sqe(&ring_.r);
    }
    return sqe;
  }

  void cancel(std::uint64_t ud) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, ud, 0);
    io_uring_sqe_set_data64(sqe, user_data(op::none, 0, 0));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  }

  void arm_wake() {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_read(sqe, wake_fd_, &wake_buf_, sizeof wake_buf_, 0);
    io_uring_sqe_set_data64(sqe, user_data(op::wake, 0, 0));
    ++inflight_;
  }

  void arm_accept(std::size_t li) {
    listener& l = listeners_[li];
    if (!l.active || l.armed) return;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_multishot_accept(sqe, l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, user_data(op::accept, l.gen, std::uint32_t(li)));
    l.armed = true;
    ++inflight_;
  }

  /// Starts reading if the connection wants to: the multishot receive once
  /// it is open; during the opening handshake, a POLLIN poll and then a
  /// recv(2) into handshake_buf_ (on_handshake_readable). A burst of
  /// accepts reads hundreds of requests in one batch: through the ring each
  /// would take a 128 KiB buffer and write its first page, so the burst
  /// would leave every buffer resident and starve the ring besides.
  void arm_recv(std::uint32_t idx) {
    conn_io& io = conns_[idx];
    if (!io.in_use || io.retired() || io.recv_armed || io.fd < 0 || io.eof || io.connecting) return;
    websocket& ws = *ws_of(io);
    if (finished(ws) || !has_core(ws) || paused(ws)) return;
    io_uring_sqe* sqe = get_sqe();
    io.polling = ws.core().state() == state::connecting;
    if (io.polling) {
      io_uring_prep_poll_add(sqe, io.fd, POLLIN);
    } else {
      io_uring_prep_recv_multishot(sqe, io.fd, nullptr, 0, 0);
      sqe->flags |= IOSQE_BUFFER_SELECT;
      sqe->buf_group = uring_setup::buffer_group;
    }
    io_uring_sqe_set_data64(sqe, user_data(op::recv, io.gen, idx));
    io.recv_armed = true;
    ++inflight_;
  }

  void start_send(conn_io& io, websocket& ws) {
    connection& c = ws.core();
    auto out = c.pending_output();
    if (out.empty()) return;
    std::size_t total = 0;
    for (const const_buffer& b : out) total += b.size;
    if (total >= direct_threshold_) {
      const std::size_t written = send_direct(io, ws, out);
      if (written == total) return;
      if (written) {
        out = c.pending_output();
        total -= written;
      }
    }
    total = std::min(total, send_chunk);
    const std::uint32_t si = new_send();
    send_rec& s = sends_[si];
    s.buf = take_buffer(total);
    std::size_t at = 0;
    for (const const_buffer& b : out) {
      const std::size_t k = std::min(b.size, total - at);
      std::memcpy(s.buf.p.get() + at, b.data, k);
      at += k;
      if (at == total) break;
    }
    (void)c.consume_output(total);  // now ours: see the note at the top
    s.len = total;
    s.off = 0;
    s.active = true;
    s.zc = total >= zc_threshold_;
    s.conn = static_cast<std::uint32_t>(tx(ws).handle);
    s.conn_gen = io.gen;
    io.send = static_cast<std::int32_t>(si);
    submit_send(si, io.fd);
  }

  // Large output goes to the socket straight from the core's buffers, as
  // far as the socket takes it at once: copying it into a send buffer first
  // cost about 15% of the server's time on 64 KiB echoes (perf: memmove at
  // 20% of it, against 5% under epoll). What the socket does not take now
  // is copied and sent asynchronously as before. Only called with no send
  // in flight, so the bytes keep their order. An error is left to the
  // asynchronous send to report, the usual way.
  std::size_t send_direct(conn_io& io, websocket& ws, std::span<const const_buffer> out) {
    const ssize_t w = write_pending(ws, io.fd, out, MSG_DONTWAIT);
    if (w <= 0) return 0;
    count(uring_debug_counters().direct_sends);
    return static_cast<std::size_t>(w);
  }

  void submit_send(std::uint32_t si, int fd) {
    send_rec& s = sends_[si];
    io_uring_sqe* sqe = get_sqe();
    const std::byte* p = s.buf.p.get() + s.off;
    const std::size_t n = s.len - s.off;
    if (s.zc) {
      io_uring_prep_send_zc(sqe, fd, p, n, MSG_NOSIGNAL, 0);
      count(uring_debug_counters().zc_sends);
    } else {
      io_uring_prep_send(sqe, fd, p, n, MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data64(sqe, user_data(op::send, s.gen, si));
    ++inflight_;
  }

  // ---- completions ---------------------------------------------------------

  void complete(std::uint64_t ud, std::int32_t res, std::uint32_t flags) {
    const auto o = static_cast<op>(ud >> 56);
    const auto gen = static_cast<std::uint32_t>((ud >> 32) & gen_mask);
    const auto idx = static_cast<std::uint32_t>(ud);
    if (o != op::none && !(flags & IORING_CQE_F_MORE)) --inflight_;
    switch (o) {
      case op::none: return;  // a failed cancel: its target completed first
      case op::wake:
        if (!tearing_down_) arm_wake();
        return;
      case op::accept: on_accept_cqe(idx, gen, res, flags); return;
      case op::recv: on_recv_cqe(idx, gen, res, flags); return;
      case op::send: on_send_cqe(idx, gen, res, flags); return;
      case op::connect: on_connect_cqe(idx, gen, res); return;
    }
  }

  void on_accept_cqe(std::uint32_t li, std::uint32_t gen, std::int32_t res, std::uint32_t flags) {
    if (li >= listeners_.size()) {
      if (res >= 0) ::close(res);
      return;
    }
    listener& l = listeners_[li];
    const bool more = flags & IORING_CQE_F_MORE;
    if (l.gen != (gen & gen_mask) || !l.active) {
      if (res >= 0) ::close(res);  // accepted just before the cancel
      if (!more && l.gen == (gen & gen_mask)) l.armed = false;
      return;
    }
    if (!more) l.armed = false;
    if (res >= 0) {
      if (tearing_down_) {
        ::close(res);
        return;
      }
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      if (::getpeername(res, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        ::close(res);  // reset before we saw it
      } else {
        l.on_accept(*this, res, reinterpret_cast<sockaddr*>(&ss), len);
      }
      if (!listeners_[li].armed) arm_accept(li);
      return;
    }
    if (tearing_down_ || res == -ECANCELED) return;
    const int err = -res;
    switch (err) {
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
      case EAGAIN:
        arm_accept(li);
        return;
      case EMFILE:
      case ENFILE:
        accept_error(l, err);
        if (reserve_fd_ >= 0) {
          // Refuse one pending connection visibly rather than leave it in
          // the backlog: free the reserve, accept, close, take it back.
          ::close(reserve_fd_);
          const int x = ::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
          if (x >= 0) ::close(x);
          reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        retry_accept_later(li);
        return;
      default:
        accept_error(l, err);
        retry_accept_later(li);
        return;
    }
  }

  void on_recv_cqe(std::uint32_t idx, std::uint32_t gen, std::int32_t res, std::uint32_t flags) {
    std::byte* data = nullptr;
    unsigned short bid = 0;
    if (flags & IORING_CQE_F_BUFFER) {
      bid = static_cast<unsigned short>(flags >> IORING_CQE_BUFFER_SHIFT);
      data = bufs_.buffer(bid);
      bufs_.taken();
    }
    conn_io* io = conn_at(idx, gen);
    if (!io) {
      if (data) bufs_.give_back(bid);
      return;
    }
    if (!(flags & IORING_CQE_F_MORE)) {
      io->recv_armed = false;
      io->recv_cancelling = false;
    }
    if (io->polling && res > 0) {  // (res: the poll's revents)
      on_handshake_readable(idx, *io);
    } else if (res > 0) {
      if (data && !io->retired() && !tearing_down_) {
        websocket& ws = *ws_of(*io);
        on_input(ws, {data, static_cast<std::size_t>(res)});
        // The core copied what it keeps (pump_events' contract).
        bufs_.give_back(bid);
        // Paused meanwhile: stop the receive; what it still delivers before
        // the cancel lands is kept by the core, unread.
        if (!io->retired() && io->recv_armed && !io->recv_cancelling && paused(*ws_of(*io))) {
          cancel(user_data(op::recv, io->gen, idx));
          io->recv_cancelling = true;
        }
        if (!io->recv_armed) arm_recv(idx);
      } else if (data) {
        bufs_.give_back(bid);
      }
    } else if (res == 0) {
      if (data) bufs_.give_back(bid);
      io->eof = true;
      if (!io->retired() && !tearing_down_) on_eof(*ws_of(*io));
    } else if (res == -ENOBUFS) {
      // The ring ran dry (many connections read in one batch): the buffers
      // come back as this batch is handled; receive again after it, with
      // the ring's share grown by one buffer for each receive starved.
      starved_.push_back({idx, std::uint32_t(io->gen)});
      count(uring_debug_counters().enobufs);
    } else if (res == -ECANCELED) {
      arm_recv(idx);  // paused and resumed since: read again
    } else if (!io->retired() && !tearing_down_) {
      on_transport_error(*ws_of(*io), {-res, std::system_category()});
    }
    maybe_release(idx);
  }

  /// The poll of a connection in its opening handshake fired: one recv(2).
  void on_handshake_readable(std::uint32_t idx, conn_io& io) {
    if (io.retired() || tearing_down_) return;
    if (!handshake_buf_) handshake_buf_ = std::make_unique_for_overwrite<std::byte[]>(handshake_read);
    const ssize_t n = ::recv(io.fd, handshake_buf_.get(), handshake_read, MSG_DONTWAIT);
    count(uring_debug_counters().handshake_reads);
    if (n > 0) {
      on_input(*ws_of(io), {handshake_buf_.get(), static_cast<std::size_t>(n)});  // (the core copies it)
      if (!io.recv_armed) arm_recv(idx);  // the receive if now open, else poll again
    } else if (n == 0) {
      io.eof = true;
      on_eof(*ws_of(io));
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      arm_recv(idx);
    } else {
      on_transport_error(*ws_of(io), last_error());
    }
  }

  void on_send_cqe(std::uint32_t si, std::uint32_t gen, std::int32_t res, std::uint32_t flags) {
    if (si >= sends_.size() || !sends_[si].in_use || sends_[si].gen != (gen & gen_mask)) return;
    send_rec& s = sends_[si];
    if (flags & IORING_CQE_F_NOTIF) {
      // The kernel no longer references this zero-copy send's pages.
      if (s.notifs) --s.notifs;
      count(uring_debug_counters().zc_notifs);
      maybe_release_send(si);
      return;
    }
    if (s.zc && (flags & IORING_CQE_F_MORE)) ++s.notifs;
    const std::uint32_t idx = s.conn;
    conn_io* io = conn_at(idx, s.conn_gen);
    if (res > 0) {
      s.off += static_cast<std::size_t>(res);
      if (websocket* ws = io ? ws_of(*io) : nullptr) counters::bump(ctr(*ws)->bytes_out, static_cast<std::uint64_t>(res));
      // (A cancelled send may still report the bytes it wrote.)
      if (s.off < s.len && io && io->fd >= 0 && !io->give_up && !tearing_down_) {
        count(uring_debug_counters().short_sends);
        submit_send(si, io->fd);  // a short write: the rest, from the same bytes
        return;
      }
    }
    if (res < 0 && res != -ECANCELED) count(uring_debug_counters().send_errors);
    s.active = false;
    maybe_release_send(si);
    if (!io) return;
    io->send = -1;
    if (io->retired()) {  // retired: the last bytes went out (or never will)
      if (io->fd >= 0) {
        ::close(io->fd);
        io->fd = -1;
      }
      maybe_release(idx);
      return;
    }
    if (tearing_down_) return;
    websocket& ws = *ws_of(*io);
    if (res < 0 && res != -ECANCELED) {
      on_transport_error(ws, {-res, std::system_category()});
      return;
    }
    if (res <= 0) return;
    if (ws.core().buffered_amount() > 0) on_writable(ws);  // queued while this send was in flight
    // The facade asked for the half-close while bytes were still ours.
    if (!io->retired() && io->shut_pending && io->send < 0 && io->fd >= 0) {
      io->shut_pending = false;
      ::shutdown(io->fd, SHUT_WR);
    }
  }

  void on_connect_cqe(std::uint32_t idx, std::uint32_t gen, std::int32_t res) {
    conn_io* io = conn_at(idx, gen);
    if (!io) return;
    io->connecting = false;
    if (io->retired() || tearing_down_) {
      maybe_release(idx);
      return;
    }
    int err = 0;
    if (res < 0) {
      err = -res;
    } else {
      socklen_t len = sizeof err;
      if (::getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
    on_connected(*ws_of(*io), err ? std::error_code(err, std::system_category()) : std::error_code());
    if (!err) arm_recv(idx);
  }

  void rearm_starved() {
    if (starved_.empty()) return;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> batch;
    batch.swap(starved_);
    const unsigned share = bufs_.share();
    bufs_.grow(static_cast<unsigned>(batch.size()));
    uring_debug_counters().ring_grown.fetch_add(bufs_.share() - share, std::memory_order_relaxed);
    for (auto [idx, gen] : batch)
      if (conn_at(idx, gen)) {
        arm_recv(idx);
        maybe_release(idx);
      }
  }

  void cancel_stuck_send(std::uint32_t idx, std::uint32_t gen) {
    conn_io* io = conn_at(idx, gen);
    if (!io || !io->retired() || io->send < 0) return;
    io->give_up = true;
    cancel(user_data(op::send, sends_[io->send].gen, std::uint32_t(io->send)));
  }

  // ---- tables --------------------------------------------------------------

  websocket* ws_of(const conn_io& io) const noexcept {
    return io.retired() ? nullptr : sessions_store_.get(io.session);
  }

  conn_io* io_of(websocket& ws) {
    if (tx(ws).handle < 0) return nullptr;
    conn_io& io = conns_[static_cast<std::uint32_t>(tx(ws).handle)];
    return io.in_use && io.session == slot_of(ws) ? &io : nullptr;
  }

  conn_io* conn_at(std::uint32_t idx, std::uint32_t gen) {
    if (idx >= conns_.size()) return nullptr;
    conn_io& io = conns_[idx];
    return io.in_use && (io.gen & gen_mask) == (gen & gen_mask) ? &io : nullptr;
  }

  std::uint32_t new_conn() {
    std::uint32_t idx;
    if (!free_conns_.empty()) {
      idx = free_conns_.back();
      free_conns_.pop_back();
    } else {
      idx = static_cast<std::uint32_t>(conns_.size());
      conns_.emplace_back();
    }
    conn_io& io = conns_[idx];
    const std::uint32_t gen = (io.gen + 1) & conn_gen_mask;
    io = conn_io{};
    io.gen = gen;
    io.in_use = true;
    return idx;
  }

  /// Frees a retired entry once nothing of it is in flight.
  void maybe_release(std::uint32_t idx) {
    conn_io& io = conns_[idx];
    if (!io.in_use || !io.retired() || io.recv_armed || io.connecting || io.send >= 0) return;
    if (io.fd >= 0) ::close(io.fd);
    io.fd = -1;
    if (io.held) release();
    io.held = false;
    io.in_use = false;
    free_conns_.push_back(idx);
  }

  std::uint32_t new_send() {
    std::uint32_t si;
    if (!free_sends_.empty()) {
      si = free_sends_.back();
      free_sends_.pop_back();
    } else {
      si = static_cast<std::uint32_t>(sends_.size());
      sends_.emplace_back();
    }
    send_rec& s = sends_[si];
    s.gen = (s.gen + 1) & gen_mask;
    s.in_use = true;
    s.notifs = 0;
    return si;
  }

  void maybe_release_send(std::uint32_t si) {
    send_rec& s = sends_[si];
    if (s.active || s.notifs) return;
    give_buffer(std::move(s.buf));
    s.in_use = false;
    free_sends_.push_back(si);
  }

  out_buffer take_buffer(std::size_t n) {
    for (std::size_t i = pool_.size(); i-- > 0;)
      if (pool_[i].cap >= n) {
        out_buffer b = std::move(pool_[i]);
        pool_[i] = std::move(pool_.back());
        pool_.pop_back();
        return b;
      }
    // A small send (an opening handshake's answer, a pong, a short message)
    // gets a small buffer: a burst of accepts puts thousands of answers in
    // flight at once, and a page-spanning buffer for each touched a page
    // per connection.
    out_buffer b;
    b.cap = n <= small_send ? small_send : std::max(n, min_send_buffer);
    b.p = std::make_unique_for_overwrite<std::byte[]>(b.cap);
    return b;
  }

  void give_buffer(out_buffer b) {
    if (!b.p || b.cap > pool_keep_size) return;
    if (pool_.size() < pool_keep_count) {
      pool_.push_back(std::move(b));
      return;
    }
    // Full: keep the larger buffers (a small one takes any), so a pool
    // filled by small sends does not make every larger send allocate.
    auto smallest = std::min_element(pool_.begin(), pool_.end(),
                                     [](const out_buffer& x, const out_buffer& y) { return x.cap < y.cap; });
    if (smallest->cap < b.cap) *smallest = std::move(b);
  }

  // ---- listeners -----------------------------------------------------------

  void accept_error(listener& l, int err) { report_accept_error(l.log, l.ctr, now_, l.last_log, err); }

  void retry_accept_later(std::size_t li) {
    const std::uint32_t gen = listeners_[li].gen;
    call_at(now_ + std::chrono::milliseconds(100),
            [this, li, gen] {
              if (listeners_[li].gen == gen) arm_accept(li);
            },
            /*keep_alive=*/false);
  }

  // ---- teardown ------------------------------------------------------------

  /// Cancels everything and waits (bounded) for the completions, so the
  /// kernel writes into no buffer of ours after we free it.
  void teardown() {
    tearing_down_ = true;
    for (auto& l : listeners_)
      if (l.active) {
        ::close(l.fd);
        l.active = false;
      }
    for (auto& io : conns_)
      if (io.in_use) io.session = conn_io::no_session;  // the websockets go with loop_base
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, user_data(op::none, 0, 0));
    const auto end = clock::now() + std::chrono::seconds(2);
    while (inflight_ > 0 || pending_notifs() > 0) {
      if (clock::now() >= end) {
        // The kernel still owns some of our buffers: leak them rather than
        // free memory it may write into.
        bufs_.leak();
        for (auto& s : sends_)
          if (s.in_use) (void)s.buf.p.release();
        break;
      }
      io_uring_cqe* cqe = nullptr;
      __kernel_timespec ts{0, 50 * 1000 * 1000};
      (void)io_uring_submit_and_wait_timeout(&ring_.r, &cqe, 1, &ts, nullptr);
      io_uring_cqe* batch[cqe_batch];
      unsigned n;
      while ((n = io_uring_peek_batch_cqe(&ring_.r, batch, cqe_batch)) > 0) {
        struct done {
          std::uint64_t ud;
          std::int32_t res;
          std::uint32_t flags;
        } got[cqe_batch];
        for (unsigned i = 0; i < n; ++i) got[i] = {batch[i]->user_data, batch[i]->res, batch[i]->flags};
        io_uring_cq_advance(&ring_.r, n);
        for (unsigned i = 0; i < n; ++i) complete(got[i].ud, got[i].res, got[i].flags);
      }
    }
    for (auto& io : conns_)
      if (io.fd >= 0) {
        ::close(io.fd);
        io.fd = -1;
      }
  }

  std::size_t pending_notifs() const {
    std::size_t n = 0;
    for (const auto& s : sends_)
      if (s.in_use) n += s.notifs;
    return n;
  }

  uring_setup::owned_ring ring_;
  uring_setup::buffer_ring bufs_;
  std::unique_ptr<std::byte[]> handshake_buf_;  // opening handshakes' reads (arm_recv)
  int wake_fd_ = -1, reserve_fd_ = -1;
  std::uint64_t wake_buf_ = 0;
  std::int64_t inflight_ = 0;  // operations whose last completion has not arrived
  bool tearing_down_ = false;
  std::size_t zc_threshold_ = uring_setup::default_zc_threshold;
  std::size_t direct_threshold_ = direct_send_min;  // (GUST_URING_DIRECT_MIN: tests of the asynchronous path)
  // A deque: entries share allocations (512-byte blocks in libstdc++), and an
  // entry stays where it is as the table grows (handlers run with one held).
  std::deque<conn_io> conns_;
  std::vector<std::uint32_t> free_conns_;
  std::vector<send_rec> sends_;
  std::vector<std::uint32_t> free_sends_;
  std::vector<out_buffer> pool_;
  std::vector<listener> listeners_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> starved_;
};

}  // namespace

std::unique_ptr<loop_base> make_uring_loop() { return std::make_unique<uring_loop>(); }

}  // namespace gust::detail
