// Fuzz target: the server's request-head parser (request_parser) and the
// upgrade checks that follow it (validate_upgrade_request, the subprotocol
// choice and the 101 written back).
//
// Input layout:
//   byte 0    flags
//             0x01 tight limits from bytes 1-4, else the defaults
//             0x02 the server speaks "chat" and "superchat" (else "superchat")
//             0x04 allowed_origins = {"https://example.com"}
//             0x08 allow_missing_origin = false
//             0x10 select_subprotocol callback (picks the client's last offer)
//   byte 1    max_handshake_size = 16 * (b + 1)  } with 0x01
//   byte 2    max_request_line = 4 * (b + 1)     }
//   byte 3    max_header_line = 4 * (b + 1)      }
//   byte 4    max_header_count = b % 64          }
//   byte 5    n: the low 4 bits are the number of chunk-plan bytes
//   n bytes   chunk lengths, in a cycle (0: all the rest)
//   the rest  the bytes the client sends
//
// Oracles:
//   - fed in chunks or whole: the same status, bytes consumed, error and
//     request; nothing consumed once done or failed;
//   - with unlimited limits it agrees with a reference parser written from
//     RFC 9112 (strict: CRLF only, no obs-fold, token names, no controls);
//   - a limit error (414/431) only when the consumed bytes really pass a
//     limit, and a request that passed honours every limit;
//   - the parsed request prints and parses back to itself;
//   - validate_upgrade_request agrees with a reference of RFC 6455 4.2.1
//     (status included), and an accepted request leads to a 101 that the
//     client side (response_parser + validate_upgrade_response) accepts with
//     the same subprotocol and extension.
#include <string>
#include <vector>

#include "handshake_client.hpp"
#include "handshake_server.hpp"
#include "http1.hpp"
#include "ref_http.hpp"
#include "support.hpp"

using namespace gust;
using namespace gust::fuzz;

namespace {

struct parsed {
  detail::parse_status status = detail::parse_status::need_more;
  int error = 0;
  std::size_t consumed = 0;
  http::request request;
};

parsed run_parser(const gust::limits& lim, std::string_view in, std::string_view plan) {
  detail::request_parser p(lim);
  parsed r;
  std::size_t pos = 0, i = 0;
  while (pos < in.size()) {
    std::size_t len = plan.empty() ? 0 : static_cast<std::uint8_t>(plan[i++ % plan.size()]);
    if (len == 0 || len > in.size() - pos) len = in.size() - pos;
    const std::size_t used = p.feed(as_bytes(in.substr(pos, len)));
    FUZZ_CHECK(used <= len);
    r.consumed += used;
    if (p.status() == detail::parse_status::need_more) {
      FUZZ_CHECK_MSG(used == len, "need_more without consuming everything");
    } else {
      break;
    }
    pos += len;
  }
  r.status = p.status();
  if (r.status != detail::parse_status::need_more) {
    FUZZ_CHECK_MSG(p.feed(as_bytes("GET / HTTP/1.1\r\n\r\n")) == 0, "feed after the end consumed bytes");
    FUZZ_CHECK(p.status() == r.status);
  }
  if (r.status == detail::parse_status::error) r.error = p.error().status;
  if (r.status == detail::parse_status::done) r.request = p.request();
  return r;
}

bool same(const http::request& a, const http::request& b) {
  if (a.method != b.method || a.target != b.target || a.headers.size() != b.headers.size()) return false;
  auto x = a.headers.begin();
  for (const auto& f : b.headers) {
    if (x->name != f.name || x->value != f.value) return false;
    ++x;
  }
  return true;
}

std::string print(const parsed& p) {
  std::string s = "status " + std::to_string(static_cast<int>(p.status)) + " error " + std::to_string(p.error) +
                  " consumed " + std::to_string(p.consumed);
  if (p.status == detail::parse_status::done) {
    s += " [" + p.request.method + " " + p.request.target + "]";
    for (const auto& f : p.request.headers) s += " {" + f.name + ": " + hex(f.value) + "}";
  }
  return s;
}

// The reference: RFC 9112 2-5 over the whole input, no limits.
parsed reference(std::string_view in) {
  parsed r;
  std::size_t pos = 0;
  bool started = false;
  auto error = [&](int status) {
    r.status = detail::parse_status::error;
    r.error = status;
    return r;
  };
  for (;;) {
    std::size_t end = pos;
    while (end < in.size() && in[end] != '\r' && in[end] != '\n') ++end;
    if (end == in.size()) {
      r.consumed = in.size();
      return r;  // need more
    }
    if (in[end] == '\n') return error(400);  // bare LF
    if (end + 1 == in.size()) {
      r.consumed = in.size();
      return r;
    }
    if (in[end + 1] != '\n') return error(400);  // bare CR
    const std::string_view line = in.substr(pos, end - pos);
    pos = end + 2;
    if (!started) {
      if (line.empty()) continue;  // 2.2: empty lines before the request line
      const auto a = line.find(' ');
      const auto b = a == std::string_view::npos ? a : line.find(' ', a + 1);
      if (b == std::string_view::npos) return error(400);
      const auto method = line.substr(0, a), target = line.substr(a + 1, b - a - 1), version = line.substr(b + 1);
      if (!ref::token(method)) return error(400);
      if (version != "HTTP/1.1") {
        const bool looks = version.size() == 8 && version.substr(0, 5) == "HTTP/" && version[5] >= '0' &&
                           version[5] <= '9' && version[6] == '.' && version[7] >= '0' && version[7] <= '9';
        return error(looks ? 505 : 400);
      }
      if (target.empty() || target[0] != '/') return error(400);
      for (char c : target)
        if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) return error(400);
      r.request.method.assign(method);
      r.request.target.assign(target);
      started = true;
      continue;
    }
    if (line.empty()) {
      r.status = detail::parse_status::done;
      r.consumed = pos;
      return r;
    }
    if (line[0] == ' ' || line[0] == '\t') return error(400);  // obs-fold
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || !ref::token(line.substr(0, colon))) return error(400);
    const auto value = ref::trim(line.substr(colon + 1));
    for (char c : value) {
      const auto u = static_cast<unsigned char>(c);
      if (!(u == '\t' || (u >= 0x20 && u != 0x7f))) return error(400);
    }
    r.request.headers.add(line.substr(0, colon), value);
  }
}

