// The epoll adapter: readiness, edge-triggered.
//
// What it relies on (Linux >= 4.5): epoll with EPOLLET and EPOLLRDHUP,
// EPOLLEXCLUSIVE (several loops watching one Unix listening socket),
// accept4, eventfd (cross-thread wake), timerfd (one per loop, armed at the
// earliest deadline of the shared timer heap), sendmsg with MSG_NOSIGNAL (no
// SIGPIPE, without touching the process's signal dispositions).
//
// Reads go into one buffer per loop, lent to the core with receive(): an
// idle connection holds no receive buffer (the core copies only the tail of
// an incomplete frame). Writes are one sendmsg per pending_output() list (up
// to IOV_MAX buffers). EPOLLOUT is registered only while the socket is full
// and output is pending. Edge-triggered means every readiness must be used
// up: a connection that still has data after its read budget, or whose
// reading resumes, goes on a ready list served before the next wait, so one
// busy peer cannot starve the others.
//
// Running out of file descriptors (EMFILE/ENFILE) must not stall the
// listener (with edge triggering a pending connection left unaccepted would
// never be reported again): a descriptor kept in reserve is released to
// accept and close the connection at once, the error is counted and logged
// (at most once a second), and the listener keeps serving.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <system_error>

#include "loop.hpp"

namespace gust::detail {
namespace {

constexpr std::size_t read_buffer_size = 256 * 1024;
constexpr int read_budget = 8;      // full reads per connection per turn
constexpr int accept_budget = 256;  // accepts per listener per turn
constexpr int max_events = 256;
constexpr int max_writes = 64;      // sendmsg calls per connection per turn

// epoll_event.data.u64: (serial << 32) | slot for a connection. Serial 0
// marks the loop's own descriptors: slot 0 the eventfd, 1 the timerfd,
// 2 + i listener i.
constexpr std::uint64_t wake_token = 0, timer_token = 1, listener_base = 2;

// A connection's socket state is the facade's transport_state, inline in
// its websocket: handle is the socket, out_armed says EPOLLOUT is
// registered, hangup that EPOLLRDHUP/HUP/ERR was seen.

struct listener {
  int fd = -1;
  loop_base::accept_fn on_accept;
  logger log;
  counters* ctr = nullptr;
  bool active = false;
  bool on_ready = false;
  time_point last_log{};
};

class epoll_loop final : public loop_base {
 public:
  epoll_loop() : loop_base(gust::adapter::epoll) {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) throw std::system_error(last_error(), "gust epoll: epoll_create1");
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (wake_fd_ < 0 || timer_fd_ < 0) {
      auto ec = last_error();
      close_own();
      throw std::system_error(ec, "gust epoll: eventfd/timerfd");
    }
    add(wake_fd_, EPOLLIN, wake_token);
    add(timer_fd_, EPOLLIN, timer_token);
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    rbuf_ = std::make_unique_for_overwrite<std::byte[]>(read_buffer_size);
  }

  ~epoll_loop() override {
    join_helpers();
    for (auto& l : listeners_)
      if (l.active) ::close(l.fd);
    close_own();
    for (auto& s : slots_)  // sessions still open when the loop goes
      if (s) backend_close(*s);
  }

  // ---- waiting -------------------------------------------------------------

  void backend_poll(std::optional<time_point> deadline, bool nonblocking) override {
    const bool busy = nonblocking || !ready_.empty();
    if (!busy) arm_timer(deadline);
    epoll_event evs[max_events];
    int n = ::epoll_wait(ep_, evs, max_events, busy ? 0 : -1);
    now_ = clock::now();
    if (n < 0) n = 0;  // EINTR
    for (int i = 0; i < n; ++i) {
      const std::uint64_t tok = evs[i].data.u64;
      const std::uint32_t serial = static_cast<std::uint32_t>(tok >> 32);
      const std::uint32_t slot = static_cast<std::uint32_t>(tok);
      if (serial == 0) {
        if (slot == wake_token) {
          std::uint64_t v;
          while (::read(wake_fd_, &v, sizeof v) > 0) {
          }
        } else if (slot == timer_token) {
          std::uint64_t v;
          while (::read(timer_fd_, &v, sizeof v) > 0) {
          }
          timer_armed_.reset();
        } else {
          accept_all(slot - listener_base);
        }
        continue;
      }
      websocket* ws = session(slot, serial);
      if (!ws || finished(*ws)) continue;
      on_event(*ws, evs[i].events);
    }
    // Connections and listeners with readiness left over from their budget.
    if (!ready_.empty()) {
      std::vector<std::uint64_t> batch;
      batch.swap(ready_);
      for (std::uint64_t tok : batch) {
        const std::uint32_t serial = static_cast<std::uint32_t>(tok >> 32);
        const std::uint32_t slot = static_cast<std::uint32_t>(tok);
        if (serial == 0) {
          const std::size_t li = slot - listener_base;
          if (li < listeners_.size()) {
            listeners_[li].on_ready = false;
            if (listeners_[li].active) accept_all(li);
          }
          continue;
        }
        websocket* ws = session(slot, serial);
        if (!ws || finished(*ws)) continue;
        tx(*ws).on_ready = false;
        read_some(*ws);
      }
    }
  }

