// The connection state machine: RFC 6455 for both roles, without I/O.
//
// States and who moves them (RFC 6455 4, 7):
//   1. CONNECTING -> OPEN: a server when the application accept()s the
//      request_event; a client when a valid 101 response arrives (4.1).
//   2. CONNECTING -> CLOSED: the request is malformed or refused (reject,
//      respond, a 4xx of ours), the response is not a valid 101, the
//      transport ends, or open_timeout passes. handshake_failure_event,
//      except where the application itself refused.
//   3. OPEN -> CLOSING: the application calls close(); we sent a close
//      frame and wait for the peer's (7.1.2), at most close_timeout.
//   4. OPEN or CLOSING -> CLOSED: the peer's close frame arrives (we echo it
//      if we had not sent one, 5.5.1), or the connection fails: a protocol
//      violation by the peer (7.1.7, we send 1002/1007/1009 first, behind
//      the frames already queued), fail() by the application or a keepalive
//      pong that does not come (1011; both send their close at once and drop
//      unsent data), a close_timeout, or EOF. Exactly one close_event.
//   5. CLOSED is final: further input is discarded (5.5.1 "after sending a
//      Close frame, the endpoint MUST NOT send any more data frames"; data
//      after the peer's close is ignored) and nothing but already queued
//      bytes goes out.
//
// Transport (7.1.1): after the close handshake the server closes TCP first;
// the client waits for that, up to close_timeout, then closes it itself. On
// any failure both close at once. transport_should_close() says when.
//
// Input ownership: bytes are parsed where they lie, in our input buffer
// (prepare/commit) or in the caller's (receive). A single-frame message is
// unmasked and validated in place and handed out as a view; only fragmented
// messages are copied, into the reassembly buffer. A borrowed buffer's
// unconsumed tail is copied into the input buffer when next_event() returns
// nothing, which is the moment the caller may recycle it.
//
// Traffic state (traffic.hpp): the input buffers, the frame and message
// being received and the output queue live apart, behind impl::t. With
// settings.output_pool they are borrowed from the pool by the first call
// that needs them and given back when next_event() returns nothing or
// consume_output() drains the queue with nothing else in flight; an idle
// open connection then holds only impl. Without a pool they are kept.
#include "gust/connection.hpp"
#include "gust/prepared_message.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cstring>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "compact.hpp"
#include "deflate/codec.hpp"
#include "deflate/negotiation.hpp"
#include "frame.hpp"
#include "handshake_client.hpp"
#include "handshake_server.hpp"
#include "http1.hpp"
#include "mask.hpp"
#include "output_queue.hpp"
#include "traffic.hpp"
#include "random.hpp"
#include "utf8.hpp"

namespace gust {

using detail::frame_header;
using detail::header_status;
namespace op = detail;  // opcode values

namespace {

constexpr std::size_t default_read_size = 16 * 1024;
// Buffers above these sizes are released once empty, so one large message
// does not pin its size for the life of an idle connection.
constexpr std::size_t input_keep_limit = 256 * 1024;
constexpr std::size_t message_keep_limit = 256 * 1024;
// A traffic state given back to the pool keeps buffers up to this size (a
// default read buffer): the pool holds up to max_cached of them, and any
// connection may borrow one.
constexpr std::size_t pooled_keep_limit = default_read_size;
// The traffic state of a connection that holds none: idle, never written.
// Every call that would write borrows a real one first (impl::tr()); the
// receive fast path reads it as it would a real one and finds no input,
// which spares it a null test per frame.
constinit detail::traffic no_traffic;

// Owns a connection's traffic state, or points at no_traffic.
class traffic_ptr {
 public:
  traffic_ptr() noexcept = default;
  traffic_ptr(const traffic_ptr&) = delete;
  traffic_ptr& operator=(const traffic_ptr&) = delete;
  ~traffic_ptr() { reset(); }
  explicit operator bool() const noexcept { return p_ != &no_traffic; }
  detail::traffic* operator->() const noexcept { return p_; }
  detail::traffic& operator*() const noexcept { return *p_; }
  /// Never null: no_traffic when none is held.
  detail::traffic* get() const noexcept { return p_; }
  traffic_ptr& operator=(std::unique_ptr<detail::traffic> t) noexcept {
    reset();
    if (t) p_ = t.release();
    return *this;
  }
  std::unique_ptr<detail::traffic> take() noexcept {
    std::unique_ptr<detail::traffic> t(*this ? p_ : nullptr);
    p_ = &no_traffic;
    return t;
  }
  void reset() noexcept { take(); }

 private:
  detail::traffic* p_ = &no_traffic;
};

// 5.5: control payload <= 125, of which a close code takes 2.
constexpr std::size_t max_close_reason = 123;

constexpr std::uint8_t opc(detail::opcode o) { return static_cast<std::uint8_t>(o); }

enum class deferred : std::uint8_t { open, close, handshake_failure };

// 414 and 431 are the parsers' size limits; anything else is bad syntax.
handshake_error parse_failure(int status) noexcept {
  return status == 414 || status == 431 ? handshake_error::too_large : handshake_error::malformed;
}

}  // namespace

std::string_view to_string(state s) noexcept {
  switch (s) {
    case state::connecting: return "CONNECTING";
    case state::open: return "OPEN";
    case state::closing: return "CLOSING";
    case state::closed: return "CLOSED";
  }
  return "?";
}

std::string_view to_string(close_cause c) noexcept {
  switch (c) {
    case close_cause::handshake: return "close handshake";
    case close_cause::protocol_error: return "protocol error";
    case close_cause::failed_locally: return "failed by the application";
    case close_cause::keepalive_timeout: return "keepalive timeout";
    case close_cause::close_timeout: return "close timeout";
    case close_cause::eof: return "end of stream";
  }
  return "?";
}

struct connection::impl {
  impl(gust::role r, time_point now, std::shared_ptr<const gust::settings> s)
      : shared_cfg(std::move(s)), role(r) {
    if (cfg().timeouts.open_timeout.count() > 0) timer = now + cfg().timeouts.open_timeout;
    // Without a pool the traffic state is made once and kept.
    if (!cfg().output_pool) t = make_traffic();
  }

  // Fields laid out so that no padding sits between them (the 8-byte ones,
  // then `head`, whose tail padding the one-byte fields fill, then the 2-
  // and 4-byte ones): an idle connection's memory is mostly this struct
  // (and what it keeps of the opening handshake). What few connections need
  // lives behind `rare`.

  // ---- traffic -----------------------------------------------------------
  // Input, the message being received, output: only while bytes are in
  // flight. With settings.output_pool it is borrowed from the pool and given
  // back once idle (give_back_if_idle); without, it is made at construction
  // and kept. None only with a pool. First: the receive fast path reads it
  // first.
  traffic_ptr t;

  // ---- configuration -----------------------------------------------------
  // Servers share one settings object between all their connections: a
  // copy per connection would be most of an idle connection's memory.
  std::shared_ptr<const gust::settings> shared_cfg;
  const gust::settings& cfg() const noexcept { return *shared_cfg; }

  // ---- opening handshake -------------------------------------------------
  // What only the handshake needs lives apart and is freed once the
  // connection is open: an open connection keeps only the request (server)
  // or the response (client), for request()/open_event.
  struct handshake_state {
    server_options sopts;
    std::optional<detail::request_parser> req_parser;
    detail::upgrade_request upgrade;
    client_options copts;
    std::string key;
    std::optional<detail::response_parser> resp_parser;
    handshake_failure failure;
  };
  // Until open, and after a failed handshake (for its event), the
  // handshake's working state; once open, the request a server keeps (none
  // once released) or the response a client keeps. Declared with the small
  // fields below, whose bytes sit in its tail padding.
  using head_slot = std::variant<std::monostate, std::unique_ptr<handshake_state>, std::unique_ptr<http::request>,
                                 std::unique_ptr<http::response>>;
  template <class T>
  T* head_as() const noexcept {
    const auto* p = std::get_if<std::unique_ptr<T>>(&head);
    return p ? p->get() : nullptr;
  }
  handshake_state* hs() const noexcept { return head_as<handshake_state>(); }
  http::request* kept_request() const noexcept { return head_as<http::request>(); }
  http::response* kept_response() const noexcept { return head_as<http::response>(); }

  // ---- what few connections need -----------------------------------------
  // Made by the first call that needs it (more()): a subprotocol or an
  // extension negotiated, a custom random source on a client, an
  // application ping, a close with a reason. A connection that uses none of
  // them never makes it. Nothing in it is read per frame unless the
  // connection negotiated permessage-deflate (deflate_on says so inline) or
  // a client draws its masks from a custom settings.random.
  struct rare_state {
    detail::small_string subprotocol;
    detail::small_string extensions;
    detail::small_string close_reason;
    // permessage-deflate (RFC 7692). Our compressor follows our role's half
    // of the agreement, our decompressor the peer's. Streams are made when
    // first needed; a direction without context takeover borrows from
    // settings.deflate.pool if any. They stay here, not in the traffic
    // state: context takeover keeps the window across idle periods.
    std::unique_ptr<detail::deflater> compressor;
    std::unique_ptr<detail::inflater> decompressor;
    // Masking keys drawn from a custom settings.random, 16 at a time (the
    // default source needs no cache): made on first use.
    struct random_cache {
      std::array<std::byte, 64> pool{};
      std::size_t used = pool.size();
    };
    std::unique_ptr<random_cache> random;
    // The application's last ping, to time its pong: made on the first
    // ping() (most connections never send one).
    struct app_ping {
      std::array<std::byte, 125> payload{};
      std::size_t size = 0;
      std::optional<time_point> sent;
    };
    std::unique_ptr<app_ping> app_ping_state;
    detail::deflate_agreement agreement;  // read only while deflate_on
  };
  std::unique_ptr<rare_state> rare;
  rare_state& more() {
    if (!rare) rare = std::make_unique<rare_state>();
    return *rare;
  }
  std::string_view subprotocol() const noexcept { return rare ? std::string_view(rare->subprotocol) : std::string_view(); }
  std::string_view extensions() const noexcept { return rare ? std::string_view(rare->extensions) : std::string_view(); }
  std::string_view close_reason() const noexcept { return rare ? std::string_view(rare->close_reason) : std::string_view(); }

