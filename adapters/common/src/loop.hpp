// The part of an event loop that every adapter shares, and the interface an
// adapter implements under it.
//
// Theory of operation. One loop_base per thread. Each iteration:
//   1. backend_poll(deadline): the adapter waits for I/O (or the earliest
//      deadline) and reports what happened through the on_* callbacks below:
//      on_accept, on_connected, on_input (bytes read into the loop's one
//      read buffer, lent to the core with connection::receive()), on_eof,
//      on_transport_error, on_writable.
//   2. posted tasks (other threads), then expired timers: connection
//      deadlines (the core's next_deadline(), and the transport's linger)
//      from one binary heap, and plain timers from another.
//   3. the flush list: every connection something queued output on (a
//      handler's send to another connection, a broadcast) is serviced once:
//      pending events pulled, output written, backpressure and transport
//      close decided, its deadline re-armed.
//   4. finished connections are destroyed, after every handler returned.
// Handlers run only from step 1-3 of the pump of their own connection; what
// they call on any connection only queues output and marks it for step 3,
// so there is no re-entrancy (the core's rule, kept here).
//
// Why a heap and not a timer per connection in the kernel: 100,000
// connections each with a keepalive deadline cost one 8-byte entry each
// here (and entries of re-armed deadlines are dropped lazily), and the
// adapter keeps a single kernel timer (epoll: one timerfd) set to the
// earliest one.
//
// Memory per idle connection, what this file decides: the websocket record
// (104 bytes, in session_store's pages, the engine handle inside it), a
// timer entry (8 bytes) and an open-list slot (4 bytes), plus the vectors'
// slack; the engine's own state is the core's.
//
// Transport close (RFC 6455 7.1.1): when the core says
// transport_should_close(), the pending output is written, the write side
// shut down, and the socket closed at the peer's EOF or when the linger
// deadline (close_timeout) passes, whichever comes first; a peer that reads
// nothing cannot hold the socket open past it.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <climits>
#include <cstddef>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gust/deflate_pool.hpp"
#include "gust/net.hpp"
#include "gust/output_pool.hpp"

namespace gust::detail {

/// Per-owner counters (one block per server loop, one per client): written
/// by one loop thread, read by any (relaxed atomics, no read-modify-write).
struct counters {
  std::atomic<std::uint64_t> accepted{0}, open{0}, hs_accepted{0}, hs_rejected{0},
      http_responses{0}, msgs_in{0}, msgs_out{0}, bytes_in{0}, bytes_out{0}, buffered{0},
      memory{0}, accept_errors{0}, hard_limit_closes{0};
  std::array<std::atomic<std::uint64_t>, 16> codes_1000{};  // 1000..1015
  mutable std::mutex other_codes_mutex;
  std::map<std::uint16_t, std::uint64_t> other_codes;

  static void bump(std::atomic<std::uint64_t>& a, std::uint64_t n = 1) noexcept {
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static void adjust(std::atomic<std::uint64_t>& a, std::size_t from, std::size_t to) noexcept {
    a.store(a.load(std::memory_order_relaxed) + (std::uint64_t(to) - std::uint64_t(from)),
            std::memory_order_relaxed);
  }
  void count_close(std::uint16_t code);
  void add_to(gust::stats& s) const;
};

/// What every connection of one owner shares: a server's connections on one
/// loop, or a client's. Each websocket points here once instead of holding
/// the loop, handlers, limits, counters and owner each.
struct session_owner {
  loop_base* loop = nullptr;
  const handlers* h = nullptr;
  const backpressure_config* bp = nullptr;
  server_state* server = nullptr;  // exactly one of these is set
  client_state* client = nullptr;
  counters ctr;
};

/// What only some connections need, made on first use and kept until the
/// websocket is destroyed (websocket::extra_).
struct session_extra {
  // A plain HTTP request (no Upgrade) answered by on_request: the core
  // refuses those with 400 before any request_event, so the engine that
  // parsed it is kept here (for websocket::request()) and conn_ is a second
  // engine that writes the application's answer (server.cpp, plain_http).
  std::optional<server_connection> plain;
  // Broadcasts held back by over_limit_policy::drop_oldest (few: at most
  // broadcast_options::max_held), and sends queued behind them.
  std::vector<prepared_message> backlog;
  std::size_t backlog_bytes = 0;
  maybe_time linger;  // closing the transport: the hard close at
  const http::response* response = nullptr;  // client: the core's 101 response
  std::string unix_path;  // a Unix peer's bound path (usually none)
};

/// Logging helper: formats only when a sink is set.
struct logger {
  const log_sink* sink = nullptr;
  bool on() const noexcept { return sink && *sink; }
  void operator()(log_level l, std::string_view msg) const {
    if (on()) (*sink)(l, msg);
  }
};

std::error_code last_error() noexcept;
/// An accept() failure on a listener: counted, and logged at most once a
/// second (`last_log` is the listener's), saying the descriptor limit on
/// EMFILE, so a flood of refused connections does not flood the log.
void report_accept_error(const logger& log, counters* ctr, time_point now, time_point& last_log,
                         int err);
/// `sa` compactly; a Unix socket's path goes to `unix_path` (when given).
peer_address to_peer_address(const sockaddr* sa, socklen_t len, std::string* unix_path);
endpoint to_endpoint(const peer_address& a, std::string_view unix_path);
endpoint to_endpoint(const sockaddr* sa, socklen_t len);
/// TCP_NODELAY (ignored for Unix sockets).
void set_nodelay(int fd) noexcept;

/// Runs getaddrinfo on a helper thread so the loop never blocks on DNS.
class resolver {
 public:
  using done_fn = std::function<void(int gai_error, std::vector<sockaddr_storage>)>;
  ~resolver();
  /// `done` runs on the helper thread: it must only post to a loop.
  void resolve(std::string host, std::uint16_t port, done_fn done);

