// gust/error.hpp: the local-misuse error channel.
//
// A misbehaving *peer* never produces one of these: it produces a close
// (1002, 1007, 1009, ...) and a close_event. These codes are for calls the
// application made at the wrong time or with the wrong arguments. They are
// std::error_code-compatible so an Asio completion handler can take them as
// they are.
#pragma once

#include <string>
#include <system_error>

namespace gust {

enum class errc {
  ok = 0,
  invalid_state,            ///< the call is not allowed in the connection's current state
  wrong_role,               ///< a server-only call on a client, or the reverse
  no_pending_request,       ///< accept/reject/respond without a request_event to answer
  control_frame_too_large,  ///< ping/pong/close payload above 125 bytes
  invalid_close_code,       ///< close code that may not be sent (1005, 1006, 1015, < 1000, ...)
  invalid_utf8,             ///< text message or close reason that is not UTF-8
  message_in_progress,      ///< a whole message was sent while a fragmented send is unfinished
  no_message_in_progress,   ///< a continuation fragment without a first fragment
  fragment_type_mismatch,   ///< continuation fragment with a different message type
  output_limit_reached,     ///< a data send while buffered_amount() >= limits::max_buffered_output
  consume_past_end,         ///< consume_output(n) with n above what pending_output() offered
  invalid_argument,         ///< an argument outside its documented range
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace gust

template <>
struct std::is_error_code_enum<gust::errc> : std::true_type {};
