// An in-memory, bidirectional byte pipe that is an Asio AsyncReadStream and
// AsyncWriteStream of "the user's own kind": it shows that
// gust::asio::websocket<Stream> needs nothing of a socket. Reads complete
// with what is there (at most `max_chunk` bytes, so frames arrive split),
// a pending read honours its cancellation slot, close() ends the peer's
// reads with EOF (after the bytes already written) and aborts our own.
// One executor, one thread.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/async_result.hpp>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/experimental/append.hpp>
#include <asio/post.hpp>
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

namespace gust::test {

class pipe_stream {
 public:
  using executor_type = ::asio::any_io_executor;

  /// A connected pair.
  static std::pair<pipe_stream, pipe_stream> make_pair(executor_type ex, std::size_t max_chunk = 1000) {
    auto a = std::make_shared<side>(), b = std::make_shared<side>();
    return {pipe_stream(ex, a, b, max_chunk), pipe_stream(ex, b, a, max_chunk)};
  }

  pipe_stream(pipe_stream&&) noexcept = default;
  executor_type get_executor() const { return ex_; }
  std::size_t bytes_written() const { return out_->total; }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& bufs, Token&& token) {
    return ::asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          ::asio::mutable_buffer first = *::asio::buffer_sequence_begin(b);
          if (!in_->data.empty() || in_->closed || closed_) {
            auto [ec, n] = take(first);
            ::asio::post(ex_, ::asio::experimental::append(std::move(handler), ec, n));
            return;
          }
          auto slot = ::asio::get_associated_cancellation_slot(handler);
          in_->pending = std::make_unique<reader_impl<decltype(handler)>>(std::move(handler), first);
          if (slot.is_connected()) {
            slot.assign([in = in_, ex = ex_](::asio::cancellation_type) {
              if (in->pending) {
                auto r = std::move(in->pending);
                r->complete(ex, ::asio::error::operation_aborted, 0);
              }
            });
          }
        },
        token, bufs);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& bufs, Token&& token) {
    return ::asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          std::size_t n = 0;
          std::error_code ec;
          if (closed_ || out_->closed) {
            ec = ::asio::error::broken_pipe;
          } else {
            for (auto it = ::asio::buffer_sequence_begin(b); it != ::asio::buffer_sequence_end(b); ++it) {
              ::asio::const_buffer cb = *it;
              out_->data.append(static_cast<const char*>(cb.data()), cb.size());
              n += cb.size();
            }
            out_->total += n;
            out_->wake(ex_, max_chunk_);
          }
          ::asio::post(ex_, ::asio::experimental::append(std::move(handler), ec, n));
        },
        token, bufs);
  }

  void close(std::error_code& ec) {
    ec = {};
    if (closed_) return;
    closed_ = true;
    out_->closed = true;  // the peer reads what is left, then EOF
    out_->wake(ex_, max_chunk_);
    if (in_->pending) {
      auto r = std::move(in_->pending);
      r->complete(ex_, ::asio::error::operation_aborted, 0);
    }
  }
  bool is_open() const { return !closed_; }

 private:
  struct reader {
    virtual ~reader() = default;
    virtual void complete(const executor_type& ex, std::error_code ec, std::size_t n) = 0;
    ::asio::mutable_buffer buf;
  };
  template <class H>
  struct reader_impl final : reader {
    reader_impl(H h, ::asio::mutable_buffer b) : handler(std::move(h)) { buf = b; }
    void complete(const executor_type& ex, std::error_code ec, std::size_t n) override {
      ::asio::get_associated_cancellation_slot(handler).clear();
      ::asio::post(ex, ::asio::experimental::append(std::move(handler), ec, n));
    }
    H handler;
  };
  struct side {
    std::string data;
    bool closed = false;
    std::size_t total = 0;
    std::unique_ptr<reader> pending;
    void wake(const executor_type& ex, std::size_t max_chunk) {
      if (!pending || (data.empty() && !closed)) return;
      auto r = std::move(pending);
      if (data.empty()) {
        r->complete(ex, ::asio::error::eof, 0);
        return;
      }
      const std::size_t n = std::min({data.size(), r->buf.size(), max_chunk});
      std::memcpy(r->buf.data(), data.data(), n);
      data.erase(0, n);
      r->complete(ex, {}, n);
    }
  };

  pipe_stream(executor_type ex, std::shared_ptr<side> in, std::shared_ptr<side> out, std::size_t max_chunk)
      : ex_(std::move(ex)), in_(std::move(in)), out_(std::move(out)), max_chunk_(max_chunk) {}

  std::pair<std::error_code, std::size_t> take(::asio::mutable_buffer b) {
    if (closed_) return {::asio::error::operation_aborted, 0};
    if (in_->data.empty()) return {::asio::error::eof, 0};
    const std::size_t n = std::min({in_->data.size(), b.size(), max_chunk_});
    std::memcpy(b.data(), in_->data.data(), n);
    in_->data.erase(0, n);
    return {std::error_code(), n};
  }

  executor_type ex_;
  std::shared_ptr<side> in_, out_;
  std::size_t max_chunk_;
  bool closed_ = false;
};

}  // namespace gust::test
