// The Asio adapter's facade backend: gust::server, gust::client and
// `gust serve --adapter asio` over standalone Asio (1.22, header-only).
//
// Two ways to run:
//   - owned: event_loop(gust::adapter::asio) owns a one-thread io_context;
//     loop_base::run() drives it (backend_poll runs it for one batch), so
//     the loop behaves exactly like the epoll one.
//   - attached: gust::asio::attach(loop, executor) puts the loop on the
//     user's executor (an io_context, a thread pool...). Every completion is
//     bound to one strand, and after each one the loop's turn runs there
//     (posted tasks, expired timers, the flush list, reaping), with one
//     steady_timer armed at the loop's next deadline. Nothing runs run().
//
// Connections are watched by an epoll set of the adapter's own, and Asio
// waits on that one descriptor (posix::stream_descriptor::async_wait), not
// on each socket. Why: the facade reads every connection into one 256 KiB
// buffer per loop, lent to the core (receive()), so an idle connection holds
// no receive buffer, as under epoll; an outstanding async_read_some would
// need a buffer per connection, and a readiness wait per socket
// (socket::async_wait) costs an epoll_ctl(EPOLL_CTL_MOD) in Asio's reactor
// every time it is started (waits are never speculative), that is one more
// system call per message in request/response traffic. The inner set is
// edge-triggered and its readiness is re-armed once per batch of events;
// Asio's own wait on it is started once per batch too. Writes go straight
// to sendmsg (non-blocking) from the core's buffer list; only a full socket
// waits for writability (EPOLLOUT in the inner set). Everything still runs
// as Asio completions on the loop's executor (or strand), so attached mode
// and the thread pool are unchanged.
//
// The facade hands sockets around as descriptors (open_listener, the
// client's connect): listeners are Asio acceptors, connections stay plain
// descriptors in the inner set; the EMFILE reserve-descriptor handling is
// the epoll adapter's.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <asio/any_io_executor.hpp>
#include <asio/basic_socket_acceptor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <system_error>

#include "gust/asio_loop.hpp"
#include "loop.hpp"

namespace gust::detail {
namespace {

constexpr std::size_t read_buffer_size = 256 * 1024;
constexpr int read_budget = 8;      // full reads per connection per turn
constexpr int max_events = 256;     // inner epoll events per completion
constexpr int accept_budget = 256;  // accepts per listener per completion
constexpr int max_writes = 64;      // sendmsg calls per connection per service
constexpr int poll_batch = 1024;    // handlers per backend_poll, so timers and
                                    // the flush list are not starved

using gacceptor = ::asio::basic_socket_acceptor<::asio::generic::stream_protocol>;

::asio::generic::stream_protocol protocol_of(int fd) {
  int family = AF_INET;
  socklen_t len = sizeof family;
  (void)::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len);
  return {family, family == AF_UNIX ? 0 : IPPROTO_TCP};
}

// A connection's socket state is the facade's transport_state, inline in
// its websocket: handle is the socket, out_armed says EPOLLOUT is
// registered in the inner set, hangup that EPOLLRDHUP/HUP/ERR was seen.

struct listener {
  std::unique_ptr<gacceptor> acc;
  loop_base::accept_fn on_accept;
  logger log;
  counters* ctr = nullptr;
  bool active = false;
  bool armed = false;
  time_point last_log{};
};

class asio_loop final : public loop_base {
 public:
  asio_loop()
      : loop_base(gust::adapter::asio),
        ioc_(std::make_unique<::asio::io_context>(1)),
        ex_(ioc_->get_executor()),
        work_(std::make_unique<work_guard>(ioc_->get_executor())),
        timer_(std::make_unique<::asio::steady_timer>(ex_)) {
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    rbuf_ = std::make_unique_for_overwrite<std::byte[]>(read_buffer_size);
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) throw std::system_error(last_error(), "gust asio: epoll_create1");
    ep_ = ep;
    if (const char* env = std::getenv("GUST_ASIO_THREADS"); env && std::atoi(env) > 1) start_pool(std::atoi(env));
    ep_wait_ = std::make_unique<::asio::posix::stream_descriptor>(ex_, ep_);
  }

