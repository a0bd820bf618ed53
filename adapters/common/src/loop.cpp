// The shared loop: sessions, timers, the flush list, transport closing.
// See loop.hpp for the theory of operation.
#include "loop.hpp"
#include "owners.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <variant>

#include "gust/close_code.hpp"

namespace gust {

// ===========================================================================
// Small public types

std::string_view to_string(adapter a) noexcept {
  switch (a) {
    case adapter::epoll: return "epoll";
    case adapter::io_uring: return "io_uring";
    case adapter::asio: return "asio";
  }
  return "?";
}

std::optional<adapter> parse_adapter(std::string_view n) noexcept {
  if (n == "epoll") return adapter::epoll;
  if (n == "io_uring" || n == "io-uring" || n == "uring") return adapter::io_uring;
  if (n == "asio") return adapter::asio;
  return std::nullopt;
}

namespace {
constexpr adapter compiled_adapters[] = {
#if GUST_HAVE_EPOLL
    adapter::epoll,
#endif
#if GUST_HAVE_IO_URING
    adapter::io_uring,
#endif
#if GUST_HAVE_ASIO
    adapter::asio,
#endif
};
}  // namespace

std::span<const adapter> available_adapters() noexcept { return compiled_adapters; }

bool adapter_available(adapter a) noexcept {
  for (adapter x : compiled_adapters)
    if (x == a) return true;
  return false;
}

std::string_view to_string(log_level l) noexcept {
  switch (l) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warning: return "warning";
    case log_level::error: return "error";
  }
  return "?";
}

std::string endpoint::to_string() const {
  switch (family) {
    case kind::ipv4: return address + ":" + std::to_string(port);
    case kind::ipv6: return "[" + address + "]:" + std::to_string(port);
    case kind::unix_socket: return "unix:" + address;
    case kind::none: break;
  }
  return "?";
}

std::uint64_t stats::close_count(std::uint16_t code) const noexcept {
  for (auto& [c, n] : close_codes)
    if (c == code) return n;
  return 0;
}

std::string_view to_string(send_status s) noexcept {
  switch (s) {
    case send_status::sent: return "sent";
    case send_status::held: return "held";
    case send_status::dropped_oldest: return "dropped_oldest";
    case send_status::skipped: return "skipped";
    case send_status::closed: return "closed";
    case send_status::not_open: return "not_open";
    case send_status::error: return "error";
  }
  return "?";
}

namespace detail {

namespace {
/// After our FIN, how long the peer's FIN is awaited before the socket is
/// closed anyway.
constexpr duration fin_wait = std::chrono::seconds(2);
}  // namespace

// ===========================================================================
// counters

void counters::count_close(std::uint16_t code) {
  if (code >= 1000 && code < 1016) {
    bump(codes_1000[code - 1000]);
    return;
  }
  std::lock_guard lock(other_codes_mutex);
  ++other_codes[code];
}

void counters::add_to(gust::stats& s) const {
  auto r = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s.connections_accepted += r(accepted);
  s.connections_open += r(open);
  s.handshakes_accepted += r(hs_accepted);
  s.handshakes_rejected += r(hs_rejected);
  s.http_responses += r(http_responses);
  s.messages_in += r(msgs_in);
  s.messages_out += r(msgs_out);
  s.bytes_in += r(bytes_in);
  s.bytes_out += r(bytes_out);
  s.bytes_buffered += r(buffered);
  s.memory += r(memory);
  s.accept_errors += r(accept_errors);
  s.hard_limit_closes += r(hard_limit_closes);
  auto add_code = [&](std::uint16_t code, std::uint64_t n) {
    if (!n) return;
    for (auto& [c, m] : s.close_codes)
      if (c == code) {
        m += n;
        return;
      }
    s.close_codes.emplace_back(code, n);
  };
  for (std::size_t i = 0; i < codes_1000.size(); ++i)
    add_code(static_cast<std::uint16_t>(1000 + i), r(codes_1000[i]));
  std::lock_guard lock(other_codes_mutex);
  for (auto& [c, n] : other_codes) add_code(c, n);
  std::sort(s.close_codes.begin(), s.close_codes.end());
}

// ===========================================================================
// POSIX helpers

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

peer_address to_peer_address(const sockaddr* sa, socklen_t len, std::string* unix_path) {
  peer_address a;
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    a.family = endpoint::kind::ipv4;
    std::memcpy(a.bytes.data(), &in->sin_addr, 4);
    a.port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {  // dual-stack listener, IPv4 peer
      a.family = endpoint::kind::ipv4;
      std::memcpy(a.bytes.data(), &in6->sin6_addr.s6_addr[12], 4);
    } else {
      a.family = endpoint::kind::ipv6;
      std::memcpy(a.bytes.data(), &in6->sin6_addr, 16);
    }
    a.port = ntohs(in6->sin6_port);
  } else if (sa->sa_family == AF_UNIX) {
    auto* un = reinterpret_cast<const sockaddr_un*>(sa);
    a.family = endpoint::kind::unix_socket;
    const std::size_t off = offsetof(sockaddr_un, sun_path);
    if (unix_path && len > off) unix_path->assign(un->sun_path, strnlen(un->sun_path, len - off));
  }
  return a;
}

