// Incremental, bounded HTTP/1.1 head parsing (RFC 9112) for the opening
// handshake.
//
// Both parsers share one line reader: it copies bytes into the current line
// until CRLF and checks the per-line and per-head limits on every chunk, so
// an over-long line is refused as soon as its bytes pass the limit instead
// of when (if ever) its CRLF arrives. Nothing but the current line and the
// fields already parsed is kept.
#include "http1.hpp"

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "http_syntax.hpp"

namespace gust::detail {

namespace {

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

void set_error(parse_status& status, parse_error& error, int code,
               std::string_view reason) {
  status = parse_status::error;
  error.status = code;
  error.reason.assign(reason);
}

enum class scan_result { need_more, line, error };

// Everything the line reader needs to know about the limits in force.
struct line_bounds {
  std::size_t max_line;      // bytes of the line, without its CRLF
  int line_status;           // what a too long line is answered with
  std::string_view line_reason;
  std::size_t max_total;     // bytes of the whole head, CRLFs included
  std::string_view total_reason;
};

// Moves bytes from data[pos...] into `line` until a CRLF ends it. `cr` says
// the previous call stopped right after a CR, `total` counts every byte of
// the head. A limit is reported at the first byte past it.
scan_result scan_line(std::span<const std::byte> data, std::size_t& pos,
                      std::string& line, bool& cr, std::size_t& total,
                      const line_bounds& bounds, parse_status& status,
                      parse_error& error) {
  const auto* bytes = reinterpret_cast<const char*>(data.data());
  const std::size_t size = data.size();
  const auto over_total = [&] {
    set_error(status, error, 431, bounds.total_reason);
    return scan_result::error;
  };
  while (pos < size) {
    if (cr) {
      // RFC 9112 2.2: a CR must be followed by LF; a bare CR is an error
      // (the alternative, treating it as SP, is a guess we do not make).
      const char c = bytes[pos++];
      if (++total > bounds.max_total) return over_total();
      cr = false;
      if (c != '\n') {
        set_error(status, error, 400, "bare CR in message head");
        return scan_result::error;
      }
      return scan_result::line;
    }
    const std::size_t line_room = bounds.max_line - line.size();
    const std::size_t total_room = bounds.max_total - total;
    // Looking further than one byte past the room left would only find out
    // that the line is too long more slowly.
    const std::size_t room = std::min(line_room, total_room);
    const std::size_t scan_end = size - pos > room ? pos + room + 1 : size;
    std::size_t end = pos;
    while (end < scan_end && bytes[end] != '\r' && bytes[end] != '\n') ++end;
    const std::size_t chunk = end - pos;
    if (chunk > room) {
      // Consume up to the first byte past the limit, not the rest.
      if (line_room <= total_room) {
        pos += line_room + 1;
        total += line_room + 1;
        set_error(status, error, bounds.line_status, bounds.line_reason);
        return scan_result::error;
      }
      pos += total_room + 1;
      total += total_room + 1;
      return over_total();
    }
    line.append(bytes + pos, chunk);
    pos = end;
    total += chunk;
    if (pos == size) break;
    const char c = bytes[pos++];
    if (++total > bounds.max_total) return over_total();
    if (c == '\n') {
      // RFC 9112 2.2 lets a recipient accept a bare LF as a line end; a
      // strict parser does not, because a proxy in front may not either.
      set_error(status, error, 400, "bare LF in message head");
      return scan_result::error;
    }
    cr = true;
  }
  return scan_result::need_more;
}

// RFC 9112 5.1: field-line = field-name ":" OWS field-value OWS
bool parse_field_line(std::string_view line, http::headers& headers,
                      std::size_t max_count, parse_status& status,
                      parse_error& error) {
  if (line.front() == ' ' || line.front() == '\t') {
    // RFC 9112 5.2: obs-fold may be rejected with 400; RFC 9112 2.2 asks
    // the same for whitespace between the start-line and the first field.
    set_error(status, error, 400, "obsolete line folding in header field");
    return false;
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) {
    set_error(status, error, 400, "header field without a colon");
    return false;
  }
  const auto name = line.substr(0, colon);
  if (!is_token(name)) {
    // RFC 9112 5.1: no whitespace is allowed between the field name and the
    // colon; such a message MUST be rejected with 400.
    set_error(status, error, 400, "invalid header field name");
    return false;
  }
  const auto value = trim_ows(line.substr(colon + 1));
  if (!is_field_value(value)) {
    set_error(status, error, 400, "invalid character in header field value");
    return false;
  }
  if (headers.size() >= max_count) {
    set_error(status, error, 431, "too many header fields");
    return false;
  }
  headers.add(name, value);
  return true;
}

// "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3)
bool is_http_version(std::string_view v) noexcept {
  return v.size() == 8 && v.substr(0, 5) == "HTTP/" && is_digit(v[5]) &&
         v[6] == '.' && is_digit(v[7]);
}

}  // namespace

// ---- request -----------------------------------------------------------

request_parser::request_parser(const gust::limits& limits) : limits_(&limits) {}

bool request_parser::parse_request_line(std::string_view line) {
  // RFC 9112 3: request-line = method SP request-target SP HTTP-version,
  // single spaces only.
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    set_error(status_, error_, 400, "malformed request line");
    return false;
  }
  const auto method = line.substr(0, sp1);
  const auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto version = line.substr(sp2 + 1);
  if (!is_token(method)) {
    set_error(status_, error_, 400, "invalid method");
    return false;
  }
  if (version != "HTTP/1.1") {
    if (is_http_version(version)) {
      // RFC 6455 4.1: the handshake MUST be HTTP/1.1 or higher, and
      // Upgrade does not exist before 1.1.
      set_error(status_, error_, 505,
                "HTTP version not supported: WebSocket needs HTTP/1.1");
    } else {
      set_error(status_, error_, 400, "malformed request line");
    }
    return false;
  }
  // RFC 6455 4.1 sends the origin-form (path and query) only; absolute-form
  // is for proxies and asterisk-form for OPTIONS, neither of which leads to
  // a WebSocket.
  if (target.empty() || target.front() != '/') {
    set_error(status_, error_, 400, "request target must be an absolute path");
    return false;
  }
  for (char c : target) {
    if (!is_vchar(static_cast<unsigned char>(c))) {
      set_error(status_, error_, 400, "invalid character in request target");
      return false;
    }
  }
  request_->method.assign(method);
  request_->target.assign(target);
  return true;
}

