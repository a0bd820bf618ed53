#include "support.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <variant>

namespace gust::fuzz {

void fail(const char* file, int line, const char* what, const std::string& detail) {
  std::fprintf(stderr, "\n==== fuzz invariant failed at %s:%d\n  %s\n", file, line, what);
  if (!detail.empty()) std::fprintf(stderr, "  %s\n", detail.c_str());
  std::fflush(stderr);
  std::abort();
}

bool tracing() {
  static const bool on = [] {
    const char* v = std::getenv("GUST_FUZZ_TRACE");
    return v != nullptr && *v != '\0' && *v != '0';
  }();
  return on;
}

void trace(const std::string& line) {
  if (tracing()) std::fprintf(stderr, "%s\n", line.c_str());
}

std::string hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

// ---------------------------------------------------------------------------
// UTF-8

bool ref_utf8::push(std::uint8_t b) noexcept {
  if (failed_) return false;
  if (need_ == 0) {
    if (b < 0x80) return true;
    // Lead bytes: C0 and C1 can only start overlong forms, F5..FF code
    // points above U+10FFFF, 80..BF are continuations.
    if (b >= 0xC2 && b <= 0xDF) {
      length_ = 2;
      cp_ = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      length_ = 3;
      cp_ = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      length_ = 4;
      cp_ = b & 0x07;
    } else {
      failed_ = true;
      return false;
    }
    need_ = length_ - 1;
    seen_ = 0;
    return true;
  }
  if ((b & 0xC0) != 0x80) {
    failed_ = true;
    return false;
  }
  cp_ = cp_ << 6 | (b & 0x3F);
  ++seen_;
  --need_;
  if (seen_ == 1) {
    // After the second byte the high bits of the code point are known:
    // enough to tell overlong forms, surrogates and values past U+10FFFF.
    if (length_ == 3 && (cp_ < (0x800 >> 6) || (cp_ >= (0xD800 >> 6) && cp_ <= (0xDFFF >> 6)))) {
      failed_ = true;
      return false;
    }
    if (length_ == 4 && (cp_ < (0x10000 >> 12) || cp_ > (0x10FFFF >> 12))) {
      failed_ = true;
      return false;
    }
  }
  return true;
}

utf8_scan scan_utf8(std::string_view s) {
  ref_utf8 v;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (!v.push(static_cast<std::uint8_t>(s[i]))) return {i, false};
  }
  return {std::string::npos, v.complete()};
}

std::string make_utf8(std::string_view s) {
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    bool took = false;
    for (std::size_t len = 1; len <= 4 && i + len <= s.size(); ++len) {
      const auto piece = s.substr(i, len);
      const auto r = scan_utf8(piece);
      if (r.bad != std::string::npos) break;
      if (r.complete) {
        out.append(piece);
        i += len;
        took = true;
        break;
      }
    }
    if (!took) {
      out.push_back('?');
      ++i;
    }
  }
  return out;
}

bool ref_close_code_ok(std::uint16_t code) noexcept {
  switch (code) {
    case 1000: case 1001: case 1002: case 1003:
    case 1007: case 1008: case 1009: case 1010:
    case 1011: case 1012: case 1013: case 1014:
      return true;
    default:
      return code >= 3000 && code <= 4999;
  }
}

// ---------------------------------------------------------------------------
// Frames

