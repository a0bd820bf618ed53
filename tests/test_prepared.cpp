// prepared_message and connection::send_prepared: a broadcast prepared once
// (gust/prepared_message.hpp). What it saves is checked by where the bytes
// come from (the queue references the prepared buffers); what it must not
// change is checked by a real peer engine reading every message.
#include <doctest.h>

#include <string>

#include "gust/prepared_message.hpp"
#include "support/wire.hpp"

using namespace gust;
using namespace gust::test;

namespace {

gust::settings with_deflate(bool server_no_context, int server_window = 15) {
  gust::settings s;
  s.deflate.enabled = true;
  s.deflate.min_size = 0;
  s.deflate.server_no_context_takeover = server_no_context;
  s.deflate.server_max_window_bits = server_window;
  s.timeouts.ping_interval = {};
  return s;
}

/// True when one of the server's pending output buffers is exactly `b`
/// (the same bytes at the same address: referenced, not copied).
bool queue_references(connection& c, std::span<const std::byte> b) {
  for (const auto& buf : c.pending_output())
    if (buf.data == b.data() && buf.size == b.size()) return true;
  return false;
}

}  // namespace

TEST_SUITE("prepared messages") {
  TEST_CASE("text that is not UTF-8 is refused once, at preparation, and by send_prepared") {
    const std::string bad = "\xce\xba\xff";
    prepared_message m(message_type::text, bytes(bad));
    CHECK(m.error() == errc::invalid_utf8);
    engine_pair p;
    p.pump();
    CHECK(p.server.send_prepared(m) == errc::invalid_utf8);
    CHECK(p.server.buffered_amount() == 0);
  }

  TEST_CASE("without an owner the payload is copied once; with one it is referenced") {
    std::string text = "hello everyone";
    prepared_message copied(message_type::text, bytes(text));
    CHECK(copied.payload().data() != reinterpret_cast<const std::byte*>(text.data()));
    auto owner = std::make_shared<std::string>(text);
    prepared_message shared(message_type::text, bytes(*owner), owner);
    CHECK(shared.payload().data() == reinterpret_cast<const std::byte*>(owner->data()));
    CHECK(!shared.error());
    CHECK(shared.compressed().empty());
  }

  TEST_CASE("one prepared message to many servers' queues: the same buffer, every client reads it") {
    const std::string text = repetitive(2000);
    prepared_message m(message_type::text, bytes(text));
    std::vector<std::unique_ptr<engine_pair>> pairs;
    for (int i = 0; i < 5; ++i) {
      pairs.push_back(std::make_unique<engine_pair>());
      pairs.back()->pump();
      REQUIRE(pairs.back()->server.state() == state::open);
      pairs.back()->client_events.clear();
    }
    for (auto& p : pairs) {
      REQUIRE(!p->server.send_prepared(m));
      CHECK(queue_references(p->server, m.payload()));
    }
    for (auto& p : pairs) {
      p->pump();
      REQUIRE(p->client_events.size() == 1);
      CHECK(p->client_events[0] == "text:" + text);
    }
  }

  TEST_CASE("compressed once: servers without context takeover share the compressed bytes") {
    const std::string text = repetitive(4000);
    const auto ss = with_deflate(true);
    prepared_message m(message_type::text, bytes(text), nullptr, &ss.deflate);
    REQUIRE(!m.error());
    REQUIRE(!m.compressed().empty());
    CHECK(m.compressed().size() < text.size() / 4);
    for (int i = 0; i < 3; ++i) {
      engine_pair p(with_deflate(false), ss);
      p.pump();
      REQUIRE(p.server.compression_enabled());
      p.client_events.clear();
      REQUIRE(!p.server.send_prepared(m));
      CHECK(queue_references(p.server, m.compressed()));
      // Twice in a row, and between them a message of the connection's own:
      // the shared bytes leave no context behind that the peer would need.
      REQUIRE(!p.server.send_text("own message, compressed by the connection"));
      REQUIRE(!p.server.send_prepared(m));
      p.pump();
      REQUIRE(p.client_events.size() == 3);
      CHECK(p.client_events[0] == "text:" + text);
      CHECK(p.client_events[1] == "text:own message, compressed by the connection");
      CHECK(p.client_events[2] == "text:" + text);
    }
  }

  TEST_CASE("a server keeping its context compresses the prepared payload itself") {
    const std::string text = repetitive(4000);
    const auto shared_opts = with_deflate(true);
    prepared_message m(message_type::text, bytes(text), nullptr, &shared_opts.deflate);
    engine_pair p(with_deflate(false), with_deflate(false));
    p.pump();
    REQUIRE(p.server.compression_enabled());
    p.client_events.clear();
    REQUIRE(!p.server.send_text(text));  // builds a context the next one uses
    REQUIRE(!p.server.send_prepared(m));
    CHECK(!queue_references(p.server, m.compressed()));
    p.pump();
    REQUIRE(p.client_events.size() == 2);
    CHECK(p.client_events[1] == "text:" + text);
  }

  TEST_CASE("a window larger than the peer allows is not shared; the connection compresses") {
    const std::string text = repetitive(4000);
    const auto big_window = with_deflate(true, 15);
    prepared_message m(message_type::binary, bytes(text), nullptr, &big_window.deflate);
    // The client asks for a server window of 10.
    gust::settings cs = with_deflate(false);
    cs.deflate.server_max_window_bits = 10;
    engine_pair p(cs, with_deflate(true, 15));
    p.pump();
    REQUIRE(p.server.compression_enabled());
    p.client_events.clear();
    REQUIRE(!p.server.send_prepared(m));
    CHECK(!queue_references(p.server, m.compressed()));
    p.pump();
    REQUIRE(p.client_events.size() == 1);
    CHECK(p.client_events[0] == "binary:" + hex(text));
  }

  TEST_CASE("a client masks: the prepared payload is copied, and the server reads it") {
    const std::string text = "from a client, prepared";
    prepared_message m(message_type::text, bytes(text));
    engine_pair p;
    p.pump();
    p.server_events.clear();
    REQUIRE(!p.client.send_prepared(m));
    CHECK(!queue_references(p.client, m.payload()));
    p.pump();
    REQUIRE(p.server_events.size() == 1);
    CHECK(p.server_events[0] == "text:" + text);
  }

  TEST_CASE("send_prepared obeys the state, the output limit and a message in progress") {
    prepared_message m(message_type::binary, bytes("x"));
    {
      gust::settings ss;
      ss.limits.max_buffered_output = 16;
      engine_pair p({}, ss);
      p.pump();
      REQUIRE(!p.server.send_binary(bytes(std::string(64, 'a'))));
      CHECK(p.server.send_prepared(m) == errc::output_limit_reached);
    }
    {
      engine_pair p;
      p.pump();
      REQUIRE(!p.server.send_fragment(message_type::binary, bytes("a"), false));
      CHECK(p.server.send_prepared(m) == errc::message_in_progress);
    }
    {
      virtual_clock clk;
      server_connection srv(clk.now);
      CHECK(srv.send_prepared(m) == errc::invalid_state);
    }
  }
}
