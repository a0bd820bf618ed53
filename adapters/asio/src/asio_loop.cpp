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
// descriptors in the inner set. The connection sockets' handling (reads,
// writes, EPOLLOUT, the ready list) and the accept loop with its EMFILE
// reserve descriptor are epoll_sockets.hpp's, shared with the epoll adapter;
// what is this file's is how they are waited on and when the ready list
// and listeners are served (posted completions).
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/any_io_executor.hpp>
#include <asio/bind_allocator.hpp>
#include <asio/basic_socket_acceptor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <system_error>

#include "epoll_sockets.hpp"
#include "gust/asio_loop.hpp"
#include "op_memory.hpp"

namespace gust::detail {
namespace {

constexpr int poll_batch = 1024;  // handlers per backend_poll, so timers and
                                  // the flush list are not starved

using gacceptor = ::asio::basic_socket_acceptor<::asio::generic::stream_protocol>;

::asio::generic::stream_protocol protocol_of(int fd) {
  int family = AF_INET;
  socklen_t len = sizeof family;
  (void)::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len);
  return {family, family == AF_UNIX ? 0 : IPPROTO_TCP};
}

// A handler whose operation Asio allocates from `m` (op_memory.hpp).
template <class F>
auto bind_op_memory(const std::shared_ptr<op_memory>& m, F&& f) {
  return ::asio::bind_allocator(op_allocator<void>(m), std::forward<F>(f));
}

struct listener : listener_state {
  std::unique_ptr<gacceptor> acc;
  bool armed = false;
};

class asio_loop final : public epoll_sockets<asio_loop> {
 public:
  asio_loop()
      : epoll_sockets(gust::adapter::asio),
        ioc_(std::make_unique<::asio::io_context>(1)),
        ex_(ioc_->get_executor()),
        work_(std::make_unique<work_guard>(ioc_->get_executor())),
        timer_(std::make_unique<::asio::steady_timer>(ex_)) {
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
    sessions_store_.for_each([&](websocket& ws) {
      transport_state& t = tx(ws);
      if (t.handle >= 0) ::close(t.handle);
      t.handle = -1;
    });
    listeners_.clear();
    ep_wait_->release();  // the inner set is closed by epoll_sockets
    ep_wait_.reset();
    timer_.reset();
    tracked_ = ::asio::any_io_executor();
    work_.reset();
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
      post_turn([this, alive = alive_] {
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
    ++watched_;  // until backend_close, even if adding it fails
    if (attach_socket(ws, fd, connecting)) arm_events();
  }

  void backend_close(websocket& ws) override {
    if (!close_socket(ws)) return;
    // The last one: no wait left outstanding, so an attached loop's
    // executor can run out of work as before.
    if (--watched_ == 0 && events_armed_) ep_wait_->cancel();
  }

 private:
  friend class epoll_sockets<asio_loop>;
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
    timer_->async_wait(bind_op_memory(ops_, [this, alive = alive_](const ::asio::error_code& ec) {
      if (ec == ::asio::error::operation_aborted || !*alive) return;
      timer_at_.reset();
      enter();
      leave();
    }));
  }

  // One Asio wait on the inner set while any connection is in it.
  void arm_events() {
    if (events_armed_ || watched_ == 0) return;
    events_armed_ = true;
    ep_wait_->async_wait(::asio::posix::stream_descriptor::wait_read,
                         bind_op_memory(ops_, [this, alive = alive_](const ::asio::error_code& ec) {
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
                         }));
  }

  // What the inner set reports. Edge-triggered: every readiness is used up
  // (or its connection put on the ready list). More than max_events ready:
  // the next wait, started after this batch, reports the set ready again.
  void take_events() {
    epoll_event evs[max_events];
    int n = ::epoll_wait(ep_, evs, max_events, 0);
    if (n < 0) n = 0;  // EINTR
    dispatch_events(evs, n);
  }

  // epoll_sockets' hook: connections with input left after their budget,
  // or whose reading resumed, are served by one posted completion, after
  // what is queued now.
  void ready_pending() {
    if (ready_posted_) return;
    ready_posted_ = true;
    post_turn([this, alive = alive_] {
      if (!*alive) return;
      ready_posted_ = false;
      enter();
      serve_ready();
      leave();
    });
  }

  // ---- accepting ---------------------------------------------------------------

  void arm_accept(std::size_t li) {
    listener& l = listeners_[li];
    if (!l.active || l.armed) return;
    l.armed = true;
    l.acc->async_wait(gacceptor::wait_read, bind_op_memory(ops_, [this, alive = alive_, li](const ::asio::error_code& ec) {
      if (!*alive) return;
      listeners_[li].armed = false;
      if (ec == ::asio::error::operation_aborted) return;
      enter();
      accept_all(li);
      leave();
    }));
  }

  void accept_all(std::size_t li) {
    if (li >= listeners_.size() || !listeners_[li].active) return;
    switch (accept_from(listeners_, li, listeners_[li].acc->native_handle())) {
      case accept_stop::drained:
        arm_accept(li);
        return;
      case accept_stop::budget:  // the rest after the others
        post_turn([this, alive = alive_, li] {
          if (!*alive) return;
          enter();
          accept_all(li);
          leave();
        });
        return;
      case accept_stop::later:
        call_at(now_ + std::chrono::milliseconds(100), [this, li] { accept_all(li); },
                /*keep_alive=*/false);
        return;
      case accept_stop::closed:
        return;
    }
  }

  // A completion of the loop's own, after what is queued now. Owned by one
  // thread, straight to the io_context's executor: through ex_ (type-erased)
  // Asio would wrap it in a function object allocated its own way.
  template <class F>
  void post_turn(F&& f) {
    if (!attached_ && pool_.empty())
      ::asio::post(ioc_->get_executor(), bind_op_memory(ops_, std::forward<F>(f)));
    else
      ::asio::post(ex_, bind_op_memory(ops_, std::forward<F>(f)));
  }

  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
  std::shared_ptr<op_memory> ops_ = std::make_shared<op_memory>();
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
  std::vector<listener> listeners_;
  // Asio's wait on the inner epoll set (epoll_sockets::ep_, which it does
  // not own: released before it goes).
  std::unique_ptr<::asio::posix::stream_descriptor> ep_wait_;
  bool events_armed_ = false;
  std::size_t watched_ = 0;  // connections in the inner set
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
