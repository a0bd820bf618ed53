// permessage-deflate negotiation (RFC 7692 section 7.1), as pure functions
// over the Sec-WebSocket-Extensions header (RFC 6455 9.1 grammar).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gust/settings.hpp"

namespace gust::detail {

/// One element of an extension list: `name; param; param=value`.
struct extension {
  std::string name;
  struct param {
    std::string name;
    std::optional<std::string> value;  ///< unquoted; nothing for a bare param
  };
  std::vector<param> params;
};

/// Parses a whole Sec-WebSocket-Extensions value (or several fields joined
/// with ", "). Tokens, `;` parameters, `=` token or quoted-string values
/// (RFC 6455 9.1, RFC 9110 5.6), optional whitespace around separators.
/// Nothing when the header is malformed.
std::optional<std::vector<extension>> parse_extensions(std::string_view header);

/// What both ends agreed on, in RFC 7692 terms (independent of role).
struct deflate_agreement {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;  ///< the server compressor's window (8-15)
  int client_max_window_bits = 15;  ///< the client compressor's window (8-15)
};

/// Server side (7.1): picks the first permessage-deflate offer in `header`
/// that is valid and acceptable under `policy`, fills `out` and returns the
/// response's extension value ("permessage-deflate; ..."). Offers with an
/// unknown or repeated parameter or an invalid value are declined (7.1:
/// "the server MUST decline"); so are offers asking for a server window of 8,
/// which zlib cannot produce. A header that does not parse declines
/// everything. Nothing when no offer is accepted (no compression).
/// Policy: `policy.server_no_context_takeover` is always answered;
/// `policy.client_no_context_takeover` is required (answered) always;
/// `policy.server_max_window_bits` caps our window (answered when below 15 or
/// when the client asked for a value); `policy.client_max_window_bits` below
/// 15 needs the client to have offered client_max_window_bits (else the
/// offer is declined) and is answered with min(its value, policy).
std::optional<std::string> negotiate_deflate(std::string_view header,
                                             const deflate_options& policy,
                                             deflate_agreement& out);

/// Client side: the offer to send for `opts` ("permessage-deflate;
/// client_max_window_bits" by default; parameters for every setting that
/// differs from the default: server_no_context_takeover,
/// client_no_context_takeover, server_max_window_bits=N when below 15,
/// client_max_window_bits=N when below 15 else bare client_max_window_bits).
std::string deflate_offer(const deflate_options& opts);

/// Client side (7.1): validates the server's response element for
/// permessage-deflate against the offer made from `opts`. Fails (returns
/// the reason) on an unknown or repeated parameter, a value out of 8-15 or
/// not a number, a value on server_no_context_takeover /
/// client_no_context_takeover, server_max_window_bits above the offered one,
/// client_max_window_bits when not offered or above the offered value, and
/// client_max_window_bits=8 (zlib cannot compress with a 256-byte window).
/// On success fills `out` and returns nothing.
std::optional<std::string> accept_deflate_response(const extension& response,
                                                   const deflate_options& opts,
                                                   deflate_agreement& out);

}  // namespace gust::detail
