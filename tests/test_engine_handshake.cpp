// The opening handshake as the connection engine runs it (RFC 6455 4.1,
// 4.2), server and client.
#include <doctest.h>

#include <string>
#include <vector>

#include "handshake_server.hpp"  // accept_value: the expected Sec-WebSocket-Accept
#include "http1.hpp"             // request_parser: reads the client's request
#include "support/roles.hpp"
#include "support/wire.hpp"

using namespace gust;
using namespace gust::test;

namespace {

bool contains(std::string_view s, std::string_view p) { return s.find(p) != std::string_view::npos; }

/// The head of an HTTP message (up to and including the empty line).
std::string head_of(std::string_view msg) {
  const auto end = msg.find("\r\n\r\n");
  REQUIRE(end != std::string_view::npos);
  return std::string(msg.substr(0, end + 4));
}

/// A request with the given lines between the request line and the end.
std::string request_with(std::string_view target, std::string_view lines) {
  return "GET " + std::string(target) + " HTTP/1.1\r\n" + std::string(lines) + "\r\n";
}

constexpr std::string_view base_fields =
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n";

/// RFC 6455 1.3's example: this key gives this accept value.
constexpr std::string_view example_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A client whose request has been taken from its output; returns the
/// request too.
client_connection make_client(virtual_clock& clk, std::string& request, client_options o = default_client_options(),
                              gust::settings s = {}) {
  if (!s.random) s.random = counting_random();
  client_connection c(clk.now, std::move(o), std::move(s));
  request = take_output(c);
  return c;
}

/// Parses the client's request with the engine's own strict parser.
http::request parse_request(std::string_view text) {
  gust::limits lim;
  detail::request_parser p(lim);
  const std::size_t used = p.feed(std::as_bytes(std::span(text.data(), text.size())));
  REQUIRE(p.status() == detail::parse_status::done);
  CHECK(used == text.size());
  return p.request();
}

/// A correct 101 for a client's request, with extra lines.
std::string response_101(const std::string& request, std::string_view extra = {}) {
  const http::request r = parse_request(request);
  const auto key = r.headers.get("Sec-WebSocket-Key");
  REQUIRE(key);
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: " +
         detail::accept_value(*key) + "\r\n" + std::string(extra) + "\r\n";
}

}  // namespace

