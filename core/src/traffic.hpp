// A connection's traffic state: what it needs only while bytes are in
// flight (input being parsed, a message being received, output queued or a
// fragmented message being sent). An idle open connection needs none of it,
// so with an output_pool the connection borrows one from the pool when
// traffic starts and gives it back once idle (see traffic::idle()): memory
// then follows the connections with traffic in flight, not every
// connection. Without a pool a connection makes one and keeps it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "frame.hpp"
#include "message_buffer.hpp"
#include "output_queue.hpp"
#include "utf8.hpp"

namespace gust::detail {

struct traffic {
  // ---- input (the receive fast path reads these first) -------------------
  std::size_t ipos = 0, iend = 0;
  std::byte* borrowed = nullptr;  // caller's bytes, when our buffer is empty
  std::size_t bpos = 0, bend = 0;
  std::unique_ptr<std::byte[]> ibuf;
  std::size_t icap = 0;

  // ---- frame and message being received ----------------------------------
  bool in_header = true;
  bool zero_copy = false;       // whole message in one frame, left in place
  bool in_message = false;
  bool msg_compressed = false;  // RSV1 on its first frame (RFC 7692 6)
  message_type msg_type = message_type::binary;
  bool region_owned = true;     // the last region() was our buffer
  bool stalled = false;         // set by need_input(): stop the read loop
  frame_header fh{};
  std::uint64_t fpos = 0;       // payload bytes of fh processed
  std::uint64_t msg_size = 0;   // announced so far, checked against the limit
  std::size_t msg_frags = 0;
  utf8_validator utf8;
  message_buffer msg_buf;
  std::uint64_t msg_inflated = 0;  // output so far, against max_message_size

  // What close_may_follow() has read of the current input buffer: frames up
  // to scanned_to (an offset in scanned_base) are harmless. Any change to
  // the buffers resets it.
  const std::byte* scanned_base = nullptr;
  std::size_t scanned_to = 0;
  bool scanned_hit = false;
  bool scanned_in_msg = false;

  // ---- sending -----------------------------------------------------------
  bool out_in_message = false;
  bool out_compressed = false;  // the fragmented message being sent is
  message_type out_type = message_type::binary;
  utf8_validator out_utf8;
  message_buffer own_scratch;  // a compressed message on its way out
  output_queue out;

  /// Nothing retained or half done: no input bytes, between frames and
  /// messages both ways, no output queued. Such a state can be lent to any
  /// connection of the pool as it is.
  bool idle() const noexcept {
    return ipos == iend && !borrowed && in_header && !in_message && !out_in_message && out.empty();
  }
  /// Storage held, this struct included.
  std::size_t memory() const noexcept {
    return sizeof(traffic) + icap + msg_buf.capacity() + own_scratch.capacity() + out.memory();
  }
};

}  // namespace gust::detail