 private:
  struct job {
    std::string host;
    std::uint16_t port;
    done_fn done;
  };
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<job> q_;
  bool stop_ = false;
  std::thread t_;
};

/// The websockets of one loop, by slot, in pages that never move (a
/// websocket& stays valid while it lives): a connection costs no
/// allocation of its own (a record of 104 bytes took a 112-byte malloc
/// chunk) and no pointer in a table. A page holds page_slots records and a
/// bit per slot saying which are live. A new record takes the lowest free
/// slot; a page that empties is freed, except one kept as a spare (a
/// connection that comes and goes at a page boundary allocates nothing).
///
/// Only storage: loop_base constructs (websocket's constructor is private
/// to it) and destroys the records.
class session_store {
 public:
  static constexpr std::uint32_t page_slots = 64;

  session_store() = default;
  session_store(const session_store&) = delete;
  session_store& operator=(const session_store&) = delete;
  /// Destroys the records still live.
  ~session_store();

  /// The live record at `slot`, or null.
  websocket* get(std::uint32_t slot) const noexcept {
    const std::uint32_t p = slot / page_slots, i = slot % page_slots;
    if (p >= pages_.size() || !pages_[p] || !(pages_[p]->live >> i & 1)) return nullptr;
    return pages_[p]->at(i);
  }
  /// Storage for a new record (the caller constructs it there) and its slot.
  void* acquire(std::uint32_t& slot);
  /// The record at `slot` was destroyed: its storage is free.
  void release(std::uint32_t slot) noexcept;
  /// Calls f(websocket&) for every live record, by slot.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t p = 0; p < pages_.size(); ++p) {
      if (!pages_[p]) continue;
      for (std::uint64_t live = pages_[p]->live; live; live &= live - 1)
        f(*pages_[p]->at(static_cast<std::uint32_t>(std::countr_zero(live))));
    }
  }

 private:
  struct page {
    std::uint64_t live = 0;  // bit i: records[i] holds a websocket
    alignas(websocket) std::byte records[page_slots][sizeof(websocket)];
    websocket* at(std::uint32_t i) noexcept {
      return std::launder(reinterpret_cast<websocket*>(records[i]));
    }
  };
  static_assert(page_slots == 64, "live is one 64-bit word");
  std::vector<std::unique_ptr<page>> pages_;  // null: freed
  std::size_t first_free_ = 0;  // no page before this one has a free slot
  bool spare_ = false;          // an empty page is kept
};

// write_pending() hands the core's buffer list to sendmsg(2) as it is.
static_assert(sizeof(const_buffer) == sizeof(iovec) && offsetof(const_buffer, data) == offsetof(iovec, iov_base) &&
                  offsetof(const_buffer, size) == offsetof(iovec, iov_len),
              "const_buffer is laid out as iovec");

class loop_base {
 public:
  explicit loop_base(gust::adapter a);
  virtual ~loop_base();