wire_status parse_wire_frame(std::string_view buf, wire_frame& f, bool want_payload) {
  if (buf.size() < 2) return wire_status::need_more;
  auto at = [&](std::size_t i) { return static_cast<std::uint8_t>(buf[i]); };
  f.fin = (at(0) & 0x80) != 0;
  f.rsv = static_cast<std::uint8_t>((at(0) >> 4) & 7);
  f.opcode = at(0) & 0x0F;
  f.masked = (at(1) & 0x80) != 0;
  const unsigned len7 = at(1) & 0x7F;
  const std::size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  f.header_size = 2 + ext + (f.masked ? 4 : 0);
  if (buf.size() < f.header_size) return wire_status::need_more;
  f.length = len7;
  if (ext) {
    f.length = 0;
    for (std::size_t i = 0; i < ext; ++i) f.length = f.length << 8 | at(2 + i);
    if (ext == 8 && (f.length >> 63) != 0) return wire_status::msb_set;
    if (ext == 2 ? f.length < 126 : f.length < 0x10000) return wire_status::not_minimal;
  }
  if (f.masked)
    for (std::size_t i = 0; i < 4; ++i) f.key[i] = at(2 + ext + i);
  if (!want_payload) return wire_status::ok;
  if (buf.size() - f.header_size < f.length) return wire_status::need_more;
  f.payload.assign(buf.substr(f.header_size, static_cast<std::size_t>(f.length)));
  if (f.masked)
    for (std::size_t i = 0; i < f.payload.size(); ++i)
      f.payload[i] = static_cast<char>(f.payload[i] ^ static_cast<char>(f.key[i % 4]));
  return wire_status::ok;
}

// ---------------------------------------------------------------------------
// output_checker

namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

struct head_line {
  std::string_view name, value;
};

// Splits a head (without its final CRLF CRLF) into the start line and
// fields, checking the syntax of every line the engine wrote.
std::vector<head_line> split_head(std::string_view head, std::string_view& start) {
  std::vector<head_line> fields;
  std::size_t pos = 0;
  bool first = true;
  while (pos <= head.size()) {
    std::size_t end = head.find("\r\n", pos);
    if (end == std::string_view::npos) end = head.size();
    const auto line = head.substr(pos, end - pos);
    FUZZ_CHECK_MSG(line.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos,
                   "CR, LF or NUL inside a head line the engine wrote: " + hex(line));
    if (first) {
      start = line;
      first = false;
    } else {
      const auto colon = line.find(':');
      FUZZ_CHECK_MSG(colon != std::string_view::npos && colon > 0, "field without a name: " + hex(line));
      const auto name = line.substr(0, colon);
      for (char c : name) FUZZ_CHECK_MSG(tchar(c), "field name not a token: " + hex(line));
      auto value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      fields.push_back({name, value});
    }
    pos = end + 2;
  }
  return fields;
}

}  // namespace

void output_checker::on_head(std::string_view head) {
  std::string_view start;
  const auto fields = split_head(head, start);
  auto has = [&](std::string_view name, std::string_view value) {
    for (const auto& f : fields)
      if (ieq(f.name, name) && (value.empty() || ieq(f.value, value))) return true;
    return false;
  };
  if (role_ == gust::role::client) {
    FUZZ_CHECK_MSG(starts_with(start, "GET /") && start.size() > 14 &&
                       start.substr(start.size() - 9) == " HTTP/1.1",
                   "client request line: " + std::string(start));
    FUZZ_CHECK(has("Sec-WebSocket-Key", {}));
    FUZZ_CHECK(has("Sec-WebSocket-Version", "13"));
    FUZZ_CHECK(has("Upgrade", "websocket"));
    phase_ = phase::frames;
    return;
  }
  FUZZ_CHECK_MSG(starts_with(start, "HTTP/1.1 ") && start.size() >= 12, "status line: " + std::string(start));
  status_ = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    FUZZ_CHECK_MSG(start[i] >= '0' && start[i] <= '9', "status line: " + std::string(start));
    status_ = status_ * 10 + (start[i] - '0');
  }
  if (status_ == 101) {
    FUZZ_CHECK(has("Upgrade", "websocket"));
    FUZZ_CHECK(has("Connection", "Upgrade"));
    FUZZ_CHECK(has("Sec-WebSocket-Accept", {}));
    for (const auto& f : fields)
      if (ieq(f.name, "Sec-WebSocket-Extensions") &&
          f.value.find("permessage-deflate") != std::string_view::npos)
        deflate_ = true;
    phase_ = phase::frames;
    return;
  }
  FUZZ_CHECK_MSG(status_ >= 200 && status_ <= 599, "refusal status: " + std::string(start));
  FUZZ_CHECK(has("Connection", "close"));
  bool have_length = false;
  for (const auto& f : fields) {
    if (!ieq(f.name, "Content-Length")) continue;
    FUZZ_CHECK_MSG(!have_length, "two Content-Length fields");
    have_length = true;
    body_left_ = 0;
    FUZZ_CHECK(!f.value.empty());
    for (char c : f.value) {
      FUZZ_CHECK_MSG(c >= '0' && c <= '9', "Content-Length: " + std::string(f.value));
      body_left_ = body_left_ * 10 + static_cast<std::size_t>(c - '0');
    }
  }
  FUZZ_CHECK_MSG(have_length, "a refusal without Content-Length");
  phase_ = body_left_ ? phase::body : phase::after;
}

