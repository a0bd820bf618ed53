// The ceiling of the echo measurement: the least a WebSocket echo server on
// epoll can do, so bench/compare can show what any server could reach on
// this machine with this generator (bench/compare --bare).
//
// One thread, level-triggered epoll, and per ready socket one recv(2) and one
// send(2): every frame of the read is unmasked into one output buffer and
// echoed as it came (same opcode and FIN, so fragments echo as fragments),
// pings answered, a close answered and the socket closed. No library on the
// data path, no limits, no UTF-8 check, no extension: it is not a server to
// use, only the floor under the cost of one. The opening handshake goes
// through gust's engine (it is not measured); the data path starts after the
// 101, which is when echo_load starts sending.
//
//   bare_echo_server PORT   prints "listening on ws://127.0.0.1:PORT/"
#include <gust/connection.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <variant>
#include <vector>

namespace {

// A connection holds memory only while it must: a partial frame waiting
// for the rest (in), bytes the socket did not take (out). Reads go to the
// loop's one buffer and echoes are built in another, as a server with many
// connections does it.
struct conn {
  int fd = -1;
  std::unique_ptr<gust::server_connection> opening;  // null once open
  std::vector<char> in;   // a partial frame: bytes in [0, in_len)
  std::size_t in_len = 0;
  std::vector<char> out;  // unsent bytes in [out_rd, out.size())
  std::size_t out_rd = 0;
  bool want_out = false;
  bool closing = false;   // close answered: close the socket once out is sent
};

constexpr std::size_t read_size = 64 * 1024;

volatile sig_atomic_t stop = 0;
void on_signal(int) { stop = 1; }

void append_header(std::vector<char>& out, unsigned char b0, std::uint64_t n) {
  out.push_back(static_cast<char>(b0));
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n < 65536) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(static_cast<char>(127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
}

// Eight bytes at a time (the compiler widens it further), so large
// messages measure the copy and not a byte loop.
void unmask_into(char* dst, const char* src, std::size_t n, const unsigned char key[4]) {
  std::uint64_t k8;
  for (int i = 0; i < 8; ++i) reinterpret_cast<unsigned char*>(&k8)[i] = key[i & 3];
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, src + i, 8);
    v ^= k8;
    std::memcpy(dst + i, &v, 8);
  }
  for (; i < n; ++i) dst[i] = static_cast<char>(src[i] ^ key[i & 3]);
}

constexpr std::size_t bad_input = SIZE_MAX;

// A masked frame's header (with its key) and payload length, from `avail`
// bytes at p; header 0 while the header is incomplete.
struct frame_head {
  std::size_t header = 0;
  std::uint64_t payload = 0;
};
frame_head parse_head(const unsigned char* p, std::size_t avail) {
  if (avail < 2) return {};
  std::uint64_t n = p[1] & 0x7f;
  const std::size_t hs = n == 126 ? 4 : n == 127 ? 10 : 2;
  if (avail < hs + 4) return {};
  if (hs == 4) n = (std::uint64_t(p[2]) << 8) | p[3];
  if (hs == 10) {
    n = 0;
    for (int i = 0; i < 8; ++i) n = (n << 8) | p[2 + i];
  }
  return {hs + 4, n};
}

// Echoes every complete frame of [data, data + len) into out; returns the
// bytes used (the rest is a partial frame), or bad_input.
std::size_t echo_frames(const char* data, std::size_t len, std::vector<char>& out, bool& closing) {
  std::size_t rd = 0;
  while (len - rd >= 2 && !closing) {
    const auto* p = reinterpret_cast<const unsigned char*>(data + rd);
    if (!(p[1] & 0x80)) return bad_input;  // a client's frames are masked
    const frame_head h = parse_head(p, len - rd);
    if (h.header == 0 || len - rd - h.header < h.payload) break;
    const std::size_t n = static_cast<std::size_t>(h.payload);
    const unsigned op = p[0] & 0x0f;
    const unsigned char* key = p + h.header - 4;
    const char* body = data + rd + h.header;
    rd += h.header + n;
    if (op == 0xA) continue;  // pong
    const unsigned char b0 = op == 0x9 ? static_cast<unsigned char>(0x80 | 0xA) : p[0];
    append_header(out, b0, n);
    const std::size_t at = out.size();
    out.resize(at + n);
    unmask_into(out.data() + at, body, n, key);
    if (op == 0x8) closing = true;
  }
  return rd;
}

// Sends [p, p + n) as far as the socket takes it now: the bytes that went
// out, or -1 on an error.
ssize_t send_some(int fd, const char* p, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t w = ::send(fd, p + done, n - done, MSG_NOSIGNAL);
    if (w > 0) {
      done += static_cast<std::size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return -1;
  }
  return static_cast<ssize_t>(done);
}

// Sends c.out; false on an error.
bool flush(conn& c) {
  const ssize_t w = send_some(c.fd, c.out.data() + c.out_rd, c.out.size() - c.out_rd);
  if (w < 0) return false;
  c.out_rd += static_cast<std::size_t>(w);
  if (c.out_rd == c.out.size()) {
    c.out.clear();
    c.out_rd = 0;
  }
  return true;
}

// Sends `out` (the loop's echo buffer); what the socket does not take is
// kept in c.out. false on an error.
bool send_echo(conn& c, std::vector<char>& out) {
  const ssize_t w = send_some(c.fd, out.data(), out.size());
  if (w < 0) return false;
  c.out.assign(out.begin() + w, out.end());
  out.clear();
  return true;
}