  ~asio_loop() override {
    join_helpers();
    *alive_ = false;
    if (!pool_.empty()) {
      // The strand is parked here: stop the pool, then let it go.
      ioc_->stop();
      {
        std::lock_guard lk(gate_m_);
        ++openings_;
      }
      gate_cv_.notify_all();
      for (auto& t : pool_) t.join();
    }
    // Sockets before the io_context they belong to (the base's sessions
    // outlive this class's members).
    for (auto& s : slots_) {
      if (!s) continue;
      transport_state& t = tx(*s);
      if (t.handle >= 0) ::close(t.handle);
      t.handle = -1;
    }
    listeners_.clear();
    ep_wait_.reset();  // closes the inner epoll set
    timer_.reset();
    tracked_ = ::asio::any_io_executor();
    work_.reset();
    if (reserve_fd_ >= 0) ::close(reserve_fd_);
  }

  // ---- attached mode ---------------------------------------------------------

  std::error_code attach(::asio::any_io_executor ex) {
    if (attached_ || sessions_ > 0 || listeners > 0) return make_error_code(errc::invalid_state);
    attached_ = true;
    timer_.reset();
    timer_at_.reset();
    ep_wait_->release();  // the inner set moves to the new executor
    ep_wait_.reset();
    work_.reset();
    ioc_.reset();
    ex_ = ::asio::make_strand(std::move(ex));
    timer_ = std::make_unique<::asio::steady_timer>(ex_);
    ep_wait_ = std::make_unique<::asio::posix::stream_descriptor>(ex_, ep_);
    set_loop_thread({});
    // Outstanding work while the loop has some (see leave()), so the user's
    // run() does not return while, say, a host name is being resolved; the
    // first turn drops it if nothing was added meanwhile.
    tracked_ = ::asio::prefer(ex_, ::asio::execution::outstanding_work.tracked);
    backend_wake();
    return {};
  }

  // ---- waiting (owned mode) --------------------------------------------------

  void backend_poll(std::optional<time_point> deadline, bool nonblocking) override {
    if (attached_) return;  // the user's executor runs this loop: see attach()
    if (!pool_.empty()) return pool_poll(deadline, nonblocking);
    if (ioc_->stopped()) ioc_->restart();
    if (!nonblocking) {
      // A steady_timer (a timerfd under Asio's epoll reactor) rather than
      // run_one_until(), which rounds its wait to milliseconds: the
      // deadlines must fire in the order the heaps hold them.
      arm_timer(deadline);
      ioc_->run_one();
    }
    for (int i = 0; i < poll_batch && ioc_->poll_one(); ++i) {
    }
    now_ = clock::now();
  }

  void backend_wake() override {
    if (!pool_.empty()) {
      {
        std::lock_guard lk(gate_m_);
        wake_ = true;
      }
      gate_cv_.notify_all();
      return;
    }
    if (attached_) {
      // Posted tasks (and stop) are picked up by a turn on the strand.
      if (wake_posted_.exchange(true)) return;
      ::asio::post(ex_, [this, alive = alive_] {
        if (!*alive) return;
        wake_posted_.store(false);
        enter();
        leave();
      });
      return;
    }
    ::asio::post(*ioc_, [] {});
  }

  // ---- listeners -------------------------------------------------------------

  int backend_add_listener(int fd, accept_fn on_accept, logger log, counters* c, bool) override {
    const int id = static_cast<int>(listeners_.size());
    listener l;
    l.acc = std::make_unique<gacceptor>(ex_);
    ::asio::error_code ec;
    l.acc->assign(protocol_of(fd), fd, ec);
    if (ec) {
      ::close(fd);
      return -1;
    }
    l.on_accept = std::move(on_accept);
    l.log = log;
    l.ctr = c;
    l.active = true;
    listeners_.push_back(std::move(l));
    ++listeners;
    arm_accept(static_cast<std::size_t>(id));
    return id;
  }

