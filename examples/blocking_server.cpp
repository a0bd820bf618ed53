// Embedding the engine in your own loop: a blocking echo server, one client
// at a time, plain POSIX sockets. (Timers left out: see next_deadline().)
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdlib>
#include <variant>

#include "gust/connection.hpp"

int main(int argc, char** argv) {
  int port = argc > 1 ? std::atoi(argv[1]) : 9001;
  int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{AF_INET, htons(static_cast<uint16_t>(port)), {htonl(INADDR_LOOPBACK)}, {}};
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) || listen(lfd, 16)) return 1;
  for (int fd; (fd = accept(lfd, nullptr, nullptr)) >= 0; close(fd)) {
    gust::server_connection ws(gust::clock::now());
    while (!ws.transport_should_close()) {
      auto buf = ws.prepare();                                    // 1. read
      ssize_t n = read(fd, buf.data(), buf.size());
      n > 0 ? ws.commit(size_t(n), gust::clock::now()) : ws.receive_eof(gust::clock::now());
      while (auto ev = ws.next_event(gust::clock::now())) {        // 2. events
        if (std::holds_alternative<gust::request_event>(*ev)) (void)ws.accept(gust::clock::now());
        if (auto* m = std::get_if<gust::message_event>(&*ev)) (void)ws.send(m->type, m->data);
      }
      while (ws.buffered_amount()) {                               // 3. write
        auto out = ws.pending_output();
        ssize_t w = writev(fd, reinterpret_cast<const iovec*>(out.data()), int(out.size()));
        if (w <= 0 || ws.consume_output(size_t(w))) break;
      }
      if (n <= 0) break;                                          // 4. close
    }
  }
}
