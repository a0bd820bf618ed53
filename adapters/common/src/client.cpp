// gust::client: ws:// URLs, resolution off the loop, connection attempts over
// every address, the opening timeout and reconnection with backoff and
// jitter, shared by every adapter.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netdb.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <random>

#include "owners.hpp"

namespace gust {

// ===========================================================================
// URLs

std::string ws_url::host_header() const {
  std::string h;  // (appends: GCC 12 -O3 misreports "[" + host under -Wrestrict)
  if (ipv6_literal) h += '[';
  h += host;
  if (ipv6_literal) h += ']';
  if (port != 80) {
    h += ':';
    h += std::to_string(port);
  }
  return h;
}

std::error_code parse_ws_url(std::string_view url, ws_url& out, std::string* why) {
  auto fail = [&](std::string msg) {
    if (why) *why = std::move(msg);
    return make_error_code(errc::invalid_argument);
  };
  out = ws_url{};
  const auto colon = url.find("://");
  if (colon == std::string_view::npos) return fail("not a URL (expected ws://host[:port]/path)");
  std::string scheme(url.substr(0, colon));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme == "wss") return fail("wss:// needs TLS, which this build does not have");
  if (scheme != "ws") return fail("unsupported scheme '" + scheme + "' (expected ws://)");
  std::string_view rest = url.substr(colon + 3);
  if (rest.find('#') != std::string_view::npos) return fail("a WebSocket URL has no fragment");
  const auto slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  std::string target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (target.front() == '?') target = std::string(1, '/').append(target);
  if (authority.find('@') != std::string_view::npos) return fail("user information in the URL is not supported");
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated IPv6 literal");
    out.host = std::string(authority.substr(1, close - 1));
    out.ipv6_literal = true;
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("unexpected text after the IPv6 literal");
      port_text = after.substr(1);
    }
    in6_addr a6;
    if (inet_pton(AF_INET6, out.host.c_str(), &a6) != 1) return fail("invalid IPv6 address '" + out.host + "'");
  } else {
    const auto c = authority.rfind(':');
    out.host = std::string(authority.substr(0, c));
    if (c != std::string_view::npos) port_text = authority.substr(c + 1);
  }
  if (out.host.empty()) return fail("no host in the URL");
  if (!port_text.empty() || authority.ends_with(":")) {
    unsigned long p = 0;
    if (port_text.empty() || port_text.size() > 5) return fail("invalid port");
    for (char ch : port_text) {
      if (ch < '0' || ch > '9') return fail("invalid port '" + std::string(port_text) + "'");
      p = p * 10 + static_cast<unsigned long>(ch - '0');
    }
    if (p == 0 || p > 65535) return fail("port out of range");
    out.port = static_cast<std::uint16_t>(p);
  }
  for (char ch : target)
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f) return fail("invalid character in the path");
  out.target = std::move(target);
  return {};
}