endpoint to_endpoint(const peer_address& a, std::string_view unix_path) {
  endpoint e;
  e.family = a.family;
  char buf[INET6_ADDRSTRLEN] = {};
  switch (a.family) {
    case endpoint::kind::ipv4:
      inet_ntop(AF_INET, a.bytes.data(), buf, sizeof buf);
      e.address = buf;
      e.port = a.port;
      break;
    case endpoint::kind::ipv6:
      inet_ntop(AF_INET6, a.bytes.data(), buf, sizeof buf);
      e.address = buf;
      e.port = a.port;
      break;
    case endpoint::kind::unix_socket: e.address = unix_path; break;
    case endpoint::kind::none: break;
  }
  return e;
}

endpoint to_endpoint(const sockaddr* sa, socklen_t len) {
  std::string path;
  const peer_address a = to_peer_address(sa, len, &path);
  return to_endpoint(a, path);
}

void set_nodelay(int fd) noexcept {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int open_listener(const listen_spec& spec, endpoint& bound, std::error_code& ec, std::string& why) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  bool dual = false;
  if (!spec.unix_path.empty()) {
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    if (spec.unix_path.size() >= sizeof un->sun_path) {
      ec = std::make_error_code(std::errc::filename_too_long);
      why = "unix socket path too long";
      return -1;
    }
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, spec.unix_path.data(), spec.unix_path.size());
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + spec.unix_path.size() + 1);
    family = AF_UNIX;
    // A stale socket file from an earlier run would make bind fail.
    struct stat st{};
    if (!spec.reuse_port && ::stat(spec.unix_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
      ::unlink(spec.unix_path.c_str());
  } else {
    std::string host = spec.host;
    if (host.empty() || host == "*") host = "::";
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    auto* in4 = reinterpret_cast<sockaddr_in*>(&ss);
    if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(spec.port);
      len = sizeof(sockaddr_in6);
      family = AF_INET6;
      dual = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
    } else if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
      in4->sin_family = AF_INET;
      in4->sin_port = htons(spec.port);
      len = sizeof(sockaddr_in);
    } else {
      addrinfo hints{}, *res = nullptr;
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      hints.ai_flags = AI_PASSIVE;
      const std::string port = std::to_string(spec.port);
      if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0 || !res) {
        ec = std::make_error_code(std::errc::invalid_argument);
        why = "cannot resolve host '" + host + "': " + gai_strerror(rc);
        return -1;
      }
      std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
      len = res->ai_addrlen;
      family = res->ai_family;
      freeaddrinfo(res);
    }
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ec = last_error();
    why = "socket: " + ec.message();
    return -1;
  }
  int one = 1, zero = 0;
  if (family != AF_UNIX) {
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (spec.reuse_port) (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (dual) (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, spec.backlog) != 0) {
    ec = last_error();
    why = "cannot listen on " +
          (spec.unix_path.empty() ? spec.host + ":" + std::to_string(spec.port) : spec.unix_path) +
          ": " + ec.message();
    ::close(fd);
    return -1;
  }
  sockaddr_storage got{};
  socklen_t glen = sizeof got;
  if (family == AF_UNIX) {
    bound.family = endpoint::kind::unix_socket;
    bound.address = spec.unix_path;
  } else if (getsockname(fd, reinterpret_cast<sockaddr*>(&got), &glen) == 0) {
    bound = to_endpoint(reinterpret_cast<sockaddr*>(&got), glen);
    if (dual) bound.family = endpoint::kind::ipv6;
  }
  return fd;
}

// ===========================================================================
// resolver

resolver::~resolver() {
  {
    std::lock_guard lock(m_);
    stop_ = true;
  }
  cv_.notify_all();
  if (t_.joinable()) t_.join();
}

void resolver::resolve(std::string host, std::uint16_t port, done_fn done) {
  std::lock_guard lock(m_);
  q_.push_back({std::move(host), port, std::move(done)});
  if (!t_.joinable()) {
    t_ = std::thread([this] {
      std::unique_lock lock(m_);
      for (;;) {
        cv_.wait(lock, [&] { return stop_ || !q_.empty(); });
        if (stop_) return;
        job j = std::move(q_.front());
        q_.pop_front();
        lock.unlock();
        addrinfo hints{}, *res = nullptr;
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_ADDRCONFIG;
        const std::string port = std::to_string(j.port);
        int rc = getaddrinfo(j.host.c_str(), port.c_str(), &hints, &res);
        if (rc == EAI_NONAME || rc == EAI_ADDRFAMILY) {  // loopback-only hosts: retry without ADDRCONFIG
          hints.ai_flags = 0;
          rc = getaddrinfo(j.host.c_str(), port.c_str(), &hints, &res);
        }
        std::vector<sockaddr_storage> out;
        for (addrinfo* a = res; a; a = a->ai_next) {
          sockaddr_storage ss{};
          std::memcpy(&ss, a->ai_addr, a->ai_addrlen);
          out.push_back(ss);
        }
        if (res) freeaddrinfo(res);
        j.done(rc, std::move(out));
        lock.lock();
      }
    });
  }
  cv_.notify_one();
}

// ===========================================================================
// loop_base: running

// ===========================================================================
// loop_base: running

loop_base::loop_base(gust::adapter a) : kind_(a), now_(clock::now()), timer_epoch_(now_) {
  thread_.store(std::this_thread::get_id());
}

loop_base::~loop_base() { dns_.reset(); }

resolver& loop_base::dns() {
  if (!dns_) dns_ = std::make_unique<resolver>();
  return *dns_;
}

