// gust::server: listeners, the process_request hook, graceful shutdown,
// counters and cross-loop broadcast, shared by every adapter.
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "owners.hpp"

namespace gust {
namespace detail {

server_state::server_state(server_config c) : cfg(std::move(c)) {
  // The core refuses sends past the hard limit; the loop then applies the
  // hard-limit policy (see backpressure_config).
  cfg.settings.limits.max_buffered_output = cfg.backpressure.hard_limit;
  if (cfg.backpressure.low_watermark > cfg.backpressure.high_watermark)
    cfg.backpressure.low_watermark = cfg.backpressure.high_watermark;
  if (cfg.threads < 1) cfg.threads = 1;
  log.sink = &cfg.log;
}

server_state::per_loop& server_state::of(loop_base& l) {
  for (auto& p : per)
    if (p.loop == &l) return p;
  return per.front();  // unreachable: sessions only live on our loops
}

void server_state::add_loop(loop_base& l) {
  per.emplace_back();
  per.back().loop = &l;
  session_owner& o = *per.back().owner;
  o.loop = &l;
  o.h = &cfg.handlers;
  o.bp = &cfg.backpressure;
  o.server = this;
}

std::error_code server_state::listen() {
  if (listening) return make_error_code(errc::invalid_state);
  const bool unix_socket = !cfg.unix_path.empty();
  listen_spec spec;
  spec.host = cfg.host;
  spec.port = cfg.port;
  spec.unix_path = cfg.unix_path;
  spec.reuse_port = !unix_socket && (cfg.reuse_port || per.size() > 1);
  spec.backlog = cfg.backlog;
  std::vector<int> fds;
  for (std::size_t i = 0; i < per.size(); ++i) {
    std::error_code ec;
    std::string why;
    int fd;
    if (unix_socket && i > 0) {
      fd = ::dup(fds.front());  // one socket, watched by every loop
      if (fd < 0) ec = last_error(), why = "dup: " + ec.message();
    } else {
      endpoint got;
      fd = open_listener(spec, got, ec, why);
      if (i == 0) {
        bound = got;
        spec.port = got.port;  // port 0: the other loops join the chosen one
      }
    }
    if (fd < 0) {
      for (int f : fds) ::close(f);
      log(log_level::error, why);
      return ec;
    }
    fds.push_back(fd);
  }
  for (std::size_t i = 0; i < per.size(); ++i) {
    per[i].fd = fds[i];
    per[i].listener = per[i].loop->backend_add_listener(
        fds[i],
        [this, i](loop_base& l, int fd, const sockaddr* remote, socklen_t len) {
          on_accept(i, l, fd, remote, len);
        },
        log, &per[i].owner->ctr, unix_socket && per.size() > 1);
  }
  listening = true;
  if (log.on()) log(log_level::info, "listening on " + bound.to_string());
  return {};
}

void server_state::on_accept(std::size_t i, loop_base& loop, int fd, const sockaddr* remote,
                             socklen_t len) {
  per_loop& p = per[i];
  if (remote->sa_family != AF_UNIX) set_nodelay(fd);
  counters::bump(p.owner->ctr.accepted);
  if (!p.settings) p.settings = std::make_shared<const gust::settings>(loop.pooled(cfg.settings));
  websocket& ws = loop.adopt(remote, len, *p.owner);
  ws.make_server_engine(loop.now(), shared_settings(p.settings), cfg.options);
  loop.attach(ws, fd, false);
}

void server_state::on_request(websocket& ws, const http::request& req) {
  per_loop& p = of(*ws.owner_->loop);
  if (p.shutting_down) {
    // Stop accepting: a handshake that arrives during shutdown gets 503.
    (void)ws.reject(503, "server shutting down\n");
    return;
  }
  if (cfg.handlers.on_request) cfg.handlers.on_request(ws, req);
  if (!ws.answered_ && ws.accept()) (void)ws.reject(500, "cannot accept this request\n");
}

// Workaround until the core hands plain HTTP requests to the application:
// it answers a GET without Upgrade with 400 itself, before any
// request_event. When that happens and there is an on_request hook, a
// second engine is given the same target as an upgrade request so the hook
// can answer with respond()/reject() (a health check, a page); the original
// request stays visible through websocket::request(). If the hook does not
// answer, the core's 400 goes out as it would have.
bool server_state::plain_http(websocket& ws, const handshake_failure& f) {
  if (!cfg.handlers.on_request || f.error != handshake_error::bad_request ||
      (ws.extra_ && ws.extra_->plain))
    return false;
  const http::request* req = ws.server_engine().request();
  if (!req || req->method != "GET" || req->headers.contains("Upgrade")) return false;
  loop_base& loop = *ws.owner_->loop;
  server_options opts;
  opts.server_header = cfg.options.server_header;
  server_connection responder(loop.now(), loop.pooled(cfg.settings), opts);
  std::string head = "GET " + req->target +
                     " HTTP/1.1\r\nHost: gust\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n";
  responder.receive(std::as_writable_bytes(std::span(head.data(), head.size())), loop.now());
  auto ev = responder.next_event(loop.now());
  if (!ev || !std::holds_alternative<request_event>(*ev)) return false;
  if (responder.next_event(loop.now())) return false;  // (the head is used up)
  session_extra& x = loop_base::extra(ws);
  x.plain.emplace(std::move(ws.server_engine()));
  ws.server_engine() = std::move(responder);
  ws.answered_ = false;
  if (of(loop).shutting_down)
    (void)ws.reject(503, "server shutting down\n");
  else
    cfg.handlers.on_request(ws, *req);
  if (!ws.answered_) {
    ws.server_engine() = std::move(*x.plain);
    x.plain.reset();
    return false;
  }
  return true;
}

void server_state::do_shutdown(std::size_t i, const shutdown_options& opts) {
  per_loop& p = per[i];
  loop_base& loop = *p.loop;
  p.shutting_down = true;
  if (p.listener >= 0) {
    loop.backend_remove_listener(p.listener);
    p.listener = -1;
    if (i == 0 && !cfg.unix_path.empty()) ::unlink(cfg.unix_path.c_str());
  }
  if (!opts.close_connections) return;
  loop.for_each_session([&](websocket& ws) {
    if (ws.owner_->server != this) return;
    if (ws.write_shut_)
      loop.close_now(ws);  // done already, only waiting for the peer's FIN
    else if (ws.conn() && ws.conn()->state() == gust::state::open)
      (void)ws.close(opts.code, opts.reason);
  });
  p.closing_all = true;
  close_idle_when_done(loop);
  // The close handshakes are bounded by close_timeout; past it (a peer that
  // neither answers nor closes), every remaining socket is closed.
  duration bound = cfg.settings.timeouts.close_timeout;
  if (bound.count() <= 0) bound = std::chrono::seconds(10);
  loop.call_at(
      loop.now() + bound,
      [this, &loop] {
        loop.for_each_session([&](websocket& ws) {
          if (ws.owner_->server == this) loop.close_now(ws);
        });
      },
      /*keep_alive=*/false);
}

void server_state::abandon_all() {
  for (auto& p : per) {
    if (p.listener >= 0) p.loop->backend_remove_listener(p.listener);
    p.listener = -1;
    p.loop->for_each_session([&](websocket& ws) {
      if (ws.owner_->server == this) p.loop->abandon(ws);
    });
  }
}

std::vector<websocket*> server_state::local_connections(loop_base& l) const {
  std::vector<websocket*> out;
  l.for_each_open([&](websocket& ws) {
    if (ws.owner_->server == this) out.push_back(&ws);
  });
  return out;
}

// loop_base's owner hooks --------------------------------------------------

void loop_base::server_on_request(websocket& ws, const http::request& req) {
  ws.owner_->server->on_request(ws, req);
}

bool loop_base::server_plain_http(websocket& ws, const handshake_failure& f) {
  return ws.owner_->server->plain_http(ws, f);
}

void loop_base::session_ended(websocket& ws) {
  if (ws.owner_->client) ws.owner_->client->on_session_end(ws);
  if (ws.owner_->server) ws.owner_->server->close_idle_when_done(*this);
}

void server_state::close_idle_when_done(loop_base& loop) {
  if (!of(loop).closing_all) return;
  auto idle = [](const websocket& ws) {
    return !ws.received_ && ws.conn() && ws.conn()->state() == gust::state::connecting;
  };
  bool others = false;
  loop.for_each_session([&](websocket& ws) {
    if (ws.owner_->server == this && !idle(ws)) others = true;
  });
  if (others) return;
  loop.for_each_session([&](websocket& ws) {
    if (ws.owner_->server == this) loop.close_now(ws);
  });
}

}  // namespace detail

// ===========================================================================
// server

server::server(server_config cfg) : s_(std::make_unique<detail::server_state>(std::move(cfg))) {
  for (int i = 0; i < s_->cfg.threads; ++i) {
    s_->owned.push_back(std::make_unique<event_loop>(s_->cfg.adapter));
    s_->add_loop(s_->owned.back()->impl());
  }
}

server::server(event_loop& loop, server_config cfg)
    : s_(std::make_unique<detail::server_state>(std::move(cfg))) {
  s_->cfg.threads = 1;
  s_->cfg.adapter = loop.adapter();
  s_->add_loop(loop.impl());
}

server::~server() {
  if (!s_->owned.empty()) return;  // the loops go with us, and their sessions
  // A server on the caller's loop: close what is left (loop thread only).
  s_->abandon_all();
}

std::error_code server::listen() { return s_->listen(); }
std::uint16_t server::port() const noexcept { return s_->bound.port; }
const endpoint& server::local_endpoint() const noexcept { return s_->bound; }

std::string server::url() const {
  const endpoint& e = s_->bound;
  switch (e.family) {
    case endpoint::kind::ipv4: return "ws://" + e.address + ":" + std::to_string(e.port) + "/";
    case endpoint::kind::ipv6: return "ws://[" + e.address + "]:" + std::to_string(e.port) + "/";
    case endpoint::kind::unix_socket: return "ws+unix:" + e.address;
    case endpoint::kind::none: break;
  }
  return {};
}

void server::run() {
  if (s_->owned.empty()) return;  // the caller runs the loop
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < s_->owned.size(); ++i)
    threads.emplace_back([this, i] { s_->owned[i]->run(); });
  s_->owned.front()->run();
  for (auto& t : threads) t.join();
}

