// Fuzz target: the client's response parser (response_parser: status line,
// fields, interim 1xx, body framing) and the client's checks of the 101
// (validate_upgrade_response).
//
// Input layout:
//   byte 0    flags
//             0x01 tight limits from bytes 1-5, else the defaults
//             0x02 feed_eof() after the last byte
//             0x04 the client offered subprotocols "chat" and "superchat"
//             0x08 it offered "permessage-deflate; client_max_window_bits"
//             0x10 it offered "x-webkit-deflate-frame, foo; bar=\"a,b\""
//   byte 1    max_handshake_size = 16 * (b + 1)   } with 0x01
//   byte 2    max_request_line = 4 * (b + 1)      }
//   byte 3    max_header_line = 4 * (b + 1)       }
//   byte 4    max_header_count = b % 64           }
//   byte 5    max_response_body = 4 * b           }
//   byte 6    n: the low 4 bits are the number of chunk-plan bytes
//   n bytes   chunk lengths, in a cycle (0: all the rest)
//   the rest  the bytes the server sends
// The client's key is "dGhlIHNhbXBsZSBub25jZQ==" (RFC 6455 1.3), so the
// accept value to find is "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" (in the dictionary).
//
// Oracles: chunked and whole feeding agree; with unlimited limits the parser
// agrees with a reference of RFC 9112 4-6 (status line, interim responses,
// Content-Length lists, Transfer-Encoding, 204/304, body until EOF); the
// kept body never exceeds max_response_body; a 101 ends at its empty line;
// validate_upgrade_response agrees with a reference of RFC 6455 4.1.
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

constexpr std::string_view key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

struct parsed {
  detail::parse_status status = detail::parse_status::need_more;
  int error = 0;
  std::size_t consumed = 0;
  http::response response;
};

bool same(const http::response& a, const http::response& b) {
  if (a.status != b.status || a.reason != b.reason || a.body != b.body || a.headers.size() != b.headers.size())
    return false;
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
    s += " [" + std::to_string(p.response.status) + " " + hex(p.response.reason) + "]";
    for (const auto& f : p.response.headers) s += " {" + f.name + ": " + hex(f.value) + "}";
    s += " body " + hex(p.response.body);
  }
  return s;
}

parsed run_parser(const gust::limits& lim, std::string_view in, std::string_view plan, bool eof) {
  detail::response_parser p(lim);
  parsed r;
  std::size_t pos = 0, i = 0;
  while (pos < in.size()) {
    std::size_t len = plan.empty() ? 0 : static_cast<std::uint8_t>(plan[i++ % plan.size()]);
    if (len == 0 || len > in.size() - pos) len = in.size() - pos;
    const std::size_t used = p.feed(as_bytes(in.substr(pos, len)));
    FUZZ_CHECK(used <= len);
    r.consumed += used;
    if (p.status() != detail::parse_status::need_more) break;
    FUZZ_CHECK_MSG(used == len, "need_more without consuming everything");
    pos += len;
  }
  if (eof) {
    p.feed_eof();
    FUZZ_CHECK(p.status() != detail::parse_status::need_more);
  }
  r.status = p.status();
  if (r.status != detail::parse_status::need_more) FUZZ_CHECK(p.feed(as_bytes("HTTP/1.1 200 OK\r\n\r\n")) == 0);
  if (r.status == detail::parse_status::error) r.error = p.error().status;
  if (r.status == detail::parse_status::done) {
    r.response = p.response();
    FUZZ_CHECK(r.response.body.size() <= lim.max_response_body);
  }
  return r;
}

bool digit(char c) { return c >= '0' && c <= '9'; }