bool loop_base::in_loop_thread() const noexcept {
  return thread_.load(std::memory_order_relaxed) == std::this_thread::get_id();
}

void loop_base::stop() noexcept {
  stop_.store(true);
  backend_wake();
}

void loop_base::post(std::function<void()> fn) {
  {
    std::lock_guard lock(post_m_);
    posted_.push_back(std::move(fn));
    has_posted_.store(true, std::memory_order_release);
  }
  backend_wake();
}

void loop_base::run_posted() {
  if (!has_posted_.load(std::memory_order_acquire)) return;
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(post_m_);
    batch.swap(posted_);
    has_posted_.store(false, std::memory_order_relaxed);
  }
  for (auto& fn : batch) fn();
}

std::uint64_t loop_base::call_at(time_point t, std::function<void()> fn, bool keep_alive) {
  const std::uint64_t id = next_timer_id_++;
  timer_fns_.emplace(id, timer_fn{std::move(fn), keep_alive});
  if (keep_alive) ++keep_alive_timers_;
  timers_.push_back({t, id});
  std::push_heap(timers_.begin(), timers_.end(), std::greater<>());
  return id;
}

void loop_base::cancel(std::uint64_t id) {
  auto it = timer_fns_.find(id);
  if (it == timer_fns_.end()) return;
  if (it->second.keep_alive) --keep_alive_timers_;
  timer_fns_.erase(it);
}

bool loop_base::has_work() const {
  return sessions_ > 0 || listeners > 0 || holds_ > 0 || keep_alive_timers_ > 0 ||
         has_posted_.load(std::memory_order_acquire);
}

std::optional<time_point> loop_base::next_wakeup() const {
  std::optional<time_point> t;
  if (!conn_timers_.empty()) t = from_tick(conn_timers_.front().tick);
  if (!timers_.empty() && (!t || timers_.front().t < *t)) t = timers_.front().t;
  return t;
}

void loop_base::run(std::optional<time_point> until) {
  thread_.store(std::this_thread::get_id());
  now_ = clock::now();
  while (!stop_.load(std::memory_order_relaxed)) {
    run_posted();
    flush_dirty();
    reap();
    if (!has_work()) break;
    if (until && now_ >= *until) break;
    std::optional<time_point> wake = next_wakeup();
    if (until && (!wake || *until < *wake)) wake = until;
    backend_poll(wake, !dirty_.empty() || !finished_.empty() ||
                           has_posted_.load(std::memory_order_acquire));
    now_ = clock::now();
    run_posted();
    run_timers();
    flush_dirty();
    reap();
  }
  stop_.store(false);
}

void loop_base::run_timers() {
  // Bounded by what is due now: a deadline re-armed in the past (or a timer
  // that schedules itself at once) waits for the next turn of the loop.
  for (std::size_t n = conn_timers_.size(); n > 0 && !conn_timers_.empty() && from_tick(conn_timers_.front().tick) <= now_; --n) {
    std::pop_heap(conn_timers_.begin(), conn_timers_.end(), std::greater<>());
    const conn_timer e = conn_timers_.back();
    conn_timers_.pop_back();
    websocket* ws = sessions_store_.get(e.slot);
    if (!ws || ws->finished_ || !ws->armed_) continue;  // disarmed since
    if (*ws->armed_ > now_) {
      // Its deadline moved later after this entry was queued (rearm keeps
      // the earlier entry standing in for it), or the entry was an earlier
      // session's of this slot: queue the real one now.
      push_timer(*ws);
      continue;
    }
    ws->armed_.reset();
    if (ws->extra_ && ws->extra_->linger && *ws->extra_->linger <= now_) {
      close_now(*ws);
      continue;
    }
    if (ws->conn()) ws->conn()->on_timeout(now_);
    service(*ws);
  }
  for (std::size_t n = timers_.size(); n > 0 && !timers_.empty() && timers_.front().t <= now_; --n) {
    std::pop_heap(timers_.begin(), timers_.end(), std::greater<>());
    const plain_timer e = timers_.back();
    timers_.pop_back();
    auto it = timer_fns_.find(e.id);
    if (it == timer_fns_.end()) continue;  // cancelled
    auto fn = std::move(it->second.fn);
    if (it->second.keep_alive) --keep_alive_timers_;
    timer_fns_.erase(it);
    fn();
  }
}

void loop_base::rearm(websocket& ws) {
  maybe_time d = ws.conn() ? ws.conn()->next_deadline() : std::nullopt;
  if (ws.extra_) {
    const maybe_time linger = ws.extra_->linger;
    if (linger && (!d || *linger < *d)) d = linger;
  }
  if (d == ws.armed_) return;
  // While armed_ holds a deadline, the heap holds an entry for it at or
  // before that deadline. A deadline that moves later keeps its entry (it
  // surfaces early and queues the later one, see run_timers): a connection
  // whose deadline goes from the open timeout to the keepalive, or from one
  // ping to the next, has one entry, not one per move.
  const bool covered = ws.armed_ && d && *ws.armed_ <= *d;
  ws.armed_ = d;
  if (d && !covered) push_timer(ws);
}