std::size_t request_parser::feed(std::span<const std::byte> data) {
  std::size_t pos = 0;
  while (status_ == parse_status::need_more && pos < data.size()) {
    const line_bounds bounds =
        seen_start_line_
            ? line_bounds{limits_->max_header_line, 431,
                          "request header field too large",
                          limits_->max_handshake_size, "request head too large"}
            : line_bounds{limits_->max_request_line, 414, "request line too long",
                          limits_->max_handshake_size, "request head too large"};
    const auto r =
        scan_line(data, pos, line_, cr_, total_, bounds, status_, error_);
    if (r != scan_result::line) break;
    if (!seen_start_line_) {
      // RFC 9112 2.2: a server SHOULD ignore empty lines received before
      // the request-line. They still count towards max_handshake_size.
      if (!line_.empty()) {
        if (!parse_request_line(line_)) break;
        seen_start_line_ = true;
      }
    } else if (line_.empty()) {
      status_ = parse_status::done;
    } else if (!parse_field_line(line_, request_->headers,
                                 limits_->max_header_count, status_, error_)) {
      break;
    }
    line_.clear();
  }
  if (status_ != parse_status::need_more) line_ = std::string();
  return pos;
}

// ---- response ----------------------------------------------------------

response_parser::response_parser(const gust::limits& limits) : limits_(&limits) {}

bool response_parser::parse_status_line(std::string_view line) {
  // RFC 9112 4: status-line = HTTP-version SP status-code SP [reason-phrase]
  if (line.size() < 12 || !is_http_version(line.substr(0, 8)) || line[8] != ' ' ||
      !is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11])) {
    set_error(status_, error_, 400, "malformed status line");
    return false;
  }
  const int code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  // RFC 9110 15: values outside 100..599 are invalid.
  if (code < 100 || code > 599) {
    set_error(status_, error_, 400, "invalid status code");
    return false;
  }
  const auto version = line.substr(0, 8);
  // A 101 only exists in HTTP/1.1. Other answers from an HTTP/1.0 server
  // (an old proxy refusing us) are still read, so the failure can show them.
  if (version != "HTTP/1.1" && !(version == "HTTP/1.0" && code != 101)) {
    set_error(status_, error_, 400, "unsupported HTTP version in response");
    return false;
  }
  std::string_view reason;
  if (line.size() > 12) {
    if (line[12] != ' ') {
      set_error(status_, error_, 400, "malformed status line");
      return false;
    }
    reason = line.substr(13);
  }
  // The space before an empty reason-phrase is required by the grammar but
  // often left out; its absence is accepted as it changes no meaning.
  if (!is_field_value(reason)) {
    set_error(status_, error_, 400, "invalid character in reason phrase");
    return false;
  }
  response_.status = code;
  response_.reason.assign(reason);
  return true;
}

