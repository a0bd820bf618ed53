// A message prepared once for many connections: validated and, if asked,
// compressed here; connection::send_prepared() (connection.cpp) picks the
// form each connection can take.
#include "gust/prepared_message.hpp"

#include <vector>

#include "deflate/codec.hpp"
#include "gust/error.hpp"
#include "utf8.hpp"

namespace gust {

struct prepared_message::state {
  message_type type = message_type::binary;
  std::span<const std::byte> payload;
  std::shared_ptr<const void> owner;
  std::vector<std::byte> copy;        // the payload, when no owner was given
  detail::message_buffer compressed;  // empty: no compressed form
  int window_bits = 15;
  std::error_code error;
};

prepared_message::prepared_message(message_type type, std::span<const std::byte> payload,
                                   std::shared_ptr<const void> owner,
                                   const deflate_options* compress) {
  auto s = std::make_shared<state>();
  s->type = type;
  if (owner) {
    s->owner = std::move(owner);
    s->payload = payload;
  } else {
    s->copy.assign(payload.begin(), payload.end());
    s->payload = s->copy;
  }
  if (type == message_type::text && !detail::is_valid_utf8(payload.data(), payload.size()))
    s->error = errc::invalid_utf8;
  if (!s->error && compress && detail::deflate_available() && payload.size() >= compress->min_size) {
    s->window_bits = compress->server_max_window_bits;
    detail::deflater z(s->window_bits, compress->level, compress->mem_level);
    if (z.compress(s->payload, true, s->compressed, nullptr)) {
      // As connection::send(): an empty result still ends on a block
      // boundary for the peer's appended trailer (RFC 7692 7.2.3.6).
      if (s->compressed.empty()) s->compressed.push_back(std::byte{0}, nullptr);
      s->compressed.shrink_to_fit();
    } else {
      s->compressed.clear();
      s->error = errc::invalid_state;
    }
  }
  s_ = std::move(s);
}

std::error_code prepared_message::error() const noexcept { return s_->error; }
message_type prepared_message::type() const noexcept { return s_->type; }
std::span<const std::byte> prepared_message::payload() const noexcept { return s_->payload; }
std::span<const std::byte> prepared_message::compressed() const noexcept { return s_->compressed; }
int prepared_message::window_bits() const noexcept { return s_->window_bits; }

}  // namespace gust
