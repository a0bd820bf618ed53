// gust/asio.hpp: the engine over any Asio stream, with completion tokens.
//
// gust::asio::websocket<Stream> runs one gust connection (the sans-I/O core,
// gust/connection.hpp) over any AsyncReadStream + AsyncWriteStream: an
// asio::ip::tcp::socket, an asio::local::stream_protocol::socket, an
// asio::ssl::stream<...>, or a stream of your own. Header-only and thin: the
// composed operations below only drive the core's pump (read, pull events,
// write, close the transport, re-arm the timer); every protocol rule lives
// in the compiled core, so this header adds little to compile.
//
//   asio::awaitable<void> session(asio::ip::tcp::socket s) {
//     gust::asio::websocket<asio::ip::tcp::socket> ws(std::move(s));
//     co_await ws.async_accept(asio::use_awaitable);
//     for (;;) {
//       auto [ec, msg] = co_await ws.async_read(asio::experimental::as_tuple(asio::use_awaitable));
//       if (ec) break;                              // error::closed: see close_status()
//       co_await ws.async_send(msg.type, msg.bytes(), asio::use_awaitable);
//     }
//   }
//
// Operations, each with any completion token (use_awaitable, callbacks,
// use_future, experimental::deferred, as_tuple(...)); errors are
// std::error_code (asio::error_code): gust::asio::error, gust::errc (local
// misuse, e.g. invalid UTF-8) or the stream's own.
//   async_accept(opts, token)       server: read the request, answer 101, until OPEN
//   async_handshake(opts, token)    client: send the request, until OPEN
//   async_read(token)               the next message -> (error_code, message)
//   async_send(type, data, token)   queue a message; completes once written
//   async_ping(payload, token)      same, for a ping
//   async_close(code, reason, token) start (or join) the closing handshake;
//                                   completes when it is done
// Reading: one read-side operation (accept, handshake, read, close) at a
// time; async_close while an async_read is pending joins it: the read
// completes with error::closed and the close with success. Sends may be
// issued at any time, any number at once (the core queues them in order:
// no write queue of your own). Pings and pongs of the peer are answered
// while a read is pending; keepalive, opening and closing timeouts are the
// core's deadlines on one steady_timer.
//
// Cancellation: async_read, async_accept, async_handshake and async_close
// honour their cancellation slot (terminal, partial and total): the pending
// stream read is cancelled, the operation completes with
// asio::error::operation_aborted, and the websocket stays usable (no byte
// is lost: the core keeps what it had). Sends cannot be taken back once
// queued; they are not cancellable.
//
// Threads: a websocket is not thread-safe. Make every call, and run every
// completion, on the stream's executor (a strand when the io_context has
// several threads: e.g. asio::make_strand(ioc) for the socket). From another
// thread, post to it: asio::post(ws.get_executor(), [&] { ws.async_send(...); }).
//
// Lifetime: the websocket must outlive its pending operations; destroying
// it with operations pending destroys their handlers without calling them.
#pragma once

#include <asio/associated_cancellation_slot.hpp>
#include <asio/async_result.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/buffer.hpp>
#include <asio/compose.hpp>
#include <asio/error.hpp>
#include <asio/experimental/append.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "gust/connection.hpp"