  gust::adapter kind() const noexcept { return kind_; }
  event_loop* facade = nullptr;

  // ---- running -----------------------------------------------------------
  void run(std::optional<time_point> until);
  void stop() noexcept;
  void post(std::function<void()> fn);
  std::uint64_t call_at(time_point t, std::function<void()> fn, bool keep_alive = true);
  void cancel(std::uint64_t id);
  time_point now() const noexcept { return now_; }
  bool in_loop_thread() const noexcept;
  /// Pending work that is not a connection or a listener (a resolution, a
  /// connect attempt): run() does not return while held.
  void hold() noexcept { ++holds_; }
  void release() noexcept { --holds_; }
  resolver& dns();
  /// Adapters call this first in their destructor: joins the resolver
  /// thread, which posts to the loop.
  void join_helpers() noexcept { dns_.reset(); }

  // ---- connections -------------------------------------------------------
  /// `s` with this loop's pools for what the application left unset: output
  /// storage and zlib streams are borrowed while in use, so an idle
  /// connection holds neither (output_pool.hpp, deflate_pool.hpp).
  gust::settings pooled(const gust::settings& s);
  /// A new session, for a socket connected to (or connecting to) `remote`.
  /// The owner makes a server's engine, then calls attach().
  websocket& adopt(const sockaddr* remote, socklen_t remote_len, session_owner& owner);
  /// Watches the session's socket `fd`; a session with an engine is
  /// serviced soon (which arms its opening timeout).
  void attach(websocket& ws, int fd, bool connecting);
  void mark_dirty(websocket& ws);
  /// Pull events, write, decide backpressure and closing, re-arm.
  void service(websocket& ws);
  /// Closes the socket now; delivers a close event first if one is owed.
  void close_now(websocket& ws);
  /// The owner is going away: close without calling its handlers.
  void abandon(websocket& ws);
  template <class F>
  void for_each_session(F&& f) {
    sessions_store_.for_each([&](websocket& ws) {
      if (!ws.finished_) f(ws);
    });
  }
  /// Calls f(websocket&) for every open connection (OPEN or CLOSING).
  template <class F>
  void for_each_open(F&& f) const {
    for (std::uint32_t slot : open_) f(*sessions_store_.get(slot));
  }

  /// `message` is shared by every target's queue.
  static broadcast_result broadcast(std::span<websocket* const> targets,
                                    const prepared_message& message,
                                    const broadcast_options& opts);
  /// The deflate settings of the owner of `ws` (server or client).
  static const deflate_options& deflate_settings(const websocket& ws) noexcept;

  // Called by websocket's methods.
  std::error_code after_send(websocket& ws, std::error_code ec) {
    // Inline: it follows every message sent.
    if (!ec) [[likely]] {
      counters::bump(ws.owner_->ctr.msgs_out);
      if (&ws != servicing_) mark_dirty(ws);
      if (!ws.over_limit_ && ws.conn()->buffered_amount() + backlog_bytes(ws) > ws.owner_->bp->high_watermark)
        update_backpressure(ws);
      return ec;
    }
    return send_failed(ws, ec);
  }
  std::error_code send_failed(websocket& ws, std::error_code ec);
  void update_backpressure(websocket& ws);
  void feed_held(websocket& ws);
  static session_extra& extra(websocket& ws);
  static std::size_t backlog_bytes(const websocket& ws) noexcept {
    return ws.extra_ ? ws.extra_->backlog_bytes : 0;
  }
  static bool has_backlog(const websocket& ws) noexcept {
    return ws.extra_ && !ws.extra_->backlog.empty();
  }
  /// The handlers to call: none once the owner is gone (it may be destroyed).
  static const handlers* handlers_of(const websocket& ws) noexcept {
    return ws.abandoned_ ? nullptr : ws.owner_->h;
  }

  // ---- what an adapter reports -------------------------------------------
  /// A server listener accepted `fd`. The owner decides what to do.
  using accept_fn =
      std::function<void(loop_base&, int fd, const sockaddr* remote, socklen_t remote_len)>;
  void on_input(websocket& ws, std::span<std::byte> data);
  void on_eof(websocket& ws);
  void on_transport_error(websocket& ws, std::error_code ec);
  void on_writable(websocket& ws) { service(ws); }
  /// A connecting socket (client) finished connecting, or failed to.
  void on_connected(websocket& ws, std::error_code ec);