// The reference, over the whole input, without limits.
parsed reference(std::string_view in, bool eof) {
  parsed r;
  std::size_t pos = 0;
  auto error = [&](int status) {
    r.status = detail::parse_status::error;
    r.error = status;
    r.response = {};
    return r;
  };
  for (;;) {  // one head per round: interim 1xx responses come first
    r.response = {};
    bool started = false;
    for (;;) {
      std::size_t end = pos;
      while (end < in.size() && in[end] != '\r' && in[end] != '\n') ++end;
      if (end == in.size() || (in[end] == '\r' && end + 1 == in.size())) {
        r.consumed = in.size();
        return eof ? error(400) : r;
      }
      if (in[end] == '\n' || in[end + 1] != '\n') return error(400);
      const std::string_view line = in.substr(pos, end - pos);
      pos = end + 2;
      if (!started) {
        // HTTP-version SP 3DIGIT [SP reason-phrase]
        if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || !digit(line[5]) || line[6] != '.' ||
            !digit(line[7]) || line[8] != ' ' || !digit(line[9]) || !digit(line[10]) || !digit(line[11]))
          return error(400);
        const int code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
        if (code < 100 || code > 599) return error(400);
        const auto version = line.substr(0, 8);
        if (!(version == "HTTP/1.1" || (version == "HTTP/1.0" && code != 101))) return error(400);
        std::string_view reason;
        if (line.size() > 12) {
          if (line[12] != ' ') return error(400);
          reason = line.substr(13);
        }
        for (char c : reason)
          if (!(c == '\t' || (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f))) return error(400);
        r.response.status = code;
        r.response.reason.assign(reason);
        started = true;
        continue;
      }
      if (line.empty()) break;
      if (line[0] == ' ' || line[0] == '\t') return error(400);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos || !ref::token(line.substr(0, colon))) return error(400);
      const auto value = ref::trim(line.substr(colon + 1));
      for (char c : value)
        if (!(c == '\t' || (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f))) return error(400);
      r.response.headers.add(line.substr(0, colon), value);
    }
    const int code = r.response.status;
    if (code >= 100 && code < 200 && code != 101) continue;  // interim
    r.consumed = pos;
    if (code == 101 || code == 204 || code == 304) {
      r.status = detail::parse_status::done;
      return r;
    }
    bool until_eof = ref::count(r.response.headers, "Transfer-Encoding") != 0;
    std::optional<std::uint64_t> length;
    if (!until_eof) {
      for (const auto& f : r.response.headers) {
        if (!ref::ieq(f.name, "Content-Length")) continue;
        const auto elems = ref::list(f.value);
        if (!elems) return error(400);
        for (auto e : *elems) {
          if (e.empty()) return error(400);
          std::uint64_t v = 0;
          for (char c : e) {
            if (!digit(c) || v > (UINT64_MAX - 9) / 10) return error(400);
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
          }
          if (length && *length != v) return error(400);
          length = v;
        }
      }
      until_eof = !length;
    }
    if (until_eof) {
      r.response.body.assign(in.substr(pos));
      r.consumed = in.size();
      if (eof) r.status = detail::parse_status::done;
      return r;
    }
    const std::size_t have = in.size() - pos;
    if (have >= *length) {
      r.response.body.assign(in.substr(pos, static_cast<std::size_t>(*length)));
      r.consumed = pos + static_cast<std::size_t>(*length);
      r.status = detail::parse_status::done;
      return r;
    }
    r.consumed = in.size();
    return eof ? error(400) : r;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in(data, size);
  const std::uint8_t flags = in.u8();
  gust::limits lim;
  const std::uint8_t l1 = in.u8(), l2 = in.u8(), l3 = in.u8(), l4 = in.u8(), l5 = in.u8();
  if (flags & 0x01) {
    lim.max_handshake_size = 16 * (std::size_t{l1} + 1);
    lim.max_request_line = 4 * (std::size_t{l2} + 1);
    lim.max_header_line = 4 * (std::size_t{l3} + 1);
    lim.max_header_count = l4 % 64;
    lim.max_response_body = 4 * std::size_t{l5};
  }
  const bool eof = flags & 0x02;
  const std::string_view plan = in.take(in.u8() & 0x0F);
  const std::string_view bytes = in.rest();

  const parsed split = run_parser(lim, bytes, plan, eof);
  const parsed whole = run_parser(lim, bytes, {}, eof);
  FUZZ_CHECK_MSG(split.status == whole.status && split.error == whole.error && split.consumed == whole.consumed &&
                     same(split.response, whole.response),
                 "split: " + print(split) + "\nwhole: " + print(whole));
  if (split.status == detail::parse_status::error)
    FUZZ_CHECK_MSG(split.error == 400 || split.error == 414 || split.error == 431, print(split));

  gust::limits none;
  none.max_handshake_size = none.max_request_line = none.max_header_line = std::size_t{1} << 30;
  none.max_header_count = std::size_t{1} << 20;
  none.max_response_body = std::size_t{1} << 30;
  const parsed unlimited = run_parser(none, bytes, plan, eof);
  const parsed ref = reference(bytes, eof);
  FUZZ_CHECK_MSG(unlimited.status == ref.status && unlimited.error == ref.error &&
                     (unlimited.status != detail::parse_status::done || same(unlimited.response, ref.response)),
                 "engine: " + print(unlimited) + "\nreference: " + print(ref));
  if (ref.status != detail::parse_status::error) FUZZ_CHECK(unlimited.consumed == ref.consumed);
  if (split.status == detail::parse_status::done) {
    // Limits only cut the body short, never change what was parsed.
    FUZZ_CHECK(unlimited.status == detail::parse_status::done);
    http::response cut = unlimited.response;
    cut.body.resize(std::min(cut.body.size(), lim.max_response_body));
    FUZZ_CHECK(same(split.response, cut));
    FUZZ_CHECK(split.consumed == unlimited.consumed);
    if (split.response.status == 101)
      FUZZ_CHECK(split.response.body.empty() && bytes.substr(split.consumed - 4, 4) == "\r\n\r\n");

    client_options co;
    if (flags & 0x04) co.subprotocols = {"chat", "superchat"};
    if (flags & 0x08) co.extensions.push_back("permessage-deflate; client_max_window_bits");
    if (flags & 0x10) co.extensions.push_back("x-webkit-deflate-frame, foo; bar=\"a,b\"");
    detail::upgrade_response got;
    const auto failure = detail::validate_upgrade_response(split.response, key, co, got);
    std::string ref_sub;
    const auto ref_error = ref::validate_response(split.response, accept, co, ref_sub);
    FUZZ_CHECK_MSG(failure.has_value() == ref_error.has_value(),
                   failure ? "engine refuses (" + failure->detail + "), reference accepts"
                           : "engine accepts, reference refuses: " + std::string(to_string(*ref_error)));
    if (failure) {
      FUZZ_CHECK_MSG(failure->error == *ref_error, std::string(to_string(failure->error)) + " vs reference " +
                                                       std::string(to_string(*ref_error)));
      FUZZ_CHECK(failure->response && failure->response->status == split.response.status);
    } else {
      FUZZ_CHECK(got.subprotocol == ref_sub);
    }
  }
  return 0;
}
