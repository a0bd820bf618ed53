// The adapter behaviour suite's tools: the list of adapters every test runs
// under, a server on its own thread, a raw socket peer that can misbehave,
// and a loop runner with a deadline. Every wait is bounded.
#pragma once

#include <doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>

#include "gust/net.hpp"

namespace gust::test {

using namespace std::chrono_literals;

/// One type per adapter. ADAPTER_TEST("name") { ... T::kind ... } runs the
/// test once for each adapter this build has (GUST_HAVE_* from meson), so
/// a new adapter is tested by every case here the moment it is built.
template <gust::adapter A>
struct on {
  static constexpr gust::adapter kind = A;
};

#ifndef GUST_HAVE_EPOLL
#define GUST_HAVE_EPOLL 0
#endif
#ifndef GUST_HAVE_IO_URING
#define GUST_HAVE_IO_URING 0
#endif
#ifndef GUST_HAVE_ASIO
#define GUST_HAVE_ASIO 0
#endif
template <class T, bool built>
using keep_if = std::conditional_t<built, std::tuple<T>, std::tuple<>>;
using adapter_list = decltype(std::tuple_cat(
    std::declval<keep_if<on<gust::adapter::epoll>, bool(GUST_HAVE_EPOLL)>>(),
    std::declval<keep_if<on<gust::adapter::io_uring>, bool(GUST_HAVE_IO_URING)>>(),
    std::declval<keep_if<on<gust::adapter::asio>, bool(GUST_HAVE_ASIO)>>()));

#define GUST_ADAPTER_TEST_IMPL(dec, anon)                                              \
  DOCTEST_TEST_CASE_TEMPLATE_DEFINE_IMPL(dec, T, DOCTEST_CAT(anon, ITERATOR), anon);   \
  DOCTEST_TEST_CASE_TEMPLATE_INSTANTIATE_IMPL(anon, anon, gust::test::adapter_list)    \
  template <typename T>                                                                \
  static void anon()
#define ADAPTER_TEST(dec) GUST_ADAPTER_TEST_IMPL(dec, DOCTEST_ANONYMOUS(GUST_ADAPTER_TEST_))

inline std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}
inline std::string text_of(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// Raises the descriptor limit to its hard maximum (1,000 connections need
/// 2,000 descriptors in one process).
inline void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/// A gust::server running on its own thread (its own loops).
class server_thread {
 public:
  explicit server_thread(gust::server_config cfg) {
    srv_ = std::make_unique<gust::server>(std::move(cfg));
    listen_error = srv_->listen();
    if (listen_error) return;
    t_ = std::thread([this] {
      srv_->run();
      done_.store(true);
    });
  }
  ~server_thread() { stop(); }

  gust::server& srv() { return *srv_; }
  std::uint16_t port() const { return srv_->port(); }
  std::string url(std::string_view path = "/") const {
    std::string u = srv_->url();
    return u.substr(0, u.size() - 1) + std::string(path);
  }
  bool done() const { return done_.load(); }

  /// Shuts down and waits for run() to return, at most `bound`.
  bool stop(gust::shutdown_options opts = {}, duration bound = 20s) {
    if (!t_.joinable()) return true;
    srv_->shutdown(std::move(opts));
    return join(bound);
  }
  bool join(duration bound = 20s) {
    if (!t_.joinable()) return true;
    const auto end = clock::now() + bound;
    while (!done_.load() && clock::now() < end) std::this_thread::sleep_for(2ms);
    if (!done_.load()) return false;  // (left running: the test fails)
    t_.join();
    return true;
  }

  std::error_code listen_error;

 private:
  std::unique_ptr<gust::server> srv_;
  std::thread t_;
  std::atomic<bool> done_{false};
};

/// Runs `loop` until `pred` holds, at most `bound`. Returns pred().
template <class Pred>
bool run_until(gust::event_loop& loop, Pred pred, duration bound = 10s) {
  const auto end = clock::now() + bound;
  while (!pred()) {
    if (clock::now() >= end) return false;
    const auto t0 = clock::now();
    loop.run_for(5ms);
    if (clock::now() - t0 < 1ms) std::this_thread::sleep_for(1ms);  // nothing to run
  }
  return true;
}

/// Waits (without a loop) until `pred` holds, at most `bound`.
template <class Pred>
bool wait_until(Pred pred, duration bound = 10s) {
  const auto end = clock::now() + bound;
  while (!pred()) {
    if (clock::now() >= end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// A blocking socket peer written by hand: it can send anything, stop
/// reading, never answer a close.
class raw_peer {
 public:
  explicit raw_peer(std::uint16_t port, bool ipv6 = false) {
    fd_ = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc;
    if (ipv6) {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_port = htons(port);
      a.sin6_addr = in6addr_loopback;
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    connected = rc == 0;
  }
  ~raw_peer() {
    if (fd_ >= 0) ::close(fd_);
  }
  raw_peer(const raw_peer&) = delete;

  bool connected = false;
  int fd() const { return fd_; }

  /// A small receive buffer, so "stops reading" stops the server soon.
  void shrink_receive_buffer(int bytes = 16 * 1024) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }

  bool send(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Reads what is available within `bound` (empty: nothing, or EOF).
  std::string read_some(duration bound = 5s) {
    if (!readable(bound)) return {};
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof = true;
      return {};
    }
    return {buf, static_cast<std::size_t>(n)};
  }

  /// Reads until `marker` appears (kept in the buffer after it).
  std::string read_until(std::string_view marker, duration bound = 5s) {
    const auto end = clock::now() + bound;
    while (in_.find(marker) == std::string::npos && clock::now() < end && !eof) {
      in_ += read_some(std::chrono::duration_cast<duration>(end - clock::now()));
    }
    auto pos = in_.find(marker);
    if (pos == std::string::npos) return {};
    std::string head = in_.substr(0, pos + marker.size());
    in_.erase(0, pos + marker.size());
    return head;
  }

  /// True if the server closed the connection within `bound`.
  bool eof_within(duration bound) {
    const auto end = clock::now() + bound;
    while (!eof && clock::now() < end) {
      std::string s = read_some(std::chrono::duration_cast<duration>(end - clock::now()));
      in_ += s;
    }
    return eof;
  }

  /// Sends a WebSocket opening request; returns the response head.
  std::string upgrade(std::string_view target = "/", std::string_view extra = {}) {
    send("GET " + std::string(target) +
         " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
         std::string(extra) + "\r\n");
    return read_until("\r\n\r\n");
  }

  /// A masked client frame.
  static std::string frame(std::uint8_t b0, std::string_view payload) {
    std::string f;
    f += static_cast<char>(b0);
    const std::size_t n = payload.size();
    if (n < 126) {
      f += static_cast<char>(0x80 | n);
    } else if (n < 65536) {
      f += static_cast<char>(0x80 | 126);
      f += static_cast<char>(n >> 8);
      f += static_cast<char>(n & 0xff);
    } else {
      f += static_cast<char>(0x80 | 127);
      for (int i = 7; i >= 0; --i) f += static_cast<char>((std::uint64_t(n) >> (8 * i)) & 0xff);
    }
    const char key[4] = {0x12, 0x34, 0x56, 0x78};
    f.append(key, 4);
    for (std::size_t i = 0; i < n; ++i) f += static_cast<char>(payload[i] ^ key[i & 3]);
    return f;
  }

  struct frame_in {
    std::uint8_t opcode = 0;
    bool fin = false;
    std::string payload;
  };
  /// Reads one (unmasked, server) frame within `bound`.
  std::optional<frame_in> read_frame(duration bound = 5s) {
    const auto end = clock::now() + bound;
    for (;;) {
      if (in_.size() >= 2) {
        const auto b0 = static_cast<unsigned char>(in_[0]), b1 = static_cast<unsigned char>(in_[1]);
        std::size_t hs = 2;
        std::uint64_t len = b1 & 0x7f;
        if (len == 126) hs = 4;
        if (len == 127) hs = 10;
        if (in_.size() >= hs) {
          if (hs == 4) len = (std::uint64_t(static_cast<unsigned char>(in_[2])) << 8) | static_cast<unsigned char>(in_[3]);
          if (hs == 10) {
            len = 0;
            for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<unsigned char>(in_[2 + i]);
          }
          if (in_.size() >= hs + len) {
            frame_in f{static_cast<std::uint8_t>(b0 & 0x0f), (b0 & 0x80) != 0, in_.substr(hs, len)};
            in_.erase(0, hs + len);
            return f;
          }
        }
      }
      if (clock::now() >= end || eof) return std::nullopt;
      in_ += read_some(std::chrono::duration_cast<duration>(end - clock::now()));
    }
  }

  bool eof = false;

 private:
  bool readable(duration bound) {
    pollfd p{fd_, POLLIN, 0};
    const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(bound).count());
    return ::poll(&p, 1, std::max(ms, 0)) > 0;
  }
  int fd_ = -1;
  std::string in_;
};

/// A payload of `n` bytes with a recognisable pattern (ASCII for text).
inline std::string pattern(std::size_t n, bool text) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = text ? static_cast<char>('a' + (i * 7 + i / 251) % 26) : static_cast<char>((i * 31 + i / 257) & 0xff);
  return s;
}

/// An echo server configuration for adapter `a`.
inline gust::server_config echo_config(gust::adapter a) {
  gust::server_config cfg;
  cfg.adapter = a;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.handlers.on_message = [](gust::websocket& ws, const gust::message_event& m) {
    (void)ws.send(m.type, m.data);
  };
  return cfg;
}

}  // namespace gust::test
