// gust/time.hpp: the only notion of time the core has.
//
// The core never reads a clock. Every call whose behaviour depends on time
// takes `now`; the connection says when it next needs attention through
// next_deadline(), and the caller calls on_timeout(now) once that passes
// (ngtcp2's model). Tests drive it with a virtual clock.
#pragma once

#include <chrono>

namespace gust {

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;
using duration = clock::duration;

}  // namespace gust