  // ---- time --------------------------------------------------------------
  // The one deadline the state arms, never two at once:
  //   CONNECTING         open_timeout (from construction);
  //   OPEN               the next keepalive ping, or while awaiting_pong the
  //                      keepalive pong's deadline (sent + ping_timeout: the
  //                      ping's send time is that minus ping_timeout);
  //   CLOSING            close_timeout, for the peer's close frame;
  //   CLOSED             a client's close_timeout for the server's EOF.
  // Every change of state that leaves one of these resets or replaces it.
  detail::optional_time timer;
  time_point last_now{};
  detail::optional_duration rtt;

  // ---- opening handshake, then what is kept of it (see head_slot) ----------
  // [[no_unique_address]]: the variant is 16 bytes, 9 of them data; the
  // fields declared after it start in the other 7 (GCC and Clang).
  [[no_unique_address]] head_slot head{std::make_unique<handshake_state>()};

  // ---- state -------------------------------------------------------------
  gust::role role;
  gust::state st = gust::state::connecting;

  // ---- small-frame fast path (next_event) --------------------------------
  // Whole small data frames of fewer payload bytes than this are delivered
  // by next_small(); 0 turns it off. Non-zero only while OPEN or CLOSING,
  // with no deferred event, the receive side between messages, the limits
  // allowing and the message buffer not due for release: written on every
  // return of next(), which alone changes the receive side, and cleared by
  // defer() and end_connection(), which change the rest.
  std::uint8_t small_cap = 0;

  close_cause cause = close_cause::eof;

  // ---- events raised outside next_event ------------------------------------
  // A queue of up to 3, two bits each from the low end, deferred value + 1
  // (0: empty slot, so the byte is 0 when the queue is).
  std::uint8_t deferred_events = 0;

  // The caller uses receive(), not prepare(). A whole byte: every
  // receive() and prepare() writes it.
  bool lends_buffers = false;
  // Flags read or written at most once per call, not per frame: a bit each.
  bool transport_close : 1 = false;
  bool eof : 1 = false;
  bool awaiting_answer : 1 = false;  // server: request_event out, no answer yet
  bool release_request : 1 = false;  // !keep_request: free it after open_event
  bool deflate_on : 1 = false;       // permessage-deflate negotiated (rare->agreement)
  bool awaiting_pong : 1 = false;    // a keepalive ping out; timer is its pong's deadline
  bool close_sent : 1 = false;
  bool close_clean : 1 = false;
  bool close_by_peer : 1 = false;

  std::uint16_t close_code_ev = close_code::abnormal;

  std::uint32_t keepalive_seq = 0;  // the keepalive ping's payload, big-endian
  // What the kept request or response holds, measured once when kept (it
  // never changes after): memory() runs after every batch of I/O.
  std::uint32_t kept_bytes = 0;

  // =========================================================================
  // Traffic state: borrowed while bytes are in flight

  std::unique_ptr<detail::traffic> make_traffic() const {
    auto made = std::make_unique<detail::traffic>();
    made->out.use_pool(cfg().output_pool);
    return made;
  }
  // Every call that touches input, the message being received or the output
  // goes through here first (or checks t, if it only reads).
  detail::traffic& tr() {
    if (!t) [[unlikely]] acquire();
    return *t;
  }
  [[gnu::noinline]] void acquire() {
    if (output_pool* pool = cfg().output_pool) t = pool->internals().take_traffic();
    if (!t) t = make_traffic();
  }
  // Back to the pool once nothing is in flight: no bytes retained, between
  // frames and messages both ways, no output. What grew large is freed
  // first, so that the pool's traffic states stay small.
  void give_back_if_idle() noexcept {
    output_pool* const pool = cfg().output_pool;
    if (!pool || !t || !t->idle()) return;
    detail::traffic& x = *t;
    x.scanned_base = nullptr;
    x.ipos = x.iend = 0;
    if (x.icap > pooled_keep_limit) release_input_storage();
    x.msg_buf.clear();
    if (x.msg_buf.capacity() > pooled_keep_limit) x.msg_buf.release(pool);
    if (x.own_scratch.capacity() > pooled_keep_limit) x.own_scratch.release(pool);
    pool->internals().give_traffic(t.take());
  }
  // Queued output, without borrowing a traffic state to say there is none.
  std::size_t queued() const noexcept { return t ? t->out.size() : 0; }

  // =========================================================================
  // Input buffer

  // The bytes to parse next. region() also notes which buffer that was,
  // for need_input(). (next_small() picks the same buffer its own way.)
  std::span<std::byte> peek() const noexcept {
    if (t->ipos < t->iend || !t->borrowed) return {t->ibuf.get() + t->ipos, t->iend - t->ipos};
    return {t->borrowed + t->bpos, t->bend - t->bpos};
  }
  std::span<std::byte> region() noexcept {
    t->region_owned = t->ipos < t->iend || !t->borrowed;
    return peek();
  }
  void advance(std::size_t n) noexcept {
    if (t->ipos < t->iend || !t->borrowed) {
      t->ipos += n;
    } else {
      t->bpos += n;
      if (t->bpos == t->bend) t->borrowed = nullptr;
    }
  }
  void reserve_input(std::size_t room) {
    t->scanned_base = nullptr;
    if (t->ipos > 0) {
      std::memmove(t->ibuf.get(), t->ibuf.get() + t->ipos, t->iend - t->ipos);
      t->iend -= t->ipos;
      t->ipos = 0;
    }
    if (t->icap - t->iend >= room) return;
    // A power of two, at least 256: a split small frame's tail and the
    // top-ups that complete it cost one allocation, not one per step, and
    // the sizes a traffic state keeps recur. A frame read in place whose
    // length is known gets room for all of it at once (its length was
    // checked against the limits), but never more than twice what arrived
    // plus a read's worth, so a bare header does not reserve a megabyte.
    std::size_t want = std::max(t->iend + room, t->icap * 2);
    if (!t->in_header && t->zero_copy && t->fh.length > want)
      want = static_cast<std::size_t>(std::min<std::uint64_t>(t->fh.length, 2 * want + default_read_size));
    std::size_t cap = std::bit_ceil(std::max(want, std::size_t{256}));
    auto grown = output_pool::impl::take_storage(cfg().output_pool, cap);
    if (t->iend) std::memcpy(grown.get(), t->ibuf.get(), t->iend);
    release_input_storage();
    t->ibuf = std::move(grown);
    t->icap = cap;
  }
  void append_input(const std::byte* p, std::size_t n) {
    t->scanned_base = nullptr;
    if (n == 0) return;
    reserve_input(n);
    std::memcpy(t->ibuf.get() + t->iend, p, n);
    t->iend += n;
  }
  // A frame split across two receive() calls: its start is in our buffer,
  // the rest in the caller's. Only the split frame is copied, in growing
  // steps (at most about twice its size, a few retries of its header), so
  // that the frames behind it are read from the caller's buffer in place
  // rather than the whole batch being copied after one split frame.
  void top_up() {
    const std::size_t have = t->iend - t->ipos;
    const std::size_t n = std::min(t->bend - t->bpos, std::max<std::size_t>(have, 64));
    reserve_input(n);
    std::memcpy(t->ibuf.get() + t->iend, t->borrowed + t->bpos, n);
    t->iend += n;
    t->bpos += n;
    if (t->bpos == t->bend) t->borrowed = nullptr;
  }
  // The caller may recycle its buffer once next_event() returns nothing:
  // keep what is still needed.
  void stash_borrowed() {
    t->scanned_base = nullptr;
    if (!t->borrowed) return;
    std::byte* p = t->borrowed + t->bpos;
    const std::size_t n = t->bend - t->bpos;
    t->borrowed = nullptr;
    append_input(p, n);
  }
  void drop_input() noexcept {
    if (!t) return;
    t->scanned_base = nullptr;
    t->ipos = t->iend = 0;
    t->borrowed = nullptr;
    if (t->icap > input_keep_limit) release_input_storage();
  }
  // A block-sized buffer goes back to the pool's blocks (the next big
  // frame, on any connection, reuses it and its pages); a small one is freed.
  void release_input_storage() noexcept {
    output_pool::impl::give_storage(cfg().output_pool, std::move(t->ibuf), t->icap);
    t->icap = 0;
  }

  // =========================================================================
  // Looking ahead for a frame that would fail the connection

  bool close_may_follow() const noexcept {
    if (st != gust::state::open) return true;
    if (!t) return false;  // no input at all
    if (!t->in_header) return true;
    const bool own = t->ipos < t->iend || !t->borrowed;
    // Right after a frame split between two inputs, the rest of our buffer
    // runs into the caller's: not worth reading across (one early write).
    if (own && t->borrowed) return true;
    const std::byte* base = own ? t->ibuf.get() : t->borrowed;
    const std::size_t pos = own ? t->ipos : t->bpos, end = own ? t->iend : t->bend;
    if (base == t->scanned_base && t->scanned_to >= pos && t->scanned_to <= end) {
      if (t->scanned_hit) return true;
      if (t->scanned_to == end) return false;  // (the common case: all read already)
    } else {
      t->scanned_base = base;
      t->scanned_to = pos;
      t->scanned_hit = false;
      t->scanned_in_msg = t->in_message;
    }
    return scan_ahead(base, end);
  }