void server::shutdown(shutdown_options opts) {
  s_->shutting.store(true);
  for (std::size_t i = 0; i < s_->per.size(); ++i)
    s_->per[i].loop->post([s = s_.get(), i, opts] { s->do_shutdown(i, opts); });
}

bool server::shutting_down() const noexcept { return s_->shutting.load(); }

gust::stats server::stats() const {
  gust::stats st;
  for (auto& p : s_->per) p.owner->ctr.add_to(st);
  return st;
}

broadcast_result server::broadcast(message_type type, std::span<const std::byte> data,
                                   const broadcast_options& opts) {
  return broadcast(prepare(type, data), opts);
}

prepared_message server::prepare(message_type type, std::span<const std::byte> data) const {
  const auto& z = s_->cfg.settings.deflate;
  return prepared_message(type, data, nullptr, z.enabled ? &z : nullptr);
}

broadcast_result server::broadcast(const prepared_message& message, const broadcast_options& opts) {
  broadcast_result local;
  for (auto& p : s_->per) {
    detail::loop_base* loop = p.loop;
    if (loop->in_loop_thread()) {
      auto targets = s_->local_connections(*loop);
      local = detail::loop_base::broadcast(targets, message, opts);
    } else {
      loop->post([s = s_.get(), loop, message, opts] {
        auto targets = s->local_connections(*loop);
        (void)detail::loop_base::broadcast(targets, message, opts);
      });
    }
  }
  return local;
}

std::vector<websocket*> server::connections() const {
  for (auto& p : s_->per)
    if (p.loop->in_loop_thread()) return s_->local_connections(*p.loop);
  return {};
}

const server_config& server::config() const noexcept { return s_->cfg; }

}  // namespace gust
