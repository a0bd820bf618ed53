// Echo load generator for the end-to-end comparison (bench/compare).
//
// Load mode: N WebSocket connections over loopback, each keeping K messages
// of S bytes in flight (K = 1 is ping-pong), for a fixed duration after a
// warm-up. Every echo is checked (length, type, bytes; inflated first when
// compressed); the report has messages/s, MB/s of payload echoed, latency
// p50/p99/p99.9 and the errors.
//
// Idle mode (--idle): opens N connections, completes every handshake, holds
// them, and reports the server's RSS growth (VmRSS of --server-pid) over N.
//
// Why it is built this way: the generator must cost the same against every
// server and must not be the bottleneck. One thread, raw sockets and epoll;
// the masked (and, with --deflate, compressed) frame is built once, and K
// copies of it sit in one buffer that every connection sends from, so a
// send is a send(2) from a shared buffer, never a copy or a re-mask.
//
//   echo_load PORT [--connections N] [--inflight K] [--size S] [--seconds T]
//                  [--warmup W] [--deflate] [--text] [--server-pid PID]
//                  [--start-at UNIX_TIME] [--idle] [--json]
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#if GUST_LOAD_DEFLATE
#include <zlib.h>
#endif

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now().time_since_epoch()).count());
}

double cpu_seconds_self() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

// utime + stime of another process, from /proc/PID/stat (fields 14 and 15,
// counted after the parenthesised command name, which may hold spaces).
double cpu_seconds_of(int pid) {
  if (pid <= 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields;
  std::size_t i = close + 2;
  while (i < s.size() && fields.size() < 14) {
    const auto sp = s.find(' ', i);
    fields.push_back(s.substr(i, sp - i));
    if (sp == std::string::npos) break;
    i = sp + 1;
  }
  if (fields.size() < 14) return -1;
  // fields[0] is the state (field 3), so utime (14) is fields[11].
  const double ticks = double(std::strtoull(fields[11].c_str(), nullptr, 10) +
                              std::strtoull(fields[12].c_str(), nullptr, 10));
  return ticks / double(sysconf(_SC_CLK_TCK));
}

long rss_kib_of(int pid) {
  if (pid <= 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

// Latency histogram: exact below 64 ns, then 32 sub-buckets per power of
// two (about 3% resolution), so millions of samples cost no allocation.
class histogram {
 public:
  void add(std::uint64_t ns) {
    ++counts_[index(ns)];
    ++total_;
  }
  std::uint64_t total() const { return total_; }
  // The smallest recorded value v with at least q of the samples <= v
  // (reported as the bucket's upper bound).
  double quantile_us(double q) const {
    if (total_ == 0) return 0;
    const auto want = static_cast<std::uint64_t>(std::ceil(q * double(total_)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= want && counts_[i]) return double(upper(i)) / 1000.0;
    }
    return double(upper(counts_.size() - 1)) / 1000.0;
  }

 private:
  static constexpr int sub_bits = 5;
  static constexpr std::size_t exact = 2u << sub_bits;
  static std::size_t index(std::uint64_t v) {
    if (v < exact) return static_cast<std::size_t>(v);
    const int shift = (63 - __builtin_clzll(v)) - sub_bits;  // >= 1
    const auto sub = static_cast<std::size_t>((v >> shift) & ((1u << sub_bits) - 1));
    return std::min<std::size_t>(exact + (std::size_t(shift - 1) << sub_bits) + sub, buckets - 1);
  }
  static std::uint64_t upper(std::size_t i) {
    if (i < exact) return i;
    const std::size_t j = i - exact;
    const int shift = int(j >> sub_bits) + 1;
    const std::uint64_t sub = j & ((1u << sub_bits) - 1);
    return (((1ull << sub_bits) | sub) << shift) + ((1ull << shift) - 1);
  }
  static constexpr std::size_t buckets = exact + 40 * (1u << sub_bits);
  std::array<std::uint64_t, buckets> counts_{};
  std::uint64_t total_ = 0;
};

struct options {
  int port = 0;
  int connections = 50;
  int inflight = 1;
  std::size_t size = 32;
  double seconds = 5;
  double warmup = 0.5;
  bool deflate = false;
  bool text = false;
  bool idle = false;
  bool json = false;
  int server_pid = 0;
  double start_at = 0;  // CLOCK_REALTIME seconds; lets two generators start together
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "echo_load: %s\n"
               "usage: echo_load PORT [--connections N] [--inflight K] [--size S] [--seconds T]\n"
               "                 [--warmup W] [--deflate] [--text] [--server-pid PID]\n"
               "                 [--start-at UNIX_TIME] [--idle] [--json]\n",
               why);
  std::exit(2);
}

options parse(int argc, char** argv) {
  if (argc < 2) usage("a port is needed");
  options o;
  o.port = std::atoi(argv[1]);
  if (o.port <= 0 || o.port > 65535) usage("not a port");
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage("an option lacks its value");
      return argv[++i];
    };
    if (a == "--connections") o.connections = std::atoi(value());
    else if (a == "--inflight") o.inflight = std::atoi(value());
    else if (a == "--size") o.size = std::strtoull(value(), nullptr, 10);
    else if (a == "--seconds") o.seconds = std::atof(value());
    else if (a == "--warmup") o.warmup = std::atof(value());
    else if (a == "--server-pid") o.server_pid = std::atoi(value());
    else if (a == "--start-at") o.start_at = std::atof(value());
    else if (a == "--deflate") o.deflate = true;
    else if (a == "--text") o.text = true;
    else if (a == "--idle") o.idle = true;
    else if (a == "--json") o.json = true;
    else usage("unknown option");
  }
  if (o.connections < 1 || o.inflight < 1 || o.seconds <= 0 || o.warmup < 0) usage("bad value");
#if !GUST_LOAD_DEFLATE
  if (o.deflate) usage("--deflate: built without zlib");
#endif
  return o;
}

