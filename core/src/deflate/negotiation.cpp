// permessage-deflate negotiation (RFC 7692 section 7.1) over the
// Sec-WebSocket-Extensions grammar (RFC 6455 9.1).
#include "deflate/negotiation.hpp"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "gust/http.hpp"
#include "http_syntax.hpp"

namespace gust::detail {

namespace {

constexpr std::string_view deflate_name = "permessage-deflate";

// Window sizes zlib can compress with: RFC 7692 allows 8-15, but zlib
// turns a raw 256-byte window into 512 bytes (1.2.9 and later refuse it),
// and a stream made with the larger window may reach back further than a
// peer holding 256 bytes can follow. So we never promise to compress with
// 8, and configured values are brought into 9-15.
constexpr int min_compress_bits = 9;
constexpr int max_bits = 15;

int compress_bits(int configured) noexcept {
  return std::clamp(configured, min_compress_bits, max_bits);
}

// One pass over the header, each byte looked at once: linear in its size
// whatever it holds. Calls on_element(extension&&) for every non-empty
// element whose name `keep(name)` wants (the others are checked but
// nothing of them is stored); false as soon as something is malformed.
// A pass keeping nothing allocates nothing: the callers run one first, so
// garbage costs no allocations and on_element sees only valid headers.
//
//   extension-list  = 1#extension                      (RFC 6455 9.1)
//   extension       = extension-token *( ";" extension-param )
//   extension-param = token [ "=" ( token / quoted-string ) ]
//
// with OWS around ",", ";" and "=" (the implied LWS of RFC 2616 2.1 that
// RFC 6455 writes its grammar with), and empty list elements ignored
// (RFC 9110 5.6.1.2).
class extension_parser {
 public:
  explicit extension_parser(std::string_view s) noexcept : s_(s) {}

  template <class Keep, class F>
  bool run(Keep&& keep, F&& on_element) {
    for (;;) {
      skip_ows();
      if (at_end()) return true;
      if (peek() == ',') {  // empty element
        ++i_;
        continue;
      }
      extension e;
      const auto name = token();
      if (name.empty()) return false;
      const bool store = keep(name);
      if (store) e.name.assign(name);
      skip_ows();
      while (!at_end() && peek() == ';') {
        ++i_;
        skip_ows();
        extension::param p;
        const auto param_name = token();
        if (param_name.empty()) return false;  // ";;", trailing ";", ";="
        if (store) p.name.assign(param_name);
        skip_ows();
        if (!at_end() && peek() == '=') {
          ++i_;
          skip_ows();
          std::string value;
          if (!at_end() && peek() == '"') {
            if (!quoted_string(store ? &value : nullptr)) return false;
          } else {
            const auto t = token();
            if (t.empty()) return false;
            if (store) value.assign(t);
          }
          if (store) p.value = std::move(value);
          skip_ows();
        }
        if (store) e.params.push_back(std::move(p));
      }
      if (!at_end()) {
        if (peek() != ',') return false;
        ++i_;
      }
      if (store && !on_element(std::move(e))) return false;
    }
  }

 private:
  bool at_end() const noexcept { return i_ >= s_.size(); }
  unsigned char peek() const noexcept { return static_cast<unsigned char>(s_[i_]); }

  void skip_ows() noexcept {
    while (!at_end() && is_ows(s_[i_])) ++i_;
  }

  // RFC 9110 5.6.2: token = 1*tchar; empty when none starts here.
  std::string_view token() noexcept {
    const auto start = i_;
    while (!at_end() && is_tchar(peek())) ++i_;
    return s_.substr(start, i_ - start);
  }