void output_checker::on_frame(wire_frame&& f) {
  const bool client = role_ == gust::role::client;
  FUZZ_CHECK_MSG(f.masked == client, client ? "client frame not masked" : "server frame masked");
  const unsigned op = f.opcode;
  const bool control = (op & 0x8) != 0;
  FUZZ_CHECK_MSG(op <= 2 || (op >= 8 && op <= 10), "reserved opcode " + std::to_string(op));
  if (f.rsv != 0) {
    // RFC 7692 6: RSV1 on the first frame of a compressed message only.
    FUZZ_CHECK_MSG(deflate_ && f.rsv == 0x4 && (op == 1 || op == 2),
                   "reserved bits " + std::to_string(f.rsv) + " on opcode " + std::to_string(op));
  }
  if (close_sent_) {
    // 5.5.1: nothing but control frames after the close; the engine
    // still answers pings (a pong) while it waits for the peer's close.
    FUZZ_CHECK_MSG(op == 0xA, "frame with opcode " + std::to_string(op) + " after our close frame");
  }
  if (control) {
    FUZZ_CHECK_MSG(f.fin, "fragmented control frame");
    FUZZ_CHECK_MSG(f.length <= 125, "control frame above 125 bytes");
    if (op == 0x9) {
      pings_.push_back(f.payload);
    } else if (op == 0xA) {
      pongs_.push_back(f.payload);
    } else {
      FUZZ_CHECK_MSG(f.payload.size() != 1, "close frame with a one-byte payload");
      if (f.payload.size() >= 2) {
        const auto code = static_cast<std::uint16_t>(static_cast<std::uint8_t>(f.payload[0]) << 8 |
                                                     static_cast<std::uint8_t>(f.payload[1]));
        FUZZ_CHECK_MSG(ref_close_code_ok(code), "close code " + std::to_string(code) + " on the wire");
        FUZZ_CHECK_MSG(valid_utf8(std::string_view(f.payload).substr(2)), "close reason not UTF-8");
        close_code_ = code;
      }
      close_sent_ = true;
    }
  } else {
    if (op == 0) {
      FUZZ_CHECK_MSG(in_msg_, "continuation frame outside a message");
    } else {
      FUZZ_CHECK_MSG(!in_msg_, "new data frame inside a fragmented message");
      in_msg_ = true;
      cur_ = message{op == 1, (f.rsv & 0x4) != 0, {}};
      utf8_ = ref_utf8();
    }
    if (max_frame_ && !cur_.compressed)
      FUZZ_CHECK_MSG(f.payload.size() <= max_frame_, "data frame of " + std::to_string(f.payload.size()) +
                                                         " bytes above max_send_frame_size " +
                                                         std::to_string(max_frame_));
    if (cur_.text && !cur_.compressed)
      FUZZ_CHECK_MSG(utf8_.push(f.payload), "invalid UTF-8 in a text message we sent");
    cur_.data += f.payload;
    if (f.fin) {
      if (cur_.text && !cur_.compressed)
        FUZZ_CHECK_MSG(utf8_.complete(), "text message we sent ends inside a UTF-8 sequence");
      messages_.push_back(std::move(cur_));
      cur_ = {};
      in_msg_ = false;
    }
  }
  f.payload.clear();  // kept for the header fields only
  frames_.push_back(std::move(f));
}

