// The epoll adapter: readiness, edge-triggered.
//
// What it relies on (Linux >= 4.5): epoll with EPOLLET and EPOLLRDHUP,
// EPOLLEXCLUSIVE (several loops watching one Unix listening socket),
// accept4, eventfd (cross-thread wake), timerfd (one per loop, armed at the
// earliest deadline of the shared timer heap), sendmsg with MSG_NOSIGNAL (no
// SIGPIPE, without touching the process's signal dispositions).
//
// Connection sockets (reads into the loop's one buffer, sendmsg writes,
// EPOLLOUT while full, the ready list, the EMFILE reserve) are
// epoll_sockets.hpp's, shared with the Asio adapter. What is this file's:
// the wait (epoll_wait with the eventfd and the timerfd in the same set)
// and the listeners, whose leftover readiness shares the ready list.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <system_error>

#include "epoll_sockets.hpp"

namespace gust::detail {
namespace {

// epoll_event.data.u64 of the loop's own descriptors (serial 0, see
// epoll_sockets::token): slot 0 the eventfd, 1 the timerfd, 2 + i
// listener i.
constexpr std::uint64_t wake_token = 0, timer_token = 1, listener_base = 2;

struct listener : listener_state {
  int fd = -1;
  bool on_ready = false;
};

class epoll_loop final : public epoll_sockets<epoll_loop> {
 public:
  epoll_loop() : epoll_sockets(gust::adapter::epoll) {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (wake_fd_ < 0 || timer_fd_ < 0) {
      auto ec = last_error();
      close_own();
      throw std::system_error(ec, "gust epoll: eventfd/timerfd");
    }
    (void)ctl(EPOLL_CTL_ADD, wake_fd_, EPOLLIN, wake_token);
    (void)ctl(EPOLL_CTL_ADD, timer_fd_, EPOLLIN, timer_token);
  }

  ~epoll_loop() override {
    join_helpers();
    for (auto& l : listeners_)
      if (l.active) ::close(l.fd);
    close_own();
    // Sessions still open when the loop goes.
    sessions_store_.for_each([&](websocket& ws) { backend_close(ws); });
  }

  // ---- waiting -------------------------------------------------------------

  void backend_poll(std::optional<time_point> deadline, bool nonblocking) override {
    const bool busy = nonblocking || !ready_.empty();
    if (!busy) arm_timer(deadline);
    epoll_event evs[max_events];
    int n = ::epoll_wait(ep_, evs, max_events, busy ? 0 : -1);
    now_ = clock::now();
    if (n < 0) n = 0;  // EINTR
    dispatch_events(evs, n);
    // Connections and listeners with readiness left over from their budget.
    if (!ready_.empty()) serve_ready();
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
    (void)ctl(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLET | (exclusive ? std::uint32_t(EPOLLEXCLUSIVE) : 0u),
              listener_base + id);
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

 private:
  friend class epoll_sockets<epoll_loop>;

  // epoll_sockets' hooks: the loop's own descriptors, and listeners on
  // the ready list.
  void own_event(std::uint32_t slot) {
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
  }
  void ready_own(std::uint32_t slot) {
    const std::size_t li = slot - listener_base;
    if (li < listeners_.size()) {
      listeners_[li].on_ready = false;
      if (listeners_[li].active) accept_all(li);
    }
  }

  void close_own() {
    if (timer_fd_ >= 0) ::close(timer_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
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

  void accept_all(std::size_t li) {
    if (li >= listeners_.size() || !listeners_[li].active) return;
    switch (accept_from(listeners_, li, listeners_[li].fd)) {
      case accept_stop::budget:
        push_ready_listener(li);
        return;
      case accept_stop::later:
        call_at(now_ + std::chrono::milliseconds(100), [this, li] { push_ready_listener(li); },
                /*keep_alive=*/false);
        return;
      case accept_stop::drained:
      case accept_stop::closed:
        return;
    }
  }

  void push_ready_listener(std::size_t li) {
    if (li >= listeners_.size() || listeners_[li].on_ready || !listeners_[li].active) return;
    listeners_[li].on_ready = true;
    push_ready_own(static_cast<std::uint32_t>(listener_base + li));
  }

  int wake_fd_ = -1, timer_fd_ = -1;
  std::optional<time_point> timer_armed_;
  std::vector<listener> listeners_;
};

}  // namespace

std::unique_ptr<loop_base> make_epoll_loop() { return std::make_unique<epoll_loop>(); }

}  // namespace gust::detail
