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
// Why readiness waits (socket::async_wait) and not async_read_some: the
// facade reads every connection into one 256 KiB buffer per loop, lent to
// the core (receive()), so an idle connection holds no receive buffer, as
// under epoll. An outstanding async_read_some needs a buffer per connection.
// The wait is race-free under Asio's epoll reactor even with several threads
// running the io_context: a wait that finds no operation queued re-arms the
// descriptor with EPOLL_CTL_MOD, which reports a socket already readable.
// Writes go straight to sendmsg (non-blocking) from the core's buffer list;
// only a full socket waits for writability.
//
// The facade hands sockets around as descriptors (open_listener, the
// client's connect), so listeners are Asio acceptors and connections Asio
// generic stream sockets (TCP or Unix) adopted from them; the EMFILE
// reserve-descriptor handling is the epoll adapter's.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <asio/any_io_executor.hpp>
#include <asio/basic_socket_acceptor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
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
constexpr int read_budget = 8;      // full reads per connection per completion
constexpr int accept_budget = 256;  // accepts per listener per completion
constexpr int max_writes = 64;      // sendmsg calls per connection per service
constexpr int poll_batch = 1024;    // handlers per backend_poll, so timers and
                                    // the flush list are not starved

using gsocket = ::asio::generic::stream_protocol::socket;
using gacceptor = ::asio::basic_socket_acceptor<::asio::generic::stream_protocol>;

::asio::generic::stream_protocol protocol_of(int fd) {
  int family = AF_INET;
  socklen_t len = sizeof family;
  (void)::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len);
  return {family, family == AF_UNIX ? 0 : IPPROTO_TCP};
}