// True when the bytes consumed pass one of the limits.
bool limit_passed(std::string_view prefix, const gust::limits& lim) {
  if (prefix.size() > lim.max_handshake_size) return true;
  std::size_t pos = 0, fields = 0;
  bool started = false;
  while (pos < prefix.size()) {
    auto end = prefix.find("\r\n", pos);
    std::string_view line = prefix.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (end == std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!started) {
      if (!line.empty()) {
        if (line.size() > lim.max_request_line) return true;
        started = true;
      }
    } else {
      if (line.empty() && end != std::string_view::npos) return false;
      if (line.size() > lim.max_header_line) return true;
      if (end != std::string_view::npos && ++fields > lim.max_header_count) return true;
    }
    if (end == std::string_view::npos) break;
    pos = end + 2;
  }
  return false;
}

void check_request_syntax(const http::request& r, const gust::limits& lim, std::size_t consumed) {
  FUZZ_CHECK(ref::token(r.method));
  FUZZ_CHECK(!r.target.empty() && r.target[0] == '/');
  FUZZ_CHECK(r.target.size() <= lim.max_request_line);
  FUZZ_CHECK(r.headers.size() <= lim.max_header_count);
  FUZZ_CHECK(consumed <= lim.max_handshake_size);
  for (const auto& f : r.headers) {
    FUZZ_CHECK(ref::token(f.name));
    FUZZ_CHECK(ref::trim(f.value) == f.value);
    FUZZ_CHECK(f.name.size() + 1 + f.value.size() <= lim.max_header_line);
    for (char c : f.value) FUZZ_CHECK(c == '\t' || (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f));
  }
}