void loop_base::push_timer(websocket& ws) {
  // Entries of disarmed or moved deadlines stay in the heap until they
  // surface; past twice the live count, rebuild it from the live deadlines.
  // Rebuilt too, on a new epoch, once ticks have used half their range, so
  // a tick never wraps.
  constexpr auto rebase_after = std::uint64_t(1) << 31;
  if (conn_timers_.size() > 2 * sessions_ + 64 ||
      std::uint64_t((now_ - timer_epoch_) / conn_tick) > rebase_after) {
    timer_epoch_ = std::max(timer_epoch_, now_);
    conn_timers_.clear();
    sessions_store_.for_each([&](websocket& s) {
      if (!s.finished_ && s.armed_ && &s != &ws) conn_timers_.push_back({to_tick(*s.armed_), s.slot_});
    });
    std::make_heap(conn_timers_.begin(), conn_timers_.end(), std::greater<>());
  }
  conn_timers_.push_back({to_tick(*ws.armed_), ws.slot_});
  std::push_heap(conn_timers_.begin(), conn_timers_.end(), std::greater<>());
}

// ===========================================================================
// session_store

session_store::~session_store() {
  for_each([](websocket& ws) { std::destroy_at(&ws); });
}

void* session_store::acquire(std::uint32_t& slot) {
  std::size_t p = std::min(first_free_, pages_.size());
  while (p < pages_.size() && pages_[p] && pages_[p]->live == ~std::uint64_t(0)) ++p;
  if (p == pages_.size()) pages_.emplace_back();
  if (!pages_[p]) {
    pages_[p].reset(new page);  // (not value-initialized: the records are written when used)
  } else if (pages_[p]->live == 0) {
    spare_ = false;  // (the spare is the only empty page)
  }
  page& pg = *pages_[p];
  const auto i = static_cast<std::uint32_t>(std::countr_one(pg.live));
  pg.live |= std::uint64_t(1) << i;
  first_free_ = p;
  slot = static_cast<std::uint32_t>(p) * page_slots + i;
  return pg.records[i];
}

void session_store::release(std::uint32_t slot) noexcept {
  const std::uint32_t p = slot / page_slots, i = slot % page_slots;
  page& pg = *pages_[p];
  pg.live &= ~(std::uint64_t(1) << i);
  first_free_ = std::min<std::size_t>(first_free_, p);
  if (pg.live != 0) return;
  if (!spare_) {
    spare_ = true;
    return;
  }
  pages_[p].reset();
  while (!pages_.empty() && !pages_.back()) pages_.pop_back();
}

// ===========================================================================
// loop_base: sessions

websocket& loop_base::adopt(const sockaddr* remote, socklen_t remote_len, session_owner& owner) {
  std::uint32_t slot;
  void* at = sessions_store_.acquire(slot);
  websocket& ws = *::new (at) websocket();
  if (next_serial_ == 0) next_serial_ = 1;
  ws.slot_ = slot;
  ws.serial_ = next_serial_++;
  ws.owner_ = &owner;
  std::string unix_path;
  ws.remote_ = to_peer_address(remote, remote_len, &unix_path);
  if (!unix_path.empty()) extra(ws).unix_path = std::move(unix_path);
  ++sessions_;
  return ws;
}

void loop_base::attach(websocket& ws, int fd, bool connecting) {
  backend_attach(ws, fd, connecting);
  if (ws.conn()) mark_dirty(ws);  // arms its opening timeout
}

session_extra& loop_base::extra(websocket& ws) {
  if (!ws.extra_) ws.extra_ = std::make_unique<session_extra>();
  return *ws.extra_;
}

void loop_base::mark_dirty(websocket& ws) {
  if (ws.dirty_ || ws.finished_) return;
  ws.dirty_ = true;
  dirty_.push_back(&ws);
}

void loop_base::flush_dirty() {
  // The two lists trade places and keep their storage (see dirty_spare_).
  std::vector<websocket*> batch;
  batch.swap(dirty_spare_);
  for (int rounds = 0; !dirty_.empty() && rounds < 64; ++rounds) {
    batch.swap(dirty_);
    for (websocket* ws : batch) {
      ws->dirty_ = false;
      if (!ws->finished_) service(*ws);
    }
    batch.clear();
  }
  dirty_spare_.swap(batch);
}

gust::settings loop_base::pooled(const gust::settings& s) {
  gust::settings out = s;
  if (!out.output_pool) out.output_pool = &output_pool_;
  if (!out.deflate.pool) out.deflate.pool = &deflate_pool_;
  return out;
}

void report_accept_error(const logger& log, counters* ctr, time_point now, time_point& last_log,
                         int err) {
  counters::bump(ctr->accept_errors);
  if (!log.on() || now - last_log < std::chrono::seconds(1)) return;
  last_log = now;
  std::string msg = "accept: " + std::error_code(err, std::system_category()).message();
  if (err == EMFILE) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0)
      msg += " (descriptor limit " + std::to_string(rl.rlim_cur) + ")";
    msg += "; refusing new connections until some close";
  }
  log(log_level::error, msg);
}

void loop_base::on_input(websocket& ws, std::span<std::byte> data) {
  if (ws.finished_ || !ws.conn()) return;
  counters::bump(ws.owner_->ctr.bytes_in, data.size());
  ws.received_ = true;
  ws.conn()->receive(data, now_);
  ws.holds_borrowed_ = true;
  service(ws);
}

void loop_base::on_eof(websocket& ws) {
  if (ws.finished_) return;
  ws.eof_ = true;
  if (!ws.conn() || (ws.closing_transport_ && ws.write_shut_)) {
    close_now(ws);
    return;
  }
  ws.conn()->receive_eof(now_);
  service(ws);
}