struct asio_transport final : transport {
  explicit asio_transport(const ::asio::any_io_executor& ex) : sock(ex) {}
  gsocket sock;
  bool connecting = false;
  bool read_armed = false;   // an async_wait(read) is outstanding
  bool write_armed = false;  // the socket is full: async_wait(write) outstanding
  bool read_posted = false;  // a read continuation is posted
};

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
    if (const char* env = std::getenv("GUST_ASIO_THREADS"); env && std::atoi(env) > 1) start_pool(std::atoi(env));
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
    for (auto& s : slots_)
      if (s) set_tx(*s, nullptr);
    listeners_.clear();
    timer_.reset();
    tracked_ = ::asio::any_io_executor();
    work_.reset();
    if (reserve_fd_ >= 0) ::close(reserve_fd_);
  }

  // A completion handler for connection `ws`: finds it again by slot and
  // serial (it may have ended, and its slot been reused, meanwhile).
  template <class F>
  auto on_conn(websocket& ws, F f) {
    return [this, alive = alive_, slot = slot_of(ws), serial = serial_of(ws), f](const ::asio::error_code& ec) {
      if (!*alive) return;
      enter();
      if (websocket* w = session(slot, serial); w && !finished(*w) && tx(*w)) f(*w, ec);
      leave();
    };
  }

  // ---- attached mode ---------------------------------------------------------

  std::error_code attach(::asio::any_io_executor ex) {
    if (attached_ || sessions_ > 0 || listeners > 0) return make_error_code(errc::invalid_state);
    attached_ = true;
    timer_.reset();
    timer_at_.reset();
    work_.reset();
    ioc_.reset();
    ex_ = ::asio::make_strand(std::move(ex));
    timer_ = std::make_unique<::asio::steady_timer>(ex_);
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
    auto t = std::make_unique<asio_transport>(ex_);
    ::asio::error_code ec;
    t->sock.assign(protocol_of(fd), fd, ec);
    if (ec) ::close(fd);
    t->connecting = connecting && !ec;
    auto* tp = t.get();
    set_tx(ws, std::move(t));
    if (ec) {
      on_transport_error(ws, ec);
      return;
    }
    if (connecting) {
      tp->sock.async_wait(gsocket::wait_write, on_conn(ws, [this](websocket& w, const ::asio::error_code&) {
        auto& tr = *static_cast<asio_transport*>(tx(w));
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(tr.sock.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        tr.connecting = false;
        on_connected(w, err ? std::error_code(err, std::system_category()) : std::error_code());
        if (!err && !finished(w)) read_some(w);
      }));
      return;
    }
    arm_read(ws);
  }

  bool backend_write(websocket& ws) override {
    auto& t = *static_cast<asio_transport*>(tx(ws));
    if (t.connecting || t.write_armed || !t.sock.is_open()) return true;
    connection& c = ws.core();
    const int fd = t.sock.native_handle();
    for (int round = 0; round < max_writes; ++round) {
      auto out = c.pending_output();
      if (out.empty()) return true;
      msghdr msg{};
      msg.msg_iov = const_cast<iovec*>(reinterpret_cast<const iovec*>(out.data()));
      msg.msg_iovlen = std::min<std::size_t>(out.size(), IOV_MAX);
      const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
      if (n > 0) {
        (void)c.consume_output(static_cast<std::size_t>(n));
        counters::bump(ctr(ws)->bytes_out, static_cast<std::uint64_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        t.write_armed = true;
        t.sock.async_wait(gsocket::wait_write, on_conn(ws, [this](websocket& w, const ::asio::error_code&) {
          static_cast<asio_transport*>(tx(w))->write_armed = false;
          on_writable(w);
        }));
        return true;
      }
      on_transport_error(ws, last_error());
      return false;
    }
    if (c.buffered_amount() > 0) mark_dirty(ws);  // go on after the others
    return true;
  }

  void backend_resume_read(websocket& ws) override { post_read(ws); }

  void backend_shutdown_write(websocket& ws) override {
    auto& t = *static_cast<asio_transport*>(tx(ws));
    if (t.sock.is_open()) ::shutdown(t.sock.native_handle(), SHUT_WR);
  }

  void backend_close(websocket& ws) override {
    auto* t = static_cast<asio_transport*>(tx(ws));
    if (!t || !t->sock.is_open()) return;
    ::asio::error_code ec;
    t->sock.close(ec);  // outstanding waits complete with operation_aborted
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

  void arm_read(websocket& ws) {
    auto& t = *static_cast<asio_transport*>(tx(ws));
    if (t.read_armed || !t.sock.is_open()) return;
    t.read_armed = true;
    t.sock.async_wait(gsocket::wait_read, on_conn(ws, [this](websocket& w, const ::asio::error_code& ec) {
      static_cast<asio_transport*>(tx(w))->read_armed = false;
      if (ec) {
        if (ec != ::asio::error::operation_aborted) on_transport_error(w, ec);
        return;
      }
      read_some(w);
    }));
  }

  void post_read(websocket& ws) {
    auto& t = *static_cast<asio_transport*>(tx(ws));
    if (t.read_posted) return;
    t.read_posted = true;
    ::asio::post(ex_, [h = on_conn(ws, [this](websocket& w, const ::asio::error_code&) {
                        static_cast<asio_transport*>(tx(w))->read_posted = false;
                        read_some(w);
                      })]() mutable { h(::asio::error_code()); });
  }

  void read_some(websocket& ws) {
    auto& t = *static_cast<asio_transport*>(tx(ws));
    for (int i = 0; i < read_budget; ++i) {
      if (finished(ws) || !t.sock.is_open() || t.connecting) return;
      if (paused(ws) || !has_core(ws)) return;  // resume_reading() posts a read
      const ssize_t n = ::read(t.sock.native_handle(), rbuf_.get(), read_buffer_size);
      if (n > 0) {
        on_input(ws, {rbuf_.get(), static_cast<std::size_t>(n)});
        if (std::size_t(n) < read_buffer_size) {
          // Probably empty: wait (a wait on a readable socket fires at once).
          if (!finished(ws) && !paused(ws)) arm_read(ws);
          return;
        }
        continue;
      }
      if (n == 0) {
        on_eof(ws);
        return;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        arm_read(ws);
        return;
      }
      on_transport_error(ws, last_error());
      return;
    }
    if (!finished(ws)) post_read(ws);  // budget used up: more after the others
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
        l.on_accept(*this, fd, to_endpoint(reinterpret_cast<sockaddr*>(&ss), len));
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
