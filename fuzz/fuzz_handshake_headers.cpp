// Fuzz target: the handshake's header-value parsing on both sides, without
// the HTTP parser in front (so any byte can reach it): token lists in
// Upgrade and Connection, Sec-WebSocket-Protocol offers and the selection,
// Sec-WebSocket-Extensions names, keys, versions, origins, body fields.
//
// Input layout:
//   byte 0    flags
//             0x01 server speaks "chat" and "superchat" (else "superchat")
//             0x02 allowed_origins = {"https://example.com"}
//             0x04 allow_missing_origin = false
//             0x08 the client offered subprotocols "chat" and "superchat"
//             0x10 it offered "permessage-deflate; client_max_window_bits"
//             0x20 it offered "x-webkit-deflate-frame"
//             0x40 the response status is 101 (else byte 2 picks one)
//             0x80 the method is GET (else POST)
//   byte 1    canned fields present in both messages:
//             0x01 Host: example.com (request)
//             0x02 Upgrade: websocket
//             0x04 Connection: Upgrade
//             0x08 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ== (request),
//                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo= (response)
//             0x10 Sec-WebSocket-Version: 13 (request)
//   byte 2    response status when not 101: 100 + b
//   then      fields, until the input ends: a name byte (an index into
//             `names` below), a length byte, the value; added to both the
//             request and the response
//
// Oracles: validate_upgrade_request and validate_upgrade_response agree
// with references written from RFC 6455 4.1/4.2.1 and RFC 9110 5.6 (list
// elements, quoted-strings, tokens), verdict, status and error included; an
// accepted request's 101 is accepted by the client half with the
// subprotocol the server selected.
#include <string>
#include <vector>

#include "handshake_client.hpp"
#include "handshake_server.hpp"
#include "http1.hpp"
#include "ref_http.hpp"
#include "support.hpp"

using namespace gust;
using namespace gust::fuzz;

namespace {

constexpr std::string_view key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

constexpr std::string_view names[] = {
    "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "Upgrade", "Connection",
    "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Origin", "Host",
    "Content-Length", "Transfer-Encoding", "Sec-WebSocket-Accept", "sec-websocket-protocol",
    "UPGRADE", "X-Other",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in(data, size);
  const std::uint8_t flags = in.u8();
  const std::uint8_t canned = in.u8();
  const std::uint8_t status = in.u8();

  http::request req;
  req.method = (flags & 0x80) ? "GET" : "POST";
  req.target = "/chat";
  http::response resp;
  resp.status = (flags & 0x40) ? 101 : 100 + status;
  if (canned & 0x01) req.headers.add("Host", "example.com");
  if (canned & 0x02) {
    req.headers.add("Upgrade", "websocket");
    resp.headers.add("Upgrade", "websocket");
  }
  if (canned & 0x04) {
    req.headers.add("Connection", "Upgrade");
    resp.headers.add("Connection", "Upgrade");
  }
  if (canned & 0x08) {
    req.headers.add("Sec-WebSocket-Key", key);
    resp.headers.add("Sec-WebSocket-Accept", accept);
  }
  if (canned & 0x10) req.headers.add("Sec-WebSocket-Version", "13");
  while (!in.empty()) {
    const auto name = names[in.u8() % std::size(names)];
    const auto value = in.take8();
    req.headers.add(name, value);
    resp.headers.add(name, value);
  }

  // ---- the server's checks -------------------------------------------------
  server_options so;
  so.subprotocols = (flags & 0x01) ? std::vector<std::string>{"chat", "superchat"} : std::vector<std::string>{"superchat"};
  if (flags & 0x02) so.allowed_origins = {"https://example.com"};
  if (flags & 0x04) so.allow_missing_origin = false;
  detail::upgrade_request up;
  const auto rejection = detail::validate_upgrade_request(req, so, up);
  std::vector<std::string_view> ref_offers;
  const auto ref_status = ref::validate_request(req, so, ref_offers);
  FUZZ_CHECK_MSG(rejection.has_value() == ref_status.has_value(),
                 rejection ? "engine refuses (" + rejection->reason + "), reference accepts"
                           : "engine accepts, reference refuses with " + std::to_string(*ref_status));
  if (rejection) {
    FUZZ_CHECK_MSG(rejection->status == *ref_status, rejection->reason + ": " + std::to_string(rejection->status) +
                                                         ", reference " + std::to_string(*ref_status));
  } else {
    FUZZ_CHECK(up.subprotocols == ref_offers);
    // The key the request carries: the canned one, or one the input wrote
    // (the reference has checked there is exactly one, well formed).
    FUZZ_CHECK(up.key == *ref::first(req.headers, "Sec-WebSocket-Key"));
    const auto chosen = detail::select_subprotocol(req, up.subprotocols, so);
    std::optional<std::string> expect;
    for (const auto& mine : so.subprotocols) {
      for (auto o : ref_offers)
        if (!expect && o == mine) expect = mine;
    }
    FUZZ_CHECK_MSG(chosen == expect, "selected " + chosen.value_or("(none)") + ", expected " + expect.value_or("(none)"));
    // The 101 it leads to, read by the client that made those offers.
    client_options co;
    for (auto o : up.subprotocols) co.subprotocols.emplace_back(o);
    const std::string wire =
        detail::write_switching_protocols(detail::accept_value(up.key), chosen.value_or(""), {}, {}, "gust");
    const gust::limits lim;  // the parser keeps a pointer to it
    detail::response_parser rp(lim);
    FUZZ_CHECK(rp.feed(as_bytes(wire)) == wire.size() && rp.status() == detail::parse_status::done);
    detail::upgrade_response got;
    const auto failure = detail::validate_upgrade_response(rp.response(), up.key, co, got);
    FUZZ_CHECK_MSG(!failure, "the client refuses our 101: " + (failure ? failure->detail : std::string()));
    FUZZ_CHECK(got.subprotocol == chosen.value_or(""));
  }

  // ---- the client's checks -------------------------------------------------
  client_options co;
  if (flags & 0x08) co.subprotocols = {"chat", "superchat"};
  if (flags & 0x10) co.extensions.push_back("permessage-deflate; client_max_window_bits");
  if (flags & 0x20) co.extensions.push_back("x-webkit-deflate-frame");
  detail::upgrade_response got;
  const auto failure = detail::validate_upgrade_response(resp, key, co, got);
  std::string ref_sub;
  const auto ref_error = ref::validate_response(resp, accept, co, ref_sub);
  FUZZ_CHECK_MSG(failure.has_value() == ref_error.has_value(),
                 failure ? "engine refuses (" + failure->detail + "), reference accepts"
                         : "engine accepts, reference refuses: " + std::string(to_string(*ref_error)));
  if (failure) {
    FUZZ_CHECK_MSG(failure->error == *ref_error,
                   std::string(to_string(failure->error)) + " vs reference " + std::string(to_string(*ref_error)));
  } else {
    FUZZ_CHECK(got.subprotocol == ref_sub);
  }
  return 0;
}