// ---------------------------------------------------------------------------
// Frames

std::string frame_header(bool text, bool compressed, std::size_t n) {
  std::string f;
  f += static_cast<char>(0x80 | (compressed ? 0x40 : 0) | (text ? 1 : 2));
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
  return f;
}

std::string masked_frame(const std::string& payload, bool text, bool compressed) {
  std::string f = frame_header(text, compressed, payload.size());
  const char key[4] = {0x1d, 0x2c, 0x3b, 0x4a};
  f.append(key, 4);
  for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ key[i & 3]);
  return f;
}

#if GUST_LOAD_DEFLATE
constexpr unsigned char deflate_tail[4] = {0x00, 0x00, 0xff, 0xff};

// RFC 7692 7.2.1: raw deflate, flushed, without the final 00 00 ff ff. A
// fresh compressor per message, so the frame is valid whatever context
// takeover the server agreed to.
std::string compress_message(const std::string& payload) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::string out(deflateBound(&z, payload.size()) + 16, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(payload.data()));
  z.avail_in = static_cast<uInt>(payload.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_SYNC_FLUSH) != Z_OK || z.avail_in != 0) std::abort();
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  if (out.size() < 4 || std::memcmp(out.data() + out.size() - 4, deflate_tail, 4) != 0) std::abort();
  out.resize(out.size() - 4);
  return out;
}

struct inflater {
  z_stream z{};
  inflater() {
    if (inflateInit2(&z, -15) != Z_OK) std::abort();
  }
  ~inflater() { inflateEnd(&z); }
  inflater(const inflater&) = delete;
  inflater& operator=(const inflater&) = delete;

  // Inflates one message into out (at most limit bytes; more is an error).
  bool run(const char* in, std::size_t n, std::string& out, std::size_t limit, bool reset) {
    out.resize(limit + 1);
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const Bytef* parts[2] = {reinterpret_cast<const Bytef*>(in), deflate_tail};
    const std::size_t sizes[2] = {n, 4};
    for (int p = 0; p < 2; ++p) {
      z.next_in = const_cast<Bytef*>(parts[p]);
      z.avail_in = static_cast<uInt>(sizes[p]);
      const int rc = inflate(&z, Z_SYNC_FLUSH);
      if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
      if (z.avail_in != 0) return false;  // output longer than limit + 1
    }
    out.resize(out.size() - z.avail_out);
    if (reset) inflateReset(&z);
    return out.size() <= limit;
  }
};
#endif