void response_parser::end_of_head() {
  const int code = response_.status;
  if (code == 101) {
    status_ = parse_status::done;
    return;
  }
  if (code >= 100 && code < 200) {
    // RFC 9110 15.2: a client MUST be able to parse 1xx responses before the
    // final one, expected or not. Their bytes still count towards
    // max_handshake_size, so a stream of them cannot go on forever.
    response_ = http::response{};
    seen_start_line_ = false;
    return;
  }
  // RFC 9112 6.3 rule 1: 204 and 304 never have a body.
  if (code == 204 || code == 304) {
    status_ = parse_status::done;
    return;
  }
  // RFC 9112 6.3 rule 3/4: Transfer-Encoding wins over Content-Length; a
  // chunked body is not decoded, only kept (bounded) until EOF.
  if (response_.headers.contains("Transfer-Encoding")) {
    in_body_ = true;
    body_until_eof_ = true;
    return;
  }
  // RFC 9112 6.3 rule 5: repeated Content-Length values ("42, 42" or two
  // fields) are accepted when identical; anything else is invalid, an empty
  // element included: Content-Length = 1*DIGIT (RFC 9110 8.6) is no list
  // whose empty elements a recipient ignores.
  bool have_length = false;
  std::uint64_t length = 0;
  for (const auto& f : response_.headers) {
    if (!http::iequals(f.name, "Content-Length")) continue;
    bool conflicting = false;
    const bool valid = split_list(f.value, [&](std::string_view element) {
      if (element.empty()) return false;
      std::uint64_t v = 0;
      for (char c : element) {
        if (!is_digit(c) || v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
      }
      if (have_length && v != length) {
        conflicting = true;
        return false;
      }
      have_length = true;
      length = v;
      return true;
    });
    if (!valid) {
      set_error(status_, error_, 400,
                conflicting ? "conflicting Content-Length values"
                            : "invalid Content-Length");
      return;
    }
  }
  if (!have_length) {
    // RFC 9112 6.3 rule 8: no length means the body ends with the connection.
    in_body_ = true;
    body_until_eof_ = true;
    return;
  }
  if (length == 0) {
    status_ = parse_status::done;
    return;
  }
  in_body_ = true;
  body_remaining_ = length > SIZE_MAX ? SIZE_MAX : static_cast<std::size_t>(length);
}

void response_parser::keep_body(const char* bytes, std::size_t n) {
  const std::size_t room = limits_->max_response_body - response_.body.size();
  response_.body.append(bytes, std::min(room, n));
}

std::size_t response_parser::feed(std::span<const std::byte> data) {
  const auto* bytes = reinterpret_cast<const char*>(data.data());
  std::size_t pos = 0;
  while (status_ == parse_status::need_more && pos < data.size()) {
    if (in_body_) {
      std::size_t n = data.size() - pos;
      if (!body_until_eof_) n = std::min(n, body_remaining_);
      keep_body(bytes + pos, n);
      pos += n;
      if (!body_until_eof_) {
        body_remaining_ -= n;
        if (body_remaining_ == 0) status_ = parse_status::done;
      }
      continue;
    }
    const line_bounds bounds =
        seen_start_line_
            ? line_bounds{limits_->max_header_line, 431,
                          "response header field too large",
                          limits_->max_handshake_size, "response head too large"}
            : line_bounds{limits_->max_request_line, 414, "status line too long",
                          limits_->max_handshake_size, "response head too large"};
    const auto r =
        scan_line(data, pos, line_, cr_, total_, bounds, status_, error_);
    if (r != scan_result::line) break;
    if (!seen_start_line_) {
      if (!parse_status_line(line_)) break;
      seen_start_line_ = true;
    } else if (line_.empty()) {
      end_of_head();
    } else if (!parse_field_line(line_, response_.headers,
                                 limits_->max_header_count, status_, error_)) {
      break;
    }
    line_.clear();
  }
  if (status_ != parse_status::need_more || in_body_) line_ = std::string();
  return pos;
}

void response_parser::feed_eof() {
  if (status_ != parse_status::need_more) return;
  if (in_body_ && body_until_eof_) {
    status_ = parse_status::done;
    return;
  }
  set_error(status_, error_, 400,
            in_body_ ? "response body truncated by end of stream"
                     : "end of stream inside the response head");
  line_ = std::string();
}

// ---- reason phrases ----------------------------------------------------

std::string_view status_reason(int status) noexcept {
  // RFC 9110 15 (and RFC 6585 for 428, 429, 431).
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

}  // namespace gust::detail
