// The adapter behaviour suite: one set of tests over real loopback sockets,
// run for every adapter (GUST_ADAPTERS). What the core already proves in
// memory (RFC rules, limits on a virtual clock) is not repeated; these check
// what only an adapter can get wrong: readiness, partial writes, timers
// driven by real time, transport closing, many connections, shutdown.
#include <sys/resource.h>
#include <sys/un.h>

#include <algorithm>
#include <any>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

#include "allocations.hpp"
#include "harness.hpp"
#include "loop.hpp"  // detail::session_store

using namespace gust;
using namespace gust::test;

namespace {

struct client_log {
  bool open = false;
  std::vector<std::string> messages;
  std::vector<message_type> types;
  std::optional<close_event> closed;
  std::string close_reason;
  std::vector<connect_error> errors;
  int pongs = 0;
};

client_config client_for(const std::string& url, client_log& log) {
  client_config cc;
  cc.url = url;
  cc.handlers.on_open = [&log](websocket&) { log.open = true; };
  cc.handlers.on_message = [&log](websocket&, const message_event& m) {
    log.messages.emplace_back(m.text());
    log.types.push_back(m.type);
  };
  cc.handlers.on_close = [&log](websocket&, const close_event& e) {
    log.closed = e;
    log.close_reason.assign(e.reason);
  };
  cc.handlers.on_pong = [&log](websocket&, const pong_event&) { ++log.pongs; };
  cc.on_connect_error = [&log](const connect_error& e) { log.errors.push_back(e); };
  return cc;
}

}  // namespace