  // RFC 9110 5.6.4 quoted-string, starting at the opening DQUOTE; `out`
  // (when not null) gets the value unescaped. RFC 6455 9.1: "the value
  // after quoted-string unescaping MUST conform to the 'token' ABNF", so
  // every byte, escaped by a quoted-pair or not, must be a tchar (which
  // also covers qdtext and quoted-pair's own limits), and it is not empty.
  bool quoted_string(std::string* out) {
    ++i_;  // DQUOTE
    const auto start = i_;
    while (!at_end()) {
      auto c = peek();
      if (c == '"') {
        ++i_;
        return i_ - start > 1;
      }
      if (c == '\\') {  // quoted-pair
        if (i_ + 1 >= s_.size()) return false;
        c = static_cast<unsigned char>(s_[i_ + 1]);
        i_ += 2;
      } else {
        ++i_;
      }
      if (!is_tchar(c)) return false;
      if (out) out->push_back(static_cast<char>(c));
    }
    return false;  // no closing DQUOTE
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

// RFC 7692 7.1.2.1 / 7.1.2.2: a decimal integer 8-15 without leading
// zeros, so exactly "8", "9", "10" ... "15": no sign, no padding.
std::optional<int> parse_window_bits(std::string_view v) noexcept {
  if (v.size() == 1 && (v[0] == '8' || v[0] == '9')) return v[0] - '0';
  if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
    return 10 + (v[1] - '0');
  return std::nullopt;
}

// The parameters of one permessage-deflate element, checked one by one.
struct deflate_params {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  std::optional<int> server_max_window_bits;
  bool client_max_window_bits = false;  ///< present, with or without a value
  std::optional<int> client_max_window_bits_value;
};

// RFC 7692 7.1: an unknown parameter, a repeated one, or an invalid value
// makes the element unacceptable (the server declines it, the client
// fails). `response`: client_max_window_bits must carry a value (7.1.2.2).
// Nothing when valid, else the reason.
std::optional<std::string_view> read_params(const extension& e, bool response,
                                            deflate_params& out) {
  bool seen[4] = {false, false, false, false};
  for (const auto& p : e.params) {
    int index;
    if (http::iequals(p.name, "server_no_context_takeover")) {
      index = 0;
    } else if (http::iequals(p.name, "client_no_context_takeover")) {
      index = 1;
    } else if (http::iequals(p.name, "server_max_window_bits")) {
      index = 2;
    } else if (http::iequals(p.name, "client_max_window_bits")) {
      index = 3;
    } else {
      return "unknown permessage-deflate parameter";
    }
    if (seen[index]) return "repeated permessage-deflate parameter";
    seen[index] = true;
    switch (index) {
      case 0:  // 7.1.1.1: "This extension parameter has no value."
        if (p.value) return "server_no_context_takeover with a value";
        out.server_no_context_takeover = true;
        break;
      case 1:  // 7.1.1.2: no value either.
        if (p.value) return "client_no_context_takeover with a value";
        out.client_no_context_takeover = true;
        break;
      case 2: {  // 7.1.2.1: a value is required, in offers and responses.
        if (!p.value) return "server_max_window_bits without a value";
        const auto bits = parse_window_bits(*p.value);
        if (!bits) return "invalid server_max_window_bits";
        out.server_max_window_bits = bits;
        break;
      }
      default: {  // 7.1.2.2: optional in an offer, required in a response.
        out.client_max_window_bits = true;
        if (!p.value) {
          if (response) return "client_max_window_bits without a value";
          break;
        }
        const auto bits = parse_window_bits(*p.value);
        if (!bits) return "invalid client_max_window_bits";
        out.client_max_window_bits_value = bits;
        break;
      }
    }
  }
  return std::nullopt;
}

// The whole header checked, nothing stored.
bool well_formed(std::string_view header) {
  return extension_parser(header).run([](std::string_view) { return false; },
                                      [](extension&&) { return true; });
}

void append_bits(std::string& out, std::string_view name, int bits) {
  out.append("; ");
  out.append(name);
  out.push_back('=');
  if (bits >= 10) {
    out.push_back('1');
    out.push_back(static_cast<char>('0' + bits - 10));
  } else {
    out.push_back(static_cast<char>('0' + bits));
  }
}

}  // namespace

std::optional<std::vector<extension>> parse_extensions(std::string_view header) {
  if (!well_formed(header)) return std::nullopt;
  std::vector<extension> out;
  extension_parser(header).run([](std::string_view) { return true; },
                               [&](extension&& e) {
                                 out.push_back(std::move(e));
                                 return true;
                               });
  return out;
}

std::optional<std::string> negotiate_deflate(std::string_view header,
                                             const deflate_options& policy,
                                             deflate_agreement& out) {
  // A header that does not parse declines everything; of one that does,
  // only our own elements are kept.
  if (!well_formed(header)) return std::nullopt;
  std::vector<extension> offers;
  extension_parser(header).run(
      [](std::string_view name) { return http::iequals(name, deflate_name); },
      [&](extension&& e) {
        offers.push_back(std::move(e));
        return true;
      });

  const int server_cap = compress_bits(policy.server_max_window_bits);
  const int client_cap = compress_bits(policy.client_max_window_bits);
  // 7.1: offers come in the client's order of preference; the first one
  // we can accept wins, the others are declined.
  for (const auto& offer : offers) {
    deflate_params p;
    if (read_params(offer, false, p)) continue;

    deflate_agreement a;
    // 7.1.1.1: an offered server_no_context_takeover is accepted by
    // answering it; we may also answer it unasked.
    a.server_no_context_takeover = p.server_no_context_takeover || policy.server_no_context_takeover;
    // 7.1.1.2: offered, it is the client's promise even if not answered;
    // we answer it then too, so the response states the whole agreement.
    a.client_no_context_takeover = p.client_no_context_takeover || policy.client_no_context_takeover;

    // 7.1.2.1: answer with the same or a smaller value; 8 we cannot honour.
    int server_bits = server_cap;
    if (p.server_max_window_bits) {
      if (*p.server_max_window_bits < min_compress_bits) continue;
      server_bits = std::min(server_bits, *p.server_max_window_bits);
    }
    a.server_max_window_bits = server_bits;

    // 7.1.2.2: a value in the offer is the client's own limit; we may only
    // answer client_max_window_bits when it was offered.
    int client_bits = p.client_max_window_bits_value.value_or(max_bits);
    const bool answer_client_bits = client_cap < max_bits;
    if (answer_client_bits) {
      if (!p.client_max_window_bits) continue;
      client_bits = std::min(client_bits, client_cap);
    }
    a.client_max_window_bits = client_bits;

    std::string response(deflate_name);
    if (a.server_no_context_takeover) response.append("; server_no_context_takeover");
    if (a.client_no_context_takeover) response.append("; client_no_context_takeover");
    if (p.server_max_window_bits || server_bits < max_bits)
      append_bits(response, "server_max_window_bits", server_bits);
    if (answer_client_bits) append_bits(response, "client_max_window_bits", client_bits);
    out = a;
    return response;
  }
  return std::nullopt;
}

std::string deflate_offer(const deflate_options& opts) {
  std::string offer(deflate_name);
  if (opts.server_no_context_takeover) offer.append("; server_no_context_takeover");
  if (opts.client_no_context_takeover) offer.append("; client_no_context_takeover");
  const int server_bits = compress_bits(opts.server_max_window_bits);
  if (server_bits < max_bits) append_bits(offer, "server_max_window_bits", server_bits);
  // Always offered, so the server may limit our window (7.1.2.2); with a
  // value only when we will not use the whole 32 KiB anyway.
  const int client_bits = compress_bits(opts.client_max_window_bits);
  if (client_bits < max_bits) {
    append_bits(offer, "client_max_window_bits", client_bits);
  } else {
    offer.append("; client_max_window_bits");
  }
  return offer;
}

std::optional<std::string> accept_deflate_response(const extension& response,
                                                   const deflate_options& opts,
                                                   deflate_agreement& out) {
  if (!http::iequals(response.name, deflate_name))
    return std::string("not a permessage-deflate response");
  deflate_params p;
  if (const auto reason = read_params(response, true, p)) return std::string(*reason);

  // What deflate_offer(opts) sent.
  const int offered_server_bits = compress_bits(opts.server_max_window_bits);
  const int offered_client_bits = compress_bits(opts.client_max_window_bits);
  constexpr bool offered_client_max_window_bits = true;  // always, see above

  // 7.1.1.1 and 7.1.2.1: the server accepts these two parameters of an
  // offer by answering them; a response without them accepted something
  // we did not offer.
  if (opts.server_no_context_takeover && !p.server_no_context_takeover)
    return std::string("server_no_context_takeover offered but not answered");
  if (offered_server_bits < max_bits && !p.server_max_window_bits)
    return std::string("server_max_window_bits offered but not answered");
  if (p.server_max_window_bits && *p.server_max_window_bits > offered_server_bits)
    return std::string("server_max_window_bits above the offered value");

  // 7.1.2.2: only when offered, and never above the offered value.
  if (p.client_max_window_bits_value) {
    if (!offered_client_max_window_bits)
      return std::string("client_max_window_bits not offered");
    if (*p.client_max_window_bits_value > offered_client_bits)
      return std::string("client_max_window_bits above the offered value");
    if (*p.client_max_window_bits_value < min_compress_bits)
      return std::string("client_max_window_bits=8 is not supported");
  }

  deflate_agreement a;
  a.server_no_context_takeover = p.server_no_context_takeover;
  // 7.1.1.2: offered, it binds us whether or not the server answered it.
  a.client_no_context_takeover = p.client_no_context_takeover || opts.client_no_context_takeover;
  a.server_max_window_bits = p.server_max_window_bits.value_or(max_bits);
  a.client_max_window_bits = p.client_max_window_bits_value.value_or(offered_client_bits);
  out = a;
  return std::nullopt;
}

}  // namespace gust::detail