// ---------------------------------------------------------------------------
// Connections

// The handshake key is fixed: the RFC 6455 sample, whose accept value is
// known, so the generator checks the answer without SHA-1 of its own.
constexpr std::string_view sample_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view sample_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

enum class state { connecting, handshaking, open, failed };

struct conn {
  int fd = -1;
  state st = state::connecting;
  std::vector<char> in;  // received bytes in [rd, wr)
  std::size_t rd = 0, wr = 0;
  std::string req_left;  // handshake request still to write
  std::uint64_t out_pending = 0;  // bytes queued in the endless repetition of the frame
  std::size_t out_off = 0;        // offset inside the frame where the next byte comes from
  bool want_out = false;          // EPOLLOUT registered
  std::vector<std::uint64_t> sent_at;  // ring of K send times, oldest first
  std::size_t sent_head = 0, sent_count = 0;
  std::string fragments;  // a fragmented message being reassembled
  bool fragmenting = false, frag_compressed = false;
  bool server_nct = false;  // server_no_context_takeover agreed
#if GUST_LOAD_DEFLATE
  std::unique_ptr<inflater> inf;  // only when the server keeps its context
#endif
};

void set_events(int ep, conn& c, std::uint32_t idx, bool out) {
  epoll_event ev{};
  ev.events = EPOLLIN | (out ? EPOLLOUT : 0u);
  ev.data.u32 = idx;
  epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
  c.want_out = out;
}

// Reads what the socket has into c.in; false on EOF or error.
bool fill(conn& c, std::size_t want) {
  for (;;) {
    if (c.rd == c.wr) c.rd = c.wr = 0;
    if (c.in.size() - c.wr < want) {
      if (c.rd > 0) {
        std::memmove(c.in.data(), c.in.data() + c.rd, c.wr - c.rd);
        c.wr -= c.rd;
        c.rd = 0;
      }
      if (c.in.size() - c.wr < want) c.in.resize(c.wr + want);
    }
    const std::size_t space = c.in.size() - c.wr;
    const ssize_t r = ::recv(c.fd, c.in.data() + c.wr, space, 0);
    if (r > 0) {
      c.wr += static_cast<std::size_t>(r);
      if (static_cast<std::size_t>(r) < space) return true;
      continue;
    }
    if (r == 0) return false;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    if (errno == EINTR) continue;
    return false;
  }
}

struct shared_frames {
  std::string burst;  // K copies of the frame, back to back
  std::size_t frame_len = 0;
};