TEST_SUITE("adapters: RFC 6455 4 opening handshake") {
  ADAPTER_TEST("a raw upgrade gets 101 with the RFC's accept value, and echo works") {
    server_thread st(echo_config(T::kind));
    REQUIRE(!st.listen_error);
    raw_peer p(st.port());
    REQUIRE(p.connected);
    const std::string head = p.upgrade("/chat?room=1");
    CHECK(head.rfind("HTTP/1.1 101", 0) == 0);
    // RFC 6455 1.3's example key and accept value.
    CHECK(head.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos);
    REQUIRE(p.send(raw_peer::frame(0x81, "hello")));
    auto f = p.read_frame();
    REQUIRE(f);
    CHECK(f->opcode == 1);
    CHECK(f->payload == "hello");
    REQUIRE(p.send(raw_peer::frame(0x88, std::string("\x03\xe8", 2))));
    auto c = p.read_frame();
    REQUIRE(c);
    CHECK(c->opcode == 8);
    CHECK(p.eof_within(5s));  // 7.1.1: the server closes TCP first
    CHECK(st.stop());
    CHECK(st.srv().stats().close_count(1000) == 1);
  }

  ADAPTER_TEST("the client: subprotocol, headers, request path and remote address") {
    std::mutex m;
    std::string seen_path, seen_query, seen_header;
    endpoint seen_remote;
    auto cfg = echo_config(T::kind);
    cfg.options.subprotocols = {"chat.v2", "chat.v1"};
    cfg.handlers.on_request = [&](websocket& ws, const http::request& req) {
      std::lock_guard lock(m);
      seen_path = req.path();
      seen_query = req.query();
      seen_header = std::string(req.headers.get("X-Test").value_or(""));
      seen_remote = ws.remote_address();
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    event_loop loop(T::kind);
    client_log log;
    auto cc = client_for(st.url("/room/7?user=ann"), log);
    cc.subprotocols = {"chat.v1", "chat.v2"};
    cc.headers.add("X-Test", "yes");
    client c(loop, std::move(cc));
    REQUIRE(!c.connect());
    REQUIRE(run_until(loop, [&] { return log.open; }));
    CHECK(c.connection()->subprotocol() == "chat.v2");  // the server's preference
    CHECK(c.connection()->response() != nullptr);
    const endpoint server_side = c.connection()->remote_address();
    CHECK(server_side.family == endpoint::kind::ipv4);
    CHECK(server_side.address == "127.0.0.1");
    CHECK(server_side.port == st.port());
    CHECK(server_side.to_string() == "127.0.0.1:" + std::to_string(st.port()));
    {
      std::lock_guard lock(m);
      CHECK(seen_path == "/room/7");
      CHECK(seen_query == "user=ann");
      CHECK(seen_header == "yes");
      CHECK(seen_remote.family == endpoint::kind::ipv4);
      CHECK(seen_remote.address == "127.0.0.1");
      CHECK(seen_remote.port != 0);  // the client's ephemeral port
      CHECK(seen_remote.port != st.port());
    }
    c.close();
    REQUIRE(run_until(loop, [&] { return log.closed.has_value(); }));
    CHECK(log.closed->clean);
    CHECK(log.closed->code == 1000);
  }

  ADAPTER_TEST("a malformed handshake gets 400 and the server keeps serving") {
    server_thread st(echo_config(T::kind));
    REQUIRE(!st.listen_error);
    {
      raw_peer p(st.port());
      REQUIRE(p.send("GARBAGE / NONSENSE\r\n\r\n"));
      CHECK(p.read_until("\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
      CHECK(p.eof_within(5s));
    }
    {
      raw_peer p(st.port());
      REQUIRE(p.send("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n"));
      CHECK(p.read_until("\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
    }
    {
      raw_peer p(st.port());
      REQUIRE(p.send("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
      std::string head = p.read_until("\r\n\r\n");
      CHECK(head.rfind("HTTP/1.1 426", 0) == 0);
      CHECK(head.find("Sec-WebSocket-Version: 13") != std::string::npos);
    }
    event_loop loop(T::kind);
    client_log log;
    client c(loop, client_for(st.url(), log));
    REQUIRE(!c.connect());
    REQUIRE(run_until(loop, [&] { return log.open; }));
    REQUIRE(!c.connection()->send_text("still here"));
    REQUIRE(run_until(loop, [&] { return log.messages.size() == 1; }));
    CHECK(log.messages[0] == "still here");
    CHECK(st.srv().stats().handshakes_rejected >= 3);
  }

  ADAPTER_TEST("process_request answers /healthz and pages; plain requests without a hook get 400") {
    auto cfg = echo_config(T::kind);
    cfg.handlers.on_request = [](websocket& ws, const http::request& req) {
      if (req.path() == "/healthz") {
        http::response r;
        r.status = 200;
        r.headers.add("Content-Type", "text/plain");
        r.body = "ok\n";
        (void)ws.respond(r);
      } else if (req.path() == "/private") {
        (void)ws.reject(403, "no");
      }
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    {
      raw_peer p(st.port());
      REQUIRE(p.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"));
      std::string head = p.read_until("\r\n\r\n");
      CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
      CHECK(head.find("Content-Length: 3") != std::string::npos);
      CHECK(p.read_until("ok\n") == "ok\n");
      CHECK(p.eof_within(5s));
    }
    {  // the same path as a WebSocket upgrade is answered too
      raw_peer p(st.port());
      CHECK(p.upgrade("/healthz").rfind("HTTP/1.1 200", 0) == 0);
    }
    {
      raw_peer p(st.port());
      CHECK(p.upgrade("/private").rfind("HTTP/1.1 403", 0) == 0);
    }
    {
      raw_peer p(st.port());
      REQUIRE(p.send("GET /other HTTP/1.1\r\nHost: localhost\r\n\r\n"));
      CHECK(p.read_until("\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
    }
    auto s = st.srv().stats();
    CHECK(s.http_responses == 2);
    CHECK(s.handshakes_rejected == 2);
  }
}

TEST_SUITE("adapters: echo over sockets") {
  ADAPTER_TEST("echo of 0 B to 16 MiB, text and binary, whole and fragmented") {
    constexpr std::size_t big = 16u << 20;
    auto cfg = echo_config(T::kind);
    cfg.settings.limits.max_message_size = big;
    cfg.backpressure.hard_limit = 4 * big;
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    event_loop loop(T::kind);
    client_log log;
    auto cc = client_for(st.url(), log);
    cc.settings.limits.max_message_size = big;
    cc.backpressure.hard_limit = 4 * big;
    client c(loop, std::move(cc));
    REQUIRE(!c.connect());
    REQUIRE(run_until(loop, [&] { return log.open; }));
    websocket& ws = *c.connection();
    std::size_t expected = 0;
    for (std::size_t size : {std::size_t(0), std::size_t(1), std::size_t(125), std::size_t(126),
                             std::size_t(65535), std::size_t(65536), std::size_t(1) << 20, big}) {
      for (message_type type : {message_type::text, message_type::binary}) {
        CAPTURE(size);
        const std::string payload = pattern(size, type == message_type::text);
        REQUIRE(!ws.send(type, bytes(payload)));
        ++expected;
        REQUIRE(run_until(loop, [&] { return log.messages.size() == expected; }, 60s));
        CHECK(log.types.back() == type);
        CHECK(log.messages.back().size() == size);
        CHECK(log.messages.back() == payload);
      }
    }
    // Fragmented sends: the server reassembles and echoes one message.
    for (std::size_t size : {std::size_t(0), std::size_t(1000), std::size_t(1) << 20, big}) {
      CAPTURE(size);
      const std::string payload = pattern(size, true);
      const std::size_t piece = 64 * 1024 + 3;
      std::size_t pos = 0;
      do {
        const std::size_t n = std::min(piece, size - pos);
        REQUIRE(!ws.send_fragment(message_type::text, bytes(std::string_view(payload).substr(pos, n)),
                                  pos + n == size));
        pos += n;
        // Let the socket drain so the hard limit is never approached.
        if (ws.buffered_amount() > (4u << 20)) run_until(loop, [&] { return ws.buffered_amount() < (1u << 20); }, 30s);
      } while (pos < size);
      ++expected;
      REQUIRE(run_until(loop, [&] { return log.messages.size() == expected; }, 60s));
      CHECK(log.messages.back() == payload);
    }
    auto s = st.srv().stats();
    CHECK(s.messages_in == expected);
    CHECK(s.messages_out == expected);
  }

  ADAPTER_TEST("steady echo of 64 KiB and 1 MiB messages allocates nothing per message") {
    // The loop's output_pool lends every connection its buffers; once the
    // pool is warm, nothing on the way (reads, frames split between reads,
    // the echo's output, the loop's own waits and posted turns) allocates.
    // Asio's allocated about one operation per 64 KiB echo before its
    // waits and posts took their memory from the loop (op_memory.hpp).
    auto cfg = echo_config(T::kind);
    cfg.settings.limits.max_message_size = 2 << 20;
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    struct peer_state {
      std::unique_ptr<raw_peer> p;
      std::string frame, echo;
    };
    std::vector<peer_state> peers(4);
    std::vector<char> in(4 << 20);
    for (std::size_t i = 0; i < peers.size(); ++i) {
      peers[i].p = std::make_unique<raw_peer>(st.port());
      REQUIRE(peers[i].p->connected);
      REQUIRE(peers[i].p->upgrade().rfind("HTTP/1.1 101", 0) == 0);
      // Two of them echo 64 KiB, two 1 MiB.
      const std::size_t n = i < 2 ? 65000 : (1 << 20) - 3;
      std::string payload(n, '\0');
      for (std::size_t k = 0; k < n; ++k) payload[k] = static_cast<char>('a' + (k * 7 + i) % 26);
      peers[i].frame = raw_peer::frame(0x82, payload);
      // The echo, as the server frames it: 64 KiB frames at most
      // (max_send_frame_size), unmasked.
      for (std::size_t off = 0; off < n; off += 65536) {
        const std::size_t len = std::min<std::size_t>(65536, n - off);
        std::string& e = peers[i].echo;
        e += static_cast<char>((off + len == n ? 0x80 : 0x00) | (off == 0 ? 0x02 : 0x00));
        if (len < 65536) {
          e += '\x7e';
          e += static_cast<char>(len >> 8);
          e += static_cast<char>(len & 0xff);
        } else {
          e += '\x7f';
          for (int b = 7; b >= 0; --b) e += static_cast<char>((std::uint64_t(len) >> (8 * b)) & 0xff);
        }
        e.append(payload, off, len);
      }
    }
    // One round: every peer sends its message, then reads its echo whole.
    // No std::string on the way: the counts cover this thread too.
    auto round = [&]() {
      for (auto& ps : peers)
        if (!ps.p->send(ps.frame)) return false;
      for (auto& ps : peers) {
        std::size_t got = 0;
        while (got < ps.echo.size()) {
          pollfd pfd{ps.p->fd(), POLLIN, 0};
          if (::poll(&pfd, 1, 5000) != 1) return false;
          const ssize_t n = ::recv(ps.p->fd(), in.data() + got, std::min(in.size() - got, ps.echo.size() - got), 0);
          if (n <= 0) return false;
          got += static_cast<std::size_t>(n);
        }
        if (std::memcmp(in.data(), ps.echo.data(), ps.echo.size()) != 0) return false;
      }
      return true;
    };
    for (int i = 0; i < 20; ++i) REQUIRE(round());  // warm: the pool's blocks
    std::size_t allocations = 0, largest = 0;
    bool echoed = true;
    {
      allocation_scope track;
      for (int i = 0; i < 20 && echoed; ++i) echoed = round();
      allocations = track.count();
      largest = track.largest();
    }
    REQUIRE(echoed);
    INFO(allocations << " allocations in 80 echoes, largest " << largest);
    const char* threads = std::getenv("GUST_ASIO_THREADS");
    if (T::kind == gust::adapter::asio && threads && std::atoi(threads) > 1) {
      // Known and left (see the issue 6 note): with a pool of threads every
      // completion goes through a strand behind Asio's type-erased
      // executor, which allocates the function object it wraps (about 3.6
      // per echo here). The loop owning a one-thread io_context, the
      // default, posts to it directly and does not.
      MESSAGE("asio with GUST_ASIO_THREADS: " << allocations << " allocations in 80 echoes (not checked)");
      CHECK(st.stop());
      return;
    }
    // Not exactly 0: the sizes of the buffers a message passes through
    // depend on where the reads cut it, so now and then more connections
    // than ever before want a block of one size at once and the pool makes
    // one more (seen: up to 5 in 80 echoes, of 512 KiB or 1 MiB). One
    // allocation per message or more is what this is about.
    CHECK(allocations <= 8);
    CHECK(st.stop());
  }

  ADAPTER_TEST("messages followed by a close in the same write are all answered before the close") {
    // The core queues its answer to a close after the data already queued
    // (RFC 6455 5.5.1, Autobahn 7.1.1 over a socket), and so does its close
    // for a frame that fails the connection; only the application's fail()
    // drops unsent data.
    server_thread st(echo_config(T::kind));
    REQUIRE(!st.listen_error);
    // Variant 3 ends in invalid UTF-8 instead: a failure only the payload
    // shows (close_may_follow() cannot see it), so the answers stay queued
    // in the core until its 1007 goes out behind them.
    for (int variant = 0; variant < 4; ++variant) {
      CAPTURE(variant);
      raw_peer p(st.port());
      REQUIRE(p.upgrade().rfind("HTTP/1.1 101", 0) == 0);
      std::string burst;
      for (int i = 0; i < 20; ++i) burst += raw_peer::frame(0x81, "m" + std::to_string(i));
      if (variant == 1) burst += raw_peer::frame(0x01, "frag") + raw_peer::frame(0x80, "mented");
      if (variant == 2) burst += raw_peer::frame(0x89, "ping");
      if (variant == 3) burst += raw_peer::frame(0x81, "bad \xff");
      else burst += raw_peer::frame(0x88, std::string("\x03\xe8", 2));
      REQUIRE(p.send(burst));
      int texts = 0;
      bool fragmented = false, closed = false;
      std::string close_code;
      while (auto f = p.read_frame()) {
        if (f->opcode == 1) {
          if (f->payload == "m" + std::to_string(texts)) ++texts;
          if (f->payload == "fragmented") fragmented = true;
        }
        if (f->opcode == 8) {
          closed = true;
          close_code = f->payload.substr(0, 2);
          break;
        }
      }
      CHECK(texts == 20);
      CHECK(fragmented == (variant == 1));
      CHECK(closed);
      CHECK(close_code == (variant == 3 ? std::string("\x03\xef", 2) : std::string("\x03\xe8", 2)));
    }
  }

  ADAPTER_TEST("a message above max-size closes with 1009") {
    auto cfg = echo_config(T::kind);
    cfg.settings.limits.max_message_size = 1000;
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    event_loop loop(T::kind);
    client_log log;
    client c(loop, client_for(st.url(), log));
    REQUIRE(!c.connect());
    REQUIRE(run_until(loop, [&] { return log.open; }));
    REQUIRE(!c.connection()->send_text(pattern(1001, true)));
    REQUIRE(run_until(loop, [&] { return log.closed.has_value(); }));
    CHECK(log.closed->code == 1009);
  }
}

TEST_SUITE("adapters: RFC 6455 5.5.2 ping, keepalive, timeouts") {
  ADAPTER_TEST("keepalive pings with short intervals are answered; latency is measured") {
    std::atomic<int> server_pongs{0};
    auto cfg = echo_config(T::kind);
    cfg.settings.timeouts.ping_interval = 20ms;
    cfg.settings.timeouts.ping_timeout = 2s;
    cfg.handlers.on_pong = [&](websocket& ws, const pong_event& p) {
      if (p.rtt && ws.latency()) ++server_pongs;
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    event_loop loop(T::kind);
    client_log log;
    auto cc = client_for(st.url(), log);
    cc.settings.timeouts.ping_interval = 30ms;
    client c(loop, std::move(cc));
    REQUIRE(!c.connect());
    REQUIRE(run_until(loop, [&] { return log.open; }));
    REQUIRE(run_until(loop, [&] { return server_pongs >= 5 && log.pongs >= 3; }, 10s));
    CHECK(c.connection()->latency().has_value());
    REQUIRE(!c.connection()->ping(bytes("app")));
    const int before = log.pongs;
    REQUIRE(run_until(loop, [&] { return log.pongs > before; }));
    CHECK(c.connection()->state() == state::open);
  }

  ADAPTER_TEST("a deadline that moves later still fires: the keepalive after the open timeout") {
    // The open timeout's heap entry stands in for the later keepalive
    // deadline (the loop queues one entry per connection, not one per
    // move): the ping must still come, at the keepalive's time.
    auto cfg = echo_config(T::kind);
    cfg.settings.timeouts.open_timeout = 100ms;
    cfg.settings.timeouts.ping_interval = 300ms;
    cfg.settings.timeouts.ping_timeout = 5s;
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    raw_peer p(st.port());
    const auto opened = std::chrono::steady_clock::now();
    REQUIRE(p.upgrade().rfind("HTTP/1.1 101", 0) == 0);
    auto ping = p.read_frame(3s);
    REQUIRE(ping);
    CHECK(ping->opcode == 9);
    const auto waited = std::chrono::steady_clock::now() - opened;
    CHECK(waited >= 250ms);
    CHECK(waited < 3s);
  }

  ADAPTER_TEST("a peer that never answers pings is closed with 1011 after ping_timeout") {
    std::mutex m;
    std::optional<close_event> seen;
    auto cfg = echo_config(T::kind);
    cfg.settings.timeouts.ping_interval = 20ms;
    cfg.settings.timeouts.ping_timeout = 100ms;
    cfg.settings.timeouts.close_timeout = 200ms;
    cfg.handlers.on_close = [&](websocket&, const close_event& e) {
      std::lock_guard lock(m);
      seen = e;
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    raw_peer p(st.port());
    REQUIRE(p.upgrade().rfind("HTTP/1.1 101", 0) == 0);
    auto ping = p.read_frame(2s);
    REQUIRE(ping);
    CHECK(ping->opcode == 9);
    // No pong: the close (1011) comes, then the socket is closed.
    std::optional<raw_peer::frame_in> close;
    while (auto f = p.read_frame(3s)) {
      if (f->opcode == 8) {
        close = f;
        break;
      }
    }
    REQUIRE(close);
    CHECK(close->payload.substr(0, 2) == std::string("\x03\xf3", 2));  // 1011
    CHECK(p.eof_within(5s));
    REQUIRE(wait_until([&] { std::lock_guard lock(m); return seen.has_value(); }));
    std::lock_guard lock(m);
    CHECK(seen->cause == close_cause::keepalive_timeout);
  }

  ADAPTER_TEST("a peer that never answers the close is cut off after close_timeout") {
    std::mutex m;
    std::optional<close_event> seen;
    auto cfg = echo_config(T::kind);
    cfg.settings.timeouts.close_timeout = 150ms;
    cfg.handlers.on_open = [](websocket& ws) { (void)ws.close(1000, "bye"); };
    cfg.handlers.on_close = [&](websocket&, const close_event& e) {
      std::lock_guard lock(m);
      seen = e;
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    raw_peer p(st.port());
    REQUIRE(p.upgrade().rfind("HTTP/1.1 101", 0) == 0);
    auto close = p.read_frame();
    REQUIRE(close);
    CHECK(close->opcode == 8);
    const auto t0 = clock::now();
    CHECK(p.eof_within(5s));  // without answering, and without closing our side
    CHECK(clock::now() - t0 < 3s);
    REQUIRE(wait_until([&] { std::lock_guard lock(m); return seen.has_value(); }));
    std::lock_guard lock(m);
    CHECK(seen->cause == close_cause::close_timeout);
    CHECK(!seen->clean);
  }

  ADAPTER_TEST("a client that opens TCP and says nothing is dropped after open_timeout") {
    auto cfg = echo_config(T::kind);
    cfg.settings.timeouts.open_timeout = 100ms;
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    raw_peer p(st.port());
    CHECK(p.eof_within(5s));
  }
}

TEST_SUITE("adapters: backpressure") {
  ADAPTER_TEST("a peer that stops reading while the server sends 64 MiB: memory stays bounded") {
    constexpr std::size_t total = 64u << 20, chunk = 256u << 10;
    struct state_t {
      std::mutex m;
      std::size_t sent = 0, max_buffered = 0, max_memory = 0;
      int drains = 0;
    } s;
    auto pump = [&](websocket& ws) {
      // Send while writable: the application's side of backpressure.
      static const std::string payload = pattern(chunk, false);
      std::lock_guard lock(s.m);
      while (s.sent < total && ws.writable()) {
        if (ws.send_binary(bytes(payload))) break;
        s.sent += chunk;
        s.max_buffered = std::max(s.max_buffered, ws.buffered_amount());
        s.max_memory = std::max(s.max_memory, ws.memory().total());
      }
    };
    auto cfg = echo_config(T::kind);
    cfg.backpressure.high_watermark = 1u << 20;
    cfg.backpressure.low_watermark = 256u << 10;
    cfg.handlers.on_open = pump;
    cfg.handlers.on_drain = [&](websocket& ws) {
      {
        std::lock_guard lock(s.m);
        ++s.drains;
      }
      pump(ws);
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    raw_peer p(st.port());
    p.shrink_receive_buffer();
    REQUIRE(p.upgrade().rfind("HTTP/1.1 101", 0) == 0);
    // Not reading: the server fills the socket, then stops at its watermark.
    std::this_thread::sleep_for(300ms);
    {
      std::lock_guard lock(s.m);
      CHECK(s.sent < total);
      CHECK(s.max_buffered <= (1u << 20) + chunk);
      CHECK(s.max_memory <= 4u << 20);
    }
    CHECK(st.srv().stats().bytes_buffered <= (1u << 20) + chunk);
    // Now read everything: every byte arrives, in order.
    std::size_t received = 0;
    bool ok = true;
    const std::string expect = pattern(chunk, false);
    while (received < total) {
      auto f = p.read_frame(20s);
      if (!f) break;
      if (f->opcode == 0 || f->opcode == 2) {
        // Frames are split at max_send_frame_size; check content by offset.
        const std::size_t off = received % chunk;
        if (f->payload != expect.substr(off, f->payload.size())) ok = false;
        received += f->payload.size();
      }
    }
    CHECK(ok);
    CHECK(received == total);
    std::lock_guard lock(s.m);
    CHECK(s.drains > 0);
    CHECK(s.max_buffered <= (1u << 20) + chunk);
  }

  ADAPTER_TEST("the hard limit closes a connection that does not read") {
    std::atomic<bool> refused{false};
    auto cfg = echo_config(T::kind);
    cfg.backpressure.hard_limit = 2u << 20;
    cfg.handlers.on_open = [&](websocket& ws) {
      // A careless application: sends without looking at backpressure.
      const std::string payload = pattern(256 * 1024, false);
      for (int i = 0; i < 64; ++i)
        if (ws.send_binary(bytes(payload))) {
          refused = true;
          break;
        }
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    raw_peer p(st.port());
    p.shrink_receive_buffer();
    REQUIRE(p.upgrade().rfind("HTTP/1.1 101", 0) == 0);
    REQUIRE(wait_until([&] { return refused.load(); }));
    CHECK(wait_until([&] { return st.srv().stats().hard_limit_closes == 1; }));
    // The peer still does not read; the linger bound closes the socket.
    CHECK(wait_until([&] { return st.srv().stats().connections_open == 0; }, 15s));
  }

  ADAPTER_TEST("pause and resume reading") {
    std::atomic<int> got{0};
    std::atomic<websocket*> server_ws{nullptr};
    gust::event_loop* server_loop = nullptr;
    auto cfg = echo_config(T::kind);
    cfg.handlers.on_open = [&](websocket& ws) {
      server_loop = &ws.loop();
      ws.pause_reading();
      server_ws = &ws;
    };
    cfg.handlers.on_message = [&](websocket& ws, const message_event& m) {
      ++got;
      (void)ws.send(m.type, m.data);
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    event_loop loop(T::kind);
    client_log log;
    client c(loop, client_for(st.url(), log));
    REQUIRE(!c.connect());
    REQUIRE(run_until(loop, [&] { return log.open; }));
    for (int i = 0; i < 10; ++i) REQUIRE(!c.connection()->send_text("m" + std::to_string(i)));
    run_until(loop, [] { return false; }, 200ms);
    CHECK(got == 0);  // paused: nothing delivered
    REQUIRE(server_ws.load());
    server_loop->post([&] { server_ws.load()->resume_reading(); });
    REQUIRE(run_until(loop, [&] { return log.messages.size() == 10; }));
    CHECK(log.messages.front() == "m0");
    CHECK(log.messages.back() == "m9");
  }
}

TEST_SUITE("adapters: registry and broadcast") {
  ADAPTER_TEST("broadcast frames once, shares the payload, and reports per connection") {
    std::mutex m;
    std::vector<broadcast_result> results;
    server* srv = nullptr;
    auto cfg = echo_config(T::kind);
    cfg.handlers.on_message = [&](websocket&, const message_event& msg) {
      auto r = srv->broadcast(msg.type, msg.data);
      std::lock_guard lock(m);
      results.push_back(std::move(r));
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    srv = &st.srv();
    event_loop loop(T::kind);
    constexpr int n = 5;
    std::vector<client_log> logs(n);
    std::vector<std::unique_ptr<client>> clients;
    for (int i = 0; i < n; ++i) {
      clients.push_back(std::make_unique<client>(loop, client_for(st.url(), logs[i])));
      REQUIRE(!clients.back()->connect());
    }
    REQUIRE(run_until(loop, [&] {
      for (auto& l : logs) if (!l.open) return false;
      return true;
    }));
    REQUIRE(!clients[0]->connection()->send_text("to everyone"));
    REQUIRE(run_until(loop, [&] {
      for (auto& l : logs) if (l.messages.size() != 1) return false;
      return true;
    }));
    for (auto& l : logs) CHECK(l.messages[0] == "to everyone");
    std::lock_guard lock(m);
    REQUIRE(results.size() == 1);
    CHECK(results[0].sent == n);
    CHECK(results[0].status.size() == n);
  }

  ADAPTER_TEST("broadcast with permessage-deflate: compressed once, every kind of client reads it") {
    // Clients that ask for no server context takeover share one compressed
    // form; one that lets the server keep its context gets its own; one
    // without compression gets the plain payload.
    std::mutex m;
    std::vector<broadcast_result> results;
    server* srv = nullptr;
    auto cfg = echo_config(T::kind);
    cfg.settings.deflate.enabled = true;
    cfg.handlers.on_message = [&](websocket&, const message_event& msg) {
      auto prepared = srv->prepare(msg.type, msg.data);
      auto r = srv->broadcast(prepared);
      std::lock_guard lock(m);
      CHECK(!prepared.compressed().empty());
      CHECK(prepared.compressed().size() < msg.data.size() / 4);
      results.push_back(std::move(r));
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    srv = &st.srv();
    event_loop loop(T::kind);
    constexpr int n = 4;
    std::vector<client_log> logs(n);
    std::vector<std::unique_ptr<client>> clients;
    for (int i = 0; i < n; ++i) {
      auto cc = client_for(st.url(), logs[i]);
      cc.settings.limits.max_message_size = 1 << 20;
      cc.settings.deflate.enabled = i != 3;
      cc.settings.deflate.server_no_context_takeover = i < 2;
      clients.push_back(std::make_unique<client>(loop, std::move(cc)));
      REQUIRE(!clients.back()->connect());
    }
    REQUIRE(run_until(loop, [&] {
      for (auto& l : logs) if (!l.open) return false;
      return true;
    }));
    for (int i = 0; i < n; ++i) {
      const auto ext = clients[i]->connection()->extensions();
      CHECK((ext.find("permessage-deflate") != std::string_view::npos) == (i != 3));
      CHECK((ext.find("server_no_context_takeover") != std::string_view::npos) == (i < 2));
    }
    std::string text;
    for (int i = 0; text.size() < 20000; ++i) text += "update " + std::to_string(i % 50) + " for everyone; ";
    REQUIRE(!clients[3]->connection()->send_text(text));
    REQUIRE(!clients[3]->connection()->send_text(text));  // twice: contexts kept
    REQUIRE(run_until(loop, [&] {
      for (auto& l : logs) if (l.messages.size() != 2) return false;
      return true;
    }));
    for (auto& l : logs) {
      CHECK(l.messages[0] == text);
      CHECK(l.messages[1] == text);
    }
    std::lock_guard lock(m);
    REQUIRE(results.size() == 2);
    CHECK(results[0].sent == n);
    CHECK(results[1].sent == n);
  }

  ADAPTER_TEST("broadcast policies for a connection over its limit: skip, drop_oldest, close") {
    // Everything runs on one loop here: the server on the caller's loop.
    event_loop loop(T::kind);
    auto cfg = echo_config(T::kind);
    cfg.backpressure.high_watermark = 64 * 1024;
    cfg.backpressure.low_watermark = 16 * 1024;
    cfg.backpressure.hard_limit = 256u << 20;
    server srv(loop, std::move(cfg));
    REQUIRE(!srv.listen());
    raw_peer slow(srv.port());
    slow.shrink_receive_buffer(4096);
    REQUIRE(slow.send("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
    client_log fast_log;
    client fast(loop, client_for(srv.url(), fast_log));
    REQUIRE(!fast.connect());
    REQUIRE(run_until(loop, [&] { return fast_log.open && srv.connections().size() == 2; }));
    auto conns = srv.connections();
    // Fill the slow peer's queue past its high watermark.
    const std::string big = pattern(512 * 1024, false);
    websocket* slow_ws = nullptr;
    for (auto* ws : conns) {
      // The raw peer sends no User-Agent; the gust client does.
      if (ws->request() && !ws->request()->headers.contains("User-Agent")) slow_ws = ws;
    }
    REQUIRE(slow_ws);
    for (int i = 0; i < 100 && slow_ws->writable(); ++i) {
      REQUIRE(!slow_ws->send_binary(bytes(big)));
      run_until(loop, [] { return false; }, 10ms);
    }
    REQUIRE(!slow_ws->writable());

    broadcast_options skip;
    skip.policy = over_limit_policy::skip;
    auto r = srv.broadcast(message_type::text, bytes("one"), skip);
    CHECK(r.sent == 1);
    CHECK(r.skipped == 1);

    broadcast_options hold;
    hold.policy = over_limit_policy::drop_oldest;
    hold.max_held = 2;
    r = srv.broadcast(message_type::text, bytes("two"), hold);
    CHECK(r.held == 1);
    r = srv.broadcast(message_type::text, bytes("three"), hold);
    CHECK(r.held == 1);
    r = srv.broadcast(message_type::text, bytes("four"), hold);
    CHECK(r.dropped_oldest == 1);
    CHECK(r.sent == 1);

    broadcast_options close;
    close.policy = over_limit_policy::close;
    close.close_code = 1013;
    r = srv.broadcast(message_type::text, bytes("five"), close);
    CHECK(r.sent == 1);
    CHECK(r.closed == 1);
    REQUIRE(run_until(loop, [&] { return fast_log.messages.size() == 5; }));
    CHECK(fast_log.messages == std::vector<std::string>{"one", "two", "three", "four", "five"});
    fast.close();
    srv.shutdown();
    run_until(loop, [&] { return fast_log.closed.has_value(); });
  }
}

TEST_SUITE("adapters: many connections and shutdown") {
  ADAPTER_TEST("1,000 concurrent connections each echo a message") {
    raise_fd_limit();
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2200) {
      MESSAGE("descriptor limit too low for 1,000 connections: " << rl.rlim_cur);
      return;
    }
    server_thread st(echo_config(T::kind));
    REQUIRE(!st.listen_error);
    event_loop loop(T::kind);
    constexpr int n = 1000;
    int open = 0, echoed = 0, closed = 0;
    std::uint64_t peak = 0;
    std::vector<std::unique_ptr<client>> clients;
    for (int i = 0; i < n; ++i) {
      client_config cc;
      cc.url = st.url();
      cc.handlers.on_open = [&, i](websocket& ws) {
        ++open;
        // Sampled when a connection is surely open at the server, not only
        // between turns of this loop (which may run them all in one turn).
        peak = std::max(peak, st.srv().stats().connections_open);
        (void)ws.send_text("client " + std::to_string(i));
      };
      cc.handlers.on_message = [&, i](websocket& ws, const message_event& m) {
        if (m.text() == "client " + std::to_string(i)) ++echoed;
        (void)ws.close();
      };
      cc.handlers.on_close = [&](websocket&, const close_event& e) {
        if (e.clean) ++closed;
      };
      clients.push_back(std::make_unique<client>(loop, std::move(cc)));
      REQUIRE(!clients.back()->connect());
    }
    REQUIRE(run_until(loop, [&] {
      peak = std::max(peak, st.srv().stats().connections_open);
      return closed == n;
    }, 60s));
    CHECK(open == n);
    CHECK(echoed == n);
    CHECK(peak > 1);
    auto s = st.srv().stats();
    CHECK(s.handshakes_accepted == n);
    CHECK(s.close_count(1000) == n);
    CHECK(wait_until([&] { return st.srv().stats().connections_open == 0; }));
  }

  ADAPTER_TEST("graceful shutdown with 100 clients: 1001 for each, then run() returns") {
    auto cfg = echo_config(T::kind);
    cfg.settings.timeouts.close_timeout = 2s;
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    event_loop loop(T::kind);
    constexpr int n = 100;
    std::vector<client_log> logs(n);
    std::vector<std::unique_ptr<client>> clients;
    for (int i = 0; i < n; ++i) {
      clients.push_back(std::make_unique<client>(loop, client_for(st.url(), logs[i])));
      REQUIRE(!clients.back()->connect());
    }
    REQUIRE(run_until(loop, [&] {
      for (auto& l : logs) if (!l.open) return false;
      return true;
    }));
    const auto t0 = clock::now();
    st.srv().shutdown();
    REQUIRE(run_until(loop, [&] {
      for (auto& l : logs) if (!l.closed) return false;
      return true;
    }));
    for (auto& l : logs) {
      CHECK(l.closed->code == 1001);
      CHECK(l.closed->clean);
      CHECK(l.closed->by_peer);
    }
    CHECK(st.join(10s));
    CHECK(clock::now() - t0 < 5s);
    // The listener is gone: new connections are refused.
    raw_peer late(st.port());
    CHECK(!late.connected);
    CHECK(st.srv().stats().close_count(1001) == n);
  }

  ADAPTER_TEST("during shutdown an opening handshake gets 503; a code can be given") {
    auto cfg = echo_config(T::kind);
    cfg.settings.timeouts.close_timeout = 3s;  // bounds the wait for the TCP-only peer
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    raw_peer open_one(st.port());
    REQUIRE(open_one.upgrade().rfind("HTTP/1.1 101", 0) == 0);
    raw_peer pending(st.port());  // TCP only: the request comes during shutdown
    REQUIRE(pending.connected);
    std::this_thread::sleep_for(50ms);
    shutdown_options opts;
    opts.code = 1012;
    opts.reason = "restart";
    st.srv().shutdown(opts);
    auto close = open_one.read_frame();
    REQUIRE(close);
    CHECK(close->opcode == 8);
    CHECK(close->payload.substr(0, 2) == std::string("\x03\xf4", 2));  // 1012
    CHECK(close->payload.substr(2) == "restart");
    // While a connection is still closing, a request arriving on a socket
    // accepted before the shutdown is answered 503.
    CHECK(pending.upgrade().rfind("HTTP/1.1 503", 0) == 0);
    REQUIRE(open_one.send(raw_peer::frame(0x88, close->payload.substr(0, 2))));
    CHECK(open_one.eof_within(5s));
    CHECK(st.join(10s));
  }

  ADAPTER_TEST("shutdown is not held up by idle sockets that never sent a byte") {
    // Browsers open spare connections ahead of need (preconnects); once
    // every real connection is closed, those are closed too, well before
    // the close timeout.
    auto cfg = echo_config(T::kind);
    cfg.settings.timeouts.close_timeout = 10s;
    cfg.settings.timeouts.open_timeout = 30s;
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    raw_peer open_one(st.port());
    REQUIRE(open_one.upgrade().rfind("HTTP/1.1 101", 0) == 0);
    std::vector<std::unique_ptr<raw_peer>> idle;
    for (int i = 0; i < 3; ++i) {
      idle.push_back(std::make_unique<raw_peer>(st.port()));
      REQUIRE(idle.back()->connected);
    }
    std::this_thread::sleep_for(50ms);
    const auto t0 = clock::now();
    st.srv().shutdown();
    auto close = open_one.read_frame();
    REQUIRE(close);
    CHECK(close->opcode == 8);
    REQUIRE(open_one.send(raw_peer::frame(0x88, close->payload.substr(0, 2))));
    CHECK(st.join(5s));
    CHECK(clock::now() - t0 < 3s);
    for (auto& p : idle) CHECK(p->eof_within(2s));
  }

  ADAPTER_TEST("close(close_connections=false): stop accepting, open connections go on") {
    server_thread st(echo_config(T::kind));
    REQUIRE(!st.listen_error);
    event_loop loop(T::kind);
    constexpr int n = 3;
    std::vector<client_log> logs(n);
    std::vector<std::unique_ptr<client>> clients;
    for (int i = 0; i < n; ++i) {
      clients.push_back(std::make_unique<client>(loop, client_for(st.url(), logs[i])));
      REQUIRE(!clients.back()->connect());
    }
    REQUIRE(run_until(loop, [&] { return logs[0].open && logs[1].open && logs[2].open; }));
    shutdown_options opts;
    opts.close_connections = false;
    st.srv().shutdown(opts);
    REQUIRE(wait_until([&] { raw_peer p(st.port()); return !p.connected; }, 5s));
    for (int i = 0; i < n; ++i) REQUIRE(!clients[i]->connection()->send_text("after"));
    REQUIRE(run_until(loop, [&] {
      for (auto& l : logs) if (l.messages.size() != 1) return false;
      return true;
    }));
    CHECK(!st.done());  // still serving its connections
    for (auto& c : clients) c->close();
    REQUIRE(run_until(loop, [&] {
      for (auto& l : logs) if (!l.closed) return false;
      return true;
    }));
    CHECK(st.join(10s));
  }
}

TEST_SUITE("adapters: addresses and clients") {
  TEST_CASE("the per-connection record stays small") {
    // An idle server holds one websocket per connection (plus the engine's
    // state and the adapter's transport): the target is a few hundred bytes
    // per idle connection in all. Measured: 104 B on x86-64 with libstdc++,
    // with the engine handle inside it (it was 256 before the rarely used
    // state moved out to a lazily made struct, and the engine handle was a
    // separate 32-byte allocation behind a pointer).
    CHECK(sizeof(websocket) <= 104);
    CHECK(sizeof(detail::engine_storage) == sizeof(void*));
    CHECK(sizeof(detail::peer_address) <= 20);
  }

  TEST_CASE("records live in pages: consecutive storage, lowest free slot first, empty pages freed") {
    detail::session_store store;
    constexpr std::uint32_t n = 2 * detail::session_store::page_slots + 3;
    std::vector<std::byte*> at(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      std::uint32_t slot = UINT32_MAX;
      at[i] = static_cast<std::byte*>(store.acquire(slot));
      CHECK(slot == i);
      CHECK(store.get(slot) != nullptr);
    }
    // No allocation (nor malloc header) per record: one page's records are
    // side by side.
    for (std::uint32_t i = 1; i < detail::session_store::page_slots; ++i)
      CHECK(at[i] - at[i - 1] == static_cast<std::ptrdiff_t>(sizeof(websocket)));
    store.release(5);
    store.release(70);
    CHECK(store.get(5) == nullptr);
    std::uint32_t slot = 0;
    CHECK(store.acquire(slot) == at[5]);
    CHECK(slot == 5);
    CHECK(store.acquire(slot) == at[70]);
    CHECK(slot == 70);
    std::size_t live = 0;
    store.for_each([&](websocket&) { ++live; });
    CHECK(live == n);
    for (std::uint32_t i = 0; i < n; ++i) store.release(i);
    CHECK(store.get(0) == nullptr);
    // Storage comes back (from the spare page, or a new one) for slot 0.
    CHECK(store.acquire(slot) != nullptr);
    CHECK(slot == 0);
    store.release(0);
  }

  ADAPTER_TEST("IPv6 loopback") {
    auto cfg = echo_config(T::kind);
    cfg.host = "::1";
    server_thread st(std::move(cfg));
    if (st.listen_error) {
      MESSAGE("no IPv6 loopback here: " << st.listen_error.message());
      return;
    }
    CHECK(st.srv().url().rfind("ws://[::1]:", 0) == 0);
    event_loop loop(T::kind);
    client_log log;
    client c(loop, client_for(st.url(), log));
    REQUIRE(!c.connect());
    REQUIRE(run_until(loop, [&] { return log.open; }));
    const endpoint server_side = c.connection()->remote_address();
    CHECK(server_side.family == endpoint::kind::ipv6);
    CHECK(server_side.address == "::1");
    CHECK(server_side.port == st.port());
    CHECK(server_side.to_string() == "[::1]:" + std::to_string(st.port()));
    REQUIRE(!c.connection()->send_text("v6"));
    REQUIRE(run_until(loop, [&] { return log.messages.size() == 1; }));
    CHECK(log.messages[0] == "v6");
  }

  ADAPTER_TEST("dual-stack listener, host name resolution, Unix socket") {
    auto cfg = echo_config(T::kind);
    cfg.host = "::";
    server_thread st(std::move(cfg));
    if (!st.listen_error) {
      event_loop loop(T::kind);
      client_log log;
      // "localhost" goes through the resolver thread.
      client c(loop, client_for("ws://localhost:" + std::to_string(st.port()) + "/", log));
      REQUIRE(!c.connect());
      REQUIRE(run_until(loop, [&] { return log.open; }));
      REQUIRE(!c.connection()->send_text("dual"));
      REQUIRE(run_until(loop, [&] { return log.messages.size() == 1; }));
    }
    auto ucfg = echo_config(T::kind);
    const std::string path = "/tmp/gust-test-" + std::to_string(::getpid()) + ".sock";
    ucfg.unix_path = path;
    ucfg.threads = 2;  // one socket, watched by both loops
    std::mutex m;
    std::vector<endpoint> remotes;
    ucfg.handlers.on_request = [&](websocket& ws, const http::request&) {
      std::lock_guard lock(m);
      remotes.push_back(ws.remote_address());
    };
    server_thread us(std::move(ucfg));
    REQUIRE(!us.listen_error);
    CHECK(us.srv().url() == "ws+unix:" + path);
    // The last client binds its socket to a path (a long one), which the
    // server then reports as the peer's address; the others are unnamed.
    std::string client_path = "/tmp/gust-test-" + std::to_string(::getpid()) + "-client-";
    client_path.append(sizeof(sockaddr_un::sun_path) - 1 - client_path.size(), 'x');
    for (int i = 0; i < 4; ++i) {
      int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (i == 3) {
        sockaddr_un b{};
        b.sun_family = AF_UNIX;
        std::memcpy(b.sun_path, client_path.data(), client_path.size());
        ::unlink(client_path.c_str());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b) == 0);
      }
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
      REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
      const std::string req =
          "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
          raw_peer::frame(0x81, "over unix");
      REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size()));
      std::string got;
      char buf[512];
      const auto end = clock::now() + 5s;
      while (got.find("over unix") == std::string::npos && clock::now() < end) {
        pollfd pf{fd, POLLIN, 0};
        if (::poll(&pf, 1, 100) <= 0) continue;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, size_t(n));
      }
      CHECK(got.rfind("HTTP/1.1 101", 0) == 0);
      CHECK(got.find("over unix") != std::string::npos);
      ::close(fd);
    }
    ::unlink(client_path.c_str());
    CHECK(us.stop());
    {
      std::lock_guard lock(m);
      REQUIRE(remotes.size() == 4);
      for (int i = 0; i < 3; ++i) {
        CHECK(remotes[i].family == endpoint::kind::unix_socket);
        CHECK(remotes[i].address.empty());
        CHECK(remotes[i].port == 0);
      }
      CHECK(remotes[3].family == endpoint::kind::unix_socket);
      CHECK(remotes[3].address == client_path);
      CHECK(remotes[3].to_string() == "unix:" + client_path);
    }
    CHECK(::access(path.c_str(), F_OK) != 0);  // removed at shutdown
  }

  ADAPTER_TEST("threads: one loop per thread on one port (SO_REUSEPORT)") {
    auto cfg = echo_config(T::kind);
    cfg.threads = 2;
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    event_loop loop(T::kind);
    constexpr int n = 20;
    std::vector<client_log> logs(n);
    std::vector<std::unique_ptr<client>> clients;
    for (int i = 0; i < n; ++i) {
      clients.push_back(std::make_unique<client>(loop, client_for(st.url(), logs[i])));
      REQUIRE(!clients.back()->connect());
    }
    REQUIRE(run_until(loop, [&] {
      for (auto& l : logs) if (!l.open) return false;
      return true;
    }));
    for (auto& c : clients) REQUIRE(!c->connection()->send_text("x"));
    REQUIRE(run_until(loop, [&] {
      for (auto& l : logs) if (l.messages.size() != 1) return false;
      return true;
    }));
    CHECK(st.srv().stats().handshakes_accepted == n);
    // A second server on the same port without SO_REUSEPORT fails clearly.
    auto clash = echo_config(T::kind);
    clash.port = st.port();
    server other(std::move(clash));
    CHECK(other.listen() == std::errc::address_in_use);
  }

  ADAPTER_TEST("client errors: refused port, bad URL, open timeout; reconnection with backoff") {
    event_loop loop(T::kind);
    // A port nobody listens on (bind one, keep it closed for listening).
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    const std::string dead = "ws://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/";
    {
      client_log log;
      client c(loop, client_for(dead, log));
      REQUIRE(!c.connect());
      REQUIRE(run_until(loop, [&] { return !log.errors.empty(); }));
      CHECK(log.errors[0].code == std::errc::connection_refused);
      CHECK(!log.errors[0].will_retry);
    }
    {
      client_log log;
      client c(loop, client_for("wss://example.org/", log));
      CHECK(c.connect() == errc::invalid_argument);
      client c2(loop, client_for("ws://[::1/", log));
      CHECK(c2.connect() == errc::invalid_argument);
    }
    {
      // Reconnection: three attempts with growing delays, then give up.
      client_log log;
      auto cc = client_for(dead, log);
      cc.reconnect.enabled = true;
      cc.reconnect.initial_delay = 20ms;
      cc.reconnect.factor = 2;
      cc.reconnect.jitter = 0.5;
      cc.reconnect.max_attempts = 3;
      client c(loop, std::move(cc));
      const auto t0 = clock::now();
      REQUIRE(!c.connect());
      REQUIRE(run_until(loop, [&] { return log.errors.size() == 3; }));
      CHECK(log.errors[0].will_retry);
      CHECK(log.errors[1].will_retry);
      CHECK(!log.errors[2].will_retry);
      CHECK(log.errors[2].attempt == 3);
      CHECK(clock::now() - t0 >= 30ms);  // 20*(0.5..1) + 40*(0.5..1)
    }
    ::close(fd);
    {
      // A server that accepts TCP but never answers: open_timeout.
      int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in la{};
      la.sin_family = AF_INET;
      la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&la), sizeof la) == 0);
      REQUIRE(::listen(lfd, 4) == 0);
      socklen_t ll = sizeof la;
      ::getsockname(lfd, reinterpret_cast<sockaddr*>(&la), &ll);
      client_log log;
      auto cc = client_for("ws://127.0.0.1:" + std::to_string(ntohs(la.sin_port)) + "/", log);
      cc.open_timeout = 150ms;
      client c(loop, std::move(cc));
      REQUIRE(!c.connect());
      REQUIRE(run_until(loop, [&] { return !log.errors.empty(); }));
      CHECK(log.errors[0].code == std::errc::timed_out);
      ::close(lfd);
    }
  }

  ADAPTER_TEST("reconnection after the server goes away and comes back") {
    auto st = std::make_unique<server_thread>(echo_config(T::kind));
    REQUIRE(!st->listen_error);
    const std::uint16_t port = st->port();
    event_loop loop(T::kind);
    int opens = 0;
    client_log log;
    auto cc = client_for(st->url(), log);
    cc.handlers.on_open = [&](websocket&) { ++opens; };
    cc.reconnect.enabled = true;
    cc.reconnect.initial_delay = 30ms;
    cc.reconnect.max_delay = 200ms;
    client c(loop, std::move(cc));
    REQUIRE(!c.connect());
    REQUIRE(run_until(loop, [&] { return opens == 1; }));
    st->srv().shutdown();
    REQUIRE(run_until(loop, [&] { return log.closed.has_value(); }));
    CHECK(log.closed->code == 1001);
    CHECK(st->join());
    st.reset();
    auto cfg = echo_config(T::kind);
    cfg.port = port;
    st = std::make_unique<server_thread>(std::move(cfg));
    REQUIRE(!st->listen_error);
    REQUIRE(run_until(loop, [&] { return opens == 2; }, 10s));
    c.close();
    run_until(loop, [&] { return c.connection() == nullptr; });
  }
}

TEST_SUITE("adapters: per-connection state") {
  ADAPTER_TEST("user data set in on_request follows the connection to every handler") {
    struct session_info {
      std::string user;
      int messages = 0;
    };
    std::mutex m;
    std::vector<std::string> closed_users;
    auto cfg = echo_config(T::kind);
    cfg.handlers.on_request = [](websocket& ws, const http::request& req) {
      if (req.query().empty()) {
        (void)ws.reject(401, "who are you?");
        return;
      }
      ws.user_data() = session_info{std::string(req.query().substr(5)), 0};  // "user=..."
    };
    cfg.handlers.on_message = [](websocket& ws, const message_event&) {
      auto& info = std::any_cast<session_info&>(ws.user_data());
      ++info.messages;
      (void)ws.send_text(info.user + " #" + std::to_string(info.messages));
    };
    cfg.handlers.on_close = [&](websocket& ws, const close_event&) {
      std::lock_guard lock(m);
      closed_users.push_back(std::any_cast<session_info&>(ws.user_data()).user);
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    event_loop loop(T::kind);
    client_log anon, ann, bob;
    client c0(loop, client_for(st.url(), anon));
    client c1(loop, client_for(st.url("/?user=ann"), ann));
    client c2(loop, client_for(st.url("/?user=bob"), bob));
    REQUIRE(!c0.connect());
    REQUIRE(!c1.connect());
    REQUIRE(!c2.connect());
    REQUIRE(run_until(loop, [&] { return !anon.errors.empty() && ann.open && bob.open; }));
    REQUIRE(anon.errors[0].failure);
    CHECK(anon.errors[0].failure->response->status == 401);
    for (int i = 0; i < 2; ++i) {
      REQUIRE(!c1.connection()->send_text("x"));
      REQUIRE(!c2.connection()->send_text("x"));
    }
    REQUIRE(run_until(loop, [&] { return ann.messages.size() == 2 && bob.messages.size() == 2; }));
    CHECK(ann.messages[1] == "ann #2");
    CHECK(bob.messages[1] == "bob #2");
    c1.close();
    c2.close();
    REQUIRE(run_until(loop, [&] { return ann.closed && bob.closed; }));
    REQUIRE(wait_until([&] { std::lock_guard lock(m); return closed_users.size() == 2; }));
    std::lock_guard lock(m);
    std::sort(closed_users.begin(), closed_users.end());
    CHECK(closed_users == std::vector<std::string>{"ann", "bob"});
  }
}

TEST_SUITE("adapters: observability") {
  ADAPTER_TEST("counters and the log sink") {
    std::mutex m;
    std::vector<std::string> lines;
    auto cfg = echo_config(T::kind);
    cfg.log = [&](log_level, std::string_view s) {
      std::lock_guard lock(m);
      lines.emplace_back(s);
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    event_loop loop(T::kind);
    client_log log;
    client c(loop, client_for(st.url(), log));
    REQUIRE(!c.connect());
    REQUIRE(run_until(loop, [&] { return log.open; }));
    REQUIRE(!c.connection()->send_text("12345"));
    REQUIRE(run_until(loop, [&] { return log.messages.size() == 1; }));
    auto s = st.srv().stats();
    CHECK(s.connections_accepted == 1);
    CHECK(s.connections_open == 1);
    CHECK(s.messages_in == 1);
    CHECK(s.messages_out == 1);
    CHECK(s.bytes_in > 5);
    CHECK(s.bytes_out > 5);
    CHECK(s.memory_per_connection() > 0);
    auto cs = c.stats();
    CHECK(cs.messages_out == 1);
    CHECK(cs.messages_in == 1);
    c.close(4000, "custom");
    REQUIRE(run_until(loop, [&] { return log.closed.has_value(); }));
    CHECK(wait_until([&] { return st.srv().stats().close_count(4000) == 1; }));
    std::lock_guard lock(m);
    REQUIRE(!lines.empty());
    CHECK(lines[0].find("listening on 127.0.0.1:") == 0);
  }
}