void output_checker::feed(std::string_view bytes) {
  total_ += bytes.size();
  buf_.append(bytes);
  // What was parsed is dropped once at the end: erasing each frame from the
  // front made a long run of frames quadratic (a slow unit, not a finding).
  std::size_t pos = 0;
  struct drop_parsed {
    std::string& buf;
    std::size_t& pos;
    ~drop_parsed() { buf.erase(0, pos); }
  } drop{buf_, pos};
  for (;;) {
    const std::string_view rest = std::string_view(buf_).substr(pos);
    switch (phase_) {
      case phase::head: {
        const auto end = rest.find("\r\n\r\n");
        if (end == std::string_view::npos) {
          FUZZ_CHECK_MSG(rest.size() < (1u << 20), "an HTTP head of more than 1 MiB");
          return;
        }
        const std::string head(rest.substr(0, end));
        pos += end + 4;
        on_head(head);
        continue;
      }
      case phase::body: {
        const std::size_t n = std::min(body_left_, rest.size());
        pos += n;
        body_left_ -= n;
        if (body_left_ == 0) {
          phase_ = phase::after;
          continue;
        }
        return;
      }
      case phase::after:
        FUZZ_CHECK_MSG(rest.empty(), "bytes after the response that refused the handshake: " +
                                         hex(rest.substr(0, 64)));
        return;
      case phase::frames: {
        wire_frame f;
        switch (parse_wire_frame(rest, f, true)) {
          case wire_status::need_more: return;
          case wire_status::not_minimal: fail(__FILE__, __LINE__, "frame length not minimal", hex(rest.substr(0, 14)));
          case wire_status::msb_set: fail(__FILE__, __LINE__, "frame length MSB set", hex(rest.substr(0, 14)));
          case wire_status::ok: break;
        }
        pos += f.header_size + static_cast<std::size_t>(f.length);
        on_frame(std::move(f));
        continue;
      }
    }
  }
}

void output_checker::finish() {
  FUZZ_CHECK_MSG(buf_.empty(), "output ends inside a frame or head: " + hex(std::string_view(buf_).substr(0, 64)));
  FUZZ_CHECK_MSG(phase_ != phase::body, "output ends inside a response body");
}

// ---------------------------------------------------------------------------
// Driving engines

std::span<std::byte> borrowed_buffers::make(std::string_view bytes) {
  auto p = std::make_unique<std::byte[]>(bytes.size() ? bytes.size() : 1);
  if (!bytes.empty()) std::memcpy(p.get(), bytes.data(), bytes.size());
  std::span<std::byte> s(p.get(), bytes.size());
  bufs_.push_back(std::move(p));
  sizes_.push_back(bytes.size());
  return s;
}

void borrowed_buffers::release() {
  for (std::size_t i = 0; i < bufs_.size(); ++i) std::memset(bufs_[i].get(), 0xEE, sizes_[i]);
  bufs_.clear();
  sizes_.clear();
}

std::string peek_output(connection& c, std::size_t n) {
  std::string out;
  for (const auto& b : c.pending_output()) {
    if (out.size() >= n) break;
    const std::size_t k = std::min(b.size, n - out.size());
    out.append(static_cast<const char*>(b.data), k);
  }
  return out;
}

std::string take_output(connection& c, std::size_t n) {
  std::string out;
  while (out.size() < n && c.buffered_amount() > 0) {
    const std::string piece = peek_output(c, std::min(n - out.size(), c.buffered_amount()));
    FUZZ_CHECK_MSG(!piece.empty(), "buffered_amount() > 0 but pending_output() is empty");
    FUZZ_CHECK(!c.consume_output(piece.size()));
    out += piece;
  }
  return out;
}