  // The frames of base[scanned_to, end): what close_may_follow() has not
  // read yet. Out of line: its register saves would weigh on every call.
  [[gnu::noinline]] bool scan_ahead(const std::byte* base, std::size_t end) const noexcept {
    const auto* const b = reinterpret_cast<const std::uint8_t*>(base);
    const std::uint8_t* q = b + t->scanned_to;
    const std::uint8_t* const e = b + end;
    bool in_msg = t->scanned_in_msg;
    const bool masked_in = role == gust::role::server;
    // Most frames are whole small text or binary messages: one test each
    // (FIN, RSV1 only with deflate, opcode 1 or 2, the mask bit as the role
    // expects, a 7-bit length the limits allow).
    if (!in_msg && cfg().limits.max_message_size >= 125 &&
        (!cfg().limits.max_frame_size || cfg().limits.max_frame_size >= 125)) {
      const unsigned rsv1_ok = deflate_on ? 0x40 : 0, mask_bit = masked_in ? 0x80 : 0;
      const std::size_t head = masked_in ? 6 : 2;
      while (e - q >= 2) {
        const unsigned b0 = q[0], b1 = q[1];
        if ((b0 & ~rsv1_ok) - 0x81u > 1u || (b1 & 0x80) != mask_bit || (b1 & 0x7F) >= 126) break;
        const std::size_t size = head + (b1 & 0x7F);
        if (std::size_t(e - q) < size) break;
        q += size;
      }
    }
    while (e - q >= 2) {
      frame_header h;
      std::size_t hsize = 0;
      const auto status = detail::parse_frame_header(reinterpret_cast<const std::byte*>(q),
                                                     static_cast<std::size_t>(e - q), h, hsize);
      if (status == detail::header_status::need_more) break;
      const std::uint8_t rsv_ok = deflate_on && (h.opcode == 1 || h.opcode == 2) ? 0x4 : 0;
      bool bad = status != detail::header_status::ok || (h.rsv & ~rsv_ok) != 0 ||
                 !detail::is_known_opcode(h.opcode) || h.masked != masked_in;
      if (!bad && detail::is_control(h.opcode)) {
        bad = h.opcode == opc(detail::opcode::close) || !h.fin ||
              h.length > detail::max_control_payload;
      } else if (!bad) {
        bad = (h.opcode == 0) != in_msg || h.length > cfg().limits.max_message_size ||
              (cfg().limits.max_frame_size && h.length > cfg().limits.max_frame_size);
        in_msg = !h.fin;
      }
      if (bad) {
        t->scanned_hit = true;
        return true;
      }
      if (std::size_t(e - q) - hsize < h.length) break;  // the buffer ends inside this frame
      q += hsize + static_cast<std::size_t>(h.length);
    }
    t->scanned_to = static_cast<std::size_t>(q - b);
    t->scanned_in_msg = in_msg;
    return false;
  }

  // =========================================================================
  // Output helpers

  detail::mask_key next_mask() {
    detail::mask_key k;
    if (!cfg().random) {
      detail::thread_random(k);
      return k;
    }
    rare_state& x = more();
    if (!x.random) x.random = std::make_unique<rare_state::random_cache>();
    rare_state::random_cache& r = *x.random;
    if (r.used + 4 > r.pool.size()) {
      cfg().random(r.pool);
      r.used = 0;
    }
    std::memcpy(k.data(), r.pool.data() + r.used, 4);
    r.used += 4;
    return k;
  }

  bool masks() const noexcept { return role == gust::role::client; }

  // A whole frame into `dst` (room: header + payload); returns its size.
  std::size_t encode_frame(std::byte* dst, bool fin, std::uint8_t opcode,
                           std::span<const std::byte> payload, std::uint8_t rsv = 0) {
    if (masks()) {
      const detail::mask_key k = next_mask();
      const std::size_t hs = detail::write_frame_header(dst, fin, rsv, opcode, payload.size(), &k);
      detail::mask_copy(dst + hs, payload.data(), payload.size(), k);
      return hs + payload.size();
    }
    const std::size_t hs = detail::write_frame_header(dst, fin, rsv, opcode, payload.size(), nullptr);
    if (!payload.empty()) std::memcpy(dst + hs, payload.data(), payload.size());
    return hs + payload.size();
  }

  void queue_control(std::uint8_t opcode, std::span<const std::byte> payload) {
    const std::size_t n = detail::frame_header_size(payload.size(), masks()) + payload.size();
    encode_frame(tr().out.insert_control(n), true, opcode, payload);
  }

  void queue_data_frame(bool fin, std::uint8_t opcode, std::span<const std::byte> payload,
                        const std::shared_ptr<const void>* owner, std::uint8_t rsv) {
    const std::size_t hs = detail::frame_header_size(payload.size(), masks());
    if (owner && !masks() && !payload.empty()) {
      detail::write_frame_header(t->out.append(hs, true), fin, rsv, opcode, payload.size(), nullptr);
      t->out.append_external(payload.data(), payload.size(), *owner, false);
      return;
    }
    encode_frame(t->out.append(hs + payload.size(), true), fin, opcode, payload, rsv);
  }

  // Splits at max_send_frame_size so control frames can pass between parts.
  // `rsv` (RSV1 for a compressed message) goes on the first frame only.
  void queue_data(std::uint8_t opcode, std::span<const std::byte> data, bool fin,
                  const std::shared_ptr<const void>* owner, std::uint8_t rsv = 0) {
    const std::size_t limit = cfg().max_send_frame_size ? cfg().max_send_frame_size : data.size();
    if (data.size() > limit && (!owner || masks())) {
      // Copied as several frames: the arena grows once to hold them all
      // (14 bytes is the largest header).
      t->out.reserve(data.size() + (data.size() / limit + 1) * 14);
    }
    std::size_t pos = 0;
    do {
      const std::size_t n = std::min(limit, data.size() - pos);
      const bool last = pos + n == data.size();
      queue_data_frame(fin && last, opcode, data.subspan(pos, n), owner, rsv);
      opcode = opc(detail::opcode::continuation);
      rsv = 0;
      pos += n;
    } while (pos < data.size());
  }

  // Where the close frame goes. Not urgent (the application's close(), the
  // echo of the peer's close, a failure the peer's input caused): at the
  // back, after every frame queued before it, so replies the application
  // queued to earlier valid messages still reach the peer. `urgent` (fail(),
  // the keepalive timeout): after the frame being written, and unsent data
  // is dropped. Either way no data frame follows the close (5.5.1): the
  // sends refuse once the state leaves OPEN.
  void queue_close(std::uint16_t code, std::string_view reason, bool urgent) {
    std::array<std::byte, 2 + max_close_reason> payload;
    std::size_t n = 0;
    if (code != close_code::no_status) {
      payload[0] = static_cast<std::byte>(code >> 8);
      payload[1] = static_cast<std::byte>(code & 0xFF);
      n = std::min(reason.size(), max_close_reason);
      if (n) std::memcpy(payload.data() + 2, reason.data(), n);
      n += 2;
    }
    const std::span<const std::byte> body{payload.data(), n};
    const std::size_t size = detail::frame_header_size(n, masks()) + n;
    tr();
    if (urgent) {
      t->out.discard_unsent_data();
      encode_frame(t->out.insert_control(size), true, opc(detail::opcode::close), body);
    } else {
      encode_frame(t->out.append(size, true, true), true, opc(detail::opcode::close), body);
    }
    close_sent = true;
  }

  void queue_handshake_bytes(std::string_view text) {
    // Queued as a control segment so no control frame can go before it.
    std::memcpy(tr().out.insert_control(text.size()), text.data(), text.size());
  }

  // =========================================================================
  // permessage-deflate streams

  bool we_are_server() const noexcept { return role == gust::role::server; }
  // Strings count only what they keep outside themselves (libstdc++
  // holds up to 15 characters inline).
  static std::size_t heap(const std::string& x) noexcept { return x.capacity() > 15 ? x.capacity() + 1 : 0; }
  static std::size_t heap(const detail::small_string& x) noexcept { return x.heap(); }
  void measure_kept() noexcept {
    std::size_t n = 0;
    if (const http::request* kept = kept_request()) {
      const http::request& r = *kept;
      n += sizeof(http::request) + heap(r.method) + heap(r.target) + r.headers.size() * 2 * sizeof(std::string);
      for (const auto& f : r.headers) n += heap(f.name) + heap(f.value);
    }
    if (const http::response* kept = kept_response()) n += sizeof(http::response) + kept->body.capacity();
    // (Bounded by max_handshake_size and the response limits.)
    kept_bytes = static_cast<std::uint32_t>(n);
  }
  std::size_t state_memory() const noexcept {
    std::size_t n = sizeof(impl) + kept_bytes;
    if (hs()) n += sizeof(handshake_state);
    if (shared_cfg.use_count() == 1) n += sizeof(gust::settings);  // ours alone
    if (rare) {
      const rare_state& x = *rare;
      n += sizeof(rare_state) + heap(x.subprotocol) + heap(x.extensions) + heap(x.close_reason);
      if (x.random) n += sizeof(rare_state::random_cache);
      if (x.app_ping_state) n += sizeof(rare_state::app_ping);
    }
    return n;
  }
  // The agreement, only while deflate_on (which made the rare state).
  const detail::deflate_agreement& agreed() const noexcept {
    assert(deflate_on && rare);
    return rare->agreement;
  }
  bool compress_no_context() const noexcept {
    const detail::deflate_agreement& agreement = agreed();
    return we_are_server() ? agreement.server_no_context_takeover : agreement.client_no_context_takeover;
  }
  bool decompress_no_context() const noexcept {
    const detail::deflate_agreement& agreement = agreed();
    return we_are_server() ? agreement.client_no_context_takeover : agreement.server_no_context_takeover;
  }
  int compress_bits() const noexcept {
    const detail::deflate_agreement& agreement = agreed();
    return we_are_server() ? agreement.server_max_window_bits : agreement.client_max_window_bits;
  }
  int decompress_bits() const noexcept {
    const detail::deflate_agreement& agreement = agreed();
    return we_are_server() ? agreement.client_max_window_bits : agreement.server_max_window_bits;
  }

