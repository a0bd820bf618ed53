#include "gust/error.hpp"

namespace gust {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "gust"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::ok: return "success";
      case errc::invalid_state: return "call not allowed in the connection's current state";
      case errc::wrong_role: return "call not allowed for this role";
      case errc::no_pending_request: return "no opening request to answer";
      case errc::control_frame_too_large: return "control frame payload above 125 bytes";
      case errc::invalid_close_code: return "close code may not be sent";
      case errc::invalid_utf8: return "text is not valid UTF-8";
      case errc::message_in_progress: return "a fragmented message is still being sent";
      case errc::no_message_in_progress: return "no fragmented message to continue";
      case errc::fragment_type_mismatch: return "fragment type differs from the message's";
      case errc::output_limit_reached: return "buffered output above max_buffered_output";
      case errc::consume_past_end: return "consumed more output than was pending";
      case errc::invalid_argument: return "invalid argument";
    }
    return "unknown gust error";
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace gust