// The opening handshake, through the engine; true while the connection lives.
bool handshake(conn& c, const char* data, std::size_t n) {
  const auto now = gust::clock::now();
  c.opening->receive(std::span<std::byte>(reinterpret_cast<std::byte*>(const_cast<char*>(data)), n), now);
  bool open = false;
  while (auto ev = c.opening->next_event(now)) {
    if (std::holds_alternative<gust::request_event>(*ev)) {
      if (c.opening->accept(now)) return false;
    } else if (std::holds_alternative<gust::open_event>(*ev)) {
      open = true;
      break;
    } else {
      return false;
    }
  }
  for (auto bufs = c.opening->pending_output(); !bufs.empty(); bufs = c.opening->pending_output()) {
    std::size_t taken = 0;
    for (const auto& b : bufs) {
      c.out.insert(c.out.end(), reinterpret_cast<const char*>(b.data), reinterpret_cast<const char*>(b.data) + b.size);
      taken += b.size;
    }
    if (c.opening->consume_output(taken)) return false;
  }
  if (c.opening->transport_should_close()) return false;
  if (open) c.opening.reset();
  return true;
}

// One read of an open connection, echoed; false when it ends.
bool on_readable(conn& c, std::vector<char>& rbuf, std::vector<char>& echo) {
  if (c.in_len == 0) {
    const ssize_t r = ::recv(c.fd, rbuf.data(), rbuf.size(), 0);
    if (r <= 0) return r < 0 && (errno == EAGAIN || errno == EINTR);
    const auto got = static_cast<std::size_t>(r);
    const std::size_t used = echo_frames(rbuf.data(), got, echo, c.closing);
    if (used == bad_input) return false;
    if (used < got && !c.closing) {  // a partial frame waits in the connection
      if (c.in.size() < std::max(got - used, read_size)) c.in.resize(std::max(got - used, read_size));
      std::memcpy(c.in.data(), rbuf.data() + used, got - used);
      c.in_len = got - used;
    }
  } else {
    // The rest of a partial frame: read behind it, with room for all of it.
    if (c.in.size() - c.in_len < 4096) c.in.resize(c.in_len + read_size);
    const ssize_t r = ::recv(c.fd, c.in.data() + c.in_len, c.in.size() - c.in_len, 0);
    if (r <= 0) return r < 0 && (errno == EAGAIN || errno == EINTR);
    c.in_len += static_cast<std::size_t>(r);
    const std::size_t used = echo_frames(c.in.data(), c.in_len, echo, c.closing);
    if (used == bad_input) return false;
    std::memmove(c.in.data(), c.in.data() + used, c.in_len - used);
    c.in_len -= used;
    // Once the next frame's length is known: room for all of it.
    const frame_head h = parse_head(reinterpret_cast<const unsigned char*>(c.in.data()), c.in_len);
    if (h.header && c.in.size() < h.header + h.payload) c.in.resize(h.header + h.payload + read_size);
    if (c.in_len == 0 && c.in.size() > read_size) {  // a large frame is done: give its buffer back
      c.in.clear();
      c.in.shrink_to_fit();
    }
  }
  return send_echo(c, echo);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bare_echo_server PORT\n");
    return 2;
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);

  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[1])));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 4096) != 0 ||
      ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &alen) != 0) {
    std::perror("bare_echo_server: listen");
    return 1;
  }
  std::printf("listening on ws://127.0.0.1:%u/\n", unsigned(ntohs(a.sin_port)));
  std::fflush(stdout);

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.u64 = UINT64_MAX;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  std::vector<std::unique_ptr<conn>> conns;  // by descriptor
  auto settings = gust::shared_settings(gust::settings{});
  auto drop = [&](conn& c) {
    ::close(c.fd);
    conns[static_cast<std::size_t>(c.fd)].reset();
  };
  auto watch = [&](conn& c, bool out) {
    if (out == c.want_out) return;
    epoll_event ev{};
    ev.events = out ? EPOLLOUT : EPOLLIN;  // reading waits while output does
    ev.data.u64 = static_cast<std::uint64_t>(c.fd);
    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
    c.want_out = out;
  };

  std::vector<char> rbuf(read_size), echo;
  echo.reserve(2 * read_size);
  std::vector<epoll_event> evs(512);
  while (!stop) {
    const int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 200);
    for (int k = 0; k < n; ++k) {
      if (evs[k].data.u64 == UINT64_MAX) {
        for (;;) {
          const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (conns.size() <= static_cast<std::size_t>(fd)) conns.resize(static_cast<std::size_t>(fd) + 1);
          auto c = std::make_unique<conn>();
          c->fd = fd;
          c->opening = std::make_unique<gust::server_connection>(gust::clock::now(), settings);
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = static_cast<std::uint64_t>(fd);
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
          conns[static_cast<std::size_t>(fd)] = std::move(c);
        }
        continue;
      }
      conn* cp = conns[evs[k].data.u64].get();
      if (!cp) continue;
      conn& c = *cp;
      if (c.want_out) {
        if (!flush(c)) {
          drop(c);
          continue;
        }
        if (c.out.empty()) {
          if (c.closing) {
            drop(c);
            continue;
          }
          watch(c, false);
        }
        continue;
      }
      bool alive;
      if (c.opening) {
        const ssize_t r = ::recv(c.fd, rbuf.data(), rbuf.size(), 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        alive = r > 0 && handshake(c, rbuf.data(), static_cast<std::size_t>(r)) && flush(c);
      } else {
        alive = on_readable(c, rbuf, echo);
      }
      if (!alive) {
        drop(c);
        continue;
      }
      if (!c.out.empty()) watch(c, true);
      else if (c.closing) drop(c);
    }
  }
  for (auto& c : conns)
    if (c) ::close(c->fd);
  ::close(lfd);
  std::printf("bare_echo_server: shutting down\n");
  return 0;
}