  detail::deflater& get_compressor() {
    std::unique_ptr<detail::deflater>& compressor = more().compressor;
    if (!compressor) {
      const auto& d = cfg().deflate;
      compressor = d.pool && compress_no_context()
                       ? d.pool->internals().take_deflater(compress_bits(), d.level, d.mem_level)
                       : std::make_unique<detail::deflater>(compress_bits(), d.level, d.mem_level);
    }
    return *compressor;
  }
  // The end of a compressed message we sent.
  void compressed_message_done() {
    if (!compress_no_context()) return;
    std::unique_ptr<detail::deflater>& compressor = rare->compressor;
    if (cfg().deflate.pool)
      cfg().deflate.pool->internals().give_back(std::move(compressor));
    else
      compressor->reset();
  }
  detail::inflater& get_decompressor() {
    std::unique_ptr<detail::inflater>& decompressor = more().decompressor;
    if (!decompressor) {
      decompressor = cfg().deflate.pool && decompress_no_context()
                         ? cfg().deflate.pool->internals().take_inflater(decompress_bits())
                         : std::make_unique<detail::inflater>(decompress_bits());
    }
    return *decompressor;
  }
  void inflated_message_done() {
    if (!decompress_no_context()) return;
    std::unique_ptr<detail::inflater>& decompressor = rare->decompressor;
    if (cfg().deflate.pool)
      cfg().deflate.pool->internals().give_back(std::move(decompressor));
    else
      decompressor->reset();
  }
  void release_streams() {
    if (!rare) return;
    std::unique_ptr<detail::deflater>& compressor = rare->compressor;
    std::unique_ptr<detail::inflater>& decompressor = rare->decompressor;
    auto* pool = cfg().deflate.pool;
    if (pool && compressor && compress_no_context()) pool->internals().give_back(std::move(compressor));
    if (pool && decompressor && decompress_no_context()) pool->internals().give_back(std::move(decompressor));
    compressor.reset();
    decompressor.reset();
  }
  std::size_t compression_memory() const noexcept {
    std::size_t n = t ? t->own_scratch.capacity() : 0;
    if (rare && rare->compressor) n += rare->compressor->memory();
    if (rare && rare->decompressor) n += rare->decompressor->memory();
    return n;
  }
  // Compression is synchronous inside send(): connections sharing a pool
  // (one thread) can share the buffer the compressed bytes pass through.
  detail::message_buffer& scratch() {
    return cfg().deflate.pool ? cfg().deflate.pool->internals().scratch : t->own_scratch;
  }

  // =========================================================================
  // Endings

  void defer(deferred d) noexcept {
    small_cap = 0;
    for (unsigned shift = 0; shift < 6; shift += 2) {
      if (((deferred_events >> shift) & 3) == 0) {
        deferred_events = static_cast<std::uint8_t>(deferred_events | ((static_cast<unsigned>(d) + 1) << shift));
        return;
      }
    }
  }
  deferred pop_deferred() noexcept {
    const auto d = static_cast<deferred>((deferred_events & 3) - 1);
    deferred_events = static_cast<std::uint8_t>(deferred_events >> 2);
    return d;
  }

  void end_connection(std::uint16_t code, std::string_view reason, bool clean, bool by_peer,
                      close_cause why) {
    small_cap = 0;
    st = gust::state::closed;
    close_code_ev = code;
    if (!reason.empty())
      more().close_reason = reason;
    else if (rare)
      rare->close_reason = reason;
    close_clean = clean;
    close_by_peer = by_peer;
    cause = why;
    timer.reset();
    awaiting_pong = false;
    release_streams();
    if (!t) return;
    t->in_message = false;
    t->msg_buf.clear();
    if (t->msg_buf.capacity() > message_keep_limit) t->msg_buf.release(cfg().output_pool);
    t->own_scratch.release(cfg().output_pool);
  }

  event close_event_now() const noexcept {
    return close_event{close_code_ev, close_reason(), close_clean, close_by_peer, cause};
  }

  // RFC 6455 7.1.7 _Fail the WebSocket Connection_: send a close frame if we
  // still may, stop reading, close the transport. `urgent`: see queue_close.
  void fail_connection(std::uint16_t code, std::string_view reason, close_cause why, bool urgent) {
    if (!close_sent) queue_close(code, reason, urgent);
    end_connection(code, reason, false, false, why);
    transport_close = true;
    drop_input();
  }

  // The peer's input broke a rule or a limit. What the application queued
  // before is valid and was promised to the peer: its close goes after it
  // (bad input must not cost the answers to good input). A peer that does
  // not read is bounded by the transport's close (transport_should_close()
  // is set at once; the adapters give the output close_timeout to drain).
  event protocol_fail(std::uint16_t code, std::string_view reason) {
    fail_connection(code, reason, close_cause::protocol_error, false);
    return close_event_now();
  }

  void handshake_fail(handshake_error e, std::string_view detail_text,
                      std::optional<http::response> response = std::nullopt) {
    hs()->failure = handshake_failure{e, std::string(detail_text), std::move(response)};
    st = gust::state::closed;
    transport_close = true;
    timer.reset();  // open_timeout
    awaiting_answer = false;
    drop_input();
  }

  // The server's answer to a request it cannot upgrade.
  void server_refuse(int status, handshake_error e, std::string_view reason) {
    http::headers fields;
    if (status == 426) fields.add("Sec-WebSocket-Version", "13");
    queue_handshake_bytes(detail::write_response(status, detail::status_reason(status), fields,
                                                 reason, hs()->sopts.server_header));
    handshake_fail(e, reason);
  }

  void become_open(time_point now) {
    st = gust::state::open;
    timer.reset();  // open_timeout
    if (cfg().timeouts.ping_interval.count() > 0) timer = now + cfg().timeouts.ping_interval;  // first keepalive
  }

  // =========================================================================
  // next_event

  // Every "nothing yet" goes through here: the moment to keep what a
  // borrowed buffer still holds, and to act on EOF once input is used up.
  std::optional<event> need_input() {
    // The parser ran out of our buffer while the caller's has more: not
    // stalled, the read loop goes on with more of the split frame (or, once
    // ours is used up, with the caller's buffer in place).
    if (t->region_owned && t->borrowed && (st == gust::state::open || st == gust::state::closing)) {
      if (t->ipos < t->iend) top_up();
      return std::nullopt;
    }
    t->stalled = true;
    if (eof) return on_eof();
    stash_borrowed();
    // A caller that lends its buffers (receive()) needs ours only for a
    // partial frame: once that is used up, an idle connection holds none.
    // With a pool it is the traffic state that goes back once idle, with a
    // buffer it may keep (pooled_keep_limit), so the next partial frame on
    // any connection does not allocate one again.
    if (t->ipos == t->iend) {
      if (cfg().output_pool ? t->icap > pooled_keep_limit : lends_buffers || t->icap > input_keep_limit)
        drop_input_buffer();
    }
    return std::nullopt;
  }
  void drop_input_buffer() noexcept {
    t->ipos = t->iend = 0;
    release_input_storage();
  }

  std::optional<event> on_eof() {
    stash_borrowed();
    switch (st) {
      case gust::state::connecting:
        if (role == gust::role::client && hs()->resp_parser) {
          hs()->resp_parser->feed_eof();
          if (hs()->resp_parser->status() == detail::parse_status::done) return client_response_done();
        }
        if (awaiting_answer) return std::nullopt;  // the request is complete; answer it
        handshake_fail(handshake_error::eof, "the transport ended during the opening handshake",
                       hs()->resp_parser && hs()->resp_parser->status() == detail::parse_status::done
                           ? std::optional<http::response>(hs()->resp_parser->response())
                           : std::nullopt);
        return handshake_failure_event{&hs()->failure};
      case gust::state::open:
      case gust::state::closing:
        // 7.1.5: no close frame received: 1006. If we had sent ours, we
        // started the closing and the peer only hung up.
        end_connection(close_code::abnormal, {}, false, !close_sent, close_cause::eof);
        transport_close = true;
        drop_input();
        return close_event_now();
      case gust::state::closed:
        transport_close = true;  // a client saw the server close first
        timer.reset();           // close_timeout
        drop_input();
        return std::nullopt;
    }
    return std::nullopt;
  }

  std::optional<event> server_handshake() {
    if (awaiting_answer) {
      // Bytes after the request wait for the answer, but not without bound.
      const std::size_t waiting = (t->iend - t->ipos) + (t->borrowed ? t->bend - t->bpos : 0);
      if (waiting <= cfg().limits.max_handshake_size) return need_input();
      awaiting_answer = false;
      server_refuse(400, handshake_error::too_large,
                    "data sent before the handshake response passed max_handshake_size");
      t->borrowed = nullptr;
      drop_input_buffer();
      return handshake_failure_event{&hs()->failure};
    }
    auto in = region();
    advance(hs()->req_parser->feed(in));
    switch (hs()->req_parser->status()) {
      case detail::parse_status::need_more:
        return need_input();
      case detail::parse_status::error: {
        const auto& err = hs()->req_parser->error();
        server_refuse(err.status, parse_failure(err.status), err.reason);
        return handshake_failure_event{&hs()->failure};
      }
      case detail::parse_status::done:
        break;
    }
    if (auto rejection = detail::validate_upgrade_request(hs()->req_parser->request(), hs()->sopts, hs()->upgrade)) {
      server_refuse(rejection->status, rejection->error, rejection->reason);
      return handshake_failure_event{&hs()->failure};
    }
    awaiting_answer = true;
    return request_event{&hs()->req_parser->request()};
  }

  std::optional<event> client_response_done() {
    detail::upgrade_response selected;
    if (auto f = detail::validate_upgrade_response(hs()->resp_parser->response(), hs()->key, hs()->copts, selected)) {
      handshake_fail(f->error, f->detail, std::move(f->response));
      return handshake_failure_event{&hs()->failure};
    }
    if (!selected.subprotocol.empty()) more().subprotocol = selected.subprotocol;
    if (!selected.extensions.empty()) more().extensions = selected.extensions;
    if (auto why = accept_extensions()) {
      handshake_fail(handshake_error::unexpected_extension, *why, hs()->resp_parser->response());
      return handshake_failure_event{&hs()->failure};
    }
    return std::nullopt;
  }

  // The server's Sec-WebSocket-Extensions: at most one permessage-deflate,
  // valid for our offer (RFC 7692 7.1); nothing else may use RSV1.
  std::optional<std::string> accept_extensions() {
    if (extensions().empty()) return std::nullopt;
    auto parsed = detail::parse_extensions(extensions());
    if (!parsed) return std::string("malformed Sec-WebSocket-Extensions");
    for (const auto& ext : *parsed) {
      if (!http::iequals(ext.name, "permessage-deflate")) continue;
      if (deflate_on) return std::string("permessage-deflate selected twice");
      if (!cfg().deflate.enabled) return std::string("permessage-deflate was not enabled in settings");
      // The answer must suit one of our offers; the first that it suits wins.
      detail::deflate_agreement& agreement = rare->agreement;  // (made with the extensions)
      auto why = detail::accept_deflate_response(ext, cfg().deflate, agreement);
      for (const auto& alt : cfg().deflate.fallback_offers) {
        if (!why) break;
        if (!detail::accept_deflate_response(ext, alt, agreement)) why.reset();
      }
      if (why) return why;
      deflate_on = true;
    }
    return std::nullopt;
  }

