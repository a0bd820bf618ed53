// Connection sockets in an edge-triggered epoll set: what the epoll adapter
// and the Asio adapter (which watches its connections through an epoll set
// of its own, see asio_loop.cpp) share. How the set is waited on, timers,
// waking and re-arming listeners stay with each adapter.
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
// Running out of file descriptors (EMFILE/ENFILE) must not stall a listener
// (with edge triggering a pending connection left unaccepted would never be
// reported again): a descriptor kept in reserve is released to accept and
// close the connection at once, the error is counted and logged (at most
// once a second), and the listener keeps serving.
//
// A class template over the adapter (CRTP), not virtual hooks: the path
// every message takes (event, read, write) is compiled into each adapter
// as before, with no indirect call. The adapter may define, as friends:
//   void ready_pending();            a connection went on the ready list:
//                                    make sure serve_ready() runs soon
//   void ready_own(std::uint32_t);   an adapter token (serial 0) from the
//                                    ready list (epoll: a listener)
//   void own_event(std::uint32_t);   an adapter token from the set
//
// A connection's socket state is the facade's transport_state, inline in
// its websocket: handle is the socket, out_armed says EPOLLOUT is
// registered, hangup that EPOLLRDHUP/HUP/ERR was seen.
#pragma once

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <system_error>
#include <vector>

#include "loop.hpp"

namespace gust::detail {

/// What a listener of an epoll_sockets adapter holds, whatever watches it.
struct listener_state {
  loop_base::accept_fn on_accept;
  logger log;
  counters* ctr = nullptr;
  bool active = false;
  time_point last_log{};
};

/// Why accept_from() stopped.
enum class accept_stop {
  drained,  // EAGAIN: wait for the listener's next readiness
  budget,   // accept_budget used up: go on after the others
  later,    // an error (EMFILE, ENOBUFS...): try again shortly
  closed,   // the listener was removed meanwhile
};

template <class Loop>
class epoll_sockets : public loop_base {
 public:
  static constexpr std::size_t read_buffer_size = 256 * 1024;
  static constexpr int read_budget = 8;      // full reads per connection per turn
  static constexpr int max_events = 256;     // events taken per epoll_wait
  static constexpr int accept_budget = 256;  // accepts per listener per turn
  static constexpr int max_writes = 64;      // sendmsg calls per connection per service

  void backend_attach(websocket& ws, int fd, bool connecting) override { (void)attach_socket(ws, fd, connecting); }

  bool backend_write(websocket& ws) override {
    transport_state& t = tx(ws);
    if (t.connecting || t.blocked || t.handle < 0) return true;
    connection& c = ws.core();
    for (int round = 0; round < max_writes; ++round) {
      auto out = c.pending_output();
      if (out.empty()) break;
      const ssize_t n = write_pending(ws, t.handle, out);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        t.blocked = true;
        if (!t.out_armed) {
          t.out_armed = true;
          (void)ctl(EPOLL_CTL_MOD, t.handle, conn_events | EPOLLOUT, token(ws));
        }
        return true;
      }
      on_transport_error(ws, last_error());
      return false;
    }
    if (c.buffered_amount() == 0) {
      if (t.out_armed) {
        t.out_armed = false;
        (void)ctl(EPOLL_CTL_MOD, t.handle, conn_events, token(ws));
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

  void backend_close(websocket& ws) override { (void)close_socket(ws); }

 protected:
  // What a connection is registered for, besides EPOLLOUT while armed.
  static constexpr std::uint32_t conn_events = EPOLLIN | EPOLLRDHUP | EPOLLET;

  explicit epoll_sockets(gust::adapter a) : loop_base(a) {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) throw std::system_error(last_error(), "gust: epoll_create1");
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    rbuf_ = std::make_unique_for_overwrite<std::byte[]>(read_buffer_size);
  }
  ~epoll_sockets() override {
    if (reserve_fd_ >= 0) ::close(reserve_fd_);
    if (ep_ >= 0) ::close(ep_);
  }

  /// epoll_event.data.u64 of a connection: (serial << 32) | slot. Serial 0
  /// is never a session's: the adapter's own descriptors use it.
  static std::uint64_t token(websocket& ws) { return (std::uint64_t(serial_of(ws)) << 32) | slot_of(ws); }

  bool ctl(int op, int fd, std::uint32_t events, std::uint64_t tok) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tok;
    return ::epoll_ctl(ep_, op, fd, &ev) == 0;
  }

  /// Fills ws's transport state and adds `fd` to the set (writable too while
  /// `connecting`). False (the error reported) if epoll_ctl failed.
  bool attach_socket(websocket& ws, int fd, bool connecting) {
    transport_state& t = tx(ws);
    t.handle = fd;
    t.connecting = connecting;
    t.out_armed = connecting;
    if (ctl(EPOLL_CTL_ADD, fd, conn_events | (connecting ? std::uint32_t(EPOLLOUT) : 0u), token(ws)))
      return true;
    on_transport_error(ws, last_error());
    return false;
  }