TEST_SUITE("RFC 6455 4.2 server handshake") {
  TEST_CASE("the request_event carries path, query and headers") {
    virtual_clock clk;
    server_connection srv(clk.now);
    CHECK(srv.request() == nullptr);
    std::string keep;
    auto ev = first_event(srv,
                          request_with("/chat/room?x=1&y=2", std::string(base_fields) +
                                                                 "X-Custom: a\r\n"
                                                                 "x-custom: b\r\n"
                                                                 "Cookie: session=42\r\n"),
                          clk, keep);
    REQUIRE(ev);
    REQUIRE(std::holds_alternative<request_event>(*ev));
    const http::request* r = std::get<request_event>(*ev).request;
    REQUIRE(r);
    CHECK(r->method == "GET");
    CHECK(r->target == "/chat/room?x=1&y=2");
    CHECK(r->path() == "/chat/room");
    CHECK(r->query() == "x=1&y=2");
    CHECK(r->headers.get("HOST") == "server.example.com");
    CHECK(r->headers.get("X-CUSTOM") == "a");  // the first
    CHECK(r->headers.count("x-Custom") == 2);
    CHECK(r->headers.get_all("X-Custom") == std::vector<std::string_view>{"a", "b"});
    CHECK(r->headers.get_combined("x-custom") == "a, b");
    CHECK(r->headers.get("cookie") == "session=42");
    CHECK(r->headers.get("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK(!r->headers.get("X-Missing"));
    CHECK(srv.request() == r);
    // Until answered, no further event.
    CHECK(!srv.next_event(clk.now));
    CHECK(srv.state() == state::connecting);
    REQUIRE(!srv.accept(clk.now));
    auto open = srv.next_event(clk.now);
    REQUIRE(open);
    REQUIRE(std::holds_alternative<open_event>(*open));
    CHECK(std::get<open_event>(*open).request == r);
    CHECK(std::get<open_event>(*open).response == nullptr);
    CHECK(srv.request() == r);
    CHECK(srv.request()->path() == "/chat/room");
  }

  TEST_CASE("a request without a query") {
    virtual_clock clk;
    server_connection srv(clk.now);
    std::string keep;
    auto ev = first_event(srv, request_with("/plain", base_fields), clk, keep);
    REQUIRE(ev);
    REQUIRE(std::holds_alternative<request_event>(*ev));
    CHECK(std::get<request_event>(*ev).request->path() == "/plain");
    CHECK(std::get<request_event>(*ev).request->query().empty());
  }

  TEST_CASE("the server's preference among the client's offers selects the subprotocol") {
    server_options so;
    so.subprotocols = {"superchat", "chat"};
    virtual_clock clk;
    server_connection srv(clk.now, {}, so);
    auto ev = feed(srv, upgrade_request("Sec-WebSocket-Protocol: chat, superchat\r\n"), clk);
    CHECK(ev == strings{"request:/chat?room=1", "open:superchat"});
    const std::string head = head_of(take_output(srv));
    CHECK(starts_with(head, "HTTP/1.1 101 Switching Protocols\r\n"));
    CHECK(contains(head, "\r\nSec-WebSocket-Protocol: superchat\r\n"));
    CHECK(contains(head, "\r\nSec-WebSocket-Accept: " + std::string(example_accept) + "\r\n"));
    CHECK(srv.subprotocol() == "superchat");
  }

  TEST_CASE("subprotocol selection through a pair") {
    client_options co;
    co.subprotocols = {"chat", "superchat"};
    server_options so;
    so.subprotocols = {"superchat", "chat"};
    engine_pair p({}, {}, co, so);
    p.pump();
    CHECK(p.client_events == strings{"open:superchat"});
    CHECK(p.server_events == strings{"request:/", "open:superchat"});
    CHECK(p.client.subprotocol() == "superchat");
    CHECK(p.server.subprotocol() == "superchat");
  }

  TEST_CASE("no common subprotocol: none is selected") {
    server_options so;
    so.subprotocols = {"mqtt"};
    virtual_clock clk;
    server_connection srv(clk.now, {}, so);
    CHECK(feed(srv, upgrade_request("Sec-WebSocket-Protocol: chat\r\n"), clk) ==
          strings{"request:/chat?room=1", "open:"});
    CHECK(!contains(head_of(take_output(srv)), "Sec-WebSocket-Protocol"));
    CHECK(srv.subprotocol().empty());
  }

  TEST_CASE("the select_subprotocol callback decides, seeing the offers in the client's order") {
    std::vector<std::string> seen;
    std::string seen_path;
    server_options so;
    so.subprotocols = {"superchat"};  // overridden by the callback
    so.select_subprotocol = [&](const http::request& r, std::span<const std::string_view> offers)
        -> std::optional<std::string> {
      seen_path = std::string(r.path());
      for (auto o : offers) seen.emplace_back(o);
      return "chat";
    };
    virtual_clock clk;
    server_connection srv(clk.now, {}, so);
    CHECK(feed(srv, upgrade_request("Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: v2\r\n"), clk) ==
          strings{"request:/chat?room=1", "open:chat"});
    CHECK(seen == std::vector<std::string>{"chat", "superchat", "v2"});
    CHECK(seen_path == "/chat");
    CHECK(contains(head_of(take_output(srv)), "\r\nSec-WebSocket-Protocol: chat\r\n"));
  }

  TEST_CASE("a select_subprotocol answer the client did not offer is not sent") {
    // RFC 6455 4.2.2: the selected value must be one the client offered.
    server_options so;
    so.select_subprotocol = [](const http::request&, std::span<const std::string_view>)
        -> std::optional<std::string> { return "not-offered"; };
    virtual_clock clk;
    server_connection srv(clk.now, {}, so);
    CHECK(feed(srv, upgrade_request("Sec-WebSocket-Protocol: chat\r\n"), clk) ==
          strings{"request:/chat?room=1", "open:"});
    CHECK(!contains(head_of(take_output(srv)), "Sec-WebSocket-Protocol"));
  }

  TEST_CASE("accept_options.subprotocol must be one the client offered") {
    virtual_clock clk;
    server_options so;
    so.subprotocols = {"superchat"};
    server_connection srv(clk.now, {}, so);
    CHECK(feed(srv, upgrade_request("Sec-WebSocket-Protocol: chat, superchat\r\n"), clk, 0,
               feed_mode::receive, false) == strings{"request:/chat?room=1"});
    accept_options bad;
    bad.subprotocol = "soap";
    CHECK(srv.accept(clk.now, bad) == errc::invalid_argument);
    CHECK(srv.state() == state::connecting);
    CHECK(take_output(srv).empty());
    // The request is still pending: a valid choice overrides the preference.
    accept_options good;
    good.subprotocol = "chat";
    good.extra_headers.add("X-Served-By", "test");
    REQUIRE(!srv.accept(clk.now, good));
    CHECK(drain(srv, clk) == strings{"open:chat"});
    const std::string head = head_of(take_output(srv));
    CHECK(contains(head, "\r\nSec-WebSocket-Protocol: chat\r\n"));
    CHECK(contains(head, "\r\nX-Served-By: test\r\n"));
    CHECK(srv.accept(clk.now) == errc::no_pending_request);
  }

  TEST_CASE("accept_options.subprotocol empty selects none") {
    virtual_clock clk;
    server_options so;
    so.subprotocols = {"chat"};
    server_connection srv(clk.now, {}, so);
    CHECK(feed(srv, upgrade_request("Sec-WebSocket-Protocol: chat\r\n"), clk, 0, feed_mode::receive, false).size() == 1);
    accept_options none;
    none.subprotocol = "";
    REQUIRE(!srv.accept(clk.now, none));
    CHECK(drain(srv, clk) == strings{"open:"});
    CHECK(!contains(head_of(take_output(srv)), "Sec-WebSocket-Protocol"));
  }

  TEST_CASE("reject(403, body): a 403 with the body, CLOSED, no open") {
    virtual_clock clk;
    server_connection srv(clk.now);
    CHECK(feed(srv, upgrade_request(), clk, 0, feed_mode::receive, false) == strings{"request:/chat?room=1"});
    CHECK(srv.reject(200, "x") == errc::invalid_argument);
    CHECK(srv.reject(399, "x") == errc::invalid_argument);
    CHECK(srv.reject(600, "x") == errc::invalid_argument);
    CHECK(srv.state() == state::connecting);
    REQUIRE(!srv.reject(403, "no"));
    const std::string out = take_output(srv);
    CHECK(starts_with(out, "HTTP/1.1 403 Forbidden\r\n"));
    CHECK(contains(out, "\r\nContent-Length: 2\r\n"));
    CHECK(contains(out, "\r\nConnection: close\r\n"));
    CHECK(ends_with(out, "\r\n\r\nno"));
    CHECK(srv.state() == state::closed);
    CHECK(srv.transport_should_close());
    CHECK(drain(srv, clk).empty());  // the application refused: no event
    CHECK(srv.reject(403, "again") == errc::no_pending_request);
    CHECK(srv.accept(clk.now) == errc::no_pending_request);
    CHECK(srv.send_text("x") == errc::invalid_state);
  }

  TEST_CASE("respond(): any HTTP answer, with Content-Length and Connection: close") {
    virtual_clock clk;
    server_connection srv(clk.now);
    std::string keep;
    auto ev = first_event(srv, request_with("/healthz", base_fields), clk, keep);
    REQUIRE(ev);
    REQUIRE(std::holds_alternative<request_event>(*ev));
    CHECK(std::get<request_event>(*ev).request->path() == "/healthz");
    http::response r;
    r.status = 200;
    r.body = "ok";
    r.headers.add("Cache-Control", "no-store");
    r.headers.add("Content-Length", "999");  // the engine writes its own
    REQUIRE(!srv.respond(r));
    const std::string out = take_output(srv);
    INFO(out);
    CHECK(starts_with(out, "HTTP/1.1 200 OK\r\n"));
    CHECK(contains(out, "\r\nCache-Control: no-store\r\n"));
    CHECK(contains(out, "\r\nContent-Length: 2\r\n"));
    CHECK(!contains(out, "999"));
    CHECK(contains(out, "\r\nConnection: close\r\n"));
    CHECK(ends_with(out, "\r\n\r\nok"));
    CHECK(srv.state() == state::closed);
    CHECK(srv.transport_should_close());
    CHECK(!srv.next_event(clk.now));
  }

  TEST_CASE("respond() refuses a 101 or an invalid status") {
    virtual_clock clk;
    server_connection srv(clk.now);
    CHECK(feed(srv, upgrade_request(), clk, 0, feed_mode::receive, false).size() == 1);
    for (int status : {101, 100, 199, 600, 0, -1}) {
      CAPTURE(status);
      http::response r;
      r.status = status;
      CHECK(srv.respond(r) == errc::invalid_argument);
    }
    CHECK(srv.state() == state::connecting);
    CHECK(take_output(srv).empty());
  }

  TEST_CASE("the Server header: \"gust\" by default, removable, replaceable") {
    SUBCASE("default") {
      virtual_clock clk;
      server_connection srv(clk.now);
      CHECK(feed(srv, upgrade_request(), clk).size() == 2);
      CHECK(contains(head_of(take_output(srv)), "\r\nServer: gust\r\n"));
      server_connection srv2(clk.now);
      CHECK(feed(srv2, upgrade_request(), clk, 0, feed_mode::receive, false).size() == 1);
      REQUIRE(!srv2.reject(503));
      CHECK(contains(take_output(srv2), "\r\nServer: gust\r\n"));
      server_connection srv3(clk.now);
      CHECK(feed(srv3, "BROKEN\r\n\r\n", clk).size() == 1);
      CHECK(contains(take_output(srv3), "\r\nServer: gust\r\n"));
    }
    SUBCASE("removed") {
      server_options so;
      so.server_header = "";
      virtual_clock clk;
      server_connection srv(clk.now, {}, so);
      CHECK(feed(srv, upgrade_request(), clk).size() == 2);
      CHECK(!contains(take_output(srv), "Server:"));
      server_connection srv2(clk.now, {}, so);
      CHECK(feed(srv2, upgrade_request(), clk, 0, feed_mode::receive, false).size() == 1);
      REQUIRE(!srv2.reject(404, "nope"));
      CHECK(!contains(take_output(srv2), "Server:"));
      server_connection srv3(clk.now, {}, so);
      CHECK(feed(srv3, "BROKEN\r\n\r\n", clk).size() == 1);
      CHECK(!contains(take_output(srv3), "Server:"));
    }
    SUBCASE("replaced") {
      server_options so;
      so.server_header = "myserver/1.0";
      virtual_clock clk;
      server_connection srv(clk.now, {}, so);
      CHECK(feed(srv, upgrade_request(), clk).size() == 2);
      CHECK(contains(take_output(srv), "\r\nServer: myserver/1.0\r\n"));
    }
  }

  TEST_CASE("Sec-WebSocket-Version 8: 426 with Sec-WebSocket-Version: 13") {
    virtual_clock clk;
    server_connection srv(clk.now);
    std::string req = upgrade_request();
    req.replace(req.find("Version: 13"), 11, "Version: 8");
    CHECK(feed(srv, req, clk) == strings{"handshake_failure:unsupported_version"});
    const std::string out = take_output(srv);
    CHECK(starts_with(out, "HTTP/1.1 426 "));
    CHECK(contains(head_of(out), "\r\nSec-WebSocket-Version: 13\r\n"));
    CHECK(srv.state() == state::closed);
    CHECK(srv.transport_should_close());
  }

  TEST_CASE("a missing Sec-WebSocket-Key: 400") {
    virtual_clock clk;
    server_connection srv(clk.now);
    std::string req = request_with("/", "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                        "Sec-WebSocket-Version: 13\r\n");
    CHECK(feed(srv, req, clk) == strings{"handshake_failure:bad_request"});
    CHECK(starts_with(take_output(srv), "HTTP/1.1 400 "));
    CHECK(srv.state() == state::closed);
    CHECK(srv.transport_should_close());
  }

  TEST_CASE("a malformed request line: 400") {
    for (std::string_view line : {"GET /chat\r\n", "GET  /chat HTTP/1.1\r\n", "GARBAGE\r\n",
                                  "GET /chat HTTP/1.1 extra\r\n", "GET chat HTTP/1.1\r\n"}) {
      CAPTURE(line);
      virtual_clock clk;
      server_connection srv(clk.now);
      CHECK(feed(srv, std::string(line) + std::string(base_fields) + "\r\n", clk) ==
            strings{"handshake_failure:malformed"});
      CHECK(starts_with(take_output(srv), "HTTP/1.1 400 "));
      CHECK(srv.transport_should_close());
    }
  }

  TEST_CASE("the Origin allow-list") {
    server_options so;
    so.allowed_origins = {"https://good.example"};
    auto try_origin = [&](std::string_view origin_line, server_options opts) {
      virtual_clock clk;
      server_connection srv(clk.now, {}, opts);
      auto ev = feed(srv, upgrade_request(origin_line), clk);
      return std::pair(ev, take_output(srv));
    };
    {
      auto [ev, out] = try_origin("Origin: https://evil.example\r\n", so);
      CHECK(ev == strings{"handshake_failure:forbidden_origin"});
      CHECK(starts_with(out, "HTTP/1.1 403 "));
    }
    {
      auto [ev, out] = try_origin("Origin: https://good.example.evil\r\n", so);
      CHECK(ev == strings{"handshake_failure:forbidden_origin"});
    }
    {
      auto [ev, out] = try_origin("Origin: https://good.example\r\n", so);
      CHECK(ev == strings{"request:/chat?room=1", "open:"});
      CHECK(starts_with(out, "HTTP/1.1 101 "));
    }
    {
      auto [ev, out] = try_origin("Origin: HTTPS://Good.Example\r\n", so);
      CHECK(ev == strings{"request:/chat?room=1", "open:"});
    }
    {
      auto [ev, out] = try_origin("", so);  // allow_missing_origin by default
      CHECK(ev == strings{"request:/chat?room=1", "open:"});
    }
    {
      server_options strict = so;
      strict.allow_missing_origin = false;
      auto [ev, out] = try_origin("", strict);
      CHECK(ev == strings{"handshake_failure:forbidden_origin"});
      CHECK(starts_with(out, "HTTP/1.1 403 "));
    }
  }

  TEST_CASE("a request split byte by byte") {
    for (auto mode : {feed_mode::receive, feed_mode::prepare_commit}) {
      virtual_clock clk;
      server_connection srv(clk.now);
      CHECK(feed(srv, upgrade_request("Sec-WebSocket-Protocol: chat\r\n"), clk, 1, mode) ==
            strings{"request:/chat?room=1", "open:"});
      CHECK(starts_with(take_output(srv), "HTTP/1.1 101 "));
      CHECK(srv.state() == state::open);
    }
  }

  TEST_CASE("frames pipelined after the request are processed after accept") {
    virtual_clock clk;
    server_connection srv(clk.now);
    const std::string wire = upgrade_request() + cframe(0x81, "early") + cframe(0x89, "p") +
                             cframe(0x82, std::string(200, 'b'));
    // Not accepted yet: only the request. feed() overwrites its buffer once
    // next_event() returned nothing, so the frames must have been kept.
    CHECK(feed(srv, wire, clk, 0, feed_mode::receive, false) == strings{"request:/chat?room=1"});
    CHECK(take_output(srv).empty());
    REQUIRE(!srv.accept(clk.now));
    CHECK(drain(srv, clk) ==
          strings{"open:", "text:early", "ping:" + hex("p"), "binary:" + hex(std::string(200, 'b'))});
    const std::string out = take_output(srv);
    // The 101 comes before the pong.
    const std::string head = head_of(out);
    CHECK(starts_with(head, "HTTP/1.1 101 "));
    auto frames = parse_frames(std::string_view(out).substr(head.size()));
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].opcode == 0xA);
  }

  TEST_CASE("frames pipelined after a rejected request are discarded") {
    virtual_clock clk;
    server_connection srv(clk.now);
    CHECK(feed(srv, upgrade_request() + cframe(0x81, "early"), clk, 0, feed_mode::receive, false).size() == 1);
    REQUIRE(!srv.reject(401));
    CHECK(drain(srv, clk).empty());
  }

  TEST_CASE("bytes after the request while it awaits an answer are held up to max_handshake_size") {
    virtual_clock clk;
    gust::settings s;
    s.limits.max_handshake_size = 4096;
    server_connection srv(clk.now, s);
    auto unanswered = [&](const std::string& w) { return feed(srv, w, clk, 0, feed_mode::receive, false); };
    CHECK(unanswered(upgrade_request()) == strings{"request:/chat?room=1"});
    // 4 KiB of frames: held (answered later, they are delivered).
    std::string early;
    while (early.size() + 106 <= 4096) early += cframe(0x82, std::string(100, 'x'));
    CHECK(unanswered(early).empty());
    CHECK(srv.memory().input >= early.size());
    // Past the bound: 400, a handshake failure, the input dropped, and the
    // late answer is refused with a typed error.
    const auto ev = unanswered(cframe(0x82, std::string(100, 'y')));
    REQUIRE(ev.size() == 1);
    CHECK(starts_with(ev[0], "handshake_failure:too_large"));
    CHECK(starts_with(take_output(srv), "HTTP/1.1 400 "));
    CHECK(srv.state() == state::closed);
    CHECK(srv.transport_should_close());
    CHECK(srv.memory().input == 0);
    CHECK(srv.accept(clk.now) == errc::no_pending_request);
  }

  TEST_CASE("EOF during the handshake: handshake_failure eof") {
    virtual_clock clk;
    server_connection srv(clk.now);
    CHECK(feed(srv, upgrade_request().substr(0, 40), clk).empty());
    srv.receive_eof(clk.now);
    CHECK(drain(srv, clk) == strings{"handshake_failure:eof"});
    CHECK(srv.state() == state::closed);
    CHECK(srv.transport_should_close());
    server_connection empty(clk.now);
    empty.receive_eof(clk.now);
    CHECK(drain(empty, clk) == strings{"handshake_failure:eof"});
  }

  TEST_CASE("EOF after a whole request still lets the application answer it") {
    virtual_clock clk;
    server_connection srv(clk.now);
    std::string storage = upgrade_request();
    srv.receive(std::as_writable_bytes(std::span(storage.data(), storage.size())), clk.now);
    srv.receive_eof(clk.now);
    CHECK(drain(srv, clk, false) == strings{"request:/chat?room=1"});
    CHECK(srv.state() == state::connecting);
    REQUIRE(!srv.reject(503, "busy"));
    CHECK(starts_with(take_output(srv), "HTTP/1.1 503 "));
    CHECK(srv.transport_should_close());
  }
}

TEST_SUITE("RFC 6455 4.1 client handshake") {
  TEST_CASE("the request has Host, Upgrade, Connection, Key, Version, Origin and the offers") {
    virtual_clock clk;
    client_options o;
    o.host = "example.com:8080";
    o.target = "/chat?x=1";
    o.origin = "https://example.com";
    o.subprotocols = {"chat", "superchat"};
    o.extra_headers.add("Authorization", "Bearer t");
    std::string text;
    auto cli = make_client(clk, text, o);
    CHECK(starts_with(text, "GET /chat?x=1 HTTP/1.1\r\n"));
    CHECK(ends_with(text, "\r\n\r\n"));
    const http::request r = parse_request(text);
    CHECK(r.method == "GET");
    CHECK(r.target == "/chat?x=1");
    CHECK(r.headers.count("Host") == 1);
    CHECK(r.headers.get("Host") == "example.com:8080");
    CHECK(r.headers.has_token("Upgrade", "websocket"));
    CHECK(r.headers.has_token("Connection", "Upgrade"));
    CHECK(r.headers.get("Sec-WebSocket-Version") == "13");
    CHECK(r.headers.get("Origin") == "https://example.com");
    CHECK(r.headers.get_combined("Sec-WebSocket-Protocol") == "chat, superchat");
    CHECK(r.headers.get("Authorization") == "Bearer t");
    REQUIRE(r.headers.count("Sec-WebSocket-Key") == 1);
    // RFC 6455 4.1 item 7: base64 of 16 bytes.
    const auto key = *r.headers.get("Sec-WebSocket-Key");
    CHECK(key.size() == 24);
    CHECK(ends_with(key, "=="));
    CHECK(cli.state() == state::connecting);
    // A real server accepts it.
    server_options so;
    so.subprotocols = {"superchat"};
    server_connection srv(clk.now, {}, so);
    CHECK(feed(srv, text, clk) == strings{"request:/chat?x=1", "open:superchat"});
    CHECK(feed(cli, take_output(srv), clk) == strings{"open:superchat"});
    CHECK(cli.subprotocol() == "superchat");
  }

  TEST_CASE("no Origin and no Sec-WebSocket-Protocol when none is configured") {
    virtual_clock clk;
    std::string text;
    auto cli = make_client(clk, text);
    const http::request r = parse_request(text);
    CHECK(!r.headers.contains("Origin"));
    CHECK(!r.headers.contains("Sec-WebSocket-Protocol"));
    CHECK(r.target == "/");
  }

  TEST_CASE("a non-101 response: handshake_failure unexpected_status with the response") {
    virtual_clock clk;
    std::string text;
    auto cli = make_client(clk, text);
    const std::string resp =
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nforbidden";
    std::string keep = resp;
    // The body comes in a second read.
    const std::size_t split = resp.size() - 4;
    cli.receive(std::as_writable_bytes(std::span(keep.data(), split)), clk.now);
    CHECK(!cli.next_event(clk.now));
    cli.receive(std::as_writable_bytes(std::span(keep.data() + split, 4)), clk.now);
    auto ev = cli.next_event(clk.now);
    REQUIRE(ev);
    REQUIRE(std::holds_alternative<handshake_failure_event>(*ev));
    const handshake_failure* f = std::get<handshake_failure_event>(*ev).failure;
    REQUIRE(f);
    CHECK(f->error == handshake_error::unexpected_status);
    REQUIRE(f->response);
    CHECK(f->response->status == 403);
    CHECK(f->response->reason == "Forbidden");
    CHECK(f->response->body == "forbidden");
    CHECK(f->response->headers.get("content-type") == "text/plain");
    CHECK(cli.state() == state::closed);
    CHECK(cli.transport_should_close());
    CHECK(!cli.next_event(clk.now));
    CHECK(cli.send_text("x") == errc::invalid_state);
  }

  TEST_CASE("a 101 with a wrong Sec-WebSocket-Accept: invalid_accept") {
    virtual_clock clk;
    std::string text;
    auto cli = make_client(clk, text);
    const std::string resp =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " + std::string(example_accept) + "\r\n\r\n";
    CHECK(feed(cli, resp, clk) == strings{"handshake_failure:invalid_accept"});
    CHECK(cli.state() == state::closed);
    CHECK(cli.transport_should_close());
  }

  TEST_CASE("a 101 without Sec-WebSocket-Accept: invalid_accept") {
    virtual_clock clk;
    std::string text;
    auto cli = make_client(clk, text);
    CHECK(feed(cli, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", clk) ==
          strings{"handshake_failure:invalid_accept"});
  }

  TEST_CASE("a subprotocol the client did not offer: unexpected_subprotocol") {
    virtual_clock clk;
    client_options o = default_client_options();
    o.subprotocols = {"chat"};
    std::string text;
    auto cli = make_client(clk, text, o);
    CHECK(feed(cli, response_101(text, "Sec-WebSocket-Protocol: superchat\r\n"), clk) ==
          strings{"handshake_failure:unexpected_subprotocol"});
    CHECK(cli.transport_should_close());
    // Without any offer, any subprotocol is unexpected.
    std::string text2;
    auto cli2 = make_client(clk, text2);
    CHECK(feed(cli2, response_101(text2, "Sec-WebSocket-Protocol: chat\r\n"), clk) ==
          strings{"handshake_failure:unexpected_subprotocol"});
    // The offered one is fine.
    std::string text3;
    auto cli3 = make_client(clk, text3, o);
    CHECK(feed(cli3, response_101(text3, "Sec-WebSocket-Protocol: chat\r\n"), clk) == strings{"open:chat"});
  }

  TEST_CASE("frames in the same read as the 101 are delivered after open") {
    const std::string frames = sframe(0x81, "hello") + sframe(0x89, "p") + sframe(0x02, "ab") + sframe(0x80, "cd");
    const strings expected{"open:", "text:hello", "ping:" + hex("p"), "binary:" + hex("abcd")};
    virtual_clock clk;
    std::string text;
    auto cli = make_client(clk, text);
    const std::string resp = response_101(text);
    CHECK(feed(cli, resp + frames, clk) == expected);
    auto out = parse_frames(take_output(cli));
    REQUIRE(out.size() == 1);
    CHECK(out[0].opcode == 0xA);
    CHECK(out[0].masked);
    // And at any split point.
    const std::string wire = resp + frames;
    for (std::size_t cut = 1; cut < wire.size(); ++cut) {
      CAPTURE(cut);
      std::string t;
      auto c = make_client(clk, t);
      CHECK(feed_split(c, wire, clk, {cut}) == expected);
    }
  }

  TEST_CASE("EOF during the client's handshake: handshake_failure eof") {
    virtual_clock clk;
    std::string text;
    auto cli = make_client(clk, text);
    CHECK(feed(cli, "HTTP/1.1 101 Switching", clk).empty());
    cli.receive_eof(clk.now);
    CHECK(drain(cli, clk) == strings{"handshake_failure:eof"});
    CHECK(cli.transport_should_close());
  }

  TEST_CASE("the client's open_timeout") {
    virtual_clock clk;
    gust::settings s;
    s.timeouts.open_timeout = std::chrono::seconds(3);
    std::string text;
    auto cli = make_client(clk, text, default_client_options(), s);
    CHECK(cli.next_deadline() == clk.now + std::chrono::seconds(3));
    clk.advance(std::chrono::seconds(3));
    cli.on_timeout(clk.now);
    CHECK(drain(cli, clk) == strings{"handshake_failure:timeout"});
    CHECK(cli.transport_should_close());
    // A 101 after that is too late.
    CHECK(feed(cli, response_101(text), clk).empty());
    CHECK(cli.state() == state::closed);
  }

  TEST_CASE("the key comes from settings.random when set") {
    virtual_clock clk;
    std::size_t calls = 0, bytes_asked = 0;
    gust::settings s;
    s.random = [&, n = std::uint8_t{1}](std::span<std::byte> out) mutable {
      ++calls;
      bytes_asked += out.size();
      for (auto& b : out) b = static_cast<std::byte>(n++);
    };
    std::string text;
    auto cli = make_client(clk, text, default_client_options(), s);
    CHECK(calls >= 1);
    const http::request r = parse_request(text);
    // Bytes 1..16, base64.
    CHECK(r.headers.get("Sec-WebSocket-Key") == "AQIDBAUGBwgJCgsMDQ4PEA==");
    // Masking keys come from it too.
    CHECK(feed(cli, response_101(text), clk) == strings{"open:"});
    const std::size_t before = bytes_asked;
    REQUIRE(!cli.send_text("masked"));
    CHECK(bytes_asked > before);
    auto frames = parse_frames(take_output(cli));
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].masked);
    CHECK(frames[0].payload == "masked");

    // Another source, another key.
    gust::settings s2;
    s2.random = counting_random(100);
    std::string text2;
    auto cli2 = make_client(clk, text2, default_client_options(), s2);
    CHECK(parse_request(text2).headers.get("Sec-WebSocket-Key") != "AQIDBAUGBwgJCgsMDQ4PEA==");
  }

  TEST_CASE("without settings.random two clients use different keys") {
    virtual_clock clk;
    client_connection a(clk.now, default_client_options());
    client_connection b(clk.now, default_client_options());
    const http::request ra = parse_request(take_output(a));
    const http::request rb = parse_request(take_output(b));
    const auto ka = ra.headers.get("Sec-WebSocket-Key");
    const auto kb = rb.headers.get("Sec-WebSocket-Key");
    REQUIRE(ka);
    REQUIRE(kb);
    CHECK(*ka != *kb);
  }

  TEST_CASE("keep_request false: the request is readable through open, then freed") {
    for (const bool keep : {true, false}) {
      CAPTURE(keep);
      server_options so;
      so.keep_request = keep;
      virtual_clock clk;
      server_connection srv(clk.now, {}, so);
      const std::string req = upgrade_request("Cookie: " + std::string(400, 'c') + "\r\n");
      srv.receive(std::as_writable_bytes(std::span(const_cast<char*>(req.data()), req.size())), clk.now);
      auto ev = srv.next_event(clk.now);
      REQUIRE(ev);
      REQUIRE(std::holds_alternative<request_event>(*ev));
      REQUIRE(!srv.accept(clk.now));
      ev = srv.next_event(clk.now);
      REQUIRE(ev);
      REQUIRE(std::holds_alternative<open_event>(*ev));
      const http::request* at_open = std::get<open_event>(*ev).request;
      REQUIRE(at_open);
      CHECK(at_open->path() == "/chat");
      CHECK(srv.request() == at_open);
      const std::size_t state_at_open = srv.memory().state;
      CHECK(!srv.next_event(clk.now));  // the open_event has been handled
      if (keep) {
        REQUIRE(srv.request() == at_open);
        CHECK(srv.request()->headers.get("Cookie")->size() == 400);
        CHECK(srv.memory().state == state_at_open);
      } else {
        CHECK(srv.request() == nullptr);
        CHECK(srv.memory().state + 400 < state_at_open);
      }
    }
  }

  TEST_CASE("connections sharing one settings object do not count it as their own") {
    virtual_clock clk;
    gust::settings s;
    s.limits.max_message_size = 12345;
    const shared_settings shared(s);
    server_connection a(clk.now, shared);
    server_connection b(clk.now, shared);
    server_connection own(clk.now, s);
    CHECK(&a.settings() == &b.settings());
    CHECK(a.settings().limits.max_message_size == 12345);
    CHECK(own.settings().limits.max_message_size == 12345);
    CHECK(a.memory().state + sizeof(gust::settings) == own.memory().state);
  }
}