// Writes queued frames from the shared burst; false on a socket error.
bool flush(conn& c, const shared_frames& f) {
  while (c.out_pending > 0) {
    const std::size_t len =
        static_cast<std::size_t>(std::min<std::uint64_t>(c.out_pending, f.burst.size() - c.out_off));
    const ssize_t n = ::send(c.fd, f.burst.data() + c.out_off, len, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_pending -= static_cast<std::uint64_t>(n);
      c.out_off = (c.out_off + static_cast<std::size_t>(n)) % f.frame_len;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
  return true;
}

struct setup_result {
  int ep = -1;
  std::vector<conn> cs;
  std::uint64_t failed = 0;
  std::string first_error;
  double seconds = 0;
};

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// Checks a 101 answer; sets c.server_nct from the extension agreed.
bool check_response(conn& c, std::string_view head, bool deflate, std::string& why) {
  if (head.rfind("HTTP/1.1 101", 0) != 0) {
    why = "not 101: " + std::string(head.substr(0, head.find('\r')));
    return false;
  }
  const std::string h = lower(std::string(head));
  if (h.find("sec-websocket-accept: " + lower(std::string(sample_accept))) == std::string::npos) {
    why = "wrong or missing Sec-WebSocket-Accept";
    return false;
  }
  const auto ext = h.find("sec-websocket-extensions:");
  const bool pmd = ext != std::string::npos && h.find("permessage-deflate", ext) != std::string::npos;
  if (pmd != deflate) {
    why = deflate ? "permessage-deflate offered, not agreed" : "an extension agreed that was not offered";
    return false;
  }
  if (pmd) {
    const auto eol = h.find("\r\n", ext);
    c.server_nct = h.substr(ext, eol - ext).find("server_no_context_takeover") != std::string::npos;
  }
  return true;
}

// Opens every connection, at most `window` handshakes at a time (a burst of
// 10,000 SYNs would overflow the listen backlog and measure SYN retries).
setup_result open_all(const options& o) {
  setup_result r;
  r.ep = epoll_create1(0);
  r.cs.resize(static_cast<std::size_t>(o.connections));
  std::string req =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(o.port) +
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + std::string(sample_key) +
      "\r\nSec-WebSocket-Version: 13\r\n";
  if (o.deflate)
    req += "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n";
  req += "\r\n";
  const auto t0 = clk::now();
  const auto deadline = t0 + std::chrono::seconds(60);
  constexpr int window = 256;
  int started = 0, active = 0, done = 0;
  auto fail = [&](conn& c, const std::string& why) {
    if (r.first_error.empty()) r.first_error = why;
    ++r.failed;
    c.st = state::failed;
    ::close(c.fd);
    c.fd = -1;
    --active;
    ++done;
  };
  std::vector<epoll_event> evs(256);
  while (done < o.connections) {
    while (active < window && started < o.connections) {
      conn& c = r.cs[static_cast<std::size_t>(started)];
      c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      ++active;
      if (c.fd < 0) {
        ++started;
        if (r.first_error.empty()) r.first_error = std::string("socket: ") + std::strerror(errno);
        ++r.failed;
        c.st = state::failed;
        --active;
        ++done;
        continue;
      }
      int one = 1;
      setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(o.port));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
        fail(c, std::string("connect: ") + std::strerror(errno));
        ++started;
        continue;
      }
      c.req_left = req;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT;
      ev.data.u32 = static_cast<std::uint32_t>(started);
      epoll_ctl(r.ep, EPOLL_CTL_ADD, c.fd, &ev);
      c.want_out = true;
      ++started;
    }
    if (clk::now() > deadline) {
      for (auto& c : r.cs)
        if (c.st == state::connecting || c.st == state::handshaking) fail(c, "handshake timed out");
      break;
    }
    const int n = epoll_wait(r.ep, evs.data(), int(evs.size()), 100);
    for (int k = 0; k < n; ++k) {
      conn& c = r.cs[evs[k].data.u32];
      if (c.st != state::connecting && c.st != state::handshaking) continue;
      if (evs[k].events & (EPOLLERR | EPOLLHUP)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        fail(c, std::string("connect: ") + std::strerror(err ? err : ECONNRESET));
        continue;
      }
      if ((evs[k].events & EPOLLOUT) && !c.req_left.empty()) {
        c.st = state::handshaking;
        const ssize_t w = ::send(c.fd, c.req_left.data(), c.req_left.size(), MSG_NOSIGNAL);
        if (w > 0) c.req_left.erase(0, static_cast<std::size_t>(w));
        else if (errno != EAGAIN) {
          fail(c, std::string("send: ") + std::strerror(errno));
          continue;
        }
        if (c.req_left.empty()) set_events(r.ep, c, evs[k].data.u32, false);
      }
      if (evs[k].events & EPOLLIN) {
        const bool alive = fill(c, 4096);
        const std::string_view got(c.in.data() + c.rd, c.wr - c.rd);
        const auto end = got.find("\r\n\r\n");
        if (end == std::string_view::npos) {
          if (!alive) fail(c, "closed during the handshake");
          continue;
        }
        std::string why;
        if (!check_response(c, got.substr(0, end + 4), o.deflate, why)) {
          fail(c, why);
          continue;
        }
        c.rd += end + 4;  // frames may follow the answer at once
        c.st = state::open;
        c.req_left.clear();
        c.req_left.shrink_to_fit();
        --active;
        ++done;
      }
    }
  }
  r.seconds = std::chrono::duration<double>(clk::now() - t0).count();
  return r;
}

void wait_until_realtime(double t) {
  if (t <= 0) return;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  const double now = double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
  if (t > now) std::this_thread::sleep_for(std::chrono::duration<double>(t - now));
}

// ---------------------------------------------------------------------------