// RFC 6455 4.2: the verdict, and for an accepted request the 101 it leads
// to, read back by the client half.
void check_upgrade(const http::request& req, std::uint8_t flags) {
  server_options so;
  so.subprotocols = (flags & 0x02) ? std::vector<std::string>{"chat", "superchat"} : std::vector<std::string>{"superchat"};
  if (flags & 0x04) so.allowed_origins = {"https://example.com"};
  if (flags & 0x08) so.allow_missing_origin = false;
  if (flags & 0x10)
    so.select_subprotocol = [](const http::request&, std::span<const std::string_view> offers) -> std::optional<std::string> {
      if (offers.empty()) return std::nullopt;
      return std::string(offers.back());
    };

  detail::upgrade_request up;
  const auto rejection = detail::validate_upgrade_request(req, so, up);
  std::vector<std::string_view> ref_offers;
  const auto ref_status = ref::validate_request(req, so, ref_offers);
  FUZZ_CHECK_MSG(rejection.has_value() == ref_status.has_value(),
                 rejection ? "engine refuses (" + rejection->reason + "), reference accepts"
                           : "engine accepts, reference refuses with " + std::to_string(*ref_status));
  if (rejection) {
    FUZZ_CHECK_MSG(rejection->status == *ref_status,
                   "status " + std::to_string(rejection->status) + ", reference " + std::to_string(*ref_status));
    using enum handshake_error;
    const auto expect = rejection->status == 426 ? unsupported_version
                        : rejection->status == 403 ? forbidden_origin
                                                   : bad_request;
    FUZZ_CHECK(rejection->error == expect);
    return;
  }
  FUZZ_CHECK(up.subprotocols == ref_offers);
  FUZZ_CHECK(ref::key_ok(up.key));

  const auto chosen = detail::select_subprotocol(req, up.subprotocols, so);
  if (chosen) {
    bool offered = false;
    for (auto o : up.subprotocols) offered = offered || o == *chosen;
    FUZZ_CHECK_MSG(offered, "selected a subprotocol the client did not offer: " + *chosen);
  }
  // Echo the first extension offer whose name is a token (no negotiation:
  // the client only checks the name was offered).
  client_options co;
  for (auto o : up.subprotocols) co.subprotocols.emplace_back(o);
  std::string echo;
  for (const auto& f : req.headers) {
    if (!ref::ieq(f.name, "Sec-WebSocket-Extensions")) continue;
    const auto elems = ref::list(f.value);
    if (!elems) continue;
    co.extensions.push_back(f.value);
    for (auto e : *elems) {
      if (echo.empty() && ref::token(ref::trim(e.substr(0, e.find(';')))) && e.find('"') == std::string_view::npos)
        echo.assign(e);
    }
  }
  const std::string accept = detail::accept_value(up.key);
  const std::string wire = detail::write_switching_protocols(accept, chosen.value_or(""), echo, {}, "gust");
  gust::limits big;
  big.max_handshake_size = big.max_request_line = big.max_header_line = 1 << 20;
  detail::response_parser rp(big);
  FUZZ_CHECK(rp.feed(as_bytes(wire)) == wire.size());
  FUZZ_CHECK_MSG(rp.status() == detail::parse_status::done, "our 101 does not parse: " + hex(wire));
  detail::upgrade_response got;
  const auto failure = detail::validate_upgrade_response(rp.response(), up.key, co, got);
  FUZZ_CHECK_MSG(!failure, "the client refuses our 101: " + (failure ? failure->detail : std::string()));
  FUZZ_CHECK(got.subprotocol == chosen.value_or(""));
  FUZZ_CHECK(got.extensions == echo);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in(data, size);
  const std::uint8_t flags = in.u8();
  gust::limits lim;
  const std::uint8_t l1 = in.u8(), l2 = in.u8(), l3 = in.u8(), l4 = in.u8();
  if (flags & 0x01) {
    lim.max_handshake_size = 16 * (std::size_t{l1} + 1);
    lim.max_request_line = 4 * (std::size_t{l2} + 1);
    lim.max_header_line = 4 * (std::size_t{l3} + 1);
    lim.max_header_count = l4 % 64;
  }
  const std::string_view plan = in.take(in.u8() & 0x0F);
  const std::string_view bytes = in.rest();

  const parsed split = run_parser(lim, bytes, plan);
  const parsed whole = run_parser(lim, bytes, {});
  FUZZ_CHECK_MSG(split.status == whole.status && split.error == whole.error && split.consumed == whole.consumed &&
                     same(split.request, whole.request),
                 "split: " + print(split) + "\nwhole: " + print(whole));

  gust::limits none;
  none.max_handshake_size = none.max_request_line = none.max_header_line = std::size_t{1} << 30;
  none.max_header_count = std::size_t{1} << 20;
  const parsed unlimited = run_parser(none, bytes, plan);
  const parsed ref = reference(bytes);
  FUZZ_CHECK_MSG(unlimited.status == ref.status && unlimited.error == ref.error &&
                     (ref.status != detail::parse_status::done || same(unlimited.request, ref.request)),
                 "engine: " + print(unlimited) + "\nreference: " + print(ref));
  if (ref.status != detail::parse_status::error) FUZZ_CHECK(unlimited.consumed == ref.consumed);

  switch (split.status) {
    case detail::parse_status::need_more:
      FUZZ_CHECK(unlimited.status == detail::parse_status::need_more);
      FUZZ_CHECK(!limit_passed(bytes, lim));
      break;
    case detail::parse_status::error:
      if (split.error == 414 || split.error == 431) {
        FUZZ_CHECK_MSG(limit_passed(bytes.substr(0, split.consumed), lim), "a limit error with no limit passed");
      } else {
        FUZZ_CHECK_MSG(split.error == 400 || split.error == 505, "status " + std::to_string(split.error));
        FUZZ_CHECK_MSG(unlimited.status == detail::parse_status::error && unlimited.error == split.error,
                       "limited: " + print(split) + "\nunlimited: " + print(unlimited));
      }
      break;
    case detail::parse_status::done: {
      FUZZ_CHECK(same(split.request, unlimited.request) && split.consumed == unlimited.consumed);
      FUZZ_CHECK(split.consumed >= 4 && bytes.substr(split.consumed - 4, 4) == "\r\n\r\n");
      check_request_syntax(split.request, lim, split.consumed);
      // Printed back, it parses to itself.
      std::string printed = split.request.method + " " + split.request.target + " HTTP/1.1\r\n";
      for (const auto& f : split.request.headers) printed += f.name + ": " + f.value + "\r\n";
      printed += "\r\n";
      const parsed again = run_parser(none, printed, {});
      FUZZ_CHECK(again.status == detail::parse_status::done && again.consumed == printed.size() &&
                 same(again.request, split.request));
      check_upgrade(split.request, flags);
      break;
    }
  }
  return 0;
}