std::string describe(const event& ev) {
  struct visitor {
    std::string operator()(const request_event& e) { return "request:" + e.request->target; }
    std::string operator()(const open_event& e) {
      return "open:" + std::string(e.subprotocol) + ":" + std::string(e.extensions);
    }
    std::string operator()(const message_event& e) {
      std::string s = (e.type == message_type::text ? "text:" : "binary:") + hex(as_sv(e.data));
      return e.last ? s : s + ":more";
    }
    std::string operator()(const ping_event& e) { return "ping:" + hex(as_sv(e.payload)); }
    std::string operator()(const pong_event& e) { return "pong:" + hex(as_sv(e.payload)); }
    std::string operator()(const close_event& e) {
      return "close:" + std::to_string(e.code) + ":" + hex(e.reason) + ":" + (e.clean ? "clean" : "unclean") +
             ":" + (e.by_peer ? "peer" : "local") + ":" + std::string(to_string(e.cause));
    }
    std::string operator()(const handshake_failure_event& e) {
      return "handshake_failure:" + std::string(to_string(e.failure->error));
    }
  };
  return std::visit(visitor{}, ev);
}

void set_deflate_options(gust::deflate_options& d, std::uint8_t v, deflate_pool* pool) {
  static constexpr int server_bits[] = {15, 8, 9, 11};
  static constexpr int client_bits[] = {15, 8, 10, 13};
  d.server_no_context_takeover = v & 0x01;
  d.client_no_context_takeover = v & 0x02;
  d.pool = (v & 0x04) ? pool : nullptr;
  d.server_max_window_bits = server_bits[(v >> 3) & 3];
  d.client_max_window_bits = client_bits[(v >> 5) & 3];
  if (!(v & 0x80)) d.min_size = 0;
}

random_source counting_random(std::uint8_t seed) {
  return [n = static_cast<std::uint8_t>(0x5A ^ seed)](std::span<std::byte> out) mutable {
    for (auto& b : out) b = static_cast<std::byte>(n++);
  };
}

open_pair open_engines(time_point now, gust::settings cs, gust::settings ss, client_options co,
                       server_options so) {
  if (co.host.empty()) co.host = "example.com";
  if (!cs.random) cs.random = counting_random(1);
  if (!ss.random) ss.random = counting_random(2);
  open_pair p{client_connection(now, std::move(co), std::move(cs)),
              server_connection(now, std::move(ss), std::move(so)), {}};
  borrowed_buffers keep;
  bool client_open = false, server_open = false;
  for (int round = 0; round < 4 && !(client_open && server_open); ++round) {
    if (std::string req = take_output(p.client); !req.empty()) {
      p.server.receive(keep.make(req), now);
      while (auto ev = p.server.next_event(now)) {
        if (std::holds_alternative<request_event>(*ev)) {
          FUZZ_CHECK(!p.server.accept(now));
        } else {
          FUZZ_CHECK_MSG(std::holds_alternative<open_event>(*ev), "server handshake: " + describe(*ev));
          server_open = true;
        }
      }
      keep.release();
    }
    if (std::string resp = take_output(p.server); !resp.empty()) {
      p.client.receive(keep.make(resp), now);
      while (auto ev = p.client.next_event(now)) {
        const auto* open = std::get_if<open_event>(&*ev);
        FUZZ_CHECK_MSG(open != nullptr, "client handshake: " + describe(*ev));
        p.extensions.assign(open->extensions);
        client_open = true;
      }
      keep.release();
    }
  }
  FUZZ_CHECK(client_open && server_open);
  FUZZ_CHECK(p.client.state() == state::open && p.server.state() == state::open);
  return p;
}

}  // namespace gust::fuzz