namespace gust::asio {

// ---------------------------------------------------------------------------
// Errors

enum class error {
  closed = 1,          ///< the WebSocket connection is closed: see close_status()
  handshake_failed,    ///< the opening handshake failed: see handshake_failure()
  read_in_progress,    ///< a second read-side operation while one is pending
  not_connected,       ///< no async_accept / async_handshake yet
};

inline const std::error_category& error_category() noexcept {
  struct category final : std::error_category {
    const char* name() const noexcept override { return "gust.asio"; }
    std::string message(int ev) const override {
      switch (static_cast<error>(ev)) {
        case error::closed: return "the WebSocket connection is closed";
        case error::handshake_failed: return "the WebSocket opening handshake failed";
        case error::read_in_progress: return "a read, accept, handshake or close is already pending";
        case error::not_connected: return "no opening handshake yet";
      }
      return "unknown gust.asio error";
    }
  };
  static const category c;
  return c;
}
inline std::error_code make_error_code(error e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace gust::asio

template <>
struct std::is_error_code_enum<gust::asio::error> : std::true_type {};

namespace gust::asio {

/// A whole message, owned (the core's views die at the next call).
struct message {
  message_type type = message_type::binary;
  std::string data;
  std::string_view text() const noexcept { return data; }
  std::span<const std::byte> bytes() const noexcept {
    return std::as_bytes(std::span(data.data(), data.size()));
  }
};

/// How the connection ended (close_event of the core, owned).
struct close_info {
  std::uint16_t code = 1006;
  std::string reason;
  bool clean = false;
  bool by_peer = false;
  close_cause cause = close_cause::eof;
};

struct accept_config {
  gust::server_options options;
  /// The process_request hook: answer the request with ws.accept(now, ...),
  /// reject() or respond(). Empty: accept.
  std::function<void(gust::server_connection&, const http::request&)> on_request;
};

namespace detail {

/// A move-only callable for the handlers of waiting operations.
class waiter {
 public:
  template <class F>
  explicit waiter(F f) : p_(new impl<F>(std::move(f))) {}
  void operator()(std::error_code ec) { p_->call(ec); }

 private:
  struct base {
    virtual ~base() = default;
    virtual void call(std::error_code) = 0;
  };
  template <class F>
  struct impl final : base {
    explicit impl(F&& f) : f(std::move(f)) {}
    void call(std::error_code ec) override { f(ec); }
    F f;
  };
  std::unique_ptr<base> p_;
};

/// Closes whatever is underneath: close(), else lowest_layer().close(),
/// else next_layer()'s.
template <class S>
void close_stream(S& s) {
  ::asio::error_code ec;
  if constexpr (requires { s.close(ec); }) {
    s.close(ec);
  } else if constexpr (requires { s.lowest_layer().close(ec); }) {
    s.lowest_layer().close(ec);
  } else if constexpr (requires { s.next_layer(); }) {
    close_stream(s.next_layer());
  }
}

enum class want : std::uint8_t { open, message, close };

}  // namespace detail

template <class Stream>
class websocket {
 public:
  using next_layer_type = Stream;
  using executor_type = typename Stream::executor_type;

  /// Constructs the stream from `args` (a connected socket, a strand...).
  template <class... Args>
  explicit websocket(Args&&... args)
      : stream_(std::forward<Args>(args)...), timer_(stream_.get_executor()) {}
  ~websocket() { *alive_ = false; }
  websocket(const websocket&) = delete;
  websocket& operator=(const websocket&) = delete;

  executor_type get_executor() noexcept { return stream_.get_executor(); }
  Stream& next_layer() noexcept { return stream_; }
  /// Limits, timeouts, keepalive, deflate: set before the handshake.
  gust::settings& settings() noexcept { return settings_; }
  /// The core connection (null before the handshake starts): observation,
  /// and sends that need no completion (they are flushed by the next
  /// operation, or call flush()).
  gust::connection* core() noexcept { return conn_.get(); }
  gust::state state() const noexcept { return conn_ ? conn_->state() : gust::state::connecting; }
  /// How it ended, once async_read or async_close saw the close.
  const std::optional<gust::asio::close_info>& close_status() const noexcept { return close_; }
  const std::optional<gust::handshake_failure>& handshake_failure() const noexcept { return failure_; }
  std::optional<duration> latency() const noexcept { return conn_ ? conn_->latency() : std::nullopt; }
  /// Writes what the core has queued (for sends made through core()).
  void flush() {
    start_write();
    rearm();
  }

  // ---- operations --------------------------------------------------------

  template <class Token>
  auto async_accept(accept_config cfg, Token&& token) {
    if (!conn_) conn_ = std::make_unique<gust::server_connection>(clock::now(), settings_, cfg.options);
    on_request_ = std::move(cfg.on_request);
    return read_side<void(std::error_code)>(detail::want::open, std::forward<Token>(token));
  }
  template <class Token>
  auto async_accept(Token&& token) {
    return async_accept(accept_config{}, std::forward<Token>(token));
  }

  template <class Token>
  auto async_handshake(gust::client_options opts, Token&& token) {
    if (!conn_) {
      conn_ = std::make_unique<gust::client_connection>(clock::now(), std::move(opts), settings_);
      start_write();
    }
    return read_side<void(std::error_code)>(detail::want::open, std::forward<Token>(token));
  }

  template <class Token>
  auto async_read(Token&& token) {
    return read_side<void(std::error_code, message)>(detail::want::message, std::forward<Token>(token));
  }

  template <class Token>
  auto async_send(message_type type, std::span<const std::byte> data, Token&& token) {
    return queue_op(std::forward<Token>(token), [this, type, data] { return conn_->send(type, data); });
  }
  template <class Token>
  auto async_send(std::string_view text, Token&& token) {
    return async_send(message_type::text, std::as_bytes(std::span(text.data(), text.size())),
                      std::forward<Token>(token));
  }

  template <class Token>
  auto async_ping(std::span<const std::byte> payload, Token&& token) {
    return queue_op(std::forward<Token>(token), [this, payload] { return conn_->ping(payload, clock::now()); });
  }

  template <class Token>
  auto async_close(std::uint16_t code, std::string_view reason, Token&& token) {
    return ::asio::async_compose<Token, void(std::error_code)>(
        close_op{this, code, std::string(reason)}, token, stream_);
  }

 private:
  // ---- the pump ------------------------------------------------------------

  // Copies the core's queued output into one buffer and writes it; the
  // core's views would not survive the sends made while the write runs.
  void start_write() {
    if (writing_ || stream_closed_ || !conn_) return;
    wbuf_.clear();
    for (;;) {
      auto out = conn_->pending_output();
      if (out.empty()) break;
      std::size_t n = 0;
      for (const auto& b : out) {
        const auto* p = static_cast<const char*>(b.data);
        wbuf_.insert(wbuf_.end(), p, p + b.size);
        n += b.size;
      }
      (void)conn_->consume_output(n);
    }
    if (wbuf_.empty()) {
      written_ = queued_;
      complete_sends({});
      maybe_close_transport();
      return;
    }
    writing_ = true;
    const std::uint64_t batch = queued_;
    ::asio::async_write(stream_, ::asio::buffer(wbuf_),
                        [this, alive = alive_, batch](const std::error_code& ec, std::size_t) {
                          if (!*alive) return;
                          writing_ = false;
                          if (ec) {
                            write_error_ = ec;
                            complete_sends(ec);
                            close_transport();
                            return;
                          }
                          written_ = batch;
                          complete_sends({});
                          start_write();
                        });
  }

  void complete_sends(std::error_code ec) {
    while (!sends_.empty() && (ec || sends_.front().first <= written_)) {
      auto w = std::move(sends_.front().second);
      sends_.erase(sends_.begin());
      w(ec);
    }
  }

  void maybe_close_transport() {
    if (conn_ && conn_->transport_should_close() && !writing_ && conn_->buffered_amount() == 0)
      close_transport();
  }
  void close_transport() {
    if (stream_closed_) return;
    stream_closed_ = true;
    detail::close_stream(stream_);  // a pending read completes: the reader sees EOF
    // Sends still waiting will never be written (a failed connection drops
    // unsent data, RFC 6455 5.5.1).
    complete_sends(error::closed);
    timer_.cancel();
    timer_at_.reset();
  }

  // The core's next deadline on the one timer.
  void rearm() {
    std::optional<time_point> d = conn_ && !stream_closed_ ? conn_->next_deadline() : std::nullopt;
    if (d == timer_at_) return;
    timer_at_ = d;
    ++timer_gen_;
    if (!d) {
      timer_.cancel();
      return;
    }
    timer_.expires_at(*d);
    timer_.async_wait([this, alive = alive_, gen = timer_gen_](const std::error_code& ec) {
      if (!*alive || ec || gen != timer_gen_) return;
      timer_at_.reset();
      conn_->on_timeout(clock::now());
      start_write();
      maybe_close_transport();
      rearm();
    });
  }

  // Pulls events for a read-side operation. Returns true when `op` is done.
  template <class Op>
  bool pump(Op& op) {
    const time_point now = clock::now();
    while (auto ev = conn_->next_event(now)) {
      if (auto* m = std::get_if<message_event>(&*ev)) {
        if (op.want == detail::want::message) {
          op.msg.type = m->type;
          op.msg.data.assign(reinterpret_cast<const char*>(m->data.data()), m->data.size());
          return true;
        }
      } else if (auto* r = std::get_if<request_event>(&*ev)) {
        auto& srv = static_cast<gust::server_connection&>(*conn_);
        if (on_request_) {
          on_request_(srv, *r->request);
        } else {
          (void)srv.accept(now);
        }
      } else if (std::holds_alternative<open_event>(*ev)) {
        if (op.want == detail::want::open) return true;
      } else if (auto* c = std::get_if<close_event>(&*ev)) {
        close_ = gust::asio::close_info{c->code, std::string(c->reason), c->clean, c->by_peer, c->cause};
        wake_closers({});
        if (op.want != detail::want::close) op.ec = error::closed;
        return true;
      } else if (auto* f = std::get_if<handshake_failure_event>(&*ev)) {
        failure_ = *f->failure;
        op.ec = error::handshake_failed;
        return true;
      }
    }
    borrowed_ = false;
    if (conn_->state() == gust::state::closed && (close_ || failure_)) {
      op.ec = op.want == detail::want::close && close_ ? std::error_code() : std::error_code(error::closed);
      return true;
    }
    if (eof_) {
      op.ec = error::closed;
      return true;
    }
    return false;
  }

  void wake_closers(std::error_code ec) {
    auto ws = std::move(closers_);
    closers_.clear();
    for (auto& w : ws) w(ec);
  }

  // ---- read-side operations --------------------------------------------------

  template <class Signature>
  struct read_op {
    read_op(websocket* w, detail::want wa) : ws(w), want(wa) {}
    websocket* ws;
    detail::want want;
    enum : std::uint8_t { starting, reading, delivering } step = starting;
    std::error_code ec;
    message msg;

    template <class Self>
    void operator()(Self& self, std::error_code rec = {}, std::size_t n = 0) {
      websocket& w = *ws;
      if (step == delivering) return finish(self);
      if (step == starting) {
        if (!w.conn_) ec = error::not_connected;
        else if (w.reading_) ec = error::read_in_progress;
        if (ec) return deliver_later(self);
        w.reading_ = true;
        self.reset_cancellation_state(::asio::enable_total_cancellation());
      } else {  // a stream read completed
        if (n > 0) {
          w.conn_->receive(std::span(w.rbuf_.data(), n), clock::now());
          w.borrowed_ = true;
        }
        if (rec) {
          const bool cancelled = self.get_cancellation_state().cancelled() != ::asio::cancellation_type::none;
          if (cancelled && !w.stream_closed_) {
            // Nothing was read: the websocket stays usable. An async_close
            // waiting on this read has nobody left to read for it.
            ec = ::asio::error::operation_aborted;
            w.reading_ = false;
            w.wake_closers(ec);
            return finish(self);
          }
          w.eof_ = true;
          w.conn_->receive_eof(clock::now());
        }
      }
      const bool done = w.pump(*this);
      w.start_write();
      w.maybe_close_transport();
      w.rearm();
      if (done) {
        w.reading_ = false;
        return step == starting ? deliver_later(self) : finish(self);
      }
      step = reading;
      if (w.rbuf_.size() < read_size) w.rbuf_.resize(read_size);
      w.stream_.async_read_some(::asio::buffer(w.rbuf_), std::move(self));
    }

    // Completing from the initiating call would run the handler inside it.
    template <class Self>
    void deliver_later(Self& self) {
      step = delivering;
      ::asio::post(std::move(self));
    }
    template <class Self>
    void finish(Self& self) {
      if constexpr (std::is_same_v<Signature, void(std::error_code, message)>) {
        self.complete(ec, std::move(msg));
      } else {
        self.complete(ec);
      }
    }
  };

  template <class Signature, class Token>
  auto read_side(detail::want w, Token&& token) {
    return ::asio::async_compose<Token, Signature>(read_op<Signature>{this, w}, token, stream_);
  }

  // async_close: starts the closing handshake, then reads until it is done,
  // or waits for the pending read to see it.
  struct close_op {
    close_op(websocket* w, std::uint16_t c, std::string r) : ws(w), code(c), reason(std::move(r)) {}
    websocket* ws;
    std::uint16_t code;
    std::string reason;
    enum : std::uint8_t { starting, joined, reading } step = starting;
    std::optional<read_op<void(std::error_code)>> inner;

    template <class Self>
    void operator()(Self& self, std::error_code ec = {}, std::size_t n = 0) {
      websocket& w = *ws;
      if (step == joined) return self.complete(ec);
      if (step == reading) return (*inner)(self, ec, n);
      if (!w.conn_) return fail_later(self, error::not_connected);
      if (w.conn_->state() == gust::state::open) {
        if (auto e = w.conn_->close(clock::now(), code, reason)) return fail_later(self, e);
      }
      w.start_write();
      w.rearm();
      if (w.reading_) {
        step = joined;
        w.closers_.emplace_back([s = std::move(self)](std::error_code e) mutable {
          ::asio::post(::asio::experimental::append(std::move(s), e));
        });
        return;
      }
      step = reading;
      inner.emplace(ws, detail::want::close);
      (*inner)(self);
    }
    template <class Self>
    void fail_later(Self& self, std::error_code e) {
      step = joined;
      ::asio::post(::asio::experimental::append(std::move(self), e));
    }
  };

  // async_send / async_ping: queue into the core, complete once written.
  template <class Queue>
  struct queue_op_impl {
    queue_op_impl(websocket* w, Queue q) : ws(w), queue(std::move(q)) {}
    websocket* ws;
    Queue queue;
    bool started = false;

    template <class Self>
    void operator()(Self& self, std::error_code ec = {}) {
      if (started) return self.complete(ec);
      started = true;
      websocket& w = *ws;
      std::error_code e;
      if (!w.conn_) e = error::not_connected;
      else if (w.write_error_) e = w.write_error_;
      else e = queue();
      if (e) {
        ::asio::post(::asio::experimental::append(std::move(self), e));
        return;
      }
      const std::uint64_t gen = ++w.queued_;
      w.sends_.emplace_back(gen, detail::waiter([s = std::move(self)](std::error_code r) mutable {
                              ::asio::post(::asio::experimental::append(std::move(s), r));
                            }));
      w.start_write();
      w.rearm();
    }
  };

  template <class Token, class Queue>
  auto queue_op(Token&& token, Queue q) {
    return ::asio::async_compose<Token, void(std::error_code)>(queue_op_impl<Queue>{this, std::move(q)},
                                                              token, stream_);
  }

  static constexpr std::size_t read_size = 64 * 1024;

  Stream stream_;
  ::asio::basic_waitable_timer<clock, ::asio::wait_traits<clock>, executor_type> timer_;
  gust::settings settings_;
  std::unique_ptr<gust::connection> conn_;
  std::function<void(gust::server_connection&, const http::request&)> on_request_;
  std::vector<std::byte> rbuf_;
  std::vector<char> wbuf_;
  std::vector<std::pair<std::uint64_t, detail::waiter>> sends_;
  std::vector<detail::waiter> closers_;
  std::optional<gust::asio::close_info> close_;
  std::optional<gust::handshake_failure> failure_;
  std::optional<time_point> timer_at_;
  std::error_code write_error_;
  std::uint64_t queued_ = 0, written_ = 0, timer_gen_ = 0;
  bool reading_ = false, writing_ = false, borrowed_ = false, eof_ = false, stream_closed_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace gust::asio

#include "gust/asio_loop.hpp"
