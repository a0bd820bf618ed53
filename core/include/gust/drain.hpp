// gust/drain.hpp: callbacks for those who prefer them to pulling events.
//
//   gust::drain(conn, now, overloaded{
//       [&](const gust::message_event& m) { ... },
//       [&](const auto&) {}});
//
// Calls `visitor` with each event available now, in order, and returns how
// many there were. The visitor may call anything on the connection (it only
// queues output); the event's views expire when it does, as with
// next_event().
#pragma once

#include <cstddef>
#include <utility>
#include <variant>

#include "gust/connection.hpp"

namespace gust {

template <class Visitor>
std::size_t drain(connection& conn, time_point now, Visitor&& visitor) {
  std::size_t n = 0;
  while (auto ev = conn.next_event(now)) {
    std::visit(visitor, *ev);
    ++n;
  }
  return n;
}

}  // namespace gust
