// The io_uring adapter's own hazards, beyond the behaviour suite every
// adapter runs (test_adapters.cpp): completions that arrive after the
// connection they belong to has gone, sends still in flight at close and at
// shutdown, the provided buffer ring running dry, short writes, zero-copy
// notifications, 10,000 connections closing at once, and a kernel or sandbox
// that refuses io_uring. Counters from the adapter (uring_counters.hpp) show
// that each hazard really happened in the run, not only that nothing broke.
//
// The whole executable reports skipped (77) with the reason when io_uring
// cannot be used here.
#define DOCTEST_CONFIG_IMPLEMENT
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <dirent.h>

#include <cstdio>
#include <cstdlib>

#include "harness.hpp"
#include "uring_counters.hpp"
#include "uring_setup.hpp"

using namespace gust;
using namespace gust::test;

namespace {

constexpr auto uring = gust::adapter::io_uring;

detail::uring_counters& counters() { return detail::uring_debug_counters(); }
std::uint64_t get(const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); }

/// Makes io_uring_setup fail with `err` in this process from now on.
bool refuse_io_uring(int err) {
  sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<unsigned>(err) & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof f / sizeof f[0]), f};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

/// Reads `fd` to EOF within `bound`.
std::string read_all(int fd, duration bound) {
  std::string out;
  const auto end = clock::now() + bound;
  char buf[4096];
  while (clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

/// waitpid with a bound; kills the child past it. Returns the wait status.
int wait_child(pid_t pid, duration bound) {
  const auto end = clock::now() + bound;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (clock::now() >= end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(5ms);
  }
  return status;
}

/// An abortive close: the peer's kernel answers with RST.
void reset(raw_peer& p) {
  linger l{1, 0};
  ::setsockopt(p.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::shutdown(p.fd(), SHUT_RDWR);
}

/// Reads one whole message (the server fragments large ones): opcode, payload.
std::optional<std::pair<int, std::string>> read_message(raw_peer& p, duration bound) {
  auto first = p.read_frame(bound);
  if (!first) return std::nullopt;
  std::pair<int, std::string> m{first->opcode, std::move(first->payload)};
  bool fin = first->fin;
  while (!fin) {
    auto f = p.read_frame(bound);
    if (!f || f->opcode != 0) return std::nullopt;
    m.second += f->payload;
    fin = f->fin;
  }
  return m;
}

/// Descriptors open in this process.
int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

struct close_log {
  std::atomic<int> closes{0};
  std::atomic<int> opens{0};
};

}  // namespace

TEST_SUITE("io_uring: availability") {
  TEST_CASE("io_uring refused by the kernel (EPERM, ENOSYS): a clear error, and gust serve exits non-zero") {
    for (int err : {EPERM, ENOSYS}) {
      CAPTURE(err);
      int pipefd[2];
      REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
      const pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        ::close(pipefd[0]);
        if (!refuse_io_uring(err)) ::_exit(20);
        std::string why;
        const std::error_code ec = gust::adapter_usable(uring, &why);
        int rc = ec.value() == err ? 0 : 21;
        try {
          gust::event_loop loop(uring);
          rc = 22;  // created anyway
        } catch (const std::system_error& e) {
          if (e.code().value() != err) rc = 23;
          why += "\n";
          why += e.what();
        }
        (void)!::write(pipefd[1], why.data(), why.size());
        ::_exit(rc);
      }
      ::close(pipefd[1]);
      const std::string why = read_all(pipefd[0], 10s);
      ::close(pipefd[0]);
      const int status = wait_child(pid, 10s);
      REQUIRE(WIFEXITED(status));
      CHECK(WEXITSTATUS(status) == 0);
      CHECK(why.find("io_uring_setup") != std::string::npos);
      CHECK(why.find(err == EPERM ? "disabled" : "no io_uring") != std::string::npos);
      // epoll is unaffected in the same process.
    }
  }

  TEST_CASE("gust serve --adapter io_uring where io_uring is refused: non-zero exit naming the reason") {
    const char* exe = std::getenv("GUST_EXE");
    REQUIRE_MESSAGE(exe, "GUST_EXE must name the gust binary (meson sets it)");
    int pipefd[2];
    REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::dup2(pipefd[1], 2);
      ::dup2(pipefd[1], 1);
      if (!refuse_io_uring(EPERM)) ::_exit(20);
      ::execl(exe, "gust", "serve", "--adapter", "io_uring", "--port", "0", "--echo", nullptr);
      ::_exit(21);
    }
    ::close(pipefd[1]);
    const std::string out = read_all(pipefd[0], 10s);
    ::close(pipefd[0]);
    const int status = wait_child(pid, 10s);
    CAPTURE(out);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) != 0);
    CHECK(WEXITSTATUS(status) < 20);
    CHECK(out.find("io_uring") != std::string::npos);
    CHECK(out.find("not permitted") != std::string::npos);
    CHECK(out.find("listening") == std::string::npos);
  }
}