  // ---- what an adapter implements ----------------------------------------
  /// Waits for I/O until `deadline` (forever when empty; not at all when
  /// `nonblocking`) and dispatches it through the on_* callbacks.
  virtual void backend_poll(std::optional<time_point> deadline, bool nonblocking) = 0;
  /// Thread-safe: interrupts backend_poll.
  virtual void backend_wake() = 0;
  /// Watches a listening socket; calls `on_accept` for every accepted one.
  /// Returns an id for backend_remove_listener. `exclusive`: other loops
  /// watch the same socket (EPOLLEXCLUSIVE).
  virtual int backend_add_listener(int fd, accept_fn on_accept, logger log, counters* ctr,
                                   bool exclusive) = 0;
  /// Stops watching and closes the listening socket.
  virtual void backend_remove_listener(int id) = 0;
  /// Fills ws.tx_ for `fd` and starts watching it (for `connecting`:
  /// until writable, then on_connected).
  virtual void backend_attach(websocket& ws, int fd, bool connecting) = 0;
  /// Writes what ws.core() has pending; arms write readiness if the socket
  /// is full (and disarms it once empty). Calls on_transport_error on
  /// failure. Returns false if the socket failed.
  virtual bool backend_write(websocket& ws) = 0;
  /// Reading was paused: read what arrived meanwhile (soon, not inline).
  virtual void backend_resume_read(websocket& ws) = 0;
  virtual void backend_shutdown_write(websocket& ws) = 0;
  /// Releases the socket.
  virtual void backend_close(websocket& ws) = 0;

  // ---- per-loop owners ---------------------------------------------------
  int listeners = 0;  // active listeners (keep run() going)

