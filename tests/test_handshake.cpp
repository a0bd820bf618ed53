// The opening handshake (RFC 6455 section 4): server validation and
// answers, client request and response checks, and round trips through the
// HTTP/1.1 parsers.
#include <doctest.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base64.hpp"
#include "gust/handshake.hpp"
#include "gust/http.hpp"
#include "gust/settings.hpp"
#include "handshake_client.hpp"
#include "handshake_server.hpp"
#include "http1.hpp"
#include "support/split.hpp"

namespace {

using namespace std::string_literals;
using gust::handshake_error;
using gust::limits;
using gust::detail::parse_status;
using gust::detail::request_parser;
using gust::detail::response_parser;
using gust::test::check_every_split;
using gust::test::cutting;
using gust::test::feed_cut;

std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

const limits default_limits{};

// The round trips below also check that what they parse means the same
// fed whole, one byte at a time and cut in two at every point (the parser
// tests do this in depth).
template <class Parser>
struct parsed {
  Parser parser{default_limits};
  std::size_t consumed = 0;
};

template <class Parser>
void feed_in_pieces(parsed<Parser>& p, std::string_view input, cutting c) {
  p.consumed = feed_cut(
      input, c, [&] { return p.parser.status() == parse_status::need_more; },
      [&](std::string_view piece) { return p.parser.feed(as_bytes(piece)); });
}

std::string fields_text(const gust::http::headers& h) {
  std::string s;
  for (const auto& f : h) s += f.name + ":" + f.value + "\n";
  return s;
}

// Everything a parse produced, as one comparable string.
template <class Parser>
std::string fingerprint(parsed<Parser>& p) {
  std::string s = std::to_string(static_cast<int>(p.parser.status())) + " " +
                  std::to_string(p.consumed) + "\n";
  if constexpr (std::is_same_v<Parser, request_parser>) {
    const auto& r = p.parser.request();
    s += r.method + " " + r.target + "\n" + fields_text(r.headers);
  } else {
    const auto& r = p.parser.response();
    s += std::to_string(r.status) + " " + r.reason + "\n" + fields_text(r.headers) + r.body;
  }
  return s;
}

template <class Parser>
void parse_every_way(parsed<Parser>& whole, std::string_view input) {
  feed_in_pieces(whole, input, cutting::whole());
  check_every_split(fingerprint(whole), input.size(), [&](cutting c) {
    parsed<Parser> p;
    feed_in_pieces(p, input, c);
    return fingerprint(p);
  });
}

// Parses a request head that must be complete and well-formed HTTP.
gust::http::request parse_request(std::string_view text) {
  parsed<request_parser> whole;
  parse_every_way(whole, text);
  REQUIRE(whole.parser.status() == parse_status::done);
  return whole.parser.request();
}

gust::http::response parse_response(std::string_view text, std::size_t* consumed = nullptr) {
  parsed<response_parser> whole;
  parse_every_way(whole, text);
  REQUIRE(whole.parser.status() == parse_status::done);
  if (consumed) *consumed = whole.consumed;
  return whole.parser.response();
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
    "GET /socket?room=42 HTTP/1.1\r\n"
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
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Cookie: session=0123456789abcdef; theme=dark\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n";

// A valid upgrade request whose fields are `fields` instead of the usual
// ones, to break one rule at a time.
struct request_builder {
  std::string method = "GET";
  std::vector<std::pair<std::string, std::string>> fields = {
      {"Host", "example.com"},
      {"Upgrade", "websocket"},
      {"Connection", "Upgrade"},
      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
      {"Sec-WebSocket-Version", "13"},
  };

  request_builder& without(std::string_view name) {
    std::erase_if(fields, [&](const auto& f) { return f.first == name; });
    return *this;
  }
  request_builder& set(std::string_view name, std::string_view value) {
    without(name);
    fields.emplace_back(name, value);
    return *this;
  }
  request_builder& add(std::string_view name, std::string_view value) {
    fields.emplace_back(name, value);
    return *this;
  }
  std::string text() const {
    std::string s = method + " /ws HTTP/1.1\r\n";
    for (const auto& [n, v] : fields) s += n + ": " + v + "\r\n";
    return s + "\r\n";
  }
};

struct validation {
  gust::http::request request;  // owns what `out` points into
  gust::detail::upgrade_request out;
  std::optional<gust::detail::upgrade_rejection> rejection;
};

std::unique_ptr<validation> validate(std::string_view text,
                                     const gust::server_options& opts = {}) {
  auto v = std::make_unique<validation>();
  v->request = parse_request(text);
  v->rejection = gust::detail::validate_upgrade_request(v->request, opts, v->out);
  return v;
}

void check_rejected(const request_builder& b, int status, handshake_error error,
                    const gust::server_options& opts = {}) {
  const auto v = validate(b.text(), opts);
  REQUIRE(v->rejection.has_value());
  CHECK(v->rejection->status == status);
  CHECK(v->rejection->error == error);
  CHECK_FALSE(v->rejection->reason.empty());
}

void check_accepted(const request_builder& b, const gust::server_options& opts = {}) {
  const auto v = validate(b.text(), opts);
  if (v->rejection) {
    CAPTURE(v->rejection->reason);
    CHECK_FALSE(v->rejection.has_value());
  }
}

constexpr std::string_view rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view rfc_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// The response to the RFC's request: what validate_upgrade_response should
// accept when the client offered "chat, superchat".
struct response_builder {
  int status = 101;
  std::string reason = "Switching Protocols";
  std::vector<std::pair<std::string, std::string>> fields = {
      {"Upgrade", "websocket"},
      {"Connection", "Upgrade"},
      {"Sec-WebSocket-Accept", std::string(rfc_accept)},
  };
  std::string body;

  response_builder& without(std::string_view name) {
    std::erase_if(fields, [&](const auto& f) { return f.first == name; });
    return *this;
  }
  response_builder& set(std::string_view name, std::string_view value) {
    without(name);
    fields.emplace_back(name, value);
    return *this;
  }
  response_builder& add(std::string_view name, std::string_view value) {
    fields.emplace_back(name, value);
    return *this;
  }
  gust::http::response response() const {
    gust::http::response r;
    r.status = status;
    r.reason = reason;
    for (const auto& [n, v] : fields) r.headers.add(n, v);
    r.body = body;
    return r;
  }
};

gust::client_options rfc_client() {
  gust::client_options o;
  o.host = "server.example.com";
  o.target = "/chat";
  o.origin = "http://example.com";
  o.subprotocols = {"chat", "superchat"};
  return o;
}

struct client_check {
  std::optional<gust::handshake_failure> failure;
  gust::detail::upgrade_response out;
};

client_check check_response(const response_builder& b,
                            const gust::client_options& opts = rfc_client()) {
  client_check c;
  c.failure = gust::detail::validate_upgrade_response(b.response(), rfc_key, opts, c.out);
  return c;
}

void check_client_fails(const response_builder& b, handshake_error error,
                        const gust::client_options& opts = rfc_client()) {
  const auto c = check_response(b, opts);
  REQUIRE(c.failure.has_value());
  CHECK(c.failure->error == error);
  CHECK_FALSE(c.failure->detail.empty());
  // Every failure carries what the server said, for logs and the app.
  REQUIRE(c.failure->response.has_value());
  CHECK(c.failure->response->status == b.status);
  CHECK(c.failure->response->reason == b.reason);
  CHECK(c.failure->response->headers.size() == b.fields.size());
  CHECK(c.failure->response->body == b.body);
}

}  // namespace

TEST_SUITE("RFC 6455 4.2.1 server handshake") {
  TEST_CASE("the RFC 6455 section 1.3 example") {
    const auto v = validate(rfc_request);
    REQUIRE_FALSE(v->rejection.has_value());
    CHECK(v->out.key == rfc_key);
    CHECK(v->out.subprotocols == std::vector<std::string_view>{"chat", "superchat"});
    CHECK(gust::detail::accept_value(v->out.key) == rfc_accept);
  }

  TEST_CASE("the offers are views into the request") {
    const auto v = validate(rfc_request);
    REQUIRE(v->out.subprotocols.size() == 2);
    const auto field = *v->request.headers.get("Sec-WebSocket-Protocol");
    CHECK(v->out.subprotocols[0].data() == field.data());
  }

  TEST_CASE("a browser request with extensions, cookies and a query") {
    const auto v = validate(chrome_request);
    REQUIRE_FALSE(v->rejection.has_value());
    CHECK(v->out.key == "x3JJHMbDL1EzLkh9GBhXDw==");
    CHECK(v->out.subprotocols.empty());
    CHECK(v->request.path() == "/socket");
    CHECK(v->request.headers.get("Sec-WebSocket-Extensions") ==
          "permessage-deflate; client_max_window_bits");
  }

  TEST_CASE("Connection as a token list, Firefox style") {
    check_accepted(request_builder{}.set("Connection", "keep-alive, Upgrade"));
  }

  TEST_CASE("Connection split over two fields") {
    check_accepted(request_builder{}.set("Connection", "keep-alive").add("Connection", "upgrade"));
  }

  TEST_CASE("Upgrade and Connection values are case-insensitive") {
    check_accepted(request_builder{}.set("Upgrade", "WebSocket").set("Connection", "UPGRADE"));
    check_accepted(request_builder{}.set("Upgrade", "h2c, websocket"));
  }

  TEST_CASE("header names in any case") {
    request_builder b;
    b.fields = {{"host", "example.com"},
                {"UPGRADE", "websocket"},
                {"connection", "upgrade"},
                {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
                {"SEC-WEBSOCKET-VERSION", "13"},
                {"sec-websocket-protocol", "a"}};
    const auto v = validate(b.text());
    REQUIRE_FALSE(v->rejection.has_value());
    CHECK(v->out.subprotocols == std::vector<std::string_view>{"a"});
  }

  TEST_CASE("a method other than GET is 400") {
    request_builder b;
    b.method = "POST";
    check_rejected(b, 400, handshake_error::bad_request);
    b.method = "get";  // methods are case-sensitive (RFC 9110 9.1)
    check_rejected(b, 400, handshake_error::bad_request);
  }

  TEST_CASE("a missing Host is 400") {
    check_rejected(request_builder{}.without("Host"), 400, handshake_error::bad_request);
  }

  TEST_CASE("two Host fields are 400") {
    check_rejected(request_builder{}.add("Host", "other.example"), 400,
                   handshake_error::bad_request);
  }

  TEST_CASE("an invalid Host is 400") {
    check_rejected(request_builder{}.set("Host", ""), 400, handshake_error::bad_request);
    check_rejected(request_builder{}.set("Host", "a b"), 400, handshake_error::bad_request);
    check_rejected(request_builder{}.set("Host", "user@host"), 400, handshake_error::bad_request);
    check_rejected(request_builder{}.set("Host", "host/path"), 400, handshake_error::bad_request);
    check_accepted(request_builder{}.set("Host", "[::1]:8080"));
    check_accepted(request_builder{}.set("Host", "127.0.0.1:80"));
  }

  TEST_CASE("a missing or wrong Upgrade is 400") {
    check_rejected(request_builder{}.without("Upgrade"), 400, handshake_error::bad_request);
    check_rejected(request_builder{}.set("Upgrade", "h2c"), 400, handshake_error::bad_request);
    check_rejected(request_builder{}.set("Upgrade", "websockets"), 400,
                   handshake_error::bad_request);
  }

  TEST_CASE("a missing or wrong Connection is 400") {
    check_rejected(request_builder{}.without("Connection"), 400, handshake_error::bad_request);
    check_rejected(request_builder{}.set("Connection", "keep-alive"), 400,
                   handshake_error::bad_request);
    check_rejected(request_builder{}.set("Connection", "upgraded"), 400,
                   handshake_error::bad_request);
  }

  TEST_CASE("a missing Sec-WebSocket-Key is 400") {
    check_rejected(request_builder{}.without("Sec-WebSocket-Key"), 400,
                   handshake_error::bad_request);
  }

  TEST_CASE("two Sec-WebSocket-Key fields are 400, even when equal") {
    check_rejected(request_builder{}.add("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="), 400,
                   handshake_error::bad_request);
    check_rejected(request_builder{}.add("Sec-WebSocket-Key", rfc_key), 400,
                   handshake_error::bad_request);
  }

  TEST_CASE("a Sec-WebSocket-Key that is not base64 of 16 bytes is 400") {
    for (const auto* key : {"", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=",
                            "dGhlIHNhbXBsZSBub25j", "dGhlIHNhbXBsZSBub25jZSE=",
                            "dGhlIHNhbXBsZSBub25jZQ==dGhl", "dGhlIHNhbXBs ZSBub25jZQ==",
                            "!GhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ==,x"}) {
      CAPTURE(key);
      check_rejected(request_builder{}.set("Sec-WebSocket-Key", key), 400,
                     handshake_error::bad_request);
    }
  }

  TEST_CASE("Sec-WebSocket-Version other than 13 is 426 unsupported_version") {
    for (const auto* version : {"8", "12", "14", "013", "13, 8", "", "thirteen"}) {
      CAPTURE(version);
      check_rejected(request_builder{}.set("Sec-WebSocket-Version", version), 426,
                     handshake_error::unsupported_version);
    }
  }

  TEST_CASE("a missing Sec-WebSocket-Version is 426") {
    check_rejected(request_builder{}.without("Sec-WebSocket-Version"), 426,
                   handshake_error::unsupported_version);
  }

  TEST_CASE("two Sec-WebSocket-Version fields are 426") {
    check_rejected(request_builder{}.add("Sec-WebSocket-Version", "13"), 426,
                   handshake_error::unsupported_version);
  }

  TEST_CASE("the 426 answer carries Sec-WebSocket-Version: 13 (RFC 6455 4.2.2)") {
    const auto v = validate(request_builder{}.set("Sec-WebSocket-Version", "8").text());
    REQUIRE(v->rejection.has_value());
    gust::http::headers fields;
    fields.add("Sec-WebSocket-Version", "13");
    const auto text = gust::detail::write_response(v->rejection->status, {}, fields,
                                                   v->rejection->reason, "gust");
    const std::string expected = "HTTP/1.1 426 Upgrade Required\r\n"
                                 "Server: gust\r\n"
                                 "Sec-WebSocket-Version: 13\r\n"
                                 "Content-Type: text/plain; charset=utf-8\r\n"
                                 "Content-Length: " +
                                 std::to_string(v->rejection->reason.size()) +
                                 "\r\n"
                                 "Connection: close\r\n"
                                 "\r\n" +
                                 v->rejection->reason;
    CHECK(text == expected);
    const auto back = parse_response(text);
    CHECK(back.status == 426);
    CHECK(back.headers.get("Sec-WebSocket-Version") == "13");
  }

  TEST_CASE("an Origin outside allowed_origins is 403") {
    gust::server_options opts;
    opts.allowed_origins = {"https://good.example", "https://also.example"};
    check_rejected(request_builder{}.set("Origin", "https://evil.example"), 403,
                   handshake_error::forbidden_origin, opts);
    check_rejected(request_builder{}.set("Origin", "https://good.example.evil"), 403,
                   handshake_error::forbidden_origin, opts);
    check_rejected(request_builder{}.set("Origin", "null"), 403,
                   handshake_error::forbidden_origin, opts);
  }

  TEST_CASE("an allowed Origin matches case-insensitively") {
    gust::server_options opts;
    opts.allowed_origins = {"https://good.example"};
    check_accepted(request_builder{}.set("Origin", "https://good.example"), opts);
    check_accepted(request_builder{}.set("Origin", "HTTPS://Good.Example"), opts);
  }

  TEST_CASE("a missing Origin is 403 unless allow_missing_origin") {
    gust::server_options opts;
    opts.allowed_origins = {"https://good.example"};
    check_accepted(request_builder{}, opts);
    opts.allow_missing_origin = false;
    check_rejected(request_builder{}, 403, handshake_error::forbidden_origin, opts);
  }

  TEST_CASE("without an Origin policy any Origin is accepted") {
    gust::server_options opts;
    opts.allow_missing_origin = false;  // only applies with a list
    check_accepted(request_builder{}.set("Origin", "https://anything.example"), opts);
    check_accepted(request_builder{}, opts);
  }

  TEST_CASE("two Origin fields are 400") {
    gust::server_options opts;
    opts.allowed_origins = {"https://good.example"};
    const auto b = request_builder{}
                       .set("Origin", "https://good.example")
                       .add("Origin", "https://evil.example");
    check_rejected(b, 400, handshake_error::bad_request, opts);
    check_rejected(b, 400, handshake_error::bad_request);
  }

  TEST_CASE("subprotocol offers over several fields, in client order") {
    const auto v = validate(request_builder{}
                                .add("Sec-WebSocket-Protocol", "v2.chat, ,v1.chat ")
                                .add("sec-websocket-protocol", "\tmqtt")
                                .text());
    REQUIRE_FALSE(v->rejection.has_value());
    CHECK(v->out.subprotocols == std::vector<std::string_view>{"v2.chat", "v1.chat", "mqtt"});
  }

  TEST_CASE("an offer that is not a token is 400") {
    for (const auto* offer : {"chat room", "chat, \"quoted\"", "a/b", "chat;v=1", "x@y"}) {
      CAPTURE(offer);
      check_rejected(request_builder{}.add("Sec-WebSocket-Protocol", offer), 400,
                     handshake_error::bad_request);
    }
  }

  TEST_CASE("a request body is 400: its bytes would be read as frames") {
    check_rejected(request_builder{}.add("Content-Length", "5"), 400,
                   handshake_error::bad_request);
    check_rejected(request_builder{}.add("Transfer-Encoding", "chunked"), 400,
                   handshake_error::bad_request);
    check_accepted(request_builder{}.add("Content-Length", "0"));
  }

  TEST_CASE("a failed validation leaves no result behind") {
    gust::detail::upgrade_request out;
    const auto req = parse_request(request_builder{}.without("Host").text());
    CHECK(gust::detail::validate_upgrade_request(req, {}, out).has_value());
    CHECK(out.key.empty());
    CHECK(out.subprotocols.empty());
  }
}

TEST_SUITE("RFC 6455 4.2.2 server response") {
  TEST_CASE("accept_value of the RFC key") {
    CHECK(gust::detail::accept_value(rfc_key) == rfc_accept);
    CHECK(gust::detail::accept_value("x3JJHMbDL1EzLkh9GBhXDw==") ==
          "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  }

  TEST_CASE("select_subprotocol takes the server's first choice that was offered") {
    const gust::http::request req;
    const std::vector<std::string_view> offered = {"v1", "v2", "v3"};
    gust::server_options opts;
    opts.subprotocols = {"v3", "v2"};
    CHECK(gust::detail::select_subprotocol(req, offered, opts) == "v3");
    opts.subprotocols = {"v9", "v2", "v1"};
    CHECK(gust::detail::select_subprotocol(req, offered, opts) == "v2");
    opts.subprotocols = {"V1"};  // exact match only
    CHECK_FALSE(gust::detail::select_subprotocol(req, offered, opts).has_value());
    opts.subprotocols = {};
    CHECK_FALSE(gust::detail::select_subprotocol(req, offered, opts).has_value());
    opts.subprotocols = {"v1"};
    CHECK_FALSE(gust::detail::select_subprotocol(req, {}, opts).has_value());
  }

  TEST_CASE("a select_subprotocol callback overrides the list") {
    const auto v = validate(request_builder{}.add("Sec-WebSocket-Protocol", "a, b, c").text());
    REQUIRE_FALSE(v->rejection.has_value());
    gust::server_options opts;
    opts.subprotocols = {"a"};
    std::vector<std::string> seen;
    const gust::http::request* seen_request = nullptr;
    opts.select_subprotocol = [&](const gust::http::request& r,
                                  std::span<const std::string_view> offers)
        -> std::optional<std::string> {
      seen_request = &r;
      seen.assign(offers.begin(), offers.end());
      return "c";
    };
    CHECK(gust::detail::select_subprotocol(v->request, v->out.subprotocols, opts) == "c");
    CHECK(seen_request == &v->request);
    CHECK(seen == std::vector<std::string>{"a", "b", "c"});

    opts.select_subprotocol = [](const gust::http::request&, std::span<const std::string_view>)
        -> std::optional<std::string> { return std::nullopt; };
    CHECK_FALSE(gust::detail::select_subprotocol(v->request, v->out.subprotocols, opts));
  }

  TEST_CASE("a callback's choice that was not offered is not sent") {
    gust::server_options opts;
    opts.select_subprotocol = [](const gust::http::request&, std::span<const std::string_view>)
        -> std::optional<std::string> { return "zzz"; };
    const std::vector<std::string_view> offered = {"a"};
    CHECK_FALSE(gust::detail::select_subprotocol({}, offered, opts).has_value());
  }

  TEST_CASE("write_switching_protocols, minimal") {
    const auto text = gust::detail::write_switching_protocols(rfc_accept, {}, {}, {}, {});
    CHECK(text ==
          "HTTP/1.1 101 Switching Protocols\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "\r\n");
  }

  TEST_CASE("write_switching_protocols with everything") {
    gust::http::headers extra;
    extra.add("Set-Cookie", "id=1; HttpOnly");
    extra.add("X-Trace", "abc");
    const auto text = gust::detail::write_switching_protocols(
        rfc_accept, "chat", "permessage-deflate; server_no_context_takeover", extra, "gust/0.1");
    CHECK(text ==
          "HTTP/1.1 101 Switching Protocols\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "Sec-WebSocket-Protocol: chat\r\n"
          "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
          "Server: gust/0.1\r\n"
          "Set-Cookie: id=1; HttpOnly\r\n"
          "X-Trace: abc\r\n"
          "\r\n");
  }

  TEST_CASE("extra fields cannot inject lines or contradict the handshake") {
    gust::http::headers extra;
    extra.add("X-Evil", "a\r\nSet-Cookie: stolen=1");
    extra.add("X Evil", "b");
    extra.add("", "c");
    extra.add("Sec-WebSocket-Protocol", "other");
    extra.add("content-length", "10");
    extra.add("Connection", "close");
    extra.add("Upgrade", "h2c");
    extra.add("X-Fine", "yes");
    const auto text =
        gust::detail::write_switching_protocols(rfc_accept, {}, {}, extra, "bad\r\nX: y");
    CHECK(text ==
          "HTTP/1.1 101 Switching Protocols\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "X-Fine: yes\r\n"
          "\r\n");
  }

  TEST_CASE("write_response with a plain-text body") {
    const auto text =
        gust::detail::write_response(403, "Forbidden", {}, "Origin not allowed", "gust");
    CHECK(text ==
          "HTTP/1.1 403 Forbidden\r\n"
          "Server: gust\r\n"
          "Content-Type: text/plain; charset=utf-8\r\n"
          "Content-Length: 18\r\n"
          "Connection: close\r\n"
          "\r\n"
          "Origin not allowed");
  }

  TEST_CASE("write_response without a body or server header, standard reason") {
    const auto text = gust::detail::write_response(400, {}, {}, {}, {});
    CHECK(text ==
          "HTTP/1.1 400 Bad Request\r\n"
          "Content-Length: 0\r\n"
          "Connection: close\r\n"
          "\r\n");
  }

  TEST_CASE("write_response keeps the application's Content-Type and drops framing fields") {
    gust::http::headers fields;
    fields.add("content-type", "application/json");
    fields.add("Content-Length", "999");
    fields.add("Transfer-Encoding", "chunked");
    fields.add("Connection", "keep-alive");
    fields.add("Cache-Control", "no-store");
    const auto text = gust::detail::write_response(200, "OK", fields, "{}", "gust");
    CHECK(text ==
          "HTTP/1.1 200 OK\r\n"
          "Server: gust\r\n"
          "content-type: application/json\r\n"
          "Cache-Control: no-store\r\n"
          "Content-Length: 2\r\n"
          "Connection: close\r\n"
          "\r\n"
          "{}");
  }

  TEST_CASE("write_response cannot be split by its reason phrase") {
    const auto text = gust::detail::write_response(503, "Busy\r\nX-Injected: 1", {}, {}, {});
    CHECK(text.starts_with("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"));
  }

  TEST_CASE("write_response answers parse back") {
    gust::http::headers fields;
    fields.add("Retry-After", "30");
    const auto text = gust::detail::write_response(429, {}, fields, "slow down", "gust");
    std::size_t consumed = 0;
    const auto r = parse_response(text + "junk", &consumed);
    CHECK(consumed == text.size());
    CHECK(r.status == 429);
    CHECK(r.reason == "Too Many Requests");
    CHECK(r.headers.get("Retry-After") == "30");
    CHECK(r.body == "slow down");
  }
}

TEST_SUITE("RFC 6455 4.1 client handshake") {
  TEST_CASE("make_key: 16 bytes from the random source, base64") {
    int calls = 0;
    const gust::random_source counting = [&](std::span<std::byte> out) {
      ++calls;
      CHECK(out.size() == 16);
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::byte>(i);
    };
    CHECK(gust::detail::make_key(counting) == "AAECAwQFBgcICQoLDA0ODw==");
    CHECK(calls == 1);
  }

  TEST_CASE("make_key without a source uses the operating system") {
    const auto a = gust::detail::make_key({});
    const auto b = gust::detail::make_key({});
    CHECK(a.size() == 24);
    const auto decoded = gust::detail::base64_decode(a);
    REQUIRE(decoded.has_value());
    CHECK(decoded->size() == 16);
    CHECK(a != b);
  }

  TEST_CASE("write_upgrade_request, the RFC example") {
    auto opts = rfc_client();
    opts.user_agent.clear();
    CHECK(gust::detail::write_upgrade_request(opts, rfc_key) ==
          "GET /chat HTTP/1.1\r\n"
          "Host: server.example.com\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          "Sec-WebSocket-Version: 13\r\n"
          "Origin: http://example.com\r\n"
          "Sec-WebSocket-Protocol: chat, superchat\r\n"
          "\r\n");
  }

  TEST_CASE("write_upgrade_request with extensions, user agent and extra fields") {
    gust::client_options opts;
    opts.host = "localhost:9001";
    opts.target = "/runCase?case=1&agent=gust";
    opts.extensions = {"permessage-deflate; client_max_window_bits",
                       "permessage-deflate"};
    opts.extra_headers.add("Authorization", "Bearer abc");
    opts.extra_headers.add("Sec-WebSocket-Key", "sneaky");
    opts.extra_headers.add("X-Bad", "a\r\nb");
    CHECK(gust::detail::write_upgrade_request(opts, rfc_key) ==
          "GET /runCase?case=1&agent=gust HTTP/1.1\r\n"
          "Host: localhost:9001\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          "Sec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, "
          "permessage-deflate\r\n"
          "User-Agent: gust\r\n"
          "Authorization: Bearer abc\r\n"
          "\r\n");
  }

  TEST_CASE("write_upgrade_request keeps the request line one line") {
    gust::client_options opts;
    opts.host = "h";
    opts.user_agent.clear();
    opts.target = "";
    CHECK(gust::detail::write_upgrade_request(opts, rfc_key).starts_with("GET / HTTP/1.1\r\n"));
    opts.target = "/a b\r\nX: y#frag";
    CHECK(gust::detail::write_upgrade_request(opts, rfc_key)
              .starts_with("GET /a%20b%0D%0AX:%20y HTTP/1.1\r\nHost: h\r\n"));
    opts.target = "?q=1";
    CHECK(gust::detail::write_upgrade_request(opts, rfc_key).starts_with("GET /?q=1 HTTP/1.1\r\n"));
  }

  TEST_CASE("a valid response, with and without a subprotocol") {
    auto c = check_response(response_builder{});
    CHECK_FALSE(c.failure.has_value());
    CHECK(c.out.subprotocol.empty());
    CHECK(c.out.extensions.empty());

    c = check_response(response_builder{}.add("Sec-WebSocket-Protocol", "superchat"));
    CHECK_FALSE(c.failure.has_value());
    CHECK(c.out.subprotocol == "superchat");
  }

  TEST_CASE("Upgrade and Connection are read case-insensitively, Connection as a list") {
    auto c = check_response(
        response_builder{}.set("Upgrade", "WebSocket").set("Connection", "keep-alive, UPGRADE"));
    CHECK_FALSE(c.failure.has_value());
  }

  TEST_CASE("a status other than 101 fails with the response kept") {
    response_builder b;
    b.status = 404;
    b.reason = "Not Found";
    b.fields = {{"Content-Type", "text/plain"}, {"Content-Length", "9"}};
    b.body = "not here!";
    check_client_fails(b, handshake_error::unexpected_status);
    const auto c = check_response(b);
    CHECK(c.failure->detail.find("404") != std::string::npos);

    b = response_builder{};
    b.status = 200;
    b.reason = "OK";
    check_client_fails(b, handshake_error::unexpected_status);
  }

  TEST_CASE("a missing or wrong Upgrade fails") {
    check_client_fails(response_builder{}.without("Upgrade"), handshake_error::invalid_upgrade);
    check_client_fails(response_builder{}.set("Upgrade", "h2c"), handshake_error::invalid_upgrade);
    check_client_fails(response_builder{}.set("Upgrade", "websocket, h2c"),
                       handshake_error::invalid_upgrade);
    check_client_fails(response_builder{}.set("Upgrade", ""), handshake_error::invalid_upgrade);
  }

  TEST_CASE("a missing or wrong Connection fails") {
    check_client_fails(response_builder{}.without("Connection"),
                       handshake_error::invalid_upgrade);
    check_client_fails(response_builder{}.set("Connection", "close"),
                       handshake_error::invalid_upgrade);
  }

  TEST_CASE("a missing Sec-WebSocket-Accept fails") {
    check_client_fails(response_builder{}.without("Sec-WebSocket-Accept"),
                       handshake_error::invalid_accept);
  }

  TEST_CASE("a wrong Sec-WebSocket-Accept fails") {
    check_client_fails(response_builder{}.set("Sec-WebSocket-Accept", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="),
                       handshake_error::invalid_accept);
    // base64 is case-sensitive: an accept compared case-insensitively would
    // be a much weaker check.
    check_client_fails(response_builder{}.set("Sec-WebSocket-Accept", "S3PPLMBITXAQ9KYGZZHZRBK+XOO="),
                       handshake_error::invalid_accept);
    check_client_fails(response_builder{}.set("Sec-WebSocket-Accept", rfc_key),
                       handshake_error::invalid_accept);
  }

  TEST_CASE("two Sec-WebSocket-Accept fields fail") {
    check_client_fails(response_builder{}.add("Sec-WebSocket-Accept", rfc_accept),
                       handshake_error::invalid_accept);
  }

  TEST_CASE("a subprotocol when none was offered fails") {
    auto opts = rfc_client();
    opts.subprotocols.clear();
    check_client_fails(response_builder{}.add("Sec-WebSocket-Protocol", "chat"),
                       handshake_error::unexpected_subprotocol, opts);
  }

  TEST_CASE("a subprotocol that was not offered fails") {
    check_client_fails(response_builder{}.add("Sec-WebSocket-Protocol", "mqtt"),
                       handshake_error::unexpected_subprotocol);
    check_client_fails(response_builder{}.add("Sec-WebSocket-Protocol", "CHAT"),
                       handshake_error::unexpected_subprotocol);
    check_client_fails(response_builder{}.add("Sec-WebSocket-Protocol", ""),
                       handshake_error::unexpected_subprotocol);
  }

  TEST_CASE("more than one subprotocol fails") {
    check_client_fails(response_builder{}.add("Sec-WebSocket-Protocol", "chat, superchat"),
                       handshake_error::unexpected_subprotocol);
    check_client_fails(response_builder{}
                           .add("Sec-WebSocket-Protocol", "chat")
                           .add("Sec-WebSocket-Protocol", "chat"),
                       handshake_error::unexpected_subprotocol);
  }

  TEST_CASE("an extension that was not offered fails") {
    check_client_fails(response_builder{}.add("Sec-WebSocket-Extensions", "permessage-deflate"),
                       handshake_error::unexpected_extension);
    auto opts = rfc_client();
    opts.extensions = {"permessage-deflate; client_max_window_bits"};
    check_client_fails(response_builder{}.add("Sec-WebSocket-Extensions",
                                              "permessage-deflate, x-webkit-deflate-frame"),
                       handshake_error::unexpected_extension, opts);
    check_client_fails(response_builder{}.add("Sec-WebSocket-Extensions", "client_max_window_bits"),
                       handshake_error::unexpected_extension, opts);
  }

  TEST_CASE("a malformed Sec-WebSocket-Extensions fails") {
    auto opts = rfc_client();
    opts.extensions = {"permessage-deflate"};
    for (const auto* value : {"; x=1", "permessage deflate", "permessage-deflate; a=\"open",
                              "\"permessage-deflate\""}) {
      CAPTURE(value);
      check_client_fails(response_builder{}.add("Sec-WebSocket-Extensions", value),
                         handshake_error::unexpected_extension, opts);
    }
  }

  TEST_CASE("offered extensions are accepted with their parameters and kept whole") {
    auto opts = rfc_client();
    opts.extensions = {"permessage-deflate; client_max_window_bits, x-test", "Foo"};
    auto c = check_response(
        response_builder{}
            .add("Sec-WebSocket-Extensions",
                 "permessage-deflate; server_no_context_takeover; client_max_window_bits=10")
            .add("Sec-WebSocket-Extensions", "foo; note=\"a, b; c\", x-test"),
        opts);
    CHECK_FALSE(c.failure.has_value());
    CHECK(c.out.extensions ==
          "permessage-deflate; server_no_context_takeover; client_max_window_bits=10, "
          "foo; note=\"a, b; c\", x-test");
  }
}

TEST_SUITE("handshake round trips") {
  TEST_CASE("client request -> server validation -> 101 -> client validation") {
    gust::client_options copts;
    copts.host = "example.com:8080";
    copts.target = "/live?channel=7";
    copts.origin = "https://example.com";
    copts.subprotocols = {"v2.json", "v1.json"};
    copts.extensions = {"permessage-deflate; client_max_window_bits"};
    copts.extra_headers.add("Cookie", "session=abc");
    const gust::random_source fixed = [](std::span<std::byte> out) {
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::byte>(0xA0 + i);
    };
    const auto key = gust::detail::make_key(fixed);
    const std::string request_text = gust::detail::write_upgrade_request(copts, key);

    // Frame bytes sent right behind the request stay for the frame parser.
    const std::string frame = "\x82\x80\x00\x00\x00\x00"s;
    parsed<request_parser> server_side;
    const std::string wire = request_text + frame;
    feed_in_pieces(server_side, wire, cutting::whole());
    REQUIRE(server_side.parser.status() == parse_status::done);
    CHECK(server_side.consumed == request_text.size());
    const auto req = parse_request(request_text);
    CHECK(req.path() == "/live");
    CHECK(req.query() == "channel=7");
    CHECK(req.headers.get("Cookie") == "session=abc");

    gust::server_options sopts;
    sopts.subprotocols = {"v1.json", "v2.json"};
    sopts.allowed_origins = {"https://example.com"};
    gust::detail::upgrade_request up;
    REQUIRE_FALSE(gust::detail::validate_upgrade_request(req, sopts, up).has_value());
    CHECK(up.key == key);
    CHECK(up.subprotocols == std::vector<std::string_view>{"v2.json", "v1.json"});
    const auto chosen = gust::detail::select_subprotocol(req, up.subprotocols, sopts);
    REQUIRE(chosen.has_value());
    CHECK(*chosen == "v1.json");

    const auto response_text = gust::detail::write_switching_protocols(
        gust::detail::accept_value(up.key), *chosen, "permessage-deflate", {}, "gust");
    std::size_t consumed = 0;
    const auto resp = parse_response(response_text + "\x81\x02hi"s, &consumed);
    CHECK(consumed == response_text.size());
    CHECK(resp.status == 101);

    gust::detail::upgrade_response result;
    const auto failure = gust::detail::validate_upgrade_response(resp, key, copts, result);
    if (failure) FAIL(failure->detail);
    CHECK(result.subprotocol == "v1.json");
    CHECK(result.extensions == "permessage-deflate");
  }

  TEST_CASE("a minimal client against a default server") {
    gust::client_options copts;
    copts.host = "localhost";
    const auto key = gust::detail::make_key({});
    const auto req = parse_request(gust::detail::write_upgrade_request(copts, key));
    gust::detail::upgrade_request up;
    REQUIRE_FALSE(gust::detail::validate_upgrade_request(req, {}, up).has_value());
    CHECK(up.subprotocols.empty());
    CHECK_FALSE(gust::detail::select_subprotocol(req, up.subprotocols, {}).has_value());
    const auto resp = parse_response(gust::detail::write_switching_protocols(
        gust::detail::accept_value(up.key), {}, {}, {}, {}));
    gust::detail::upgrade_response result;
    CHECK_FALSE(gust::detail::validate_upgrade_response(resp, key, copts, result).has_value());
    CHECK(result.subprotocol.empty());
  }

  TEST_CASE("a rejection parses back and fails the client with its body") {
    gust::client_options copts;
    copts.host = "localhost";
    copts.origin = "https://evil.example";
    const auto key = gust::detail::make_key({});
    const auto req = parse_request(gust::detail::write_upgrade_request(copts, key));
    gust::server_options sopts;
    sopts.allowed_origins = {"https://good.example"};
    gust::detail::upgrade_request up;
    const auto rejection = gust::detail::validate_upgrade_request(req, sopts, up);
    REQUIRE(rejection.has_value());
    CHECK(rejection->error == handshake_error::forbidden_origin);
    const auto resp = parse_response(
        gust::detail::write_response(rejection->status, {}, {}, rejection->reason, "gust"));
    gust::detail::upgrade_response result;
    const auto failure = gust::detail::validate_upgrade_response(resp, key, copts, result);
    REQUIRE(failure.has_value());
    CHECK(failure->error == handshake_error::unexpected_status);
    REQUIRE(failure->response.has_value());
    CHECK(failure->response->status == 403);
    CHECK(failure->response->body == rejection->reason);
  }
}

TEST_SUITE("handshake errors") {
  TEST_CASE("every handshake_error has its own name") {
    std::set<std::string_view> names;
    for (int e = 0; e <= static_cast<int>(handshake_error::eof); ++e) {
      const auto name = gust::to_string(static_cast<handshake_error>(e));
      CHECK_FALSE(name.empty());
      names.insert(name);
    }
    CHECK(names.size() == static_cast<std::size_t>(handshake_error::eof) + 1);
    CHECK(gust::to_string(handshake_error::invalid_accept) == "invalid_accept");
  }
}