TEST_SUITE("io_uring: sends in flight") {
  TEST_CASE("a peer that disconnects while a send is in flight") {
    const auto before_retired = get(counters().retired_sends);
    const auto before_errors = get(counters().send_errors);
    auto cfg = echo_config(uring);
    cfg.backpressure.hard_limit = 256 << 20;
    cfg.backpressure.high_watermark = 128 << 20;
    cfg.settings.timeouts.close_timeout = 500ms;  // the last peer never reads
    auto log = std::make_shared<close_log>();
    const std::string big = pattern(4 << 20, false);
    cfg.handlers.on_open = [log, &big](websocket& ws) {
      ++log->opens;
      for (int i = 0; i < 4; ++i) (void)ws.send_binary(bytes(big));  // far more than the socket holds
    };
    cfg.handlers.on_close = [log](websocket&, const close_event&) { ++log->closes; };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    constexpr int n = 20;
    const auto t0 = clock::now();
    for (int i = 0; i < n; ++i) {
      raw_peer p(st.port());
      p.shrink_receive_buffer(4096);
      REQUIRE(p.upgrade().rfind("HTTP/1.1 101", 0) == 0);
      CHECK(!p.read_some(2s).empty());  // the server is sending
      if (i % 2) reset(p);              // RST; otherwise a plain close with data unread
    }
    const auto t1 = clock::now();
    CHECK(wait_until([&] { return log->closes.load() == n; }, 20s));
    CHECK(wait_until([&] { return st.srv().stats().connections_open == 0; }, 10s));
    MESSAGE("peers: " << std::chrono::duration<double>(t1 - t0).count()
                      << " s, closes: " << std::chrono::duration<double>(clock::now() - t1).count() << " s");
    // The sends were in flight when the connections went.
    CHECK(get(counters().retired_sends) + get(counters().send_errors) >
          before_retired + before_errors);
    // And the server goes on.
    raw_peer p(st.port());
    REQUIRE(p.upgrade().rfind("HTTP/1.1 101", 0) == 0);
    CHECK(st.stop());
  }

  TEST_CASE("short writes, direct and zero-copy sends keep the bytes and their order") {
    // Twice: as built (large output first goes out by sendmsg(2) from the
    // core's buffers, the rest asynchronously), and with the asynchronous
    // path alone, where the socket's small buffer makes its sends short.
    for (const bool direct : {true, false}) {
      CAPTURE(direct);
      ::setenv("GUST_URING_ZC_MIN", "8192", 1);  // read when the loop is created
      if (!direct) ::setenv("GUST_URING_DIRECT_MIN", "18446744073709551615", 1);
      auto cfg = echo_config(uring);
      cfg.backpressure.hard_limit = 64 << 20;
      cfg.settings.timeouts.close_timeout = 500ms;  // the peer never answers the close
      server_thread st(std::move(cfg));
      ::unsetenv("GUST_URING_ZC_MIN");
      ::unsetenv("GUST_URING_DIRECT_MIN");
      REQUIRE(!st.listen_error);
      const auto zc0 = get(counters().zc_sends), short0 = get(counters().short_sends);
      const auto direct0 = get(counters().direct_sends);
      raw_peer p(st.port());
      p.shrink_receive_buffer(64 * 1024);  // the server's 256 KiB sends come back short
      REQUIRE(p.upgrade().rfind("HTTP/1.1 101", 0) == 0);
      std::vector<std::string> sent;
      for (int i = 0; i < 24; ++i) {
        sent.push_back(pattern(i % 3 == 0 ? 900 * 1024 + i : 20000 + i * 3, i % 2 == 0));  // < max_message_size
        REQUIRE(p.send(raw_peer::frame(i % 2 == 0 ? 0x81 : 0x82, sent.back())));
      }
      for (int i = 0; i < 24; ++i) {
        CAPTURE(i);
        auto m = read_message(p, 10s);
        REQUIRE(m);
        CHECK(m->first == (i % 2 == 0 ? 1 : 2));
        CHECK(m->second.size() == sent[i].size());
        CHECK((m->second == sent[i]));  // (not printed: megabytes)
      }
      if (direct) {
        CHECK(get(counters().direct_sends) > direct0);
        // 900 KiB echoes do not fit a 64 KiB receive buffer: their rest
        // went asynchronously, behind what the direct sends wrote.
        CHECK(get(counters().zc_sends) > zc0);
      } else {
        CHECK(get(counters().direct_sends) == direct0);
        CHECK(get(counters().zc_sends) > zc0);
        CHECK(get(counters().short_sends) > short0);
      }
      CHECK(wait_until([&] { return get(counters().zc_notifs) >= get(counters().zc_sends); }, 5s));
      CHECK(st.stop());
    }
  }
}