int run_idle(const options& o) {
  const long before = rss_kib_of(o.server_pid);
  setup_result s = open_all(o);
  // A moment for the server to finish what an accepted connection costs it
  // after its answer is out (the kernel's buffers are not in its RSS).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const long opened = rss_kib_of(o.server_pid);
  // Hold: any byte or close from the server now is an error (no pings are
  // asked for, and nothing is sent to echo).
  std::uint64_t errors = s.failed;
  const auto end = clk::now() + std::chrono::duration<double>(o.seconds);
  std::vector<epoll_event> evs(256);
  while (clk::now() < end) {
    const int n = epoll_wait(s.ep, evs.data(), int(evs.size()), 50);
    for (int k = 0; k < n; ++k) {
      conn& c = s.cs[evs[k].data.u32];
      if (c.st != state::open) continue;
      const bool alive = fill(c, 4096);
      if (!alive || c.wr > c.rd) {
        ++errors;
        if (s.first_error.empty()) s.first_error = alive ? "data on an idle connection" : "idle connection closed";
        c.st = state::failed;
        epoll_ctl(s.ep, EPOLL_CTL_DEL, c.fd, nullptr);
      }
    }
  }
  const long held = rss_kib_of(o.server_pid);
  const std::uint64_t open = std::uint64_t(o.connections) - s.failed;
  const double per_conn = (before >= 0 && held >= 0 && open > 0) ? double(held - before) * 1024.0 / double(open) : -1;
  if (o.json) {
    std::printf(
        "{\"mode\":\"idle\",\"connections\":%d,\"open\":%llu,\"deflate\":%s,\"setup_s\":%.3f,"
        "\"rss_before_kib\":%ld,\"rss_opened_kib\":%ld,\"rss_held_kib\":%ld,\"bytes_per_conn\":%.1f,"
        "\"errors\":%llu,\"first_error\":\"%s\"}\n",
        o.connections, static_cast<unsigned long long>(open), o.deflate ? "true" : "false", s.seconds, before,
        opened, held, per_conn, static_cast<unsigned long long>(errors), s.first_error.c_str());
  } else {
    std::printf("%.0f B per connection (%llu open; server RSS %ld -> %ld -> %ld KiB; setup %.2f s; %llu errors%s%s)\n",
                per_conn, static_cast<unsigned long long>(open), before, opened, held, s.seconds,
                static_cast<unsigned long long>(errors), s.first_error.empty() ? "" : ": ", s.first_error.c_str());
  }
  for (auto& c : s.cs)
    if (c.fd >= 0) ::close(c.fd);
  return errors == 0 && per_conn >= 0 ? 0 : 1;
}