  void backend_wake() override {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }

  // ---- listeners -----------------------------------------------------------

  int backend_add_listener(int fd, accept_fn on_accept, logger log, counters* c,
                           bool exclusive) override {
    const int id = static_cast<int>(listeners_.size());
    listener l;
    l.fd = fd;
    l.on_accept = std::move(on_accept);
    l.log = log;
    l.ctr = c;
    l.active = true;
    listeners_.push_back(std::move(l));
    add(fd, EPOLLIN | EPOLLET | (exclusive ? std::uint32_t(EPOLLEXCLUSIVE) : 0u), listener_base + id);
    ++listeners;
    return id;
  }

  void backend_remove_listener(int id) override {
    if (id < 0 || std::size_t(id) >= listeners_.size() || !listeners_[id].active) return;
    listener& l = listeners_[id];
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, l.fd, nullptr);
    ::close(l.fd);
    l.active = false;
    l.on_accept = nullptr;
    --listeners;
  }

  // ---- connections ---------------------------------------------------------

  void backend_attach(websocket& ws, int fd, bool connecting) override {
    transport_state& t = tx(ws);
    t.handle = fd;
    t.connecting = connecting;
    t.out_armed = connecting;
    std::uint32_t ev = EPOLLIN | EPOLLRDHUP | EPOLLET | (connecting ? std::uint32_t(EPOLLOUT) : 0u);
    if (!add(fd, ev, token(ws))) on_transport_error(ws, last_error());
  }