void loop_base::on_transport_error(websocket& ws, std::error_code) {
  // ECONNRESET, EPIPE...: the transport is gone. The core is told it ended
  // (a close event with 1006 for an open connection) and the socket closed.
  if (ws.finished_) return;
  ws.eof_ = true;
  close_now(ws);
}

void loop_base::pump_events(websocket& ws) {
  if (!ws.conn()) return;
  while (!ws.finished_) {
    connection& c = *ws.conn();  // (a handler may swap it: see session_extra::plain)
    if ((ws.paused_by_user_ || ws.paused_by_backpressure_) && c.state() == gust::state::open) break;
    auto ev = c.next_event(now_);
    if (!ev) {
      ws.holds_borrowed_ = false;  // the core copied what it still needs
      return;
    }
    const auto* msg = std::get_if<message_event>(&*ev);
    if (!msg) {
      dispatch(ws, *ev);
      continue;
    }
    // Messages are most events: delivered here, not through dispatch's visit.
    // No early write when a close or a failing frame may follow: the core's
    // close goes behind the answers already queued, so one write per batch
    // still delivers them.
    deliver_message(ws, *msg);
  }
  // Stopped early: the rest of the loop's read buffer is still lent to the
  // core, which keeps its own copy of what it still needs before the buffer
  // is reused.
  if (ws.holds_borrowed_) {
    ws.conn()->stop_borrowing();
    ws.holds_borrowed_ = false;
  }
}

void loop_base::service(websocket& ws) {
  if (ws.finished_ || !ws.conn()) return;
  websocket* const outer = servicing_;
  servicing_ = &ws;
  service_turn(ws);
  servicing_ = outer;
}

void loop_base::service_turn(websocket& ws) {
  connection& c = *ws.conn();
  for (int round = 0; round < 8; ++round) {
    pump_events(ws);
    if (ws.finished_) return;
    feed_held(ws);
    if (c.buffered_amount() > 0 && !backend_write(ws)) return;  // the socket failed
    if (ws.finished_) return;
    const bool was_over = ws.over_limit_;
    update_backpressure(ws);
    // on_drain may have queued more: write it in the same turn.
    if (!(was_over && !ws.over_limit_)) break;
  }
  if (c.transport_should_close()) {
    if (!ws.closing_transport_) {
      ws.closing_transport_ = true;
      duration linger = c.settings().timeouts.close_timeout;
      if (linger.count() <= 0) linger = std::chrono::seconds(10);
      session_extra& x = extra(ws);
      x.linger = now_ + linger;
      x.backlog.clear();
      x.backlog_bytes = 0;
    }
    if (c.buffered_amount() == 0 && !ws.write_shut_) {
      if (ws.eof_) {
        close_now(ws);
        return;
      }
      backend_shutdown_write(ws);
      ws.write_shut_ = true;
      // Everything is said: wait only briefly for the peer's FIN (closing
      // with its data unread would reset the connection).
      session_extra& x = *ws.extra_;  // (made when closing_transport_ was set)
      x.linger = std::min(*x.linger, now_ + fin_wait);
    }
  }
  const std::size_t buffered = c.buffered_amount(), mem = c.memory().total();
  counters::adjust(ws.owner_->ctr.buffered, ws.gauge_buffered_, buffered);
  counters::adjust(ws.owner_->ctr.memory, ws.gauge_memory_, mem);
  ws.gauge_buffered_ = buffered;
  ws.gauge_memory_ = mem;
  rearm(ws);
}

void loop_base::update_backpressure(websocket& ws) {
  const backpressure_config& bp = *ws.owner_->bp;
  const std::size_t amount = ws.buffered_amount();
  if (!ws.over_limit_) {
    if (amount > bp.high_watermark) {
      ws.over_limit_ = true;
      if (bp.pause_reading_when_over) ws.paused_by_backpressure_ = true;
    }
    return;
  }
  if (amount > bp.low_watermark) return;
  ws.over_limit_ = false;
  if (ws.paused_by_backpressure_) {
    ws.paused_by_backpressure_ = false;
    if (!ws.paused_by_user_) {
      backend_resume_read(ws);
      mark_dirty(ws);
    }
  }
  const handlers* h = handlers_of(ws);
  if (h && h->on_drain && ws.conn() && ws.conn()->state() == gust::state::open) h->on_drain(ws);
}

void loop_base::feed_held(websocket& ws) {
  if (!has_backlog(ws)) return;
  session_extra& x = *ws.extra_;
  while (!x.backlog.empty() && ws.conn()->buffered_amount() <= ws.owner_->bp->high_watermark) {
    prepared_message m = std::move(x.backlog.front());
    x.backlog.erase(x.backlog.begin());
    x.backlog_bytes -= m.payload().size();
    if (!ws.conn()->send_prepared(m)) counters::bump(ws.owner_->ctr.msgs_out);
  }
}

std::error_code loop_base::send_failed(websocket& ws, std::error_code ec) {
  const backpressure_config& bp = *ws.owner_->bp;
  if (ec == errc::output_limit_reached && bp.hard_limit_close_code) {
    counters::bump(ws.owner_->ctr.hard_limit_closes);
    ws.conn()->fail(now_, bp.hard_limit_close_code, "send buffer over its limit");
    mark_dirty(ws);
  }
  return ec;
}