namespace detail {

// ===========================================================================
// client_state

client_state::client_state(loop_base& l, client_config c) : loop(l), cfg(std::move(c)) {
  owner.loop = &l;
  owner.h = &cfg.handlers;
  owner.bp = &cfg.backpressure;
  owner.client = this;
  cfg.settings.limits.max_buffered_output = cfg.backpressure.hard_limit;
  if (cfg.backpressure.low_watermark > cfg.backpressure.high_watermark)
    cfg.backpressure.low_watermark = cfg.backpressure.high_watermark;
  // The client's opening timeout covers resolution and TCP too (below); the
  // core's covers the handshake, with the same bound.
  cfg.settings.timeouts.open_timeout = cfg.open_timeout;
  log.sink = &cfg.log;
}

client_state::~client_state() {
  alive.reset();
  if (open_timer) loop.cancel(open_timer);
  if (retry_timer) loop.cancel(retry_timer);
  if (current) loop.abandon(*current);
}

std::error_code client_state::connect() {
  std::string why;
  if (auto ec = parse_ws_url(cfg.url, url, &why)) {
    log(log_level::error, "invalid URL '" + cfg.url + "': " + why);
    return ec;
  }
  if (connecting || current) return make_error_code(errc::invalid_state);
  user_closed = false;
  attempt = 0;
  start_attempt();
  return {};
}

void client_state::start_attempt() {
  retry_timer = 0;
  if (user_closed) return;
  ++attempt;
  ++attempt_id;
  connecting = true;
  error_reported = false;
  addrs.clear();
  next_addr = 0;
  last_connect_error = {};
  if (cfg.open_timeout.count() > 0)
    open_timer = loop.call_at(loop.now() + cfg.open_timeout, [this] {
      open_timer = 0;
      on_open_timeout();
    });
  // IP literals need no resolution.
  sockaddr_storage ss{};
  auto* in4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, url.host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(url.port);
    addrs.push_back(ss);
    try_next();
    return;
  }
  if (inet_pton(AF_INET6, url.host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(url.port);
    addrs.push_back(ss);
    try_next();
    return;
  }
  // A host name: getaddrinfo on the resolver's thread; the answer comes
  // back as a task posted to this loop.
  loop.hold();
  std::weak_ptr<int> weak = alive;
  loop_base* l = &loop;
  const std::uint64_t id = attempt_id;
  loop.dns().resolve(url.host, url.port,
                     [l, weak, this, id](int rc, std::vector<sockaddr_storage> found) {
                       l->post([l, weak, this, id, rc, found = std::move(found)]() mutable {
                         l->release();
                         if (weak.expired()) return;
                         on_resolved(id, rc, std::move(found));
                       });
                     });
}

void client_state::on_resolved(std::uint64_t id, int rc, std::vector<sockaddr_storage> found) {
  if (id != attempt_id || !connecting) return;  // this attempt was given up
  if (rc != 0 || found.empty()) {
    report(make_error_code(std::errc::host_unreachable),
           "cannot resolve host '" + url.host + "': " + (rc ? gai_strerror(rc) : "no address"));
    end_attempt();
    return;
  }
  addrs = std::move(found);
  try_next();
}

void client_state::try_next() {
  while (next_addr < addrs.size()) {
    const sockaddr_storage& ss = addrs[next_addr];
    const socklen_t len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      set_nodelay(fd);
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0 || errno == EINPROGRESS) {
        current = &loop.adopt(reinterpret_cast<const sockaddr*>(&ss), len, owner);
        loop.attach(*current, fd, true);
        return;
      }
      last_connect_error = last_error();
      ::close(fd);
    } else {
      last_connect_error = last_error();
    }
    ++next_addr;
  }
  report(last_connect_error ? last_connect_error : make_error_code(std::errc::host_unreachable),
         "cannot connect to " + url.host_header() + ": " +
             (last_connect_error ? last_connect_error.message() : "no address"));
  end_attempt();
}

void client_state::on_connected(websocket& ws, std::error_code ec) {
  if (&ws != current) return;
  if (ec) {
    last_connect_error = ec;
    loop.abandon(ws);
    current = nullptr;
    ++next_addr;
    try_next();
    return;
  }
  counters::bump(owner.ctr.accepted);
  client_options opts;
  opts.host = url.host_header();
  opts.target = url.target;
  opts.origin = cfg.origin;
  opts.subprotocols = cfg.subprotocols;
  opts.extra_headers = cfg.headers;
  ws.make_client_engine(loop.now(), std::move(opts), loop.pooled(cfg.settings));
  loop.mark_dirty(ws);  // the request is queued: write it
}

void client_state::on_open(websocket&) {
  connecting = false;
  attempt = 0;
  if (open_timer) loop.cancel(open_timer), open_timer = 0;
}

void client_state::on_handshake_failure(const handshake_failure& f) {
  std::string msg;
  if (f.response)
    msg = "the server answered " + std::to_string(f.response->status) + " " + f.response->reason;
  else
    msg = "opening handshake failed: " + std::string(to_string(f.error));
  if (!f.detail.empty()) msg += " (" + f.detail + ")";
  // The engine's open_timeout and our own timer bound the same wait: a
  // timeout reads the same whichever of them fires first.
  const std::error_code code = f.error == handshake_error::timeout
                                   ? make_error_code(std::errc::timed_out)
                                   : make_error_code(errc::invalid_state);
  report(code, msg, f);
}