  bool backend_write(websocket& ws) override {
    transport_state& t = tx(ws);
    if (t.connecting || t.blocked || t.handle < 0) return true;
    connection& c = ws.core();
    for (int round = 0; round < max_writes; ++round) {
      auto out = c.pending_output();
      if (out.empty()) break;
      msghdr msg{};
      msg.msg_iov = const_cast<iovec*>(reinterpret_cast<const iovec*>(out.data()));
      msg.msg_iovlen = std::min<std::size_t>(out.size(), IOV_MAX);
      const ssize_t n = ::sendmsg(t.handle, &msg, MSG_NOSIGNAL);
      if (n > 0) {
        (void)c.consume_output(static_cast<std::size_t>(n));
        counters::bump(ctr(ws)->bytes_out, static_cast<std::uint64_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        t.blocked = true;
        if (!t.out_armed) {
          t.out_armed = true;
          mod(t.handle, EPOLLIN | EPOLLRDHUP | EPOLLET | EPOLLOUT, token(ws));
        }
        return true;
      }
      on_transport_error(ws, last_error());
      return false;
    }
    if (c.buffered_amount() == 0) {
      if (t.out_armed) {
        t.out_armed = false;
        mod(t.handle, EPOLLIN | EPOLLRDHUP | EPOLLET, token(ws));
      }
    } else {
      mark_dirty(ws);  // more than max_writes rounds: go on after the others
    }
    return true;
  }

  void backend_resume_read(websocket& ws) override { push_ready(ws); }

  void backend_shutdown_write(websocket& ws) override {
    transport_state& t = tx(ws);
    if (t.handle >= 0) ::shutdown(t.handle, SHUT_WR);
  }

  void backend_close(websocket& ws) override {
    transport_state& t = tx(ws);
    if (t.handle < 0) return;
    ::close(t.handle);  // also leaves the epoll set: the descriptor is not shared
    t.handle = -1;
  }

 private:
  static std::uint64_t token(websocket& ws) {
    return (std::uint64_t(serial_of(ws)) << 32) | slot_of(ws);
  }

  bool add(int fd, std::uint32_t events, std::uint64_t tok) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tok;
    return ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) == 0;
  }
  void mod(int fd, std::uint32_t events, std::uint64_t tok) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tok;
    (void)::epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &ev);
  }

  void close_own() {
    if (reserve_fd_ >= 0) ::close(reserve_fd_);
    if (timer_fd_ >= 0) ::close(timer_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (ep_ >= 0) ::close(ep_);
  }

  void arm_timer(std::optional<time_point> deadline) {
    if (deadline == timer_armed_) return;
    itimerspec its{};
    if (deadline) {
      // steady_clock is CLOCK_MONOTONIC: its epoch is the timerfd's.
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch()).count();
      if (ns <= 0) ns = 1;
      its.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
      its.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
    }
    ::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &its, nullptr);
    timer_armed_ = deadline;
  }

  void push_ready(websocket& ws) {
    transport_state& t = tx(ws);
    if (t.handle < 0 || t.on_ready) return;
    t.on_ready = true;
    ready_.push_back(token(ws));
  }

  void on_event(websocket& ws, std::uint32_t events) {
    transport_state& t = tx(ws);
    if (t.connecting) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(t.handle, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      t.connecting = false;
      t.out_armed = false;
      if (!err) mod(t.handle, EPOLLIN | EPOLLRDHUP | EPOLLET, token(ws));
      on_connected(ws, err ? std::error_code(err, std::system_category()) : std::error_code());
      if (!err && !finished(ws)) read_some(ws);
      return;
    }
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) t.hangup = true;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_some(ws);
    if ((events & EPOLLOUT) && !finished(ws)) {
      t.blocked = false;
      on_writable(ws);
    }
  }

  void read_some(websocket& ws) {
    transport_state& t = tx(ws);
    for (int i = 0; i < read_budget; ++i) {
      if (finished(ws) || t.handle < 0) return;
      if (paused(ws) || !has_core(ws)) return;  // resume_reading() puts it back on the ready list
      const ssize_t n = ::read(t.handle, rbuf_.get(), read_buffer_size);
      if (n > 0) {
        on_input(ws, {rbuf_.get(), static_cast<std::size_t>(n)});
        // A short read emptied the socket; with a hangup pending, read on
        // to see the end of stream (edge triggering will not say it again).
        if (std::size_t(n) < read_buffer_size && !t.hangup) return;
        continue;
      }
      if (n == 0) {
        on_eof(ws);
        return;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      on_transport_error(ws, last_error());
      return;
    }
    if (!finished(ws)) push_ready(ws);  // budget used up: more after the others
  }

  void accept_all(std::size_t li) {
    if (li >= listeners_.size() || !listeners_[li].active) return;
    for (int k = 0; k < accept_budget; ++k) {
      listener& l = listeners_[li];  // on_accept may grow nothing here, but be safe
      if (!l.active) return;
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      const int fd = ::accept4(l.fd, reinterpret_cast<sockaddr*>(&ss), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        l.on_accept(*this, fd, reinterpret_cast<sockaddr*>(&ss), len);
        continue;
      }
      const int err = errno;
      switch (err) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
          continue;
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
          return;
        case EMFILE:
        case ENFILE:
          accept_error(l, err);
          if (reserve_fd_ >= 0) {
            // Refuse this one visibly instead of leaving it (and the edge)
            // pending: free the reserve, accept, close, take the reserve back.
            ::close(reserve_fd_);
            const int x = ::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (x >= 0) ::close(x);
            reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (x >= 0) continue;
          }
          retry_accept_later(li);
          return;
        default:  // ENOBUFS, ENOMEM, ...: try again shortly
          accept_error(l, err);
          retry_accept_later(li);
          return;
      }
    }
    push_ready_listener(li);
  }

  void accept_error(listener& l, int err) { report_accept_error(l.log, l.ctr, now_, l.last_log, err); }

  void retry_accept_later(std::size_t li) {
    call_at(now_ + std::chrono::milliseconds(100), [this, li] { push_ready_listener(li); },
            /*keep_alive=*/false);
  }

  void push_ready_listener(std::size_t li) {
    if (li >= listeners_.size() || listeners_[li].on_ready || !listeners_[li].active) return;
    listeners_[li].on_ready = true;
    ready_.push_back(listener_base + li);
  }

  int ep_ = -1, wake_fd_ = -1, timer_fd_ = -1, reserve_fd_ = -1;
  std::optional<time_point> timer_armed_;
  std::unique_ptr<std::byte[]> rbuf_;
  std::vector<listener> listeners_;
  std::vector<std::uint64_t> ready_;
};

}  // namespace

std::unique_ptr<loop_base> make_epoll_loop() { return std::make_unique<epoll_loop>(); }

}  // namespace gust::detail