void loop_base::dispatch(websocket& ws, event& ev) {
  static const handlers none;
  const handlers* owner_h = handlers_of(ws);
  const handlers& h = owner_h ? *owner_h : none;
  counters& ctr = ws.owner_->ctr;
  std::visit(
      [&](auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, request_event>) {
          if (ws.owner_->server && !ws.abandoned_) {
            server_on_request(ws, *e.request);
          } else {
            (void)ws.server_engine().reject(503);
          }
        } else if constexpr (std::is_same_v<T, open_event>) {
          ws.opened_ = true;
          if (e.response) extra(ws).response = e.response;
          ws.open_index_ = static_cast<std::uint32_t>(open_.size());
          open_.push_back(ws.slot_);
          counters::bump(ctr.open);
          counters::bump(ctr.hs_accepted);
          if (ws.owner_->client && !ws.abandoned_) client_on_open(ws);
          if (h.on_open) h.on_open(ws);
        } else if constexpr (std::is_same_v<T, message_event>) {
          deliver_message(ws, e);
        } else if constexpr (std::is_same_v<T, ping_event>) {
          mark_dirty(ws);  // the auto-pong
          if (h.on_ping) h.on_ping(ws, e.payload);
        } else if constexpr (std::is_same_v<T, pong_event>) {
          if (h.on_pong) h.on_pong(ws, e);
        } else if constexpr (std::is_same_v<T, close_event>) {
          if (ws.open_index_ != UINT32_MAX) {
            leave_open(ws);
            counters::adjust(ctr.open, 1, 0);
          }
          ctr.count_close(e.code);
          ws.closed_delivered_ = true;
          if (h.on_close) h.on_close(ws, e);
        } else if constexpr (std::is_same_v<T, handshake_failure_event>) {
          if (ws.owner_->server && !ws.abandoned_ && server_plain_http(ws, *e.failure)) return;
          if (e.failure->error != handshake_error::rejected) counters::bump(ctr.hs_rejected);
          if (ws.owner_->client && !ws.abandoned_) client_on_handshake_failure(ws, *e.failure);
        }
      },
      ev);
}

void loop_base::close_now(websocket& ws) {
  if (ws.finished_) return;
  if (ws.conn() && !ws.abandoned_) {
    const gust::state st = ws.conn()->state();
    if ((ws.opened_ && !ws.closed_delivered_) || st == gust::state::connecting) {
      // A close (1006) or handshake failure event is owed: the transport
      // ends here.
      ws.conn()->receive_eof(now_);
      ws.paused_by_user_ = ws.paused_by_backpressure_ = false;
      pump_events(ws);
      if (ws.finished_) return;
    }
  }
  finish(ws);
}

void loop_base::leave_open(websocket& ws) {
  const std::uint32_t last = open_.back();
  open_[ws.open_index_] = last;
  sessions_store_.get(last)->open_index_ = ws.open_index_;
  open_.pop_back();
  ws.open_index_ = UINT32_MAX;
}

void loop_base::abandon(websocket& ws) {
  ws.abandoned_ = true;  // (handlers_of() says none from now on)
  if (!ws.finished_) finish(ws);
}

void loop_base::finish(websocket& ws) {
  ws.finished_ = true;
  // The gauges drop before the open count, so that a reader on another
  // thread that sees a connection gone also sees its bytes gone.
  counters::adjust(ws.owner_->ctr.buffered, ws.gauge_buffered_, 0);
  counters::adjust(ws.owner_->ctr.memory, ws.gauge_memory_, 0);
  ws.gauge_buffered_ = 0;
  ws.gauge_memory_ = 0;
  if (ws.open_index_ != UINT32_MAX) {
    leave_open(ws);
    counters::adjust(ws.owner_->ctr.open, 1, 0);
  }
  if (ws.tx_.handle >= 0) backend_close(ws);
  ws.armed_.reset();
  finished_.push_back(&ws);
}

void loop_base::reap() {
  while (!finished_.empty()) {
    std::vector<websocket*> batch;
    batch.swap(finished_);
    for (websocket* ws : batch) {
      if (ws->dirty_) {
        dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), ws), dirty_.end());
        ws->dirty_ = false;
      }
      if (!ws->abandoned_) session_ended(*ws);
      const std::uint32_t slot = ws->slot_;
      std::destroy_at(ws);
      sessions_store_.release(slot);
      --sessions_;
    }
  }
}

// ===========================================================================
// broadcast

const deflate_options& loop_base::deflate_settings(const websocket& ws) noexcept {
  if (ws.owner_->server) return ws.owner_->server->cfg.settings.deflate;
  if (ws.owner_->client) return ws.owner_->client->cfg.settings.deflate;
  static const deflate_options none;
  return none;
}