  /// Closes the socket, which also leaves the set (the descriptor is not
  /// shared). False if it was closed already.
  bool close_socket(websocket& ws) {
    transport_state& t = tx(ws);
    if (t.handle < 0) return false;
    ::close(t.handle);
    t.handle = -1;
    return true;
  }

  /// Dispatches `n` events taken from the set.
  void dispatch_events(const epoll_event* evs, int n) {
    for (int i = 0; i < n; ++i) {
      const std::uint64_t tok = evs[i].data.u64;
      const auto serial = static_cast<std::uint32_t>(tok >> 32);
      const auto slot = static_cast<std::uint32_t>(tok);
      if (serial == 0) {
        self().own_event(slot);
        continue;
      }
      if (websocket* ws = live(slot, serial)) on_event(*ws, evs[i].events);
    }
  }

  /// Serves what is on the ready list now (what goes on it meanwhile waits
  /// for the next call).
  void serve_ready() {
    // Two lists that trade places keep their storage: a connection paused
    // and resumed by backpressure on every message does not allocate.
    std::vector<std::uint64_t> batch;
    batch.swap(ready_spare_);
    batch.swap(ready_);
    for (std::uint64_t tok : batch) {
      const auto serial = static_cast<std::uint32_t>(tok >> 32);
      const auto slot = static_cast<std::uint32_t>(tok);
      if (serial == 0) {
        self().ready_own(slot);
        continue;
      }
      if (websocket* ws = live(slot, serial)) {
        tx(*ws).on_ready = false;
        read_some(*ws);
      }
    }
    batch.clear();
    ready_spare_.swap(batch);
  }

  /// Puts an adapter token (serial 0) on the ready list.
  void push_ready_own(std::uint32_t slot) {
    ready_.push_back(slot);
    self().ready_pending();
  }

  /// Accepts up to accept_budget connections from `fd`, the socket of
  /// listeners[li], handing each to its on_accept. (The listener is looked
  /// up again after each: on_accept may change the list.)
  template <class Listener>
  accept_stop accept_from(std::vector<Listener>& listeners, std::size_t li, int fd) {
    for (int k = 0; k < accept_budget; ++k) {
      listener_state& l = listeners[li];
      if (!l.active) return accept_stop::closed;
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      const int c = ::accept4(fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c >= 0) {
        l.on_accept(*this, c, reinterpret_cast<sockaddr*>(&ss), len);
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
          return accept_stop::drained;
        case EMFILE:
        case ENFILE:
          report_accept_error(l.log, l.ctr, now_, l.last_log, err);
          if (reserve_fd_ >= 0) {
            // Refuse this one visibly instead of leaving it (and the edge)
            // pending: free the reserve, accept, close, take the reserve back.
            ::close(reserve_fd_);
            const int x = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (x >= 0) ::close(x);
            reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (x >= 0) continue;
          }
          return accept_stop::later;
        default:  // ENOBUFS, ENOMEM, ...: try again shortly
          report_accept_error(l.log, l.ctr, now_, l.last_log, err);
          return accept_stop::later;
      }
    }
    return accept_stop::budget;
  }

  // Defaults for the hooks (see the top of the file).
  void ready_pending() {}
  void ready_own(std::uint32_t) {}
  void own_event(std::uint32_t) {}

  int ep_ = -1;
  std::vector<std::uint64_t> ready_;  // tokens, served by serve_ready()
  std::vector<std::uint64_t> ready_spare_;  // the other list, empty

 private:
  Loop& self() noexcept { return static_cast<Loop&>(*this); }

  // The session of a connection token if it still has its socket (an event
  // or a ready-list entry may outlive the connection).
  websocket* live(std::uint32_t slot, std::uint32_t serial) noexcept {
    websocket* ws = session(slot, serial);
    return ws && !finished(*ws) && tx(*ws).handle >= 0 ? ws : nullptr;
  }

  void push_ready(websocket& ws) {
    transport_state& t = tx(ws);
    if (t.handle < 0 || t.on_ready) return;
    t.on_ready = true;
    ready_.push_back(token(ws));
    self().ready_pending();
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
      if (!err) (void)ctl(EPOLL_CTL_MOD, t.handle, conn_events, token(ws));
      on_connected(ws, err ? std::error_code(err, std::system_category()) : std::error_code());
      if (!err && !finished(ws)) read_some(ws);
      return;
    }
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) t.hangup = true;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_some(ws);
    if ((events & EPOLLOUT) && !finished(ws) && t.handle >= 0) {
      t.blocked = false;
      on_writable(ws);
    }
  }

  void read_some(websocket& ws) {
    transport_state& t = tx(ws);
    for (int i = 0; i < read_budget; ++i) {
      if (finished(ws) || t.handle < 0 || t.connecting) return;
      if (paused(ws) || !has_core(ws)) return;  // resume_reading() puts it on the ready list
      const ssize_t n = ::recv(t.handle, rbuf_.get(), read_buffer_size, 0);
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

  int reserve_fd_ = -1;
  std::unique_ptr<std::byte[]> rbuf_;
};

}  // namespace gust::detail