  std::optional<event> client_handshake(time_point now) {
    auto in = region();
    advance(hs()->resp_parser->feed(in));
    switch (hs()->resp_parser->status()) {
      case detail::parse_status::need_more:
        return need_input();
      case detail::parse_status::error: {
        const auto& err = hs()->resp_parser->error();
        handshake_fail(parse_failure(err.status), err.reason);
        return handshake_failure_event{&hs()->failure};
      }
      case detail::parse_status::done:
        break;
    }
    if (auto ev = client_response_done()) return ev;
    become_open(now);
    auto response = std::make_unique<http::response>(std::move(hs()->resp_parser->response()));
    http::response* const kept = response.get();
    head = std::move(response);  // (frees the handshake state)
    measure_kept();
    return open_event{subprotocol(), extensions(), nullptr, kept};
  }

  // Unmasks and validates payload bytes in place. false: invalid UTF-8.
  bool process_payload(std::byte* p, std::size_t n, std::uint64_t phase) noexcept {
    if (n == 0) return true;
    // A compressed text message is validated after inflating, not on the wire.
    const bool text = t->msg_type == message_type::text && !t->msg_compressed;
    if (t->fh.masked) {
      if (text) return t->utf8.unmask_and_feed(p, n, t->fh.key, static_cast<std::size_t>(phase & 3));
      detail::mask_in_place(p, n, t->fh.key, static_cast<std::size_t>(phase & 3));
      return true;
    }
    return !text || t->utf8.feed(p, n);
  }

  // The end of a message's last frame: 8.1 "When an endpoint is to interpret
  // a byte stream as UTF-8 but finds that the byte stream is not, in fact, a
  // valid UTF-8 stream, that endpoint MUST _Fail the WebSocket Connection_".
  bool message_complete_ok() const noexcept {
    return t->msg_type != message_type::text || t->utf8.complete();
  }

  std::size_t small_limit() const noexcept {
    const limits& lim = cfg().limits;
    return lim.max_frame_size ? std::min(lim.max_frame_size, lim.max_message_size) : lim.max_message_size;
  }

  std::optional<event> read_header(time_point now) {
    auto in = region();
    frame_header h;
    std::size_t hs = 0;
    switch (detail::parse_frame_header(in.data(), in.size(), h, hs)) {
      case header_status::need_more: return need_input();
      case header_status::length_msb_set: return protocol_fail(close_code::protocol_error, "frame length has its most significant bit set");
      case header_status::length_not_minimal: return protocol_fail(close_code::protocol_error, "frame length not minimally encoded");
      case header_status::ok: break;
    }
    // 5.2: "MUST be 0 unless an extension is negotiated that defines
    // meanings for non-zero values". permessage-deflate defines RSV1, on the
    // first frame of a data message only (RFC 7692 6, 6.1).
    const std::uint8_t allowed_rsv = deflate_on ? 0x4 : 0;
    if (h.rsv & ~allowed_rsv) return protocol_fail(close_code::protocol_error, "reserved bits set");
    // 5.2: "If an unknown opcode is received, the receiving endpoint MUST
    // _Fail the WebSocket Connection_".
    if (!detail::is_known_opcode(h.opcode)) return protocol_fail(close_code::protocol_error, "reserved opcode");
    // 5.1: a server MUST close on an unmasked frame, a client on a masked one.
    if (role == gust::role::server && !h.masked) return protocol_fail(close_code::protocol_error, "client frame not masked");
    if (role == gust::role::client && h.masked) return protocol_fail(close_code::protocol_error, "server frame masked");

    if (detail::is_control(h.opcode)) {
      if (h.rsv) return protocol_fail(close_code::protocol_error, "compressed control frame");
      // 5.5: "All control frames MUST have a payload length of 125 bytes or
      // less and MUST NOT be fragmented."
      if (!h.fin) return protocol_fail(close_code::protocol_error, "fragmented control frame");
      if (h.length > detail::max_control_payload) return protocol_fail(close_code::protocol_error, "control frame payload above 125 bytes");
      if (in.size() < hs + h.length) return need_input();
      std::byte* payload = in.data() + hs;
      const auto len = static_cast<std::size_t>(h.length);
      if (h.masked) detail::mask_in_place(payload, len, h.key, 0);
      advance(hs + len);
      return on_control(h.opcode, {payload, len}, now);
    }

    // 5.4 fragmentation rules.
    const bool continuation = h.opcode == opc(detail::opcode::continuation);
    if (continuation && !t->in_message) return protocol_fail(close_code::protocol_error, "continuation frame without a message to continue");
    if (!continuation && t->in_message) return protocol_fail(close_code::protocol_error, "new data frame inside a fragmented message");
    if (continuation && h.rsv) return protocol_fail(close_code::protocol_error, "RSV1 on a continuation frame");

    const limits& lim = cfg().limits;
    // A compressed message's limit is on what it inflates to (checked while
    // inflating); its wire size may pass it only by deflate's worst-case
    // overhead on incompressible data.
    const bool compressed = continuation ? t->msg_compressed : h.rsv != 0;
    auto wire_limit = [&](std::uint64_t v) { return compressed ? v + v / 64 + 64 : v; };
    const std::uint64_t frame_limit = wire_limit(lim.max_frame_size ? lim.max_frame_size : lim.max_message_size);
    const std::uint64_t message_limit = wire_limit(lim.max_message_size);
    const std::uint64_t so_far = continuation ? t->msg_size : 0;
    if (h.length > frame_limit) return protocol_fail(close_code::message_too_big, "frame too big");
    if (h.length > message_limit - std::min<std::uint64_t>(so_far, message_limit))
      return protocol_fail(close_code::message_too_big, "message too big");
    if ((continuation ? t->msg_frags : 0) + 1 > lim.max_fragments) return protocol_fail(close_code::message_too_big, "too many fragments");

    if (!continuation) {
      t->in_message = true;
      t->msg_type = h.opcode == opc(detail::opcode::text) ? message_type::text : message_type::binary;
      t->msg_size = 0;
      t->msg_frags = 0;
      t->utf8.reset();
      t->msg_buf.clear();
      t->msg_compressed = h.rsv != 0;
      t->msg_inflated = 0;
    }
    t->msg_size += h.length;
    ++t->msg_frags;
    advance(hs);
    t->fh = h;
    t->fpos = 0;
    t->in_header = false;
    t->zero_copy = !cfg().deliver_partial_messages && h.fin && !continuation && !t->msg_compressed;
    // The common case, a small message whole in the buffer: deliver it now.
    if (t->zero_copy && in.size() - hs >= h.length) return read_payload();
    return std::nullopt;  // go on with the payload
  }