broadcast_result loop_base::broadcast(std::span<websocket* const> targets,
                                      const prepared_message& message,
                                      const broadcast_options& opts) {
  broadcast_result r;
  r.status.reserve(targets.size());
  for (websocket* ws : targets) {
    send_status st;
    if (!ws->conn() || ws->finished_ || ws->conn()->state() != gust::state::open) {
      st = send_status::not_open;
    } else if (message.error() == errc::invalid_utf8) {
      st = send_status::error;
    } else if (ws->over_limit_ || has_backlog(*ws)) {
      loop_base& loop = *ws->owner_->loop;
      // Over its limit: the policy. Under it but with messages held back:
      // hold this one too, so the order is kept.
      over_limit_policy policy = ws->over_limit_ ? opts.policy : over_limit_policy::drop_oldest;
      if (policy == over_limit_policy::queue && has_backlog(*ws)) policy = over_limit_policy::drop_oldest;
      switch (policy) {
        case over_limit_policy::skip:
          st = send_status::skipped;
          break;
        case over_limit_policy::close:
          ws->conn()->fail(loop.now_, opts.close_code, "too slow: send buffer over its limit");
          loop.mark_dirty(*ws);
          st = send_status::closed;
          break;
        case over_limit_policy::drop_oldest: {
          session_extra& x = extra(*ws);
          x.backlog.push_back(message);
          x.backlog_bytes += message.payload().size();
          st = send_status::held;
          if (x.backlog.size() > std::max<std::size_t>(opts.max_held, 1)) {
            x.backlog_bytes -= x.backlog.front().payload().size();
            x.backlog.erase(x.backlog.begin());
            st = send_status::dropped_oldest;
          }
          loop.mark_dirty(*ws);
          break;
        }
        case over_limit_policy::queue:
        default: {
          auto ec = loop.after_send(*ws, ws->conn()->send_prepared(message));
          st = !ec ? send_status::sent
               : ws->conn()->state() != gust::state::open ? send_status::closed
                                                          : send_status::error;
          break;
        }
      }
    } else {
      auto ec = ws->owner_->loop->after_send(*ws, ws->conn()->send_prepared(message));
      st = !ec ? send_status::sent
           : ws->conn()->state() != gust::state::open ? send_status::closed
                                                      : send_status::error;
    }
    r.status.push_back(st);
    switch (st) {
      case send_status::sent: ++r.sent; break;
      case send_status::held: ++r.held; break;
      case send_status::dropped_oldest: ++r.dropped_oldest; break;
      case send_status::skipped: ++r.skipped; break;
      case send_status::closed: ++r.closed; break;
      case send_status::not_open: ++r.not_open; break;
      case send_status::error: ++r.errors; break;
    }
  }
  return r;
}

// ===========================================================================
// Adapter registry

#if GUST_HAVE_EPOLL
std::unique_ptr<loop_base> make_epoll_loop();
#endif
#if GUST_HAVE_ASIO
std::unique_ptr<loop_base> make_asio_loop();
#endif
#if GUST_HAVE_IO_URING
std::unique_ptr<loop_base> make_uring_loop();
#endif

std::unique_ptr<loop_base> make_loop(gust::adapter a) {
  switch (a) {
#if GUST_HAVE_EPOLL
    case gust::adapter::epoll: return make_epoll_loop();
#endif
#if GUST_HAVE_ASIO
    case gust::adapter::asio: return make_asio_loop();
#endif
#if GUST_HAVE_IO_URING
    case gust::adapter::io_uring: return make_uring_loop();
#endif
    default: break;
  }
  throw std::system_error(std::make_error_code(std::errc::not_supported),
                          "gust: adapter '" + std::string(to_string(a)) +
                              "' is not available in this build");
}

}  // namespace detail

std::error_code adapter_usable(adapter a, std::string* why) {
  // Building the loop is the only honest test (io_uring may be compiled in
  // yet refused by the kernel or a sandbox).
  try {
    (void)detail::make_loop(a);
  } catch (const std::system_error& e) {
    if (why) *why = e.what();
    return e.code();
  }
  return {};
}

// ===========================================================================
// event_loop

event_loop::event_loop(gust::adapter a) : impl_(detail::make_loop(a)) { impl_->facade = this; }
event_loop::~event_loop() = default;
void event_loop::run() { impl_->run(std::nullopt); }
void event_loop::run_for(duration d) { impl_->run(clock::now() + d); }
void event_loop::stop() { impl_->stop(); }
void event_loop::post(std::function<void()> fn) { impl_->post(std::move(fn)); }
std::uint64_t event_loop::call_after(duration d, std::function<void()> fn) {
  return impl_->call_at(clock::now() + d, std::move(fn));
}
void event_loop::cancel(std::uint64_t id) { impl_->cancel(id); }
time_point event_loop::now() const noexcept { return impl_->now(); }
gust::adapter event_loop::adapter() const noexcept { return impl_->kind(); }

// ===========================================================================
// websocket

websocket::websocket() = default;
websocket::~websocket() { drop_engine(); }

void websocket::drop_engine() noexcept {
  if (!has_engine_) return;
  if (client_engine_)
    std::destroy_at(&engine_.client);
  else
    std::destroy_at(&engine_.server);
  has_engine_ = client_engine_ = false;
}

std::error_code websocket::send_text(std::string_view text) {
  return send(message_type::text, std::as_bytes(std::span(text.data(), text.size())));
}
std::error_code websocket::send_binary(std::span<const std::byte> data) {
  return send(message_type::binary, data);
}

std::error_code websocket::send(message_type type, std::span<const std::byte> data) {
  if (!conn() || finished_) return errc::invalid_state;
  if (detail::loop_base::has_backlog(*this) && conn()->state() == gust::state::open) {
    // Behind held broadcasts: keep the order (the payload is copied).
    prepared_message m(type, data);
    if (m.error()) return m.error();
    hold(std::move(m));
    return {};
  }
  return owner_->loop->after_send(*this, conn()->send(type, data));
}

void websocket::hold(prepared_message m) {
  detail::session_extra& x = *extra_;
  x.backlog_bytes += m.payload().size();
  x.backlog.push_back(std::move(m));
  owner_->loop->mark_dirty(*this);
}

