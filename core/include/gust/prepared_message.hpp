// gust/prepared_message.hpp: a message prepared once, sent to many
// connections (a broadcast).
//
// What does not depend on the connection is done once, when preparing: text
// is validated as UTF-8, and, when compression options are given, the
// payload is compressed as a message of its own (a fresh deflate stream with
// the trailing 00 00 ff ff removed, RFC 7692 7.2.1). connection::
// send_prepared() then queues it by reference (a server's queue points at
// the one buffer; a client's must mask, so it copies):
//   - compressed, where the connection negotiated permessage-deflate without
//     context takeover on its sending side (every message starts from an
//     empty window, so one compressed form suits them all) and a window at
//     least as large as the one used here;
//   - otherwise the plain payload, which a connection that keeps a
//     compression context compresses itself, as send() would.
// Framing headers differ only by length encoding and mask, so each
// connection writes its own few header bytes.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <system_error>

#include "gust/event.hpp"
#include "gust/settings.hpp"

namespace gust {

class prepared_message {
 public:
  /// `owner` keeps `payload` alive for as long as any copy of this object or
  /// any queue references it; without one, the payload is copied once here.
  /// `compress`: the deflate parameters to compress with (level, mem_level,
  /// server_max_window_bits as the window, min_size); null, or a payload
  /// shorter than min_size: no compressed form.
  prepared_message(message_type type, std::span<const std::byte> payload,
                   std::shared_ptr<const void> owner = nullptr,
                   const deflate_options* compress = nullptr);

  /// errc::invalid_utf8 for text that is not UTF-8 (send_prepared refuses
  /// such a message), or errc::invalid_state when compressing failed (out
  /// of memory; the plain form is still usable).
  std::error_code error() const noexcept;
  message_type type() const noexcept;
  std::span<const std::byte> payload() const noexcept;
  /// The compressed form; empty when there is none.
  std::span<const std::byte> compressed() const noexcept;
  /// The LZ77 window the compressed form was made with (8-15).
  int window_bits() const noexcept;

  struct state;
  /// The shared state that queues keep alive.
  const std::shared_ptr<const state>& shared() const noexcept { return s_; }

 private:
  std::shared_ptr<const state> s_;
};

}  // namespace gust