  std::optional<event> read_payload() {
    auto in = region();
    const std::uint64_t len = t->fh.length;
    if (t->zero_copy) {
      // Work on what arrived; deliver the frame where it lies once whole.
      const std::size_t have = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), len));
      if (!process_payload(in.data() + t->fpos, have - static_cast<std::size_t>(t->fpos), t->fpos))
        return protocol_fail(close_code::invalid_payload, "invalid UTF-8 in text message");
      t->fpos = have;
      if (t->fpos < len) return need_input();
      if (!message_complete_ok()) return protocol_fail(close_code::invalid_payload, "text message ends inside a UTF-8 sequence");
      advance(have);
      t->in_header = true;
      t->in_message = false;
      return message_event{t->msg_type, {in.data(), have}, true};
    }

    const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), len - t->fpos));
    if (!process_payload(in.data(), chunk, t->fpos))
      return protocol_fail(close_code::invalid_payload, "invalid UTF-8 in text message");
    t->fpos += chunk;
    advance(chunk);
    const bool frame_done = t->fpos == len;
    const bool last = frame_done && t->fh.fin;
    if (t->msg_compressed) return inflate_payload({in.data(), chunk}, frame_done, last);
    if (last && !message_complete_ok()) return protocol_fail(close_code::invalid_payload, "text message ends inside a UTF-8 sequence");
    if (frame_done) t->in_header = true;
    if (last) t->in_message = false;

    if (cfg().deliver_partial_messages) {
      if (chunk > 0 || last) return message_event{t->msg_type, {in.data(), chunk}, last};
      return frame_done ? std::nullopt : need_input();
    }
    if (t->msg_buf.capacity() == 0) start_message_buffer();
    t->msg_buf.append(in.data(), chunk, cfg().output_pool);
    if (last) return message_event{t->msg_type, t->msg_buf, true};
    return frame_done ? std::nullopt : need_input();
  }

  // With a pool, a message to reassemble starts in one of its blocks: the
  // buffer of the last one went back to them when the connection went idle,
  // and growing again from the first fragment's size (4 KiB, then 8) would
  // allocate below a block's size at every message. Not when the limit is
  // below a block: reassembly memory stays within a few times the limit.
  void start_message_buffer() {
    constexpr std::size_t block = output_pool::impl::min_block;
    output_pool* const pool = cfg().output_pool;
    if (pool && cfg().limits.max_message_size >= block) t->msg_buf.prepare(block, pool);
  }

  // RFC 7692 7.2.2: inflate the payload as it arrives, appending 00 00 ff ff
  // at the end of the message; the size limit applies to the output.
  std::optional<event> inflate_payload(std::span<const std::byte> chunk, bool frame_done, bool last) {
    const bool partial = cfg().deliver_partial_messages;
    if (partial) t->msg_buf.clear();  // the previous chunk's view has expired
    const std::size_t before = t->msg_buf.size();
    const std::uint64_t limit = cfg().limits.max_message_size;
    auto budget = [&] { return static_cast<std::size_t>(limit - std::min(limit, t->msg_inflated)); };
    detail::inflater& z = get_decompressor();
    const std::size_t budget_before = budget();
    auto rc = z.inflate(chunk, t->msg_buf, budget_before, cfg().output_pool);
    // A compressed message of no bytes at all is malformed but harmless:
    // deliver it empty rather than feed the trailer into the stream.
    if (rc == detail::inflater::result::ok && last && t->msg_size > 0) {
      t->msg_inflated += t->msg_buf.size() - before;
      const std::size_t mid = t->msg_buf.size();
      rc = z.finish(t->msg_buf, budget(), cfg().output_pool);
      t->msg_inflated += t->msg_buf.size() - mid;
    } else {
      t->msg_inflated += t->msg_buf.size() - before;
    }
    // The verdict must not depend on how the bytes were split: output within
    // the budget that is not UTF-8 fails 1007 even when this chunk also
    // passed the limit (a byte-at-a-time peer would have met it first).
    if (rc == detail::inflater::result::too_big && t->msg_type == message_type::text) {
      const std::size_t in_budget = std::min(t->msg_buf.size() - before, budget_before);
      if (!t->utf8.feed(t->msg_buf.data() + before, in_budget))
        return protocol_fail(close_code::invalid_payload, "invalid UTF-8 in text message");
    }
    switch (rc) {
      case detail::inflater::result::ok: break;
      case detail::inflater::result::too_big: return protocol_fail(close_code::message_too_big, "message too big once inflated");
      case detail::inflater::result::corrupt: return protocol_fail(close_code::invalid_payload, "invalid compressed data");
      case detail::inflater::result::no_memory: return protocol_fail(close_code::internal_error, "out of memory");
    }
    if (t->msg_type == message_type::text && !t->utf8.feed(t->msg_buf.data() + before, t->msg_buf.size() - before))
      return protocol_fail(close_code::invalid_payload, "invalid UTF-8 in text message");
    if (last) {
      if (!message_complete_ok()) return protocol_fail(close_code::invalid_payload, "text message ends inside a UTF-8 sequence");
      inflated_message_done();
    }
    if (frame_done) t->in_header = true;
    if (last) t->in_message = false;
    if (partial) {
      if (t->msg_buf.size() > before || last) return message_event{t->msg_type, {t->msg_buf.data() + before, t->msg_buf.size() - before}, last};
      return frame_done ? std::nullopt : need_input();
    }
    if (last) return message_event{t->msg_type, t->msg_buf, true};
    return frame_done ? std::nullopt : need_input();
  }

  std::optional<event> on_control(std::uint8_t opcode, std::span<std::byte> payload, time_point now) {
    if (opcode == opc(detail::opcode::ping)) {
      // 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong
      // frame in response, unless it already received a Close frame." Input
      // is no longer read once the peer's close arrived, so that holds here;
      // having sent our own close does not exempt us (5.5.1 forbids only
      // data frames after it).
      if (cfg().auto_pong) {
        std::array<std::byte, detail::max_frame_header_size + detail::max_control_payload> frame;
        const std::size_t n = encode_frame(frame.data(), true, opc(detail::opcode::pong), payload);
        t->out.queue_pong(frame.data(), n);
      }
      return ping_event{payload};
    }
    if (opcode == opc(detail::opcode::pong)) return pong_event{payload, match_pong(payload, now)};
    return on_close_frame(payload);
  }

  std::optional<duration> match_pong(std::span<const std::byte> payload, time_point now) {
    auto same = [&](const std::byte* p, std::size_t n) {
      return payload.size() == n && (n == 0 || std::memcmp(payload.data(), p, n) == 0);
    };
    if (awaiting_pong && same(keepalive_payload().data(), 4)) {
      const time_point sent = *timer - cfg().timeouts.ping_timeout;
      awaiting_pong = false;
      timer.reset();
      rtt = now - sent;
      if (cfg().timeouts.ping_interval.count() > 0) timer = sent + cfg().timeouts.ping_interval;  // next keepalive
      if (timer && *timer < now) timer = now;
      return rtt;
    }
    rare_state::app_ping* const ap = rare ? rare->app_ping_state.get() : nullptr;
    if (ap && ap->sent && same(ap->payload.data(), ap->size)) {
      rtt = now - *ap->sent;
      ap->sent.reset();
      return rtt;
    }
    return std::nullopt;
  }

  std::optional<event> on_close_frame(std::span<const std::byte> payload) {
    std::uint16_t code = close_code::no_status;
    std::string_view reason;
    if (payload.size() == 1) return protocol_fail(close_code::protocol_error, "close frame payload of one byte");
    if (payload.size() >= 2) {
      code = static_cast<std::uint16_t>((std::to_integer<unsigned>(payload[0]) << 8) |
                                        std::to_integer<unsigned>(payload[1]));
      if (!close_code::valid_on_wire(code)) return protocol_fail(close_code::protocol_error, "invalid close code");
      reason = {reinterpret_cast<const char*>(payload.data()) + 2, payload.size() - 2};
      if (!detail::is_valid_utf8(reason.data(), reason.size()))
        return protocol_fail(close_code::invalid_payload, "close reason is not UTF-8");
    }
    const bool by_peer = !close_sent;
    // 5.5.1: "the endpoint MUST send a Close frame in response ... It
    // typically echos the status code it received."
    // The echo follows the data already queued (5.5.1 allows the delay, and
    // the peer still reads data while CLOSING): a reply to the message that
    // came just before the close is not lost.
    if (!close_sent) queue_close(code, {}, false);
    end_connection(code, reason, true, by_peer, close_cause::handshake);
    drop_input();
    if (role == gust::role::server) {
      transport_close = true;
    } else if (cfg().timeouts.close_timeout.count() > 0) {
      // Wait for the server to close TCP first (7.1.1); now is not passed
      // here, so the deadline starts from the last known time.
      timer = last_now + cfg().timeouts.close_timeout;
    }
    return close_event_now();
  }


  // The general path of next_event(). Out of line: inlined into
  // next_event(), its register saves would fall on the fast path too.
  [[gnu::noinline]] std::optional<event> next(time_point now) {
    tr();
    std::optional<event> ev = next_general(now);
    const bool framing = st == gust::state::open || st == gust::state::closing;
    small_cap = framing && deferred_events == 0 && t->in_header && !t->in_message && !release_request &&
                        t->msg_buf.capacity() <= message_keep_limit && cfg().limits.max_fragments > 0
                    ? static_cast<std::uint8_t>(std::min<std::size_t>(small_limit(), 125) + 1)
                    : 0;
    if (!ev) give_back_if_idle();
    return ev;
  }

  // The hot path of chatty traffic, next_event() draining a batch of small
  // frames: a whole, unfragmented, uncompressed text or binary frame of at
  // most 125 bytes, masked as our role expects, within the limits, already
  // in the buffer. It does what read_header() + read_payload() would do for
  // it, with what does not change from frame to frame (the receive side
  // between messages, the limits) folded into small_cap, the role a
  // template argument, and no call on the way. Anything else goes to
  // next().
  template <bool server>
  [[gnu::always_inline]] std::optional<event> next_small(time_point now) {
    // next() gets it back from here: `now` then holds no register across
    // the fast path, which has few to spare.
    last_now = now;
    assert(!small_cap || ((st == gust::state::open || st == gust::state::closing) && deferred_events == 0));
    // (no_traffic when none is held: no input, so next() borrows one.)
    detail::traffic* const x = t.get();
    // Our buffer first (a split frame's start), else the caller's.
    std::size_t* pos;
    std::size_t end;
    std::byte* base;
    if (x->ipos != x->iend) {
      base = x->ibuf.get();
      pos = &x->ipos;
      end = x->iend;
    } else {
      base = x->borrowed;
      if (!base) return next(last_now);
      pos = &x->bpos;
      end = x->bend;
    }
    const std::size_t at = *pos;
    std::byte* const p = base + at;
    if (end - at < 2) return next(last_now);
    const auto b0 = static_cast<std::uint8_t>(p[0]);
    // FIN, RSV 0, text or binary; masked exactly when we are a server.
    const unsigned len = static_cast<std::uint8_t>(p[1]) - (server ? 0x80u : 0u);
    constexpr std::size_t hs = server ? 6 : 2;
    if (b0 - 0x81u > 1u || len >= small_cap || end - at < hs + len) return next(last_now);
    std::byte* payload = p + hs;
    const std::size_t after = at + hs + len;
    *pos = after;
    if (after == end && pos == &x->bpos) x->borrowed = nullptr;
    std::uint64_t seen;
    if constexpr (server) {
      detail::mask_key key;
      std::memcpy(key.data(), p + 2, 4);
      seen = detail::unmask_small(payload, len, key);
    } else {
      seen = b0 == 0x81 ? detail::or_small(payload, len) : 0;
    }
    if (b0 == 0x81 && seen) [[unlikely]] return small_text(payload, len);
    // The opcode is the message_type.
    return message_event{static_cast<message_type>(b0 & 0x0F), {payload, len}, true};
  }
  // A small text frame with bytes above ASCII, consumed and unmasked: no way
  // back to next(), so it is settled here, with read_payload()'s reasons
  // (the verdict must not depend on how the frame arrived). Out of line,
  // like every call that next_small() may make.
  [[gnu::noinline]] std::optional<event> small_text(std::byte* payload, std::size_t len) {
    detail::utf8_validator v;
    if (!v.feed(payload, len)) return protocol_fail(close_code::invalid_payload, "invalid UTF-8 in text message");
    if (!v.complete()) return protocol_fail(close_code::invalid_payload, "text message ends inside a UTF-8 sequence");
    return message_event{message_type::text, {payload, len}, true};
  }

  std::optional<event> next_general(time_point now) {
    last_now = now;
    // The previous message's view expires with this call.
    if (!t->in_message && t->msg_buf.capacity() > message_keep_limit) t->msg_buf.release(cfg().output_pool);
    if (release_request) {  // the open_event that showed it has been handled
      release_request = false;
      head = std::monostate{};  // the kept request
      measure_kept();
    }
    if (deferred_events) {
      switch (pop_deferred()) {
        case deferred::open:
          // The request outlives the handshake state, at the same address.
        {
          std::unique_ptr<http::request> request = hs()->req_parser->take_request();
          http::request* const kept = request.get();
          release_request = !hs()->sopts.keep_request;
          head = std::move(request);  // (frees the handshake state)
          measure_kept();
          return open_event{subprotocol(), extensions(), kept, nullptr};
        }
        case deferred::close:
          return close_event_now();
        case deferred::handshake_failure:
          return handshake_failure_event{&hs()->failure};
      }
    }
    for (;;) {
      switch (st) {
        case gust::state::closed:
          if (eof) return on_eof();
          drop_input();
          return std::nullopt;
        case gust::state::connecting:
          return role == gust::role::server ? server_handshake() : client_handshake(now);
        case gust::state::open:
        case gust::state::closing:
          break;
      }
      t->stalled = false;
      std::optional<event> ev = t->in_header ? read_header(now) : read_payload();
      if (ev || t->stalled) return ev;
      // A header consumed or a fragment stored: go on.
    }
  }

  // =========================================================================
  // Time

  void timeout(time_point now) {
    last_now = now;
    auto due = [&](const std::optional<time_point>& t) { return t && *t <= now; };
    switch (st) {
      case gust::state::connecting:
        if (due(timer)) {  // open_timeout
          handshake_fail(handshake_error::timeout, "opening handshake timed out");
          defer(deferred::handshake_failure);
        }
        return;
      case gust::state::open:
        if (awaiting_pong && due(timer)) {
          // Keepalive: "fail with 1011 when the pong does not come".
          // Urgent: a peer that stopped answering will not read megabytes
          // of queued data either; the close should not wait behind them.
          fail_connection(close_code::internal_error, "keepalive ping timeout", close_cause::keepalive_timeout,
                          true);
          defer(deferred::close);
          return;
        }
        if (!awaiting_pong && due(timer)) send_keepalive(now);
        return;
      case gust::state::closing:
        if (due(timer)) {  // close_timeout
          end_connection(close_code::abnormal, {}, false, false, close_cause::close_timeout);
          transport_close = true;
          drop_input();
          defer(deferred::close);
        }
        return;
      case gust::state::closed:
        if (due(timer)) {  // close_timeout
          timer.reset();
          transport_close = true;  // the server did not close: we do
        }
        return;
    }
  }

  void send_keepalive(time_point now) {
    ++keepalive_seq;
    queue_control(opc(detail::opcode::ping), keepalive_payload());
    if (cfg().timeouts.ping_timeout.count() > 0) {
      awaiting_pong = true;
      timer = now + cfg().timeouts.ping_timeout;  // the pong's deadline
    } else {
      timer = now + cfg().timeouts.ping_interval;  // the next ping; this one's pong is not timed
    }
  }
  std::array<std::byte, 4> keepalive_payload() const noexcept {
    std::array<std::byte, 4> p;
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(keepalive_seq >> (24 - 8 * i));
    return p;
  }

  std::optional<time_point> deadline() const noexcept {
    return timer;
  }

  // =========================================================================
  // Sending

  std::error_code check_can_send_data() const noexcept {
    if (st != gust::state::open) return errc::invalid_state;
    if (queued() >= cfg().limits.max_buffered_output) return errc::output_limit_reached;
    return {};
  }

  // A small message a server sends uncompressed: one frame with a one-byte
  // length, written without queue_data's general path. The echo of a small
  // message takes it; send_small() is its whole route from connection::send.
  bool small_unmasked(std::size_t n) const noexcept {
    return !masks() && n <= 125 && (cfg().max_send_frame_size == 0 || n <= cfg().max_send_frame_size);
  }
  void write_small(message_type type, std::span<const std::byte> data) {
    std::byte* p = t->out.append_small_frame(2 + data.size());
    p[0] = static_cast<std::byte>(0x80 | static_cast<std::uint8_t>(type));
    p[1] = static_cast<std::byte>(data.size());
    if (!data.empty()) std::memcpy(p + 2, data.data(), data.size());
  }
  // true: queued; false: take send().
  bool send_small(message_type type, std::span<const std::byte> data, bool allow_compression) {
    // Without a traffic state (idle, pooled), send() borrows one.
    if (st != gust::state::open || !t || t->out_in_message || !small_unmasked(data.size()) ||
        (deflate_on && allow_compression && data.size() >= cfg().deflate.min_size) ||
        t->out.size() >= cfg().limits.max_buffered_output ||
        (type == message_type::text && !detail::is_valid_utf8(data.data(), data.size())))
      return false;  // (send() says why, if it is refused)
    write_small(type, data);
    return true;
  }

  std::error_code send(message_type type, std::span<const std::byte> data,
                       const std::shared_ptr<const void>* owner, bool allow_compression = true,
                       bool validated = false) {
    if (auto ec = check_can_send_data()) return ec;
    if (tr().out_in_message) return errc::message_in_progress;
    if (type == message_type::text && !validated && !detail::is_valid_utf8(data.data(), data.size()))
      return errc::invalid_utf8;
    const bool compress = deflate_on && allow_compression && data.size() >= cfg().deflate.min_size;
    if (!compress && !owner && small_unmasked(data.size())) {
      write_small(type, data);
      return {};
    }
    if (compress) {
      // RFC 7692 7.2.1: compress, drop the trailing 00 00 ff ff, set RSV1.
      detail::message_buffer& zbuf = scratch();
      zbuf.clear();
      if (!get_compressor().compress(data, true, zbuf, cfg().output_pool)) return errc::invalid_state;
      // zlib emits nothing for a flush right after another: an empty message
      // must still be one empty stored block's first byte (RFC 7692 7.2.3.6
      // shows "00"), or the peer's trailer would leave its stream mid-block.
      if (zbuf.empty()) zbuf.push_back(std::byte{0}, cfg().output_pool);
      compressed_message_done();
      queue_data(static_cast<std::uint8_t>(type), zbuf, true, nullptr, 0x4);
      if (zbuf.capacity() > message_keep_limit) zbuf.release(cfg().output_pool);
      return {};
    }
    queue_data(static_cast<std::uint8_t>(type), data, true, owner);
    return {};
  }

  std::error_code send_prepared(const prepared_message& m) {
    if (m.error() == errc::invalid_utf8) return errc::invalid_utf8;
    if (auto ec = check_can_send_data()) return ec;
    if (tr().out_in_message) return errc::message_in_progress;
    const std::shared_ptr<const void> owner = m.shared();
    const auto payload = m.payload();
    const auto type = m.type();
    if (deflate_on && payload.size() >= cfg().deflate.min_size) {
      // Shared compressed bytes only where every message starts from an
      // empty window (no context takeover on our side) and the peer allows
      // the window they were made with; else compress as send() does.
      const auto z = m.compressed();
      if (!z.empty() && compress_no_context() && m.window_bits() <= compress_bits()) {
        queue_data(static_cast<std::uint8_t>(type), z, true, &owner, 0x4);
        return {};
      }
      return send(type, payload, &owner, true, true);
    }
    queue_data(static_cast<std::uint8_t>(type), payload, true, &owner);
    return {};
  }

  std::error_code send_fragment(message_type type, std::span<const std::byte> data, bool fin) {
    if (auto ec = check_can_send_data()) return ec;
    std::uint8_t opcode = static_cast<std::uint8_t>(type);
    if (tr().out_in_message) {
      if (type != t->out_type) return errc::fragment_type_mismatch;
      opcode = opc(detail::opcode::continuation);
    } else {
      t->out_utf8.reset();
      t->out_compressed = deflate_on;
    }
    if (type == message_type::text) {
      detail::utf8_validator probe = t->out_utf8;
      if (!probe.feed(data.data(), data.size()) || (fin && !probe.complete())) return errc::invalid_utf8;
      t->out_utf8 = probe;
    }
    if (t->out_compressed) {
      // One deflate stream across the fragments, each ending in a sync flush
      // so it can go out at once; RSV1 on the first frame only.
      detail::message_buffer& zbuf = scratch();
      zbuf.clear();
      if (!get_compressor().compress(data, fin, zbuf, cfg().output_pool)) return errc::invalid_state;
      // As in send(): a final fragment with no output of its own still ends
      // the stream on a block boundary for the peer's trailer.
      if (fin && zbuf.empty()) zbuf.push_back(std::byte{0}, cfg().output_pool);
      if (fin) compressed_message_done();
      queue_data(opcode, zbuf, fin, nullptr, t->out_in_message ? 0 : 0x4);
    } else {
      queue_data(opcode, data, fin, nullptr);
    }
    t->out_in_message = !fin;
    t->out_type = type;
    return {};
  }
};

