// Incremental HTTP/1.1 message-head parser for the opening handshake
// (RFC 9112), strict and bounded. It never allocates more than the limits
// allow, whatever the peer sends, and accepts input split at any point.
//
// Strict on purpose: a WebSocket handshake comes from a WebSocket client,
// not a 1990s browser, so bare LF, obs-fold (a line starting with SP/HT),
// NUL and other control bytes, whitespace before ':' and non-token field
// names are errors rather than things to guess about (request smuggling
// lives in such guesses).
#pragma once

#include <cstddef>
#include <span>
#include <memory>
#include <string>
#include <string_view>

#include "gust/http.hpp"
#include "gust/settings.hpp"

namespace gust::detail {

enum class parse_status { need_more, done, error };

struct parse_error {
  int status = 400;  ///< what a server answers: 400, 414 (request line), 431 (headers), 505 (version)
  std::string reason;  ///< short, for the response body and logs
};

/// Parses one request head (request line and header fields, up to the empty
/// line). Bytes after the empty line are not consumed: they are frames.
class request_parser {
 public:
  /// Keeps a reference to `limits` (the engine's own, which outlives it).
  explicit request_parser(const gust::limits& limits);
  request_parser(const gust::limits&&) = delete;  // no temporaries
  /// Consumes from `data` and returns how many bytes were used. After
  /// status() is done or error, consumes nothing more.
  std::size_t feed(std::span<const std::byte> data);
  parse_status status() const noexcept { return status_; }
  const parse_error& error() const noexcept { return error_; }
  http::request& request() noexcept { return *request_; }
  /// Hands the request over (its address stays the same), for a connection
  /// that keeps it after the handshake and drops the parser.
  std::unique_ptr<http::request> take_request() {
    request_->headers.shrink_to_fit();
    return std::move(request_);
  }

 private:
  bool parse_request_line(std::string_view line);

  const gust::limits* limits_;
  parse_status status_ = parse_status::need_more;
  parse_error error_;
  std::unique_ptr<http::request> request_ = std::make_unique<http::request>();
  std::string line_;          // the current line, without its CRLF
  std::size_t total_ = 0;     // bytes of the head so far
  bool cr_ = false;           // the last byte was the CR of a CRLF
  bool seen_start_line_ = false;
};

/// Parses one response: the status line, header fields and, for a status
/// other than 101, the body (Content-Length bytes, or until EOF when there
/// is none; a chunked body is read until EOF too, undecoded), of which at
/// most limits.max_response_body bytes are kept. A 101 response is done at
/// its empty line: what follows is frames.
class response_parser {
 public:
  /// Keeps a reference to `limits` (the engine's own, which outlives it).
  explicit response_parser(const gust::limits& limits);
  response_parser(const gust::limits&&) = delete;  // no temporaries
  std::size_t feed(std::span<const std::byte> data);
  /// The transport ended: completes a body read until EOF, else an error.
  void feed_eof();
  parse_status status() const noexcept { return status_; }
  const parse_error& error() const noexcept { return error_; }
  http::response& response() noexcept { return response_; }

 private:
  bool parse_status_line(std::string_view line);
  void end_of_head();
  void keep_body(const char* bytes, std::size_t n);

  const gust::limits* limits_;
  parse_status status_ = parse_status::need_more;
  parse_error error_;
  http::response response_;
  std::string line_;          // the current line, without its CRLF
  std::size_t total_ = 0;     // bytes of the head so far (interim 1xx included)
  bool cr_ = false;           // the last byte was the CR of a CRLF
  bool seen_start_line_ = false;
  bool in_body_ = false;
  bool body_until_eof_ = false;
  std::size_t body_remaining_ = 0;
};

/// The standard reason phrase of a status code ("Bad Request"), or "".
std::string_view status_reason(int status) noexcept;

}  // namespace gust::detail