void client_state::on_session_end(websocket& ws) {
  if (&ws == current) current = nullptr;
  if (ws.opened_) {
    // An open connection ended: reconnect if asked to.
    if (cfg.reconnect.enabled && !user_closed) {
      connecting = true;  // until the retry starts
      error_reported = true;
      end_attempt();
    }
    return;
  }
  if (!connecting) return;
  report(make_error_code(std::errc::connection_reset),
         "the connection closed during the opening handshake");
  end_attempt();
}

void client_state::on_open_timeout() {
  if (!connecting) return;
  report(make_error_code(std::errc::timed_out), "opening handshake timed out");
  if (current) {
    loop.abandon(*current);
    current = nullptr;
  }
  ++attempt_id;  // a resolution still running is ignored
  end_attempt();
}

bool client_state::will_retry() const {
  return cfg.reconnect.enabled && !user_closed &&
         (cfg.reconnect.max_attempts == 0 || attempt < cfg.reconnect.max_attempts);
}

void client_state::report(std::error_code ec, std::string message,
                          std::optional<handshake_failure> failure) {
  if (error_reported) return;
  error_reported = true;
  if (log.on()) log(log_level::warning, "connect " + cfg.url + ": " + message);
  if (!cfg.on_connect_error) return;
  connect_error e;
  e.code = ec;
  e.message = std::move(message);
  e.failure = std::move(failure);
  e.attempt = attempt;
  e.will_retry = will_retry();
  cfg.on_connect_error(e);
}

void client_state::end_attempt() {
  if (!connecting) return;
  connecting = false;
  if (open_timer) loop.cancel(open_timer), open_timer = 0;
  if (!will_retry() || retry_timer) return;
  const auto& rc = cfg.reconnect;
  const double exponent = attempt > 0 ? double(attempt - 1) : 0.0;
  double delay = std::chrono::duration<double>(rc.initial_delay).count() * std::pow(rc.factor, exponent);
  delay = std::min(delay, std::chrono::duration<double>(rc.max_delay).count());
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const double jitter = std::clamp(rc.jitter, 0.0, 1.0);
  delay *= 1.0 - jitter * std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  if (log.on()) log(log_level::info, "reconnecting in " + std::to_string(delay) + " s");
  retry_timer = loop.call_at(loop.now() + std::chrono::duration_cast<duration>(
                                              std::chrono::duration<double>(delay)),
                             [this] { start_attempt(); });
}

void client_state::close(std::uint16_t code, std::string_view reason) {
  user_closed = true;
  if (retry_timer) loop.cancel(retry_timer), retry_timer = 0;
  if (open_timer) loop.cancel(open_timer), open_timer = 0;
  ++attempt_id;
  connecting = false;
  if (!current) return;
  if (current->opened_ && current->state() == gust::state::open) {
    if (current->close(code, reason)) current->fail(code, reason);
  } else if (!current->opened_) {
    loop.abandon(*current);
    current = nullptr;
  }
}

// loop_base's owner hooks --------------------------------------------------

void loop_base::on_connected(websocket& ws, std::error_code ec) {
  if (ws.owner_->client && !ws.abandoned_) ws.owner_->client->on_connected(ws, ec);
}
void loop_base::client_on_open(websocket& ws) { ws.owner_->client->on_open(ws); }
void loop_base::client_on_handshake_failure(websocket& ws, const handshake_failure& f) {
  ws.owner_->client->on_handshake_failure(f);
}

}  // namespace detail

// ===========================================================================
// client

client::client(event_loop& loop, client_config cfg)
    : s_(std::make_unique<detail::client_state>(loop.impl(), std::move(cfg))) {}
client::~client() = default;
std::error_code client::connect() { return s_->connect(); }
void client::close(std::uint16_t code, std::string_view reason) { s_->close(code, reason); }
websocket* client::connection() noexcept {
  return s_->current;
}
gust::stats client::stats() const {
  gust::stats st;
  s_->owner.ctr.add_to(st);
  return st;
}
const client_config& client::config() const noexcept { return s_->cfg; }

}  // namespace gust
