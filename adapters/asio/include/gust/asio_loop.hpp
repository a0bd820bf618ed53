// gust/asio_loop.hpp: the facade (gust/net.hpp) on your own Asio executor.
//
//   asio::io_context ioc;
//   gust::event_loop loop(gust::adapter::asio);
//   if (auto ec = gust::asio::attach(loop, ioc.get_executor())) return fail(ec);
//   gust::server srv(loop, std::move(cfg));   // cfg.adapter = gust::adapter::asio
//   (void)srv.listen();
//   ioc.run();                                 // or several threads running it
//
// After attach() the loop is driven by Asio completions on a strand of `ex`
// (so an io_context run by several threads, or a thread pool, is safe): do
// not call loop.run(). ioc.run() returns once the loop has nothing left
// (no listener, connection or timer), e.g. after srv.shutdown().
//
// Threads: the servers', clients' and websockets' per-connection calls
// belong to the strand: make them from handlers, or post them with
// loop.post(fn) (thread-safe). Thread-safe from anywhere, as for every
// adapter: loop.post()/stop(), server shutdown()/stats()/broadcast(),
// client stats(). Create the server or client and call listen()/connect()
// before the executor runs, or from a task posted with loop.post(). Destroy
// them and the loop once the executor has stopped running the loop's work
// (or from loop.post()).
#pragma once

#include <asio/any_io_executor.hpp>
#include <system_error>

#include "gust/net.hpp"

namespace gust::asio {

/// Moves `loop` (made with gust::adapter::asio, with nothing attached to it
/// yet) onto `ex`. errc::invalid_argument for another adapter,
/// errc::invalid_state once it holds a listener or connection.
std::error_code attach(gust::event_loop& loop, ::asio::any_io_executor ex);

}  // namespace gust::asio