TEST_SUITE("io_uring: provided buffers") {
  TEST_CASE("the buffer ring exhausted by many connections sending at once") {
    raise_fd_limit();
    const auto before = get(counters().enobufs);
    const auto grown0 = get(counters().ring_grown);
    auto cfg = echo_config(uring);
    cfg.settings.timeouts.close_timeout = 500ms;  // at stop(): the peers never answer
    auto stalled = std::make_shared<std::atomic<bool>>(false);
    auto all_sent = std::make_shared<std::atomic<bool>>(false);
    cfg.handlers.on_message = [stalled, all_sent](websocket& ws, const message_event& m) {
      // One stall until every peer has sent: their data waits in the
      // kernel, and when the loop enters it again every receive completes
      // at once, each taking buffers, more than the ring holds.
      if (!stalled->exchange(true)) (void)wait_until([&] { return all_sent->load(); }, 20s);
      (void)ws.send(m.type, m.data);
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    constexpr int n = int(detail::uring_setup::buffer_count) + 200;  // more receives than buffers
    std::vector<std::unique_ptr<raw_peer>> peers;
    for (int i = 0; i < n; ++i) {
      peers.push_back(std::make_unique<raw_peer>(st.port()));
      REQUIRE(peers.back()->upgrade().rfind("HTTP/1.1 101", 0) == 0);
    }
    std::vector<std::string> msgs(n);
    for (int i = 0; i < n; ++i) {
      msgs[i] = pattern(64 * 1024 + i, false);
      REQUIRE(peers[i]->send(raw_peer::frame(0x82, msgs[i])));
    }
    std::this_thread::sleep_for(50ms);  // (the last bytes reach the server's socket)
    all_sent->store(true);
    int good = 0;
    for (int i = 0; i < n; ++i) {
      auto m = read_message(*peers[i], 20s);
      if (m && m->second == msgs[i]) ++good;
    }
    CHECK(good == n);
    CHECK(get(counters().enobufs) > before);  // the ring did run dry
    CHECK(get(counters().ring_grown) > grown0);  // and was given more of the buffers
    CHECK(st.srv().stats().messages_in == std::uint64_t(n));
    CHECK(st.stop());
  }

  TEST_CASE("a burst of opening handshakes reads outside the buffer ring") {
    // Hundreds of requests read in one batch: through the ring, each would
    // take a 128 KiB buffer (writing a page of every one) and starve it.
    raise_fd_limit();
    const auto enobufs0 = get(counters().enobufs);
    const auto grown0 = get(counters().ring_grown);
    const auto reads0 = get(counters().handshake_reads);
    auto cfg = echo_config(uring);
    cfg.settings.timeouts.close_timeout = 500ms;
    auto stalled = std::make_shared<std::atomic<bool>>(false);
    auto all_sent = std::make_shared<std::atomic<bool>>(false);
    cfg.handlers.on_open = [stalled, all_sent](websocket&) {
      if (!stalled->exchange(true)) (void)wait_until([&] { return all_sent->load(); }, 20s);
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    constexpr int n = 400;
    const std::string request =
        "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    std::vector<std::unique_ptr<raw_peer>> peers;
    for (int i = 0; i < n; ++i) {
      peers.push_back(std::make_unique<raw_peer>(st.port()));
      REQUIRE(peers.back()->connected);
      REQUIRE(peers.back()->send(request));
      if (i == 0) REQUIRE(wait_until([&] { return stalled->load(); }, 5s));  // the loop waits from here
    }
    std::this_thread::sleep_for(50ms);  // (the last requests reach the server's sockets)
    all_sent->store(true);
    int upgraded = 0;
    for (auto& p : peers)
      if (p->read_until("\r\n\r\n", 10s).rfind("HTTP/1.1 101", 0) == 0) ++upgraded;
    CHECK(upgraded == n);
    CHECK(get(counters().handshake_reads) - reads0 >= std::uint64_t(n));
    CHECK(get(counters().enobufs) == enobufs0);
    CHECK(get(counters().ring_grown) == grown0);
    CHECK(st.stop());
  }
}

TEST_SUITE("io_uring: many connections and shutdown") {
  TEST_CASE("10,000 connections closing at once") {
    // 20,000 descriptors do not fit one process under a 20,000 limit: the
    // peers live in a child.
    raise_fd_limit();
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    // Under a lower descriptor limit, as many as fit (said in the output),
    // and never fewer than 1,000.
    const int n = static_cast<int>(std::min<rlim_t>(10000, rl.rlim_cur > 300 ? rl.rlim_cur - 300 : 0));
    if (n < 10000) MESSAGE("descriptor limit " << rl.rlim_cur << ": " << n << " connections instead of 10,000");
    REQUIRE(n >= 1000);
    auto cfg = echo_config(uring);
    cfg.backlog = 4096;
    cfg.settings.timeouts.close_timeout = 500ms;
    auto log = std::make_shared<close_log>();
    cfg.handlers.on_open = [log](websocket&) { ++log->opens; };
    cfg.handlers.on_close = [log](websocket&, const close_event& e) {
      if (e.code == 1006 && !e.clean) ++log->closes;
    };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    const std::uint16_t port = st.port();
    int go[2], ready[2];
    REQUIRE(::pipe(go) == 0);
    REQUIRE(::pipe(ready) == 0);
    static const char request[] =
        "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    std::vector<int> fds(n, -1);  // allocated before fork
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(go[1]);
      ::close(ready[0]);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      int ok = 0;
      for (int i = 0; i < n; ++i) {
        fds[i] = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || ::connect(fds[i], reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) continue;
        if (::send(fds[i], request, sizeof request - 1, MSG_NOSIGNAL) == ssize_t(sizeof request - 1)) ++ok;
      }
      // Answers read afterwards: the server answered all of them meanwhile.
      char buf[512];
      for (int i = 0; i < n; ++i)
        if (fds[i] >= 0) (void)!::recv(fds[i], buf, sizeof buf, 0);
      (void)!::write(ready[1], &ok, sizeof ok);
      char c;
      (void)!::read(go[0], &c, 1);
      for (int i = 0; i < n; ++i) {
        if (fds[i] < 0) continue;
        if (i % 2) {
          linger l{1, 0};
          ::setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        ::close(fds[i]);
      }
      (void)!::read(go[0], &c, 1);  // until the parent is done
      ::_exit(0);
    }
    ::close(go[0]);
    ::close(ready[1]);
    int ok = 0;
    pollfd pr{ready[0], POLLIN, 0};
    REQUIRE(::poll(&pr, 1, 120000) == 1);
    REQUIRE(::read(ready[0], &ok, sizeof ok) == ssize_t(sizeof ok));
    CHECK(ok == n);
    CHECK(wait_until([&] { return log->opens.load() == n; }, 30s));
    CHECK(st.srv().stats().connections_open == std::uint64_t(n));
    const auto t0 = clock::now();
    (void)!::write(go[1], "x", 1);  // all close now
    CHECK(wait_until([&] { return log->closes.load() == n; }, 30s));
    CHECK(wait_until([&] { return st.srv().stats().connections_open == 0; }, 10s));
    MESSAGE(n << " closes handled in " << std::chrono::duration<double>(clock::now() - t0).count() << " s");
    ::close(go[1]);
    CHECK(WIFEXITED(wait_child(pid, 20s)));
    ::close(ready[0]);
    // The loop still serves.
    raw_peer p(st.port());
    REQUIRE(p.upgrade().rfind("HTTP/1.1 101", 0) == 0);
    REQUIRE(p.send(raw_peer::frame(0x81, "still here")));
    auto f = p.read_frame();
    REQUIRE(f);
    CHECK(f->payload == "still here");
    CHECK(st.stop());
  }

  TEST_CASE("shutdown with operations in flight: sends blocked, receives armed, loop destroyed") {
    // Server side: peers that do not read, sends blocked in the kernel,
    // then a graceful shutdown bounded by close_timeout.
    auto cfg = echo_config(uring);
    cfg.settings.timeouts.close_timeout = 300ms;
    cfg.backpressure.hard_limit = 64 << 20;
    cfg.backpressure.high_watermark = 32 << 20;
    const std::string big = pattern(2 << 20, false);
    cfg.handlers.on_open = [&big](websocket& ws) { (void)ws.send_binary(bytes(big)); };
    server_thread st(std::move(cfg));
    REQUIRE(!st.listen_error);
    const int fds_before = open_fds();
    std::vector<std::unique_ptr<raw_peer>> peers;
    for (int i = 0; i < 100; ++i) {
      peers.push_back(std::make_unique<raw_peer>(st.port()));
      peers.back()->shrink_receive_buffer(4096);
      REQUIRE(peers.back()->upgrade().rfind("HTTP/1.1 101", 0) == 0);
    }
    CHECK(wait_until([&] { return st.srv().stats().bytes_buffered > 0 || st.srv().stats().bytes_out > 0; }));
    const auto t0 = clock::now();
    CHECK(st.stop({}, 10s));
    CHECK(clock::now() - t0 < 5s);
    // Every server socket is released (the peers' own 100 remain). The
    // peers cannot see EOF yet: megabytes are queued in front of the FIN
    // and their 4 KiB windows stall.
    CHECK(open_fds() <= fds_before + 100);

    // Client side: a loop destroyed (not run to the end) while its
    // connections have sends in flight to a server that stopped reading.
    auto cfg2 = echo_config(uring);
    cfg2.settings.timeouts.close_timeout = 300ms;  // paused: it never reads the peers' EOF
    cfg2.handlers.on_open = [](websocket& ws) { ws.pause_reading(); };
    server_thread st2(std::move(cfg2));
    REQUIRE(!st2.listen_error);
    const auto retired0 = get(counters().retired_sends);
    {
      auto loop_owner = std::make_unique<event_loop>(uring);
      event_loop& loop = *loop_owner;
      int opened = 0;
      std::vector<std::unique_ptr<client>> clients;
      // Larger than the kernel can take at once (net.ipv4.tcp_wmem's 4 MiB
      // send buffer plus the paused peer's receive window): with 4 MiB a
      // send could complete before the loop goes, and nothing was in flight.
      const std::string payload = pattern(12 << 20, false);
      for (int i = 0; i < 10; ++i) {
        client_config cc;
        cc.url = st2.url();
        cc.backpressure.hard_limit = 64 << 20;
        cc.backpressure.high_watermark = 32 << 20;
        cc.handlers.on_open = [&](websocket& ws) {
          ++opened;
          (void)ws.send_binary(bytes(payload));
        };
        clients.push_back(std::make_unique<client>(loop, std::move(cc)));
        REQUIRE(!clients.back()->connect());
      }
      REQUIRE(run_until(loop, [&] { return opened == 10; }));
      (void)run_until(loop, [] { return false; }, 200ms);  // sends go out and block
      clients.clear();  // abandons the connections: closed with sends in flight
      CHECK(get(counters().retired_sends) > retired0);
      const auto t1 = clock::now();
      loop_owner.reset();  // cancels what is in flight and waits for it
      CHECK(clock::now() - t1 < 3s);
    }
    CHECK(st2.stop({}, 10s));
  }
}

int main(int argc, char** argv) {
  std::string why;
  if (auto ec = gust::adapter_usable(gust::adapter::io_uring, &why)) {
    std::printf("SKIP: io_uring cannot be used here: %s\n", why.c_str());
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
