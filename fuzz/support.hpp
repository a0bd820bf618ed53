// Shared pieces of the fuzz targets: reading structured choices from the
// fuzzer's bytes, reference implementations written independently of the
// engine (UTF-8, frame layout, close codes), a checker of the bytes an engine
// writes, and helpers to drive engines the way an adapter does.
//
// The references are deliberately plain (byte at a time, code-point
// arithmetic instead of the engine's DFA table) so that a disagreement points
// at one of the two, never at a shared mistake.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gust/connection.hpp"
#include "gust/deflate_pool.hpp"

namespace gust::fuzz {

// ---------------------------------------------------------------------------
// Failing

/// Prints where and why, then aborts: libFuzzer reports a crash with the
/// stack, the replay test fails.
[[noreturn]] void fail(const char* file, int line, const char* what, const std::string& detail);

#define FUZZ_CHECK(cond)                                               \
  do {                                                                 \
    if (!(cond)) ::gust::fuzz::fail(__FILE__, __LINE__, #cond, {});    \
  } while (0)
#define FUZZ_CHECK_MSG(cond, msg)                                      \
  do {                                                                 \
    if (!(cond)) ::gust::fuzz::fail(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)

/// GUST_FUZZ_TRACE=1 in the environment: targets that support it print
/// what they do (to read a reproducer).
bool tracing();
void trace(const std::string& line);

// ---------------------------------------------------------------------------
// Reading the input

/// Takes structured choices from the fuzzer's bytes, front to back. Past the
/// end every read gives zeros (or nothing), so every input is a valid
/// program and a truncated one is a shorter program.
class reader {
 public:
  reader(const std::uint8_t* data, std::size_t size) : p_(data), n_(size) {}
  bool empty() const noexcept { return pos_ >= n_; }
  std::size_t left() const noexcept { return n_ - pos_; }
  std::uint8_t u8() noexcept { return pos_ < n_ ? p_[pos_++] : 0; }
  std::uint16_t u16() noexcept {
    const std::uint16_t hi = u8();
    return static_cast<std::uint16_t>(hi << 8 | u8());
  }
  std::uint32_t u32() noexcept {
    const std::uint32_t hi = u16();
    return hi << 16 | u16();
  }
  /// Up to `n` bytes (fewer at the end of the input).
  std::string_view take(std::size_t n) noexcept {
    const std::size_t k = n < left() ? n : left();
    std::string_view s(reinterpret_cast<const char*>(p_ + pos_), k);
    pos_ += k;
    return s;
  }
  /// A length byte, then that many bytes.
  std::string_view take8() noexcept { return take(u8()); }
  std::string_view rest() noexcept { return take(left()); }

 private:
  const std::uint8_t* p_;
  std::size_t n_;
  std::size_t pos_ = 0;
};

std::string hex(std::string_view s);
inline std::string_view as_sv(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline std::span<const std::byte> as_bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// ---------------------------------------------------------------------------
// Reference UTF-8 (RFC 3629), one byte at a time with code-point arithmetic

/// Fails at the first byte after which the input can no longer be the
/// prefix of valid UTF-8 (RFC 6455 8.1 "fail fast"), like the engine must.
class ref_utf8 {
 public:
  /// false once the stream is invalid (and from then on).
  bool push(std::uint8_t b) noexcept;
  bool push(std::string_view s) noexcept {
    for (char c : s)
      if (!push(static_cast<std::uint8_t>(c))) return false;
    return !failed_;
  }
  bool failed() const noexcept { return failed_; }
  /// Ends on a code point boundary.
  bool complete() const noexcept { return !failed_ && need_ == 0; }

 private:
  bool failed_ = false;
  int need_ = 0;         // continuation bytes still expected
  int seen_ = 0;         // continuation bytes seen of this sequence
  int length_ = 0;       // bytes of this sequence
  std::uint32_t cp_ = 0; // bits so far
};

struct utf8_scan {
  std::size_t bad = std::string::npos;  ///< index of the first failing byte
  bool complete = true;                 ///< ends on a boundary (and no failure)
};
utf8_scan scan_utf8(std::string_view s);
inline bool valid_utf8(std::string_view s) {
  const auto r = scan_utf8(s);
  return r.bad == std::string::npos && r.complete;
}
/// Replaces every byte that breaks UTF-8 by '?', so the result is valid.
std::string make_utf8(std::string_view s);

/// RFC 6455 7.4.1/7.4.2 and the IANA registry, written out on its own.
bool ref_close_code_ok(std::uint16_t code) noexcept;

// ---------------------------------------------------------------------------
// Reference frame layout (RFC 6455 5.2)

struct wire_frame {
  bool fin = false;
  std::uint8_t rsv = 0;  ///< as 0x4 (RSV1), 0x2, 0x1
  std::uint8_t opcode = 0;
  bool masked = false;
  std::uint64_t length = 0;
  std::uint8_t key[4] = {};
  std::size_t header_size = 0;
  std::string payload;  ///< unmasked
};
enum class wire_status { need_more, ok, not_minimal, msb_set };
/// Parses the header at the start of `buf`; with `want_payload` also waits
/// for, and unmasks, the payload.
wire_status parse_wire_frame(std::string_view buf, wire_frame& f, bool want_payload);

// ---------------------------------------------------------------------------
// Checking what an engine writes

/// Everything a connection writes, fed as it is consumed: the HTTP head of
/// its role, then frames. Fails on anything that is not valid output for the
/// role: an unmasked client frame or a masked server frame, a header that is
/// not minimal, reserved bits or opcodes, a broken fragment sequence,
/// invalid UTF-8 in an uncompressed text message or a close reason, a bad
/// close code, a data frame after the close, bytes after a refusal.
class output_checker {
 public:
  explicit output_checker(gust::role r, bool head = true) : role_(r) {
    phase_ = head ? phase::head : phase::frames;
  }
  /// permessage-deflate in use: RSV1 may mark the first frame of a data
  /// message (compressed payload, not checked as UTF-8). A server's checker
  /// learns it from its own 101; a client's must be told.
  void set_deflate(bool on) noexcept { deflate_ = on; }
  /// Largest data frame payload the engine may write uncompressed (0: any).
  void set_max_frame(std::size_t n) noexcept { max_frame_ = n; }
  void feed(std::string_view bytes);
  /// All output was consumed: it must end on a frame (or HTTP) boundary.
  void finish();

  struct message {
    bool text;
    bool compressed;
    std::string data;  ///< as sent (compressed bytes when compressed)
  };
  const std::vector<wire_frame>& frames() const noexcept { return frames_; }
  const std::vector<message>& messages() const noexcept { return messages_; }
  const std::vector<std::string>& pings() const noexcept { return pings_; }
  const std::vector<std::string>& pongs() const noexcept { return pongs_; }
  bool close_sent() const noexcept { return close_sent_; }
  /// The code of the close frame sent, nothing when it had no payload.
  std::optional<std::uint16_t> close_code() const noexcept { return close_code_; }
  bool upgraded() const noexcept { return phase_ == phase::frames; }
  bool refused() const noexcept { return phase_ == phase::body || phase_ == phase::after; }
  int status() const noexcept { return status_; }
  std::size_t bytes() const noexcept { return total_; }

 private:
  enum class phase { head, body, after, frames };
  void on_head(std::string_view head);
  void on_frame(wire_frame&& f);

  gust::role role_;
  phase phase_;
  bool deflate_ = false;
  std::size_t max_frame_ = 0;
  std::string buf_;
  std::size_t total_ = 0;
  std::size_t body_left_ = 0;
  int status_ = 0;
  bool in_msg_ = false;
  message cur_{};
  ref_utf8 utf8_;
  bool close_sent_ = false;
  std::optional<std::uint16_t> close_code_;
  std::vector<wire_frame> frames_;
  std::vector<message> messages_;
  std::vector<std::string> pings_, pongs_;
};

// ---------------------------------------------------------------------------
// Driving engines

/// Buffers handed over with receive(): they must stay valid until
/// next_event() has returned nothing. Released then: scribbled over and
/// freed, so a view the engine kept past its contract is a use after free
/// that AddressSanitizer reports.
class borrowed_buffers {
 public:
  std::span<std::byte> make(std::string_view bytes);
  void release();
  ~borrowed_buffers() { release(); }

 private:
  std::vector<std::unique_ptr<std::byte[]>> bufs_;
  std::vector<std::size_t> sizes_;
};

/// Copies the first `n` bytes of pending_output() (n <= buffered_amount()).
std::string peek_output(connection& c, std::size_t n);
/// Copies and consumes `n` bytes of output (all when n is larger).
std::string take_output(connection& c, std::size_t n = SIZE_MAX);

/// One event, with every view copied, as a comparable string.
std::string describe(const event& ev);

/// permessage-deflate parameters from one input byte (the same for both
/// ends when a pair is made): 0x01 server_no_context_takeover, 0x02
/// client_no_context_takeover, 0x04 borrow streams from `pool`, bits 3-4
/// server_max_window_bits {15, 8, 9, 11}, bits 5-6 client_max_window_bits
/// {15, 8, 10, 13}, 0x80 keep min_size at its default (else 0: compress
/// every message, however short).
void set_deflate_options(gust::deflate_options& d, std::uint8_t v, deflate_pool* pool);

/// A deterministic random source: 0x5A ^ seed, counting.
random_source counting_random(std::uint8_t seed);

/// A client and a server that completed the opening handshake with each
/// other (so whatever they negotiate, they agree), events drained, output
/// consumed. `extensions` is what the client's open_event said.
struct open_pair {
  client_connection client;
  server_connection server;
  std::string extensions;
};
open_pair open_engines(time_point now, gust::settings cs, gust::settings ss,
                       client_options co = {}, server_options so = {});

}  // namespace gust::fuzz