// An idle open connection with an output_pool holds this struct and what it
// keeps of the handshake, nothing else: keep it within a 96-byte malloc
// chunk (it was 208 B, a 224-byte chunk, before the rare state, the single
// deadline, the flag bits and the one slot for the handshake's remains).
static_assert(sizeof(connection::impl) <= 88, "connection::impl grew: move what few connections need to rare_state");

// ===========================================================================
// connection

connection::connection(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&&) noexcept = default;
connection::~connection() = default;

role connection::role() const noexcept { return impl_->role; }
state connection::state() const noexcept { return impl_->st; }

std::span<std::byte> connection::prepare(std::size_t min_size) {
  impl_->lends_buffers = false;
  detail::traffic& x = impl_->tr();
  impl_->stash_borrowed();
  // With a pool, a read's worth at least: that is one of the pool's
  // blocks, so a buffer given back after a big frame is taken again by the
  // next read instead of a small one being allocated for it.
  std::size_t room = min_size ? min_size : default_read_size;
  if (impl_->cfg().output_pool) room = std::max(room, default_read_size);
  impl_->reserve_input(room);
  return {x.ibuf.get() + x.iend, x.icap - x.iend};
}

void connection::commit(std::size_t n, time_point now) {
  impl_->last_now = now;
  detail::traffic& x = impl_->tr();  // (held since prepare(), unless misused)
  x.scanned_base = nullptr;
  x.iend += std::min(n, x.icap - x.iend);
}

void connection::receive(std::span<std::byte> data, time_point now) {
  impl_->last_now = now;
  impl_->lends_buffers = true;
  if (data.empty()) return;
  detail::traffic& x = impl_->tr();
  x.scanned_base = nullptr;
  impl_->stash_borrowed();
  const bool framing = impl_->st == state::open || impl_->st == state::closing;
  if (x.ipos < x.iend && !framing) {
    impl_->append_input(data.data(), data.size());  // the HTTP parsers read one region
  } else {
    if (x.ipos == x.iend) x.ipos = x.iend = 0;
    x.borrowed = data.data();
    x.bpos = 0;
    x.bend = data.size();
  }
}

void connection::stop_borrowing() {
  if (impl_->t && impl_->t->borrowed) impl_->stash_borrowed();
}