  void backend_remove_listener(int id) override {
    if (id < 0 || std::size_t(id) >= listeners_.size() || !listeners_[id].active) return;
    listener& l = listeners_[id];
    ::asio::error_code ec;
    l.acc->close(ec);
    l.active = false;
    l.on_accept = nullptr;
    --listeners;
  }

  // ---- connections -----------------------------------------------------------

  void backend_attach(websocket& ws, int fd, bool connecting) override {
    transport_state& t = tx(ws);
    t.handle = fd;
    t.connecting = connecting;
    t.out_armed = connecting;
    ++watched_;  // until backend_close, even if the next line fails
    const std::uint32_t ev = EPOLLIN | EPOLLRDHUP | EPOLLET | (connecting ? std::uint32_t(EPOLLOUT) : 0u);
    if (!ctl(EPOLL_CTL_ADD, fd, ev, token(ws))) {
      on_transport_error(ws, last_error());
      return;
    }
    arm_events();
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
          (void)ctl(EPOLL_CTL_MOD, t.handle, EPOLLIN | EPOLLRDHUP | EPOLLET | EPOLLOUT, token(ws));
        }
        return true;
      }
      on_transport_error(ws, last_error());
      return false;
    }
    if (c.buffered_amount() == 0) {
      if (t.out_armed) {
        t.out_armed = false;
        (void)ctl(EPOLL_CTL_MOD, t.handle, EPOLLIN | EPOLLRDHUP | EPOLLET, token(ws));
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
    ::close(t.handle);  // also leaves the inner set: the descriptor is not shared
    t.handle = -1;
    // The last one: no wait left outstanding, so an attached loop's
    // executor can run out of work as before.
    if (--watched_ == 0 && events_armed_) ep_wait_->cancel();
  }

 private:
  using work_guard = ::asio::executor_work_guard<::asio::io_context::executor_type>;

  // Every completion: refresh the clock (and, attached, claim the loop for
  // this thread); afterwards, attached, run the rest of the loop's turn.
  void enter() {
    now_ = clock::now();
    if (attached_ || !pool_.empty()) set_loop_thread(std::this_thread::get_id());
  }
  void leave() {
    if (!pool_.empty()) {
      set_loop_thread(run_thread_);
      {
        std::lock_guard lk(gate_m_);
        activity_ = true;
      }
      gate_cv_.notify_all();
      return;
    }
    if (!attached_) return;
    run_posted();
    run_timers();
    flush_dirty();
    reap();
    // With nothing left, no timer either: an entry for a connection that
    // has ended would keep the user's run() waiting for it.
    const bool work = has_work();
    arm_timer(work ? next_wakeup() : std::nullopt);
    if (!work) {
      tracked_ = ::asio::any_io_executor();
    } else if (!tracked_) {
      tracked_ = ::asio::prefer(ex_, ::asio::execution::outstanding_work.tracked);
    }
    set_loop_thread({});
  }

  // ---- pool mode -----------------------------------------------------------------
  //
  // A test and tuning knob (GUST_ASIO_THREADS=N, N > 1): the same loop, with
  // its io_context run by N threads. run()'s thread owns the loop's state
  // except inside backend_poll, where it opens the gate: the strand's
  // handlers then run on the pool's threads (the reactor on any of them)
  // until one has run, a wake, or the deadline; then a blocker posted to the
  // strand parks it again (after the handlers queued before it) and run()
  // goes on. The mutex hand-off orders every access to the loop's state.

  void start_pool(int n) {
    ex_ = ::asio::make_strand(ioc_->get_executor());
    timer_ = std::make_unique<::asio::steady_timer>(ex_);
    for (int i = 0; i < n; ++i) pool_.emplace_back([this] { ioc_->run(); });
    park();
  }

  // The blocker waits for the next opening (a count, not a flag: the gate
  // may open and close again before the previous blocker wakes).
  void park() {
    std::uint64_t gen;
    {
      std::lock_guard lk(gate_m_);
      parked_ = false;
      gen = openings_;
    }
    ::asio::post(ex_, [this, gen] {
      std::unique_lock lk(gate_m_);
      parked_ = true;
      gate_cv_.notify_all();
      gate_cv_.wait(lk, [&] { return openings_ > gen; });
    });
    std::unique_lock lk(gate_m_);
    gate_cv_.wait(lk, [&] { return parked_; });
  }

  void pool_poll(std::optional<time_point> deadline, bool nonblocking) {
    run_thread_ = std::this_thread::get_id();
    {
      std::unique_lock lk(gate_m_);
      ++openings_;
      gate_cv_.notify_all();
      auto ready = [&] { return activity_ || wake_; };
      if (!nonblocking) {
        if (deadline)
          gate_cv_.wait_until(lk, *deadline, ready);
        else
          gate_cv_.wait(lk, ready);
      }
      activity_ = wake_ = false;
    }
    park();
    set_loop_thread(run_thread_);
    now_ = clock::now();
  }

  void arm_timer(std::optional<time_point> t) {
    if (t == timer_at_) return;
    timer_at_ = t;
    if (!t) {
      timer_->cancel();
      return;
    }
    timer_->expires_at(*t);
    timer_->async_wait([this, alive = alive_](const ::asio::error_code& ec) {
      if (ec == ::asio::error::operation_aborted || !*alive) return;
      timer_at_.reset();
      enter();
      leave();
    });
  }

  static std::uint64_t token(websocket& ws) {
    return (std::uint64_t(serial_of(ws)) << 32) | slot_of(ws);
  }

  bool ctl(int op, int fd, std::uint32_t events, std::uint64_t tok) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tok;
    return ::epoll_ctl(ep_, op, fd, &ev) == 0;
  }

  // One Asio wait on the inner set while any connection is in it.
  void arm_events() {
    if (events_armed_ || watched_ == 0) return;
    events_armed_ = true;
    ep_wait_->async_wait(::asio::posix::stream_descriptor::wait_read,
                         [this, alive = alive_](const ::asio::error_code& ec) {
                           if (!*alive) return;
                           events_armed_ = false;
                           if (ec == ::asio::error::operation_aborted) {
                             arm_events();  // cancelled as the last one left, and a new one came
                             return;
                           }
                           enter();
                           take_events();
                           arm_events();
                           leave();
                         });
  }

  // What the inner set reports. Edge-triggered: every readiness is used up
  // (or its connection put on the ready list). More than max_events ready:
  // the next wait, started after this batch, reports the set ready again.
  void take_events() {
    epoll_event evs[max_events];
    int n = ::epoll_wait(ep_, evs, max_events, 0);
    if (n < 0) n = 0;  // EINTR
    for (int i = 0; i < n; ++i) {
      const std::uint64_t tok = evs[i].data.u64;
      websocket* ws = session(static_cast<std::uint32_t>(tok), static_cast<std::uint32_t>(tok >> 32));
      if (!ws || finished(*ws) || tx(*ws).handle < 0) continue;
      on_event(*ws, evs[i].events);
    }
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
      if (!err) (void)ctl(EPOLL_CTL_MOD, t.handle, EPOLLIN | EPOLLRDHUP | EPOLLET, token(ws));
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

  // Connections with input left after their budget, or whose reading
  // resumed: served by one posted completion, after what is queued now.
  void push_ready(websocket& ws) {
    transport_state& t = tx(ws);
    if (t.handle < 0 || t.on_ready) return;
    t.on_ready = true;
    ready_.push_back(token(ws));
    if (ready_posted_) return;
    ready_posted_ = true;
    ::asio::post(ex_, [this, alive = alive_] {
      if (!*alive) return;
      ready_posted_ = false;
      enter();
      std::vector<std::uint64_t> batch;
      batch.swap(ready_);
      for (std::uint64_t tok : batch) {
        websocket* ws = session(static_cast<std::uint32_t>(tok), static_cast<std::uint32_t>(tok >> 32));
        if (!ws || finished(*ws) || tx(*ws).handle < 0) continue;
        tx(*ws).on_ready = false;
        read_some(*ws);
      }
      leave();
    });
  }

  void read_some(websocket& ws) {
    transport_state& t = tx(ws);
    for (int i = 0; i < read_budget; ++i) {
      if (finished(ws) || t.handle < 0 || t.connecting) return;
      if (paused(ws) || !has_core(ws)) return;  // resume_reading() puts it on the ready list
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

  // ---- accepting ---------------------------------------------------------------

  void arm_accept(std::size_t li) {
    listener& l = listeners_[li];
    if (!l.active || l.armed) return;
    l.armed = true;
    l.acc->async_wait(gacceptor::wait_read, [this, alive = alive_, li](const ::asio::error_code& ec) {
      if (!*alive) return;
      listeners_[li].armed = false;
      if (ec == ::asio::error::operation_aborted) return;
      enter();
      accept_all(li);
      leave();
    });
  }

  void accept_all(std::size_t li) {
    if (li >= listeners_.size() || !listeners_[li].active) return;
    for (int k = 0; k < accept_budget; ++k) {
      listener& l = listeners_[li];
      if (!l.active) return;
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      const int fd = ::accept4(l.acc->native_handle(), reinterpret_cast<sockaddr*>(&ss), &len,
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
          arm_accept(li);
          return;
        case EMFILE:
        case ENFILE:
          accept_error(l, err);
          if (reserve_fd_ >= 0) {
            // Refuse this one visibly instead of leaving it pending: free
            // the reserve, accept, close, take the reserve back.
            ::close(reserve_fd_);
            const int x = ::accept4(l.acc->native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
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
    // Budget used up: the rest after the others.
    ::asio::post(ex_, [this, alive = alive_, li] {
      if (!*alive) return;
      enter();
      accept_all(li);
      leave();
    });
  }

  void accept_error(listener& l, int err) { report_accept_error(l.log, l.ctr, now_, l.last_log, err); }

  void retry_accept_later(std::size_t li) {
    call_at(now_ + std::chrono::milliseconds(100), [this, li] { accept_all(li); },
            /*keep_alive=*/false);
  }

  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
  bool attached_ = false;
  // Pool mode (GUST_ASIO_THREADS): the owned io_context is run by pool
  // threads; the loop's state is handed between run()'s thread and the
  // strand through a gate (see backend_poll).
  std::vector<std::thread> pool_;
  std::mutex gate_m_;
  std::condition_variable gate_cv_;
  bool parked_ = false, activity_ = false, wake_ = false;
  std::uint64_t openings_ = 0;
  std::thread::id run_thread_{};
  std::atomic<bool> wake_posted_{false};
  std::unique_ptr<::asio::io_context> ioc_;
  ::asio::any_io_executor ex_;
  std::unique_ptr<work_guard> work_;
  std::unique_ptr<::asio::steady_timer> timer_;
  std::optional<time_point> timer_at_;
  ::asio::any_io_executor tracked_;  // attached: keeps the user's run() going
  int reserve_fd_ = -1;
  std::unique_ptr<std::byte[]> rbuf_;
  std::vector<listener> listeners_;
  // The inner epoll set (owned by ep_wait_ once it exists).
  int ep_ = -1;
  std::unique_ptr<::asio::posix::stream_descriptor> ep_wait_;
  bool events_armed_ = false;
  std::size_t watched_ = 0;  // connections in the inner set
  std::vector<std::uint64_t> ready_;
  bool ready_posted_ = false;
};

}  // namespace

std::unique_ptr<loop_base> make_asio_loop() { return std::make_unique<asio_loop>(); }

}  // namespace gust::detail

namespace gust::asio {

std::error_code attach(gust::event_loop& loop, ::asio::any_io_executor ex) {
  if (loop.adapter() != gust::adapter::asio) return make_error_code(errc::invalid_argument);
  return static_cast<gust::detail::asio_loop&>(loop.impl()).attach(std::move(ex));
}

}  // namespace gust::asio