 protected:
  // Adapters reach the facade's per-connection state through these.
  static transport_state& tx(websocket& ws) noexcept { return ws.tx_; }
  static bool has_core(const websocket& ws) noexcept { return ws.conn() != nullptr; }
  static bool paused(const websocket& ws) noexcept {
    return ws.paused_by_user_ || ws.paused_by_backpressure_;
  }
  static bool finished(const websocket& ws) noexcept { return ws.finished_; }
  static counters* ctr(websocket& ws) noexcept { return &ws.owner_->ctr; }
  /// One write of `out` (the core's pending_output()) to `fd`: send(2) for
  /// one buffer, which spares the kernel copying in a msghdr, else
  /// sendmsg(2); MSG_NOSIGNAL and `flags`. What went out is consumed from
  /// the core and counted. Returns the call's result (errno set below 0).
  static ssize_t write_pending(websocket& ws, int fd, std::span<const const_buffer> out, int flags = 0) {
    ssize_t n;
    if (out.size() == 1) {
      n = ::send(fd, out[0].data, out[0].size, MSG_NOSIGNAL | flags);
    } else {
      msghdr msg{};
      msg.msg_iov = const_cast<iovec*>(reinterpret_cast<const iovec*>(out.data()));
      msg.msg_iovlen = std::min<std::size_t>(out.size(), IOV_MAX);
      n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | flags);
    }
    if (n > 0) {
      (void)ws.core().consume_output(static_cast<std::size_t>(n));
      counters::bump(ctr(ws)->bytes_out, static_cast<std::uint64_t>(n));
    }
    return n;
  }
  websocket* session(std::uint32_t slot, std::uint32_t serial) noexcept {
    websocket* ws = sessions_store_.get(slot);
    return ws && ws->serial_ == serial ? ws : nullptr;
  }
  static std::uint32_t slot_of(const websocket& ws) noexcept { return ws.slot_; }
  static std::uint32_t serial_of(const websocket& ws) noexcept { return ws.serial_; }

  gust::adapter kind_;
  time_point now_;
  /// For adapters whose handlers run on an executor's threads (Asio on a
  /// strand over a thread pool) rather than inside run(): the thread running
  /// the loop's handlers right now (a default id between turns), so
  /// in_loop_thread() stays true only for the thread inside a turn.
  void set_loop_thread(std::thread::id id) noexcept { thread_.store(id, std::memory_order_relaxed); }
  /// Dispatches every event the core has for `ws`.
  void pump_events(websocket& ws);
  void dispatch(websocket& ws, event& ev);
  void deliver_message(websocket& ws, const message_event& m) {
    counters::bump(ws.owner_->ctr.msgs_in);
    // (Not handlers_of(): an abandoned connection is finished, and pump_events
    // delivers nothing to a finished one.)
    if (ws.owner_->h->on_message) ws.owner_->h->on_message(ws, m);
  }
  // The connection service() is working on: a send from its own handlers
  // needs no flush-list entry, service() writes it before it returns.
  websocket* servicing_ = nullptr;
  // Owner hooks (server.cpp, client.cpp).
  void server_on_request(websocket& ws, const http::request& req);
  bool server_plain_http(websocket& ws, const handshake_failure& f);
  void client_on_open(websocket& ws);
  void client_on_handshake_failure(websocket& ws, const handshake_failure& f);
  void session_ended(websocket& ws);
  void finish(websocket& ws);
  void leave_open(websocket& ws);  // ws.open_index_ is set
  void service_turn(websocket& ws);
  void reap();
  void rearm(websocket& ws);
  void push_timer(websocket& ws);  // queues ws.armed_ on the heap
  void run_timers();
  void run_posted();
  void flush_dirty();
  std::optional<time_point> next_wakeup() const;
  bool has_work() const;

  // Declared before the sessions: they borrow from these until destroyed.
  gust::output_pool output_pool_;
  gust::deflate_pool deflate_pool_;
  session_store sessions_store_;
  std::uint32_t next_serial_ = 1;
  std::size_t sessions_ = 0;
  // The open connections' slots (4 bytes each, not a pointer), in no
  // order; websocket::open_index_ is the position of its own.
  std::vector<std::uint32_t> open_;
  std::vector<websocket*> dirty_;
  // Empty, with storage: flush_dirty() swaps it in, so marking a
  // connection dirty on every message does not allocate.
  std::vector<websocket*> dirty_spare_;
  std::vector<websocket*> finished_;

  // Connection deadlines: a min-heap of 8-byte entries, the deadline in
  // ticks of conn_tick since timer_epoch_, rounded up (an entry never
  // surfaces before the deadline it stands for, and at most a tick after
  // it), and the slot. No serial: an entry is only a hint to look at the
  // slot; what fires is the record's own armed_, when due. Deadlines past
  // the 32-bit range are clamped (they surface early and are queued again),
  // and the epoch moves forward, with the heap rebuilt, long before ticks
  // run out (see push_timer).
  static constexpr duration conn_tick = std::chrono::microseconds(1);
  struct conn_timer {
    std::uint32_t tick, slot;
    bool operator>(const conn_timer& o) const noexcept { return tick > o.tick; }
  };
  static_assert(sizeof(conn_timer) == 8, "one entry per armed connection: keep it small");
  std::uint32_t to_tick(time_point t) const noexcept {
    if (t <= timer_epoch_) return 0;
    const auto n = (t - timer_epoch_ + conn_tick - duration(1)) / conn_tick;  // rounded up
    return n >= UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(n);
  }
  time_point from_tick(std::uint32_t tick) const noexcept { return timer_epoch_ + tick * conn_tick; }
  std::vector<conn_timer> conn_timers_;  // min-heap
  time_point timer_epoch_;
  struct plain_timer {
    time_point t;
    std::uint64_t id;
    bool operator>(const plain_timer& o) const noexcept { return t > o.t; }
  };
  std::vector<plain_timer> timers_;  // min-heap
  struct timer_fn {
    std::function<void()> fn;
    bool keep_alive;
  };
  std::unordered_map<std::uint64_t, timer_fn> timer_fns_;
  std::uint64_t next_timer_id_ = 1;
  std::size_t keep_alive_timers_ = 0;

  std::mutex post_m_;
  std::vector<std::function<void()>> posted_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> has_posted_{false};
  std::atomic<std::thread::id> thread_{};
  int holds_ = 0;
  std::unique_ptr<resolver> dns_;
};

/// Listening sockets (POSIX, shared by the fd-based adapters).
struct listen_spec {
  std::string host;
  std::uint16_t port = 0;
  std::string unix_path;
  bool reuse_port = false;
  int backlog = 1024;
};
/// A bound, listening, non-blocking socket, or -1 with `ec` set.
int open_listener(const listen_spec& spec, endpoint& bound, std::error_code& ec,
                  std::string& why);

/// Creates the loop of adapter `a` (throws std::system_error if it cannot).
std::unique_ptr<loop_base> make_loop(gust::adapter a);

}  // namespace gust::detail