void connection::receive_eof(time_point now) {
  impl_->last_now = now;
  impl_->eof = true;
}

std::optional<event> connection::next_event(time_point now) {
  return impl_->role == gust::role::server ? impl_->next_small<true>(now)
                                           : impl_->next_small<false>(now);
}

bool connection::close_may_follow() const noexcept { return impl_->close_may_follow(); }

std::span<const const_buffer> connection::pending_output() {
  if (!impl_->t) return {};
  return impl_->t->out.pending();
}

std::error_code connection::consume_output(std::size_t n) {
  if (!impl_->t) {
    if (n) return errc::consume_past_end;
    return {};
  }
  if (!impl_->t->out.consume(n)) return errc::consume_past_end;
  // Drained with the input idle: the traffic state goes back to the pool.
  if (impl_->t->out.empty()) impl_->give_back_if_idle();
  return {};
}

std::size_t connection::buffered_amount() const noexcept { return impl_->queued(); }
bool connection::transport_should_close() const noexcept { return impl_->transport_close; }
std::optional<time_point> connection::next_deadline() const noexcept { return impl_->deadline(); }
void connection::on_timeout(time_point now) { impl_->timeout(now); }

std::error_code connection::send_text(std::string_view text) {
  return impl_->send(message_type::text, std::as_bytes(std::span(text.data(), text.size())), nullptr);
}
std::error_code connection::send_binary(std::span<const std::byte> data) {
  return impl_->send(message_type::binary, data, nullptr);
}
std::error_code connection::send(message_type type, std::span<const std::byte> data,
                                 bool compress) {
  if (impl_->send_small(type, data, compress)) return {};
  return impl_->send(type, data, nullptr, compress);
}
std::error_code connection::send_shared(message_type type, std::span<const std::byte> data,
                                        std::shared_ptr<const void> owner) {
  return impl_->send(type, data, &owner);
}
std::error_code connection::send_prepared(const prepared_message& message) {
  return impl_->send_prepared(message);
}
std::error_code connection::send_fragment(message_type type, std::span<const std::byte> data,
                                          bool fin) {
  return impl_->send_fragment(type, data, fin);
}

std::error_code connection::ping(std::span<const std::byte> payload, time_point now) {
  impl& c = *impl_;
  if (payload.size() > detail::max_control_payload) return errc::control_frame_too_large;
  if (c.st != gust::state::open) return errc::invalid_state;
  c.queue_control(opc(detail::opcode::ping), payload);
  auto& slot = c.more().app_ping_state;
  if (!slot) slot = std::make_unique<impl::rare_state::app_ping>();
  impl::rare_state::app_ping& ap = *slot;
  if (!payload.empty()) std::memcpy(ap.payload.data(), payload.data(), payload.size());
  ap.size = payload.size();
  ap.sent = now;
  return {};
}

std::error_code connection::pong(std::span<const std::byte> payload) {
  impl& c = *impl_;
  if (payload.size() > detail::max_control_payload) return errc::control_frame_too_large;
  if (c.st != gust::state::open) return errc::invalid_state;
  c.queue_control(opc(detail::opcode::pong), payload);
  return {};
}

std::error_code connection::close(time_point now, std::uint16_t code, std::string_view reason) {
  impl& c = *impl_;
  if (c.st != gust::state::open) return errc::invalid_state;
  if (code != close_code::no_status && !close_code::valid_on_wire(code)) return errc::invalid_close_code;
  if (reason.size() > max_close_reason || (code == close_code::no_status && !reason.empty()))
    return errc::invalid_argument;
  if (!detail::is_valid_utf8(reason.data(), reason.size())) return errc::invalid_utf8;
  c.last_now = now;
  c.queue_close(code, reason, false);
  c.st = gust::state::closing;
  c.timer.reset();  // keepalive
  c.awaiting_pong = false;
  if (c.cfg().timeouts.close_timeout.count() > 0) c.timer = now + c.cfg().timeouts.close_timeout;
  return {};
}

void connection::fail(time_point now, std::uint16_t code, std::string_view reason) {
  impl& c = *impl_;
  c.last_now = now;
  if (!close_code::valid_on_wire(code)) code = close_code::internal_error;
  if (reason.size() > max_close_reason || !detail::is_valid_utf8(reason.data(), reason.size()))
    reason = {};
  switch (c.st) {
    case gust::state::connecting:
      c.st = gust::state::closed;
      c.transport_close = true;
      c.awaiting_answer = false;
      c.timer.reset();  // open_timeout
      c.drop_input();
      return;
    case gust::state::open:
    case gust::state::closing:
      // Urgent, as documented: the application fails the connection to
      // stop it now (the adapters' hard output limit among others), not to
      // have what it queued sent first.
      c.fail_connection(code, reason, close_cause::failed_locally, true);
      c.defer(deferred::close);
      return;
    case gust::state::closed:
      c.transport_close = true;
      return;
  }
}

std::string_view connection::subprotocol() const noexcept { return impl_->subprotocol(); }
std::string_view connection::extensions() const noexcept { return impl_->extensions(); }
bool connection::compression_enabled() const noexcept { return impl_->deflate_on; }
std::optional<duration> connection::latency() const noexcept { return impl_->rtt; }
const gust::settings& connection::settings() const noexcept { return impl_->cfg(); }

memory_usage connection::memory() const noexcept {
  const impl& c = *impl_;
  if (!c.t) return {0, 0, 0, c.compression_memory(), c.state_memory()};
  // The traffic state counts while held, lent or our own.
  return {c.t->icap, c.t->msg_buf.capacity(), c.t->out.memory(), c.compression_memory(),
          c.state_memory() + sizeof(detail::traffic)};
}

// ===========================================================================
// server_connection

server_connection::server_connection(time_point now, gust::settings s, server_options opts)
    : server_connection(now, shared_settings(std::move(s)), std::move(opts)) {}

server_connection::server_connection(time_point now, shared_settings s, server_options opts)
    : connection(std::make_unique<impl>(gust::role::server, now, std::move(s.ptr))) {
  impl_->hs()->sopts = std::move(opts);
  impl_->hs()->req_parser.emplace(impl_->cfg().limits);
}

std::error_code server_connection::accept(time_point now, accept_options opts) {
  impl& c = *impl_;
  if (!c.awaiting_answer) return errc::no_pending_request;
  const http::request& req = c.hs()->req_parser->request();
  std::optional<std::string> chosen;
  if (opts.subprotocol) {
    if (!opts.subprotocol->empty()) {
      // 4.2.2: the server selects one of the values the client offered.
      const auto& offered = c.hs()->upgrade.subprotocols;
      if (std::find(offered.begin(), offered.end(), *opts.subprotocol) == offered.end())
        return errc::invalid_argument;
      chosen = *opts.subprotocol;
    }
  } else {
    chosen = detail::select_subprotocol(req, c.hs()->upgrade.subprotocols, c.hs()->sopts);
  }
  if (chosen && !chosen->empty()) c.more().subprotocol = *chosen;
  if (c.cfg().deflate.enabled && detail::deflate_available()) {
    if (auto offers = req.headers.get_combined("Sec-WebSocket-Extensions")) {
      detail::deflate_agreement agreement;
      if (auto answer = detail::negotiate_deflate(*offers, c.cfg().deflate, agreement)) {
        impl::rare_state& x = c.more();
        x.extensions = *answer;
        x.agreement = agreement;
        c.deflate_on = true;
      }
    }
  }
  c.queue_handshake_bytes(detail::write_switching_protocols(
      detail::accept_value(c.hs()->upgrade.key), c.subprotocol(), c.extensions(), opts.extra_headers,
      c.hs()->sopts.server_header));
  c.awaiting_answer = false;
  c.become_open(now);
  c.defer(deferred::open);
  return {};
}

std::error_code server_connection::reject(int status, std::string_view body) {
  if (status < 400 || status > 599) return errc::invalid_argument;
  http::response r;
  r.status = status;
  r.body.assign(body);
  return respond(r);
}

std::error_code server_connection::respond(const http::response& response) {
  impl& c = *impl_;
  if (!c.awaiting_answer) return errc::no_pending_request;
  if (response.status < 200 || response.status > 599 || response.status == 101)
    return errc::invalid_argument;
  std::string_view phrase = response.reason.empty() ? detail::status_reason(response.status)
                                                    : std::string_view(response.reason);
  c.queue_handshake_bytes(detail::write_response(response.status, phrase, response.headers,
                                                 response.body, c.hs()->sopts.server_header));
  c.hs()->failure = handshake_failure{handshake_error::rejected, {}, std::nullopt};
  c.awaiting_answer = false;
  c.st = gust::state::closed;
  c.transport_close = true;
  c.timer.reset();  // open_timeout
  c.drop_input();
  return {};
}

const http::request* server_connection::request() const noexcept {
  // request_parser has no const accessor; reading through it changes nothing.
  impl& c = const_cast<impl&>(*impl_);
  if (http::request* kept = c.kept_request()) return kept;
  impl::handshake_state* const h = c.hs();
  if (!h || !h->req_parser || h->req_parser->status() != detail::parse_status::done) return nullptr;
  return &h->req_parser->request();
}

// ===========================================================================
// client_connection

client_connection::client_connection(time_point now, client_options opts, gust::settings s)
    : client_connection(now, std::move(opts), shared_settings(std::move(s))) {}

client_connection::client_connection(time_point now, client_options opts, shared_settings s)
    : connection(std::make_unique<impl>(gust::role::client, now, std::move(s.ptr))) {
  impl& c = *impl_;
  c.hs()->copts = std::move(opts);
  if (c.cfg().deflate.enabled && detail::deflate_available()) {
    std::vector<std::string> offers{detail::deflate_offer(c.cfg().deflate)};
    for (const auto& alt : c.cfg().deflate.fallback_offers) offers.push_back(detail::deflate_offer(alt));
    c.hs()->copts.extensions.insert(c.hs()->copts.extensions.begin(), offers.begin(), offers.end());
  }
  c.hs()->key = detail::make_key(c.cfg().random);
  c.queue_handshake_bytes(detail::write_upgrade_request(c.hs()->copts, c.hs()->key));
  c.hs()->resp_parser.emplace(c.cfg().limits);
}

}  // namespace gust