int run_load(const options& o) {
  std::string payload(o.size, '\0');
  for (std::size_t i = 0; i < o.size; ++i) payload[i] = static_cast<char>('a' + i % 26);
  shared_frames f;
  {
    std::string frame;
#if GUST_LOAD_DEFLATE
    if (o.deflate) frame = masked_frame(compress_message(payload), o.text, true);
    else
#endif
      frame = masked_frame(payload, o.text, false);
    f.frame_len = frame.size();
    for (int i = 0; i < o.inflight; ++i) f.burst += frame;
  }
  setup_result s = open_all(o);
  if (s.failed) {
    std::fprintf(stderr, "echo_load: %llu of %d connections failed to open: %s\n",
                 static_cast<unsigned long long>(s.failed), o.connections, s.first_error.c_str());
    return 1;
  }
  wait_until_realtime(o.start_at);

  const unsigned char want_op = o.text ? 1 : 2;
  const std::size_t recv_want = std::max<std::size_t>(64 * 1024, std::min<std::size_t>(f.frame_len + 16, 4u << 20));
  std::uint64_t echoed = 0, errors = 0, in_window = 0;
  std::string first_error;
  auto error = [&](const std::string& why) {
    ++errors;
    if (first_error.empty()) first_error = why;
  };
  histogram lat;
#if GUST_LOAD_DEFLATE
  inflater shared_inflater;  // for servers without context takeover: reset per message
  std::string inflated;
#endif

  const auto t_start = clk::now();
  const std::uint64_t t0 = now_ns();
  for (std::uint32_t i = 0; i < s.cs.size(); ++i) {
    conn& c = s.cs[i];
    c.sent_at.assign(static_cast<std::size_t>(o.inflight), 0);
    for (int k = 0; k < o.inflight; ++k) c.sent_at[static_cast<std::size_t>(k)] = t0;
    c.sent_count = static_cast<std::size_t>(o.inflight);
    c.out_pending = f.burst.size();
    if (!flush(c, f)) {
      error("send failed");
      c.st = state::failed;
      continue;
    }
    if (c.out_pending) set_events(s.ep, c, i, true);
  }
  const auto warm_end = t_start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.warmup));
  const auto end = warm_end + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.seconds));
  bool warm = o.warmup == 0;
  double srv_cpu0 = warm ? cpu_seconds_of(o.server_pid) : 0, my_cpu0 = warm ? cpu_seconds_self() : 0;
  auto window_start = warm ? t_start : warm_end;
  std::vector<epoll_event> evs(512);
  std::size_t open_conns = s.cs.size();

  // Checks one complete message; false only for a protocol error that makes
  // the connection unusable.
  auto check_message = [&](conn& c, const char* data, std::size_t len, bool compressed) {
#if GUST_LOAD_DEFLATE
    if (compressed) {
      inflater* z = &shared_inflater;
      if (!c.server_nct) {
        if (!c.inf) c.inf = std::make_unique<inflater>();
        z = c.inf.get();
      }
      if (!z->run(data, len, inflated, o.size, c.server_nct)) {
        error("an echo did not inflate to the size sent");
        if (!c.server_nct) c.inf.reset();
        return;
      }
      data = inflated.data();
      len = inflated.size();
    }
#else
    if (compressed) {
      error("a compressed echo without deflate agreed");
      return;
    }
#endif
    if (len != o.size || std::memcmp(data, payload.data(), len) != 0) error("an echo differs from the message sent");
  };

  for (;;) {
    const auto now_tp = clk::now();
    if (!warm && now_tp >= warm_end) {
      warm = true;
      srv_cpu0 = cpu_seconds_of(o.server_pid);
      my_cpu0 = cpu_seconds_self();
      in_window = 0;
    }
    if (now_tp >= end || open_conns == 0) break;
    const int n = epoll_wait(s.ep, evs.data(), int(evs.size()), 50);
    for (int k = 0; k < n; ++k) {
      const std::uint32_t idx = evs[k].data.u32;
      conn& c = s.cs[idx];
      if (c.st != state::open) continue;
      auto drop = [&](const char* why) {
        error(why);
        c.st = state::failed;
        epoll_ctl(s.ep, EPOLL_CTL_DEL, c.fd, nullptr);
        --open_conns;
      };
      if ((evs[k].events & EPOLLOUT) && !flush(c, f)) {
        drop("send failed");
        continue;
      }
      if (!(evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
        if (c.want_out && c.out_pending == 0) set_events(s.ep, c, idx, false);
        continue;
      }
      const bool alive = fill(c, recv_want);
      const std::uint64_t t = now_ns();
      std::size_t got = 0;
      bool broken = false;
      while (!broken) {
        const std::size_t avail = c.wr - c.rd;
        if (avail < 2) break;
        const auto* p = reinterpret_cast<const unsigned char*>(c.in.data() + c.rd);
        std::size_t hs = 2;
        std::uint64_t len = p[1] & 0x7f;
        if (len == 126) hs = 4;
        if (len == 127) hs = 10;
        if (avail < hs) break;
        if (hs == 4) len = (std::uint64_t(p[2]) << 8) | p[3];
        if (hs == 10) {
          len = 0;
          for (int j = 0; j < 8; ++j) len = (len << 8) | p[2 + j];
        }
        if (avail - hs < len) break;
        const bool fin = p[0] & 0x80, rsv1 = p[0] & 0x40;
        const unsigned op = p[0] & 0x0f;
        const char* body = c.in.data() + c.rd + hs;
        c.rd += hs + static_cast<std::size_t>(len);
        if (p[1] & 0x80) {
          drop("a masked frame from the server");
          broken = true;
          break;
        }
        if (op == 8) {
          drop("the server closed a connection");
          broken = true;
          break;
        }
        if (op >= 8) continue;  // ping or pong: no answer needed for a test this short
        bool complete = false;
        const char* msg = body;
        std::size_t msg_len = static_cast<std::size_t>(len);
        bool compressed = rsv1;
        if (op == 0 || !fin) {
          // A fragmented echo (allowed; none of the servers here does it
          // for these sizes, but it must not read as an error).
          if (op != 0) {
            c.fragments.clear();
            c.fragmenting = true;
            c.frag_compressed = rsv1;
            if (op != want_op) error("an echo of the wrong type");
          } else if (!c.fragmenting) {
            drop("a continuation without a start");
            broken = true;
            break;
          }
          c.fragments.append(body, msg_len);
          if (fin) {
            complete = true;
            c.fragmenting = false;
            msg = c.fragments.data();
            msg_len = c.fragments.size();
            compressed = c.frag_compressed;
          }
        } else {
          complete = true;
          if (op != want_op) error("an echo of the wrong type");
        }
        if (!complete) continue;
        check_message(c, msg, msg_len, compressed);
        ++got;
        if (c.sent_count == 0) {
          drop("more echoes than messages sent");
          broken = true;
          break;
        }
        if (warm) lat.add(t - c.sent_at[c.sent_head]);
        c.sent_head = (c.sent_head + 1) % c.sent_at.size();
        --c.sent_count;
      }
      if (broken) continue;
      echoed += got;
      in_window += got;
      if (got) {
        // One new message for each echo, sent from the shared burst.
        for (std::size_t j = 0; j < got; ++j) {
          c.sent_at[(c.sent_head + c.sent_count) % c.sent_at.size()] = t;
          ++c.sent_count;
        }
        c.out_pending += got * f.frame_len;
        if (!flush(c, f)) {
          drop("send failed");
          continue;
        }
      }
      if (!alive) {
        drop("the server closed a connection");
        continue;
      }
      const bool need_out = c.out_pending > 0;
      if (need_out != c.want_out) set_events(s.ep, c, idx, need_out);
    }
  }
  const double measured = std::chrono::duration<double>(clk::now() - window_start).count();
  const double srv_cpu = o.server_pid > 0 ? (cpu_seconds_of(o.server_pid) - srv_cpu0) / measured : -1;
  const double my_cpu = (cpu_seconds_self() - my_cpu0) / measured;
  const double rate = double(in_window) / measured;
  const double mbps = rate * double(o.size) / 1e6;
  if (o.json) {
    std::printf(
        "{\"mode\":\"load\",\"connections\":%d,\"inflight\":%d,\"size\":%zu,\"deflate\":%s,"
        "\"seconds\":%.3f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
        "\"p999_us\":%.1f,\"echoes_checked\":%llu,\"errors\":%llu,\"first_error\":\"%s\","
        "\"server_cpu\":%.3f,\"load_cpu\":%.3f,\"setup_s\":%.3f}\n",
        o.connections, o.inflight, o.size, o.deflate ? "true" : "false", measured, rate, mbps,
        lat.quantile_us(0.50), lat.quantile_us(0.99), lat.quantile_us(0.999),
        static_cast<unsigned long long>(echoed), static_cast<unsigned long long>(errors), first_error.c_str(),
        srv_cpu, my_cpu, s.seconds);
  } else {
    std::printf(
        "%.0f msgs/s  %.2f MB/s  p50 %.1f us  p99 %.1f us  p99.9 %.1f us  (connections %d, in flight %d, %zu B%s, "
        "%.1f s; %llu echoes checked, %llu errors%s%s; server cpu %.0f%%, generator cpu %.0f%%)\n",
        rate, mbps, lat.quantile_us(0.50), lat.quantile_us(0.99), lat.quantile_us(0.999), o.connections, o.inflight,
        o.size, o.deflate ? " deflate" : "", measured, static_cast<unsigned long long>(echoed),
        static_cast<unsigned long long>(errors), first_error.empty() ? "" : ": ", first_error.c_str(),
        srv_cpu * 100, my_cpu * 100);
  }
  for (auto& c : s.cs)
    if (c.fd >= 0) ::close(c.fd);
  return errors == 0 && echoed > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  // 10,000 idle connections need 10,000 descriptors.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  return o.idle ? run_idle(o) : run_load(o);
}