std::error_code websocket::send_shared(message_type type, std::span<const std::byte> data,
                                       std::shared_ptr<const void> owner) {
  if (!conn() || finished_) return errc::invalid_state;
  if (detail::loop_base::has_backlog(*this) && conn()->state() == gust::state::open) {
    prepared_message m(type, data, std::move(owner));
    if (m.error()) return m.error();
    hold(std::move(m));
    return {};
  }
  return owner_->loop->after_send(*this, conn()->send_shared(type, data, std::move(owner)));
}

std::error_code websocket::send_fragment(message_type type, std::span<const std::byte> data,
                                         bool fin) {
  if (!conn() || finished_) return errc::invalid_state;
  return owner_->loop->after_send(*this, conn()->send_fragment(type, data, fin));
}

std::error_code websocket::ping(std::span<const std::byte> payload) {
  if (!conn() || finished_) return errc::invalid_state;
  auto ec = conn()->ping(payload, owner_->loop->now());
  if (!ec) owner_->loop->mark_dirty(*this);
  return ec;
}

std::error_code websocket::close(std::uint16_t code, std::string_view reason) {
  if (!conn() || finished_) return errc::invalid_state;
  auto ec = conn()->close(owner_->loop->now(), code, reason);
  if (!ec) owner_->loop->mark_dirty(*this);
  return ec;
}

void websocket::fail(std::uint16_t code, std::string_view reason) {
  if (finished_) return;
  if (!conn()) {
    owner_->loop->close_now(*this);
    return;
  }
  conn()->fail(owner_->loop->now(), code, reason);
  owner_->loop->mark_dirty(*this);
}

std::error_code websocket::accept(accept_options opts) {
  if (!conn() || conn()->role() != gust::role::server) return errc::wrong_role;
  if (extra_ && extra_->plain) return errc::invalid_state;  // not an upgrade request
  auto ec = server_engine().accept(owner_->loop->now(), std::move(opts));
  if (!ec) {
    answered_ = true;
    owner_->loop->mark_dirty(*this);
  }
  return ec;
}

std::error_code websocket::reject(int status, std::string_view body) {
  if (!conn() || conn()->role() != gust::role::server) return errc::wrong_role;
  auto ec = server_engine().reject(status, body);
  if (!ec) {
    answered_ = true;
    detail::counters::bump(owner_->ctr.hs_rejected);
    owner_->loop->mark_dirty(*this);
  }
  return ec;
}

std::error_code websocket::respond(const http::response& response) {
  if (!conn() || conn()->role() != gust::role::server) return errc::wrong_role;
  auto ec = server_engine().respond(response);
  if (!ec) {
    answered_ = true;
    detail::counters::bump(owner_->ctr.http_responses);
    owner_->loop->mark_dirty(*this);
  }
  return ec;
}

std::size_t websocket::buffered_amount() const noexcept {
  return (conn() ? conn()->buffered_amount() : 0) + detail::loop_base::backlog_bytes(*this);
}

void websocket::pause_reading() { paused_by_user_ = true; }

void websocket::resume_reading() {
  if (!paused_by_user_) return;
  paused_by_user_ = false;
  if (!paused_by_backpressure_ && !finished_) {
    owner_->loop->backend_resume_read(*this);
    owner_->loop->mark_dirty(*this);
  }
}

gust::state websocket::state() const noexcept {
  return conn() ? conn()->state() : (finished_ ? gust::state::closed : gust::state::connecting);
}
gust::role websocket::role() const noexcept {
  return conn() ? conn()->role() : (owner_->client ? gust::role::client : gust::role::server);
}
std::string_view websocket::extensions() const noexcept {
  return conn() && opened_ ? conn()->extensions() : std::string_view();
}

const http::request* websocket::request() const noexcept {
  if (extra_ && extra_->plain) return extra_->plain->request();
  if (!conn() || conn()->role() != gust::role::server) return nullptr;
  return server_engine().request();
}
const http::response* websocket::response() const noexcept {
  return extra_ ? extra_->response : nullptr;
}
endpoint websocket::remote_address() const {
  return detail::to_endpoint(remote_, extra_ ? std::string_view(extra_->unix_path) : std::string_view());
}
std::string_view websocket::subprotocol() const noexcept {
  return conn() ? conn()->subprotocol() : std::string_view();
}
std::optional<duration> websocket::latency() const noexcept {
  return conn() ? conn()->latency() : std::nullopt;
}
memory_usage websocket::memory() const noexcept { return conn() ? conn()->memory() : memory_usage{}; }
event_loop& websocket::loop() noexcept { return *owner_->loop->facade; }

broadcast_result broadcast(std::span<websocket* const> targets, message_type type,
                           std::span<const std::byte> data, const broadcast_options& opts) {
  if (targets.empty()) return {};
  // Compressed once if a target could take the compressed form (the
  // parameters of the first such target's owner).
  const deflate_options* z = nullptr;
  for (websocket* ws : targets)
    if (ws->state() == gust::state::open && ws->core().compression_enabled()) {
      z = &detail::loop_base::deflate_settings(*ws);
      break;
    }
  // The payload is copied once; every server queue references this copy.
  return detail::loop_base::broadcast(targets, prepared_message(type, data, nullptr, z), opts);
}

broadcast_result broadcast(std::span<websocket* const> targets, const prepared_message& message,
                           const broadcast_options& opts) {
  return detail::loop_base::broadcast(targets, message, opts);
}

}  // namespace gust
