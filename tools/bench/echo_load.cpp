// Echo load generator: N WebSocket connections over loopback, each keeping W
// messages of S bytes in flight, for T seconds; prints echoed messages per
// second. Raw sockets and epoll on one thread, frames built once, so the
// generator costs the same against every server. It checks the echoes
// before timing (and counts any mismatch while timing).
//
//   echo_load PORT [--connections N] [--inflight W] [--size S] [--seconds T]
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;

std::string client_frame(const std::string& payload) {
  std::string f;
  f += static_cast<char>(0x82);  // FIN, binary
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
  const char key[4] = {0x1d, 0x2c, 0x3b, 0x4a};
  f.append(key, 4);
  for (std::size_t i = 0; i < n; ++i) f += static_cast<char>(payload[i] ^ key[i & 3]);
  return f;
}

struct conn {
  int fd = -1;
  std::string in;
  std::string out;  // not yet written
  std::size_t out_pos = 0;
};

bool write_some(conn& c) {
  while (c.out_pos < c.out.size()) {
    ssize_t n = ::send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_pos += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    return false;
  }
  c.out.clear();
  c.out_pos = 0;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: echo_load PORT [--connections N] [--inflight W] [--size S] [--seconds T]\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  int conns_n = 50, inflight = 1;
  std::size_t size = 32;
  double seconds = 5;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string o = argv[i];
    if (o == "--connections") conns_n = std::atoi(argv[i + 1]);
    else if (o == "--inflight") inflight = std::atoi(argv[i + 1]);
    else if (o == "--size") size = std::strtoull(argv[i + 1], nullptr, 10);
    else if (o == "--seconds") seconds = std::atof(argv[i + 1]);
  }
  std::string payload(size, '\0');
  for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<char>('a' + i % 26);
  const std::string frame = client_frame(payload);
  std::string burst;
  for (int i = 0; i < inflight; ++i) burst += frame;

  std::vector<conn> cs(static_cast<std::size_t>(conns_n));
  const int ep = epoll_create1(0);
  for (int i = 0; i < conns_n; ++i) {
    conn& c = cs[static_cast<std::size_t>(i)];
    c.fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      std::perror("connect");
      return 1;
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const std::string req =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if (::send(c.fd, req.data(), req.size(), 0) != ssize_t(req.size())) return 1;
    char buf[4096];
    while (c.in.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n <= 0) {
        std::fprintf(stderr, "handshake failed\n");
        return 1;
      }
      c.in.append(buf, static_cast<std::size_t>(n));
    }
    if (c.in.rfind("HTTP/1.1 101", 0) != 0) {
      std::fprintf(stderr, "not 101: %s\n", c.in.substr(0, 40).c_str());
      return 1;
    }
    c.in.erase(0, c.in.find("\r\n\r\n") + 4);
    ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }

  std::uint64_t echoed = 0, bad = 0;
  bool verified = false;
  for (auto& c : cs) {
    c.out = burst;
    if (!write_some(c)) return 1;
  }
  const auto t_start = clk::now();
  const auto warm_end = t_start + std::chrono::milliseconds(500);
  const auto end = warm_end + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(seconds));
  std::uint64_t at_warm = 0;
  bool warm = false;
  std::vector<char> rbuf(1 << 20);
  epoll_event evs[256];
  for (;;) {
    const auto now = clk::now();
    if (!warm && now >= warm_end) {
      warm = true;
      at_warm = echoed;
    }
    if (now >= end) break;
    int n = epoll_wait(ep, evs, 256, 100);
    for (int k = 0; k < n; ++k) {
      conn& c = cs[evs[k].data.u32];
      if (evs[k].events & EPOLLOUT) {
        if (!write_some(c)) return 1;
        if (c.out.empty()) {
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u32 = evs[k].data.u32;
          epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
      }
      if (!(evs[k].events & EPOLLIN)) continue;
      for (;;) {
        ssize_t r = ::recv(c.fd, rbuf.data(), rbuf.size(), 0);
        if (r > 0) {
          c.in.append(rbuf.data(), static_cast<std::size_t>(r));
          if (static_cast<std::size_t>(r) < rbuf.size()) break;
          continue;
        }
        if (r == 0) {
          std::fprintf(stderr, "server closed a connection\n");
          return 1;
        }
        if (errno == EAGAIN) break;
        if (errno == EINTR) continue;
        std::perror("recv");
        return 1;
      }
      // Parse the echoes; send one message for each one back.
      std::size_t pos = 0, got = 0;
      for (;;) {
        if (c.in.size() - pos < 2) break;
        const auto b1 = static_cast<unsigned char>(c.in[pos + 1]);
        std::size_t hs = 2;
        std::uint64_t len = b1 & 0x7f;
        if (len == 126) hs = 4;
        if (len == 127) hs = 10;
        if (c.in.size() - pos < hs) break;
        if (hs == 4) len = (std::uint64_t(static_cast<unsigned char>(c.in[pos + 2])) << 8) | static_cast<unsigned char>(c.in[pos + 3]);
        if (hs == 10) {
          len = 0;
          for (int j = 0; j < 8; ++j) len = (len << 8) | static_cast<unsigned char>(c.in[pos + 2 + j]);
        }
        if (c.in.size() - pos < hs + len) break;
        const auto op = static_cast<unsigned char>(c.in[pos]) & 0x0f;
        if (op == 2) {
          if (len != size) ++bad;
          else if (!verified) {
            verified = c.in.compare(pos + hs, len, payload) == 0;
            if (!verified) ++bad;
          }
          ++got;
        }
        pos += hs + static_cast<std::size_t>(len);
      }
      c.in.erase(0, pos);
      echoed += got;
      if (got) {
        const bool was_empty = c.out.empty();
        for (std::size_t j = 0; j < got; ++j) c.out += frame;
        if (!write_some(c)) return 1;
        if (was_empty && !c.out.empty()) {
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLOUT;
          ev.data.u32 = evs[k].data.u32;
          epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
      }
    }
  }
  const double measured = std::chrono::duration<double>(clk::now() - warm_end).count();
  const double rate = double(echoed - at_warm) / measured;
  std::printf("%.0f msgs/s  (connections %d, in flight %d per connection, %zu B binary, %.1f s; %s%llu bad)\n",
              rate, conns_n, inflight, size, measured, verified ? "verified, " : "NOT verified, ",
              static_cast<unsigned long long>(bad));
  for (auto& c : cs) ::close(c.fd);
  return verified && bad == 0 ? 0 : 1;
}
