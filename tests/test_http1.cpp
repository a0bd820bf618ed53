// HTTP/1.1 head parsing for the opening handshake: http1.hpp and the
// http::headers / http::request helpers.
#include <doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gust/http.hpp"
#include "gust/settings.hpp"
#include "http1.hpp"
#include "support/split.hpp"

namespace {

using gust::limits;
using gust::test::check_every_split;
using gust::test::cutting;
using gust::test::feed_cut;
using gust::detail::parse_status;
using gust::detail::request_parser;
using gust::detail::response_parser;
using namespace std::string_literals;
using namespace std::string_view_literals;

std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

using field_list = std::vector<std::pair<std::string, std::string>>;

field_list fields_of(const gust::http::headers& h) {
  field_list out;
  for (const auto& f : h) out.emplace_back(f.name, f.value);
  return out;
}

std::string_view status_name(parse_status s) {
  switch (s) {
    case parse_status::need_more: return "need_more";
    case parse_status::done: return "done";
    case parse_status::error: return "error";
  }
  return "?";
}

// Everything observable about a parser after a run, so runs that cut the
// input differently can be compared as a whole.
struct request_outcome {
  parse_status status;
  int error_status;
  std::string error_reason;
  std::size_t consumed;
  std::string method;
  std::string target;
  field_list fields;
  bool operator==(const request_outcome&) const = default;
};

struct response_outcome {
  parse_status status;
  int error_status;
  std::string error_reason;
  std::size_t consumed;
  int code;
  std::string reason;
  field_list fields;
  std::string body;
  bool operator==(const response_outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const request_outcome& o) {
  os << "{" << status_name(o.status) << " consumed=" << o.consumed;
  if (o.status == parse_status::error)
    os << " error=" << o.error_status << " '" << o.error_reason << "'";
  os << " " << o.method << " " << o.target << " fields=" << o.fields.size() << "}";
  return os;
}

std::ostream& operator<<(std::ostream& os, const response_outcome& o) {
  os << "{" << status_name(o.status) << " consumed=" << o.consumed;
  if (o.status == parse_status::error)
    os << " error=" << o.error_status << " '" << o.error_reason << "'";
  os << " " << o.code << " '" << o.reason << "' fields=" << o.fields.size()
     << " body=" << o.body.size() << "}";
  return os;
}

request_outcome snapshot(request_parser& p, std::size_t consumed) {
  return {p.status(),         p.error().status,     p.error().reason, consumed,
          p.request().method, p.request().target,   fields_of(p.request().headers)};
}

response_outcome snapshot(response_parser& p, std::size_t consumed) {
  return {p.status(),          p.error().status,     p.error().reason,
          consumed,            p.response().status,  p.response().reason,
          fields_of(p.response().headers), p.response().body};
}

// Runs one parser over `input` cut as `c`. Like a transport would,
// unconsumed bytes are offered again with the next piece.
template <class Parser>
auto run_cut(const limits& lim, std::string_view input, cutting c, bool eof) {
  Parser p(lim);
  const std::size_t consumed = feed_cut(
      input, c, [&] { return p.status() == parse_status::need_more; },
      [&](std::string_view piece) {
        const std::size_t n = p.feed(as_bytes(piece));
        REQUIRE(n <= piece.size());
        return n;
      });
  if constexpr (requires { p.feed_eof(); }) {
    if (eof) p.feed_eof();
  }
  return snapshot(p, consumed);
}

// Parses `input` whole, one byte at a time, and cut in two at every point
// up to where the parser stopped: every way must give the same outcome.
template <class Parser>
auto parse_every_way(std::string_view input, const limits& lim = {}, bool eof = false) {
  const auto whole = run_cut<Parser>(lim, input, cutting::whole(), eof);
  check_every_split(whole, std::min(input.size(), whole.consumed + 1),
                    [&](cutting c) { return run_cut<Parser>(lim, input, c, eof); });
  return whole;
}

request_outcome parse_request(std::string_view input, const limits& lim = {}) {
  return parse_every_way<request_parser>(input, lim);
}

response_outcome parse_response(std::string_view input, const limits& lim = {},
                                bool eof = false) {
  return parse_every_way<response_parser>(input, lim, eof);
}

void check_request_error(std::string_view input, int status,
                         const limits& lim = {}) {
  const auto r = parse_request(input, lim);
  CHECK(r.status == parse_status::error);
  CHECK(r.error_status == status);
  CHECK_FALSE(r.error_reason.empty());
}

const std::string rfc_request =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

const std::string chrome_request =
    "GET /socket?room=42&token=abc HTTP/1.1\r\n"
    "Host: chat.example.com:8443\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: https://chat.example.com\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9,fr;q=0.8\r\n"
    "Cookie: session=0123456789abcdef; theme=dark\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n";

std::string request_with(std::string_view fields) {
  std::string s = "GET /chat HTTP/1.1\r\nHost: example.com\r\n";
  s.append(fields);
  s.append("\r\n");
  return s;
}

}  // namespace

TEST_SUITE("HTTP/1.1 request parsing") {
  TEST_CASE("the RFC 6455 section 1.3 request") {
    const auto r = parse_request(rfc_request);
    REQUIRE(r.status == parse_status::done);
    CHECK(r.consumed == rfc_request.size());
    CHECK(r.method == "GET");
    CHECK(r.target == "/chat");
    const field_list expected = {
        {"Host", "server.example.com"},
        {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},
        {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
        {"Origin", "http://example.com"},
        {"Sec-WebSocket-Protocol", "chat, superchat"},
        {"Sec-WebSocket-Version", "13"},
    };
    CHECK(r.fields == expected);
  }

  TEST_CASE("a browser request with cookies, extensions and a query") {
    const auto r = parse_request(chrome_request);
    REQUIRE(r.status == parse_status::done);
    CHECK(r.consumed == chrome_request.size());
    CHECK(r.target == "/socket?room=42&token=abc");
    CHECK(r.fields.size() == 13);

    const limits lim;
    request_parser p{lim};
    REQUIRE(p.feed(as_bytes(chrome_request)) == chrome_request.size());
    const auto& req = p.request();
    CHECK(req.path() == "/socket");
    CHECK(req.query() == "room=42&token=abc");
    CHECK(req.headers.get("cookie") == "session=0123456789abcdef; theme=dark");
    CHECK(req.headers.get("SEC-WEBSOCKET-EXTENSIONS") ==
          "permessage-deflate; client_max_window_bits");
    CHECK(req.headers.get("accept-language") == "en-US,en;q=0.9,fr;q=0.8");
  }

  TEST_CASE("bytes after the empty line are left unconsumed") {
    // A masked text frame "Hi" right behind the request, as a client that
    // does not wait for the 101 would send it.
    const std::string frame = "\x81\x82\x01\x02\x03\x04\x49\x6b"s;
    const auto r = parse_request(rfc_request + frame);
    CHECK(r.status == parse_status::done);
    CHECK(r.consumed == rfc_request.size());

    const limits lim;
    request_parser p{lim};
    const std::string both = rfc_request + frame;
    CHECK(p.feed(as_bytes(both)) == rfc_request.size());
    CHECK(p.status() == parse_status::done);
    CHECK(p.feed(as_bytes(frame)) == 0);
  }

  TEST_CASE("a second request after the first is not consumed") {
    const auto r = parse_request(rfc_request + rfc_request);
    CHECK(r.status == parse_status::done);
    CHECK(r.consumed == rfc_request.size());
  }

  TEST_CASE("empty input changes nothing") {
    const limits lim;
    request_parser p{lim};
    CHECK(p.feed({}) == 0);
    CHECK(p.status() == parse_status::need_more);
    CHECK(p.feed(as_bytes("GET / HTTP/1.1\r")) == 15);
    CHECK(p.feed({}) == 0);
    CHECK(p.status() == parse_status::need_more);
  }

  TEST_CASE("nothing is consumed after an error") {
    const limits lim;
    request_parser p{lim};
    CHECK(p.feed(as_bytes("GET / HTTP/1.1\n")) == 15);
    CHECK(p.status() == parse_status::error);
    CHECK(p.feed(as_bytes("Host: x\r\n\r\n")) == 0);
    CHECK(p.status() == parse_status::error);
  }

  TEST_CASE("empty lines before the request line are ignored (RFC 9112 2.2)") {
    const auto r = parse_request("\r\n\r\n" + rfc_request);
    CHECK(r.status == parse_status::done);
    CHECK(r.target == "/chat");
  }

  TEST_CASE("field names keep their case and match case-insensitively") {
    const std::string in = request_with(
        "upgrade: websocket\r\nCONNECTION: Upgrade\r\nsec-websocket-KEY: abc\r\n");
    const auto r = parse_request(in);
    REQUIRE(r.status == parse_status::done);
    CHECK(r.fields[1].first == "upgrade");
    CHECK(r.fields[2].first == "CONNECTION");
    const limits lim;
    request_parser p{lim};
    p.feed(as_bytes(in));
    CHECK(p.request().headers.get("Sec-WebSocket-Key") == "abc");
    CHECK(p.request().headers.count("Connection") == 1);
  }

  TEST_CASE("optional whitespace around values is trimmed, inner kept") {
    const auto r = parse_request(
        request_with("A:value\r\nB: \t spaced  out \t \r\nC:\r\nD:   \r\nE:\ttab\tin\r\n"));
    REQUIRE(r.status == parse_status::done);
    const field_list expected = {{"Host", "example.com"}, {"A", "value"},
                                 {"B", "spaced  out"},   {"C", ""},
                                 {"D", ""},              {"E", "tab\tin"}};
    CHECK(r.fields == expected);
  }

  TEST_CASE("obs-text bytes in a value are accepted") {
    const auto r = parse_request(request_with("X-Name: caf\xc3\xa9\r\n"));
    REQUIRE(r.status == parse_status::done);
    CHECK(r.fields[1].second == "caf\xc3\xa9");
  }

  TEST_CASE("obs-fold is rejected with 400 (RFC 9112 5.2)") {
    check_request_error(request_with("X-Long: first\r\n second\r\n"), 400);
    check_request_error(request_with("X-Long: first\r\n\tsecond\r\n"), 400);
  }

  TEST_CASE("whitespace between the request line and the first field is rejected") {
    check_request_error("GET / HTTP/1.1\r\n Host: example.com\r\n\r\n", 400);
  }

  TEST_CASE("bare LF is rejected anywhere") {
    check_request_error("GET / HTTP/1.1\nHost: example.com\r\n\r\n", 400);
    check_request_error("GET / HTTP/1.1\r\nHost: example.com\n\r\n", 400);
    check_request_error("GET / HTTP/1.1\r\nHost: example.com\r\n\n", 400);
    check_request_error("\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 400);
    check_request_error(request_with("X-A: a\nb\r\n"), 400);
  }

  TEST_CASE("bare CR is rejected") {
    check_request_error("GET / HTTP/1.1\r\nHost: example.com\rX\r\n\r\n", 400);
    check_request_error(request_with("X-A: a\rb\r\n"), 400);
    check_request_error("GET / HTTP/1.1\r\r\n", 400);
  }

  TEST_CASE("NUL bytes are rejected") {
    check_request_error(request_with("X-A: a\0b\r\n"s), 400);
    check_request_error(request_with("X-\0A: ab\r\n"s), 400);
    check_request_error("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n"s, 400);
    check_request_error("G\0T / HTTP/1.1\r\nHost: x\r\n\r\n"s, 400);
    check_request_error(request_with("X-A: \0\r\n"s), 400);
  }

  TEST_CASE("other control bytes in values are rejected, HTAB is not") {
    check_request_error(request_with("X-A: a\x01" "b\r\n"), 400);
    check_request_error(request_with("X-A: a\x1b[31m\r\n"), 400);
    check_request_error(request_with("X-A: a\x7f\r\n"), 400);
    CHECK(parse_request(request_with("X-A: a\tb\r\n")).status == parse_status::done);
  }

  TEST_CASE("field names must be tokens, with no whitespace before the colon") {
    check_request_error(request_with("Host : example.com\r\n"), 400);
    check_request_error(request_with("Host\t: example.com\r\n"), 400);
    check_request_error(request_with("X Y: z\r\n"), 400);
    check_request_error(request_with(": empty name\r\n"), 400);
    check_request_error(request_with("No-Colon\r\n"), 400);
    check_request_error(request_with("X(Y): z\r\n"), 400);
    check_request_error(request_with("X\xc3\xa9: z\r\n"), 400);
  }

  TEST_CASE("HTTP/1.0 and other versions get 505") {
    check_request_error("GET / HTTP/1.0\r\nHost: x\r\n\r\n", 505);
    check_request_error("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    check_request_error("GET / HTTP/0.9\r\n\r\n", 505);
  }

  TEST_CASE("a malformed version is 400") {
    check_request_error("GET / http/1.1\r\nHost: x\r\n\r\n", 400);
    check_request_error("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400);
    check_request_error("GET / HTTP/11\r\nHost: x\r\n\r\n", 400);
    check_request_error("GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400);
    check_request_error("GET / \r\nHost: x\r\n\r\n", 400);
  }

  TEST_CASE("a malformed request line is 400") {
    check_request_error("GET /\r\nHost: x\r\n\r\n", 400);
    check_request_error("GET\r\n\r\n", 400);
    check_request_error("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    check_request_error("GET /  HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    check_request_error(" GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    check_request_error("GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    check_request_error("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
  }

  TEST_CASE("the target must be in origin-form, without spaces or controls") {
    check_request_error("GET chat HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    check_request_error("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    check_request_error("GET http://x/chat HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    check_request_error("GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    check_request_error("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    const auto ok = parse_request("GET /a/b%20c?x=1&y=%2F HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(ok.status == parse_status::done);
    CHECK(ok.target == "/a/b%20c?x=1&y=%2F");
  }

  TEST_CASE("a request line longer than max_request_line is 414 at the first byte over") {
    limits lim;
    lim.max_request_line = 64;
    std::string line = "GET /" + std::string(64 - 14, 'a') + " HTTP/1.1";
    REQUIRE(line.size() == 64);
    CHECK(parse_request(line + "\r\nHost: x\r\n\r\n", lim).status == parse_status::done);

    line = "GET /" + std::string(64 - 13, 'a') + " HTTP/1.1";
    const auto r = parse_request(line + "\r\nHost: x\r\n\r\n", lim);
    CHECK(r.status == parse_status::error);
    CHECK(r.error_status == 414);
    CHECK(r.consumed == 65);
  }

  TEST_CASE("a 1 MiB request target is refused without waiting for its end") {
    const std::string in = "GET /" + std::string(1 << 20, 'a');
    const limits lim;
    const auto r = parse_request(in, lim);
    CHECK(r.status == parse_status::error);
    CHECK(r.error_status == 414);
    CHECK(r.consumed == lim.max_request_line + 1);
  }

  TEST_CASE("a 1 MiB header line is 431 after at most max_header_line bytes of it") {
    const limits lim;
    const std::string head = "GET / HTTP/1.1\r\nHost: x\r\n";
    const std::string in = head + "X-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n";
    const auto r = parse_request(in, lim);
    CHECK(r.status == parse_status::error);
    CHECK(r.error_status == 431);
    CHECK(r.consumed <= head.size() + lim.max_header_line + 1);
    CHECK(r.consumed >= head.size() + lim.max_header_line);
  }

  TEST_CASE("a header line of exactly max_header_line is accepted") {
    limits lim;
    lim.max_header_line = 100;
    const std::string line = "X-A: " + std::string(95, 'v');
    CHECK(parse_request(request_with(line + "\r\n"), lim).status == parse_status::done);
    const auto r = parse_request(request_with(line + "v\r\n"), lim);
    CHECK(r.status == parse_status::error);
    CHECK(r.error_status == 431);
  }

  TEST_CASE("10,000 header fields are refused with 431 early") {
    std::string in = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 10000; ++i) in += "X-" + std::to_string(i) + ": v\r\n";
    in += "\r\n";
    const limits lim;
    const auto start = std::chrono::steady_clock::now();
    const auto r = parse_request(in, lim);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(r.status == parse_status::error);
    CHECK(r.error_status == 431);
    CHECK(r.fields.size() == lim.max_header_count);
    CHECK(r.consumed < 4096);
    CHECK(elapsed < std::chrono::seconds(5));
  }

  TEST_CASE("exactly max_header_count fields are accepted") {
    limits lim;
    lim.max_header_count = 5;
    CHECK(parse_request(request_with("A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"), lim).status ==
          parse_status::done);
    const auto r = parse_request(request_with("A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n"), lim);
    CHECK(r.status == parse_status::error);
    CHECK(r.error_status == 431);
  }

  TEST_CASE("a head larger than max_handshake_size is 431 at the first byte over") {
    limits lim;
    lim.max_handshake_size = rfc_request.size();
    CHECK(parse_request(rfc_request, lim).status == parse_status::done);
    lim.max_handshake_size = rfc_request.size() - 1;
    auto r = parse_request(rfc_request, lim);
    CHECK(r.status == parse_status::error);
    CHECK(r.error_status == 431);
    CHECK(r.consumed == rfc_request.size());

    // Many short fields, each within every other limit.
    lim = limits{};
    std::string in = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 100; ++i) in += "X-" + std::to_string(i) + ": " + std::string(200, 'v') + "\r\n";
    r = parse_request(in, lim);
    CHECK(r.status == parse_status::error);
    CHECK(r.error_status == 431);
    CHECK(r.consumed == lim.max_handshake_size + 1);
  }

  TEST_CASE("leading empty lines count towards max_handshake_size") {
    limits lim;
    lim.max_handshake_size = 100;
    std::string in;
    for (int i = 0; i < 1000; ++i) in += "\r\n";
    const auto r = parse_request(in, lim);
    CHECK(r.status == parse_status::error);
    CHECK(r.error_status == 431);
    CHECK(r.consumed == 101);
  }
}

TEST_SUITE("HTTP/1.1 response parsing") {
  const std::string switching =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
      "Sec-WebSocket-Protocol: chat\r\n"
      "\r\n";

  TEST_CASE("101 is done at the empty line; frames after it stay unconsumed") {
    const std::string frames = "\x81\x05Hello\x89\x00"s;
    const auto r = parse_response(switching + frames);
    REQUIRE(r.status == parse_status::done);
    CHECK(r.consumed == switching.size());
    CHECK(r.code == 101);
    CHECK(r.reason == "Switching Protocols");
    CHECK(r.fields.size() == 4);
    CHECK(r.body.empty());
  }

  TEST_CASE("404 with a Content-Length body; what follows is not consumed") {
    const std::string head =
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\n";
    const auto r = parse_response(head + "not here!" + "EXTRA");
    REQUIRE(r.status == parse_status::done);
    CHECK(r.code == 404);
    CHECK(r.reason == "Not Found");
    CHECK(r.body == "not here!");
    CHECK(r.consumed == head.size() + 9);
  }

  TEST_CASE("400 without Content-Length: the body runs until EOF") {
    const std::string in = "HTTP/1.1 400 Bad Request\r\nServer: x\r\n\r\nno websocket here";
    auto r = parse_response(in);
    CHECK(r.status == parse_status::need_more);
    CHECK(r.consumed == in.size());
    r = parse_response(in, {}, true);
    REQUIRE(r.status == parse_status::done);
    CHECK(r.code == 400);
    CHECK(r.body == "no websocket here");
  }

  TEST_CASE("a Content-Length body is kept up to max_response_body and read to its end") {
    limits lim;
    lim.max_response_body = 10;
    const std::string head = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 26\r\n\r\n";
    const auto r = parse_response(head + "abcdefghijklmnopqrstuvwxyz" + "\x81\x00", lim);
    REQUIRE(r.status == parse_status::done);
    CHECK(r.body == "abcdefghij");
    CHECK(r.consumed == head.size() + 26);
  }

  TEST_CASE("a body until EOF is kept up to max_response_body") {
    limits lim;
    lim.max_response_body = 4;
    const auto r =
        parse_response("HTTP/1.1 403 Forbidden\r\n\r\n" + std::string(3000, 'x'), lim, true);
    REQUIRE(r.status == parse_status::done);
    CHECK(r.body == "xxxx");
  }

  TEST_CASE("a huge Content-Length is consumed without being kept") {
    limits lim;
    lim.max_response_body = 16;
    response_parser p{lim};
    const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n";
    CHECK(p.feed(as_bytes(head)) == head.size());
    const std::string chunk(65536, 'z');
    for (int i = 0; i < 64; ++i) CHECK(p.feed(as_bytes(chunk)) == chunk.size());
    CHECK(p.status() == parse_status::need_more);
    CHECK(p.response().body.size() == 16);
    p.feed_eof();
    CHECK(p.status() == parse_status::error);
  }

  TEST_CASE("EOF inside a Content-Length body is an error") {
    const auto r = parse_response("HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nabc", {}, true);
    CHECK(r.status == parse_status::error);
  }

  TEST_CASE("EOF inside the head is an error") {
    CHECK(parse_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", {}, true)
              .status == parse_status::error);
    CHECK(parse_response("", {}, true).status == parse_status::error);
    CHECK(parse_response("HTTP/1.1 10", {}, true).status == parse_status::error);
  }

  TEST_CASE("Content-Length: 0, 204 and 304 have no body") {
    for (const auto* in : {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nrest",
                           "HTTP/1.1 204 No Content\r\n\r\nrest",
                           "HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\nrest"}) {
      CAPTURE(in);
      const std::string s = in;
      const auto r = parse_response(s);
      CHECK(r.status == parse_status::done);
      CHECK(r.body.empty());
      CHECK(r.consumed == s.size() - 4);
    }
  }

  TEST_CASE("repeated identical Content-Length values are one length") {
    auto r = parse_response("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabcd");
    CHECK(r.status == parse_status::done);
    CHECK(r.body == "abc");
    r = parse_response("HTTP/1.1 404 Not Found\r\nContent-Length: 3, 3\r\n\r\nabcd");
    CHECK(r.status == parse_status::done);
    CHECK(r.body == "abc");
  }

  TEST_CASE("conflicting or invalid Content-Length is an error") {
    for (const auto* cl : {"Content-Length: 3\r\nContent-Length: 4\r\n", "Content-Length: 3, 4\r\n",
                           "Content-Length: abc\r\n", "Content-Length: -1\r\n",
                           "Content-Length: +5\r\n", "Content-Length: \r\n",
                           "Content-Length: 1 2\r\n", "Content-Length: 0x10\r\n",
                           "Content-Length: 3,\r\n",
                           "Content-Length: 99999999999999999999999\r\n"}) {
      CAPTURE(cl);
      const auto r = parse_response("HTTP/1.1 404 Not Found\r\n"s + cl + "\r\nabcdef");
      CHECK(r.status == parse_status::error);
    }
  }

  TEST_CASE("Transfer-Encoding: the body is read until EOF, undecoded, over Content-Length") {
    const std::string body = "5\r\nhello\r\n0\r\n\r\n";
    const auto r = parse_response(
        "HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n" + body,
        {}, true);
    REQUIRE(r.status == parse_status::done);
    CHECK(r.body == body);
  }

  TEST_CASE("interim 1xx responses before the final one are skipped (RFC 9110 15.2)") {
    const std::string in = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" +
                           switching + "\x81\x00"s;
    const auto r = parse_response(in);
    REQUIRE(r.status == parse_status::done);
    CHECK(r.code == 101);
    CHECK(r.fields.size() == 4);
    CHECK(r.consumed == in.size() - 2);
  }

  TEST_CASE("an endless stream of 1xx responses hits max_handshake_size") {
    std::string in;
    for (int i = 0; i < 2000; ++i) in += "HTTP/1.1 100 Continue\r\n\r\n";
    const auto r = parse_response(in);
    CHECK(r.status == parse_status::error);
    CHECK(r.error_status == 431);
  }

  TEST_CASE("status lines: empty reason, reason with spaces, HTTP/1.0 refusals") {
    auto r = parse_response("HTTP/1.1 101 \r\n\r\n");
    CHECK(r.status == parse_status::done);
    CHECK(r.reason.empty());
    r = parse_response("HTTP/1.1 101\r\n\r\n");
    CHECK(r.status == parse_status::done);
    CHECK(r.code == 101);
    r = parse_response("HTTP/1.1 418 I'm a  teapot\t!\r\nContent-Length: 0\r\n\r\n");
    CHECK(r.status == parse_status::done);
    CHECK(r.reason == "I'm a  teapot\t!");
    r = parse_response("HTTP/1.0 403 Forbidden\r\n\r\nnope", {}, true);
    CHECK(r.status == parse_status::done);
    CHECK(r.code == 403);
    CHECK(r.body == "nope");
  }

  TEST_CASE("malformed status lines are errors") {
    for (const auto* line :
         {"HTTP/1.0 101 Switching Protocols", "HTTP/2 101 Switching Protocols",
          "HTTP/1.1 1011 x", "HTTP/1.1 99 x", "HTTP/1.1 600 Nope", "HTTP/1.1 099 x",
          "HTTP/1.1  101 x", "HTTP/1.1 10a x", "http/1.1 101 x", "HTTP/1.1 101x",
          "HTTP/1.1 404 Not\x01" "Found", "ICY 200 OK", ""}) {
      CAPTURE(line);
      const auto r = parse_response(line + "\r\nUpgrade: websocket\r\n\r\n"s);
      CHECK(r.status == parse_status::error);
    }
  }

  TEST_CASE("response fields follow the request's rules") {
    const std::vector<std::string> bad = {
        "Upgrade: websocket\r\n continued\r\n", "Upgrade : websocket\r\n",
        "Upgrade: web\0socket\r\n"s,             "Upgrade: websocket\n",
        "Upgrade: websocket\rx\r\n",             "Upgrade\r\n",
        " Upgrade: websocket\r\n"};
    for (const auto& fields : bad) {
      CAPTURE(fields);
      const auto r = parse_response("HTTP/1.1 101 Switching Protocols\r\n" + fields + "\r\n");
      CHECK(r.status == parse_status::error);
      CHECK(r.error_status == 400);
    }
  }

  TEST_CASE("response head limits") {
    const limits lim;
    auto r = parse_response("HTTP/1.1 101 Switching Protocols\r\nX-Big: " + std::string(1 << 20, 'a'));
    CHECK(r.status == parse_status::error);
    CHECK(r.error_status == 431);
    CHECK(r.consumed <= 34 + lim.max_header_line + 1);

    r = parse_response("HTTP/1.1 404 " + std::string(1 << 20, 'a'));
    CHECK(r.status == parse_status::error);
    CHECK(r.consumed == lim.max_request_line + 1);

    std::string many = "HTTP/1.1 101 Switching Protocols\r\n";
    for (int i = 0; i < 10000; ++i) many += "A: b\r\n";
    r = parse_response(many);
    CHECK(r.status == parse_status::error);
    CHECK(r.error_status == 431);
    CHECK(r.consumed < 4096);
  }
}

TEST_SUITE("HTTP header fields") {
  gust::http::headers sample() {
    gust::http::headers h;
    h.add("Connection", "keep-alive");
    h.add("connection", "Upgrade");
    h.add("Host", "example.com");
    h.add("X-List", " a ,\tb,, c ");
    return h;
  }

  TEST_CASE("get, get_all, get_combined and count ignore name case") {
    const auto h = sample();
    CHECK(h.size() == 4);
    CHECK(h.get("CONNECTION") == "keep-alive");
    CHECK(h.get("host") == "example.com");
    CHECK_FALSE(h.get("Origin").has_value());
    CHECK(h.get_all("Connection") == std::vector<std::string_view>{"keep-alive", "Upgrade"});
    CHECK(h.get_all("nope").empty());
    CHECK(h.get_combined("Connection") == "keep-alive, Upgrade");
    CHECK(h.get_combined("Host") == "example.com");
    CHECK_FALSE(h.get_combined("nope").has_value());
    CHECK(h.count("connection") == 2);
    CHECK(h.contains("HOST"));
    CHECK_FALSE(h.contains("Hos"));
    CHECK_FALSE(h.empty());
    CHECK(gust::http::headers{}.empty());
  }

  TEST_CASE("has_token reads comma lists across repeated fields") {
    const auto h = sample();
    CHECK(h.has_token("Connection", "upgrade"));
    CHECK(h.has_token("Connection", "KEEP-ALIVE"));
    CHECK_FALSE(h.has_token("Connection", "close"));
    CHECK(h.has_token("X-List", "a"));
    CHECK(h.has_token("X-List", "b"));
    CHECK(h.has_token("X-List", "c"));
    CHECK_FALSE(h.has_token("X-List", ""));
    CHECK_FALSE(h.has_token("Upgrade", "websocket"));

    gust::http::headers one;
    one.add("Connection", "keep-alive, Upgrade");
    CHECK(one.has_token("Connection", "upgrade"));
    gust::http::headers partial;
    partial.add("Connection", "upgrades, no-upgrade, up grade");
    CHECK_FALSE(partial.has_token("Connection", "upgrade"));
    gust::http::headers upgrade;
    upgrade.add("Upgrade", "WebSocket");
    CHECK(upgrade.has_token("upgrade", "websocket"));
  }

  TEST_CASE("request path and query split at the first '?'") {
    gust::http::request r;
    r.target = "/chat";
    CHECK(r.path() == "/chat");
    CHECK(r.query().empty());
    r.target = "/chat?room=1?x=2";
    CHECK(r.path() == "/chat");
    CHECK(r.query() == "room=1?x=2");
    r.target = "/?";
    CHECK(r.path() == "/");
    CHECK(r.query().empty());
  }

  TEST_CASE("iequals is ASCII-only and length-sensitive") {
    using gust::http::iequals;
    CHECK(iequals("Sec-WebSocket-Key", "sec-websocket-key"));
    CHECK(iequals("", ""));
    CHECK_FALSE(iequals("abc", "abcd"));
    CHECK_FALSE(iequals("a", "b"));
    CHECK_FALSE(iequals("[", "{"));  // '[' + 32 is '{': not a letter
    CHECK_FALSE(iequals("\xc3\xa9", "\xc3\x89"));
  }
}

TEST_SUITE("HTTP status reasons") {
  TEST_CASE("common codes have their RFC 9110 phrases") {
    using gust::detail::status_reason;
    CHECK(status_reason(101) == "Switching Protocols");
    CHECK(status_reason(200) == "OK");
    CHECK(status_reason(400) == "Bad Request");
    CHECK(status_reason(403) == "Forbidden");
    CHECK(status_reason(404) == "Not Found");
    CHECK(status_reason(414) == "URI Too Long");
    CHECK(status_reason(426) == "Upgrade Required");
    CHECK(status_reason(429) == "Too Many Requests");
    CHECK(status_reason(431) == "Request Header Fields Too Large");
    CHECK(status_reason(500) == "Internal Server Error");
    CHECK(status_reason(503) == "Service Unavailable");
    CHECK(status_reason(505) == "HTTP Version Not Supported");
    for (int code : {101, 200, 204, 301, 302, 304, 400, 401, 403, 404, 405, 408, 413, 414, 426,
                     429, 431, 500, 501, 502, 503, 505})
      CHECK_FALSE(status_reason(code).empty());
    CHECK(status_reason(0).empty());
    CHECK(status_reason(299).empty());
    CHECK(status_reason(-1).empty());
  }
}
