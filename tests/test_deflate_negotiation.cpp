// permessage-deflate negotiation (RFC 7692 7.1) and the
// Sec-WebSocket-Extensions syntax under it (RFC 6455 9.1, RFC 9110 5.6):
// the parser, the server's choice among offers, the client's offer and its
// checks of the response, and round trips between the two.
#include <doctest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "deflate/negotiation.hpp"
#include "gust/settings.hpp"

namespace {

using namespace std::string_literals;
using gust::deflate_options;
using gust::detail::accept_deflate_response;
using gust::detail::deflate_agreement;
using gust::detail::deflate_offer;
using gust::detail::extension;
using gust::detail::negotiate_deflate;
using gust::detail::parse_extensions;

deflate_options options(bool server_no_context_takeover = false,
                        bool client_no_context_takeover = false,
                        int server_max_window_bits = 15,
                        int client_max_window_bits = 15) {
  deflate_options o;
  o.enabled = true;
  o.server_no_context_takeover = server_no_context_takeover;
  o.client_no_context_takeover = client_no_context_takeover;
  o.server_max_window_bits = server_max_window_bits;
  o.client_max_window_bits = client_max_window_bits;
  return o;
}

deflate_agreement agreement(bool server_no_context_takeover, bool client_no_context_takeover,
                            int server_max_window_bits, int client_max_window_bits) {
  deflate_agreement a;
  a.server_no_context_takeover = server_no_context_takeover;
  a.client_no_context_takeover = client_no_context_takeover;
  a.server_max_window_bits = server_max_window_bits;
  a.client_max_window_bits = client_max_window_bits;
  return a;
}

// Agreements are compared through their description, which is also what a
// failed check prints.
std::string describe(const deflate_agreement& a) {
  std::string s;
  s += a.server_no_context_takeover ? "server_no_context_takeover " : "";
  s += a.client_no_context_takeover ? "client_no_context_takeover " : "";
  s += "server_bits=" + std::to_string(a.server_max_window_bits);
  s += " client_bits=" + std::to_string(a.client_max_window_bits);
  return s;
}

// Something no negotiation produces: shows `out` was left alone.
const deflate_agreement sentinel = agreement(true, true, 3, 4);

std::string show(const std::optional<std::string>& s) {
  return s ? "\"" + *s + "\"" : "(nothing)";
}

struct server_result {
  std::optional<std::string> response;
  deflate_agreement agreed = sentinel;
};

server_result negotiate(std::string_view header, const deflate_options& policy = options()) {
  server_result r;
  r.response = negotiate_deflate(header, policy, r.agreed);
  return r;
}

// The single element of `header`.
extension element(std::string_view header) {
  const auto list = parse_extensions(header);
  REQUIRE_MESSAGE(list.has_value(), header);
  REQUIRE_MESSAGE(list->size() == 1, header);
  return list->front();
}

struct client_result {
  std::optional<std::string> failure;
  deflate_agreement agreed = sentinel;
};

client_result accept(std::string_view response, const deflate_options& opts = options()) {
  client_result r;
  r.failure = accept_deflate_response(element(response), opts, r.agreed);
  return r;
}

std::string with_bits(std::string_view name, int bits, bool quoted = false) {
  const auto n = std::to_string(bits);
  return "; " + std::string(name) + "=" + (quoted ? "\"" + n + "\"" : n);
}

}  // namespace

TEST_SUITE("RFC 6455 9.1 Sec-WebSocket-Extensions syntax") {
  TEST_CASE("what browsers send") {
    // Chrome (and Safari): the default offer.
    auto chrome = element("permessage-deflate; client_max_window_bits");
    CHECK(chrome.name == "permessage-deflate");
    REQUIRE(chrome.params.size() == 1);
    CHECK(chrome.params[0].name == "client_max_window_bits");
    CHECK_FALSE(chrome.params[0].value.has_value());

    // Firefox: no parameters.
    auto firefox = element("permessage-deflate");
    CHECK(firefox.name == "permessage-deflate");
    CHECK(firefox.params.empty());
  }

  TEST_CASE("several elements, parameters and values") {
    const auto list = parse_extensions(
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10,"
        " x-webkit-deflate-frame ,foo;a=\"b\";c=d");
    REQUIRE(list);
    REQUIRE(list->size() == 3);
    const auto& a = (*list)[0];
    CHECK(a.name == "permessage-deflate");
    REQUIRE(a.params.size() == 2);
    CHECK(a.params[0].name == "server_no_context_takeover");
    CHECK_FALSE(a.params[0].value);
    CHECK(a.params[1].name == "server_max_window_bits");
    CHECK(a.params[1].value == "10");
    CHECK((*list)[1].name == "x-webkit-deflate-frame");
    CHECK((*list)[1].params.empty());
    const auto& c = (*list)[2];
    CHECK(c.name == "foo");
    REQUIRE(c.params.size() == 2);
    CHECK(c.params[0].value == "b");  // unquoted
    CHECK(c.params[1].value == "d");
  }

  TEST_CASE("optional whitespace around separators, spaces and tabs") {
    for (std::string_view header :
         {"permessage-deflate;client_max_window_bits=10",
          "permessage-deflate ; client_max_window_bits = 10",
          "  permessage-deflate\t;\tclient_max_window_bits\t=\t10  ",
          "permessage-deflate;client_max_window_bits= \"10\" "}) {
      CAPTURE(header);
      const auto e = element(header);
      CHECK(e.name == "permessage-deflate");
      REQUIRE(e.params.size() == 1);
      CHECK(e.params[0].name == "client_max_window_bits");
      CHECK(e.params[0].value == "10");
    }
  }

  TEST_CASE("names keep their case, every tchar is allowed") {
    const auto e = element("Per!#$%&'*+-.^_`|~Message; A1=B2");
    CHECK(e.name == "Per!#$%&'*+-.^_`|~Message");
    REQUIRE(e.params.size() == 1);
    CHECK(e.params[0].name == "A1");
    CHECK(e.params[0].value == "B2");
  }

  TEST_CASE("quoted-string values are unescaped (RFC 9110 5.6.4)") {
    CHECK(element("foo; x=\"10\"").params[0].value == "10");
    // quoted-pair: a backslash makes the next byte literal.
    CHECK(element("foo; x=\"1\\0\"").params[0].value == "10");
    CHECK(element("foo; x=\"\\a\\b\\c\"").params[0].value == "abc");
    CHECK(element("foo; x=\"!#$%&'*+-.^_`|~\"").params[0].value == "!#$%&'*+-.^_`|~");
    // A separator inside quotes does not split, but RFC 6455 9.1 has the
    // unescaped value be a token, so these are malformed anyway.
    CHECK_FALSE(parse_extensions("foo; x=\"a,b\""));
    CHECK_FALSE(parse_extensions("foo; x=\"a;b\""));
    CHECK_FALSE(parse_extensions("foo; x=\"\\\"\""));   // a quote
    CHECK_FALSE(parse_extensions("foo; x=\"a\\\\b\""));  // a backslash
  }

  TEST_CASE("empty list elements are ignored (RFC 9110 5.6.1.2)") {
    for (std::string_view header :
         {"permessage-deflate,,", ",permessage-deflate", " , ,permessage-deflate , ",
          "permessage-deflate,\t,", ",,,permessage-deflate,,,"}) {
      CAPTURE(header);
      const auto e = element(header);
      CHECK(e.name == "permessage-deflate");
    }
    const auto two = parse_extensions("a, ,b");
    REQUIRE(two);
    CHECK(two->size() == 2);
    for (std::string_view header : {"", " ", "\t", ",", " , , "}) {
      CAPTURE(header);
      const auto none = parse_extensions(header);
      REQUIRE(none);
      CHECK(none->empty());
    }
  }

  TEST_CASE("several header fields joined with \", \"") {
    const auto list = parse_extensions(
        "permessage-deflate; client_max_window_bits, permessage-deflate");
    REQUIRE(list);
    REQUIRE(list->size() == 2);
    CHECK((*list)[0].params.size() == 1);
    CHECK((*list)[1].params.empty());
  }

  TEST_CASE("malformed headers") {
    const std::vector<std::string> malformed = {
        // ';' not followed by a parameter
        "permessage-deflate;",
        "permessage-deflate; ",
        "permessage-deflate;;client_max_window_bits",
        "permessage-deflate; ;client_max_window_bits",
        "permessage-deflate;,foo",
        "; client_max_window_bits",
        "permessage-deflate,; client_max_window_bits",
        // '=' without a name or a value
        "permessage-deflate; =10",
        "permessage-deflate; server_max_window_bits=",
        "permessage-deflate; server_max_window_bits= ",
        "permessage-deflate; server_max_window_bits=;client_max_window_bits",
        "permessage-deflate; server_max_window_bits=,foo",
        "permessage-deflate; server_max_window_bits==10",
        "permessage-deflate; server_max_window_bits=10=10",
        "permessage-deflate=1",
        // tokens not separated by a separator
        "permessage-deflate client_max_window_bits",
        "permessage-deflate; client_max_window_bits 10",
        "permessage-deflate; server_max_window_bits=1 0",
        // bytes that are not tchar where a token is expected
        "permessage-deflate/2",
        "permessage-deflate; x=(10)",
        "permessage-deflate; x=[10]",
        "permessage-deflate; x={10}",
        "permessage-deflate; x=a@b",
        "permessage-deflate, @",
        "permessage-deflate; x:1",
        "perm\xc3\xa9ssage-deflate",
        "permessage-deflate\r\n",
        "permessage-deflate\r\n; client_max_window_bits",
        "permessage-deflate\n",
        "permessage-deflate"s + '\0',
        "permessage-deflate"s + '\0' + ", foo",
        "permessage-deflate\x7f",
        // quotes where a token is expected
        "\"permessage-deflate\"",
        "permessage-deflate; \"server_no_context_takeover\"",
        "permessage-deflate; \"x\"=1",
        "permessage-deflate; server_max_window_bits=1\"0\"",
        "permessage-deflate\"\"",
        // bad quoting
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate; server_max_window_bits=\"",
        "permessage-deflate; server_max_window_bits=\"10\\\"",  // escaped close
        "permessage-deflate; server_max_window_bits=\"10\\",    // lone backslash
        "permessage-deflate; server_max_window_bits=\"1\"0",
        "permessage-deflate; server_max_window_bits=\"1\"\"0\"",
        "permessage-deflate; server_max_window_bits=\"10\" 1",
        "permessage-deflate; x=\"a\x01\"",
        "permessage-deflate; x=\"a\x7f\"",
        "permessage-deflate; x=\"a\rb\"",
        "permessage-deflate; x=\"a\\\x01\"",
        // quoted values that are not tokens once unescaped (RFC 6455 9.1)
        "permessage-deflate; server_max_window_bits=\"\"",
        "permessage-deflate; server_max_window_bits=\" 10\"",
        "permessage-deflate; server_max_window_bits=\"10 \"",
        "permessage-deflate; server_max_window_bits=\"1 0\"",
        "permessage-deflate; server_max_window_bits=\"\\ 10\"",
        "permessage-deflate; x=\"\xc3\xa9\"",
    };
    for (const auto& header : malformed) {
      CAPTURE(header);
      CHECK_FALSE(parse_extensions(header));
    }
  }

  TEST_CASE("1 MiB of hostile input is parsed in one pass") {
    constexpr std::size_t mib = 1 << 20;
    auto repeat = [&](std::string_view head, std::string_view unit, std::string_view tail) {
      std::string s(head);
      while (s.size() < mib) s.append(unit);
      s.append(tail);
      return s;
    };
    std::uint32_t seed = 12345;
    std::string noise;
    while (noise.size() < mib) {
      seed = seed * 1664525u + 1013904223u;
      noise.push_back(static_cast<char>(seed >> 24));
    }
    std::string noise_tchar;  // only the bytes the grammar is made of
    constexpr std::string_view alphabet = "abc=;, \t\"\\1";
    while (noise_tchar.size() < mib) {
      seed = seed * 1664525u + 1013904223u;
      noise_tchar.push_back(alphabet[(seed >> 24) % alphabet.size()]);
    }
    struct input {
      const char* what;
      std::string header;
      bool valid;
    };
    const std::vector<input> inputs = {
        {"an unterminated quoted-string", repeat("foo; x=\"", "\\a", ""), false},
        {"a quoted-string with a bad byte at the end", repeat("foo; x=\"", "ab", "\x01\""), false},
        {"a long valid quoted-string", repeat("foo; x=\"", "\\a", "\""), true},
        {"parameters then a trailing ';'", repeat("permessage-deflate", "; a", ";"), false},
        {"repeated parameters", repeat("permessage-deflate", "; server_no_context_takeover", ""), true},
        {"offers with a bad value", repeat("", "permessage-deflate; client_max_window_bits=16, ", ""), true},
        {"empty elements", repeat("", ",", ""), true},
        {"whitespace", repeat("", " \t", ""), true},
        {"whitespace then garbage", repeat("", " ", "@"), false},
        {"a long token", repeat("", "a", ""), true},
        {"quotes", repeat("", "\"", ""), false},
        {"random bytes", noise, false},
        {"random grammar bytes", noise_tchar, false},
    };
    for (const auto& in : inputs) {
      CAPTURE(in.what);
      const auto start = std::chrono::steady_clock::now();
      const auto parsed = parse_extensions(in.header);
      deflate_agreement a;
      const auto response = negotiate_deflate(in.header, options(), a);
      const auto elapsed = std::chrono::steady_clock::now() - start;
      CHECK(parsed.has_value() == in.valid);
      CHECK_FALSE(response);  // none of these holds an acceptable offer
      // Generous, for sanitizer builds on a busy machine (milliseconds
      // otherwise): a quadratic pass over 1 MiB would take hours.
      CHECK(elapsed < std::chrono::seconds(5));
    }
  }
}

TEST_SUITE("RFC 7692 7.1 negotiation") {
  TEST_CASE("server: browser offers with the default policy") {
    auto chrome = negotiate("permessage-deflate; client_max_window_bits");
    CHECK(chrome.response == "permessage-deflate");
    CHECK(describe(chrome.agreed) == describe(agreement(false, false, 15, 15)));

    auto firefox = negotiate("permessage-deflate");
    CHECK(firefox.response == "permessage-deflate");
    CHECK(describe(firefox.agreed) == describe(agreement(false, false, 15, 15)));
  }

  TEST_CASE("server: every offer parameter combination") {
    // server_max_window_bits: 0 absent; client_max_window_bits: -1 absent,
    // 0 without a value. Values alternate between token and quoted-string.
    const deflate_options lenient = options();
    const deflate_options strict = options(true, true, 10, 12);
    int n = 0;
    for (bool snct : {false, true}) {
      for (bool cnct : {false, true}) {
        for (int s : {0, 8, 9, 10, 11, 12, 13, 14, 15}) {
          for (int c : {-1, 0, 8, 9, 10, 11, 12, 13, 14, 15}) {
            const bool quoted = (++n % 2) == 0;
            std::string offer = "permessage-deflate";
            if (snct) offer += "; server_no_context_takeover";
            if (cnct) offer += "; client_no_context_takeover";
            if (s) offer += with_bits("server_max_window_bits", s, quoted);
            if (c == 0) offer += "; client_max_window_bits";
            if (c > 0) offer += with_bits("client_max_window_bits", c, quoted);
            CAPTURE(offer);

            // Default policy: everything accepted as offered, except a
            // server window of 8; only what was offered is answered.
            {
              const auto r = negotiate(offer, lenient);
              if (s == 8) {
                CHECK_FALSE(r.response);
                CHECK(describe(r.agreed) == describe(sentinel));
              } else {
                std::string expected = "permessage-deflate";
                if (snct) expected += "; server_no_context_takeover";
                if (cnct) expected += "; client_no_context_takeover";
                if (s) expected += with_bits("server_max_window_bits", s);
                CHECK(show(r.response) == show(expected));
                CHECK(describe(r.agreed) ==
                      describe(agreement(snct, cnct, s ? s : 15, c > 0 ? c : 15)));
              }
            }
            // A policy asking for everything: both no_context_takeover
            // answered, windows capped at 10 (ours) and 12 (theirs), which
            // needs client_max_window_bits in the offer.
            {
              const auto r = negotiate(offer, strict);
              if (s == 8 || c == -1) {
                CHECK_FALSE(r.response);
                CHECK(describe(r.agreed) == describe(sentinel));
              } else {
                const int server_bits = std::min(s ? s : 15, 10);
                const int client_bits = std::min(c > 0 ? c : 15, 12);
                std::string expected =
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
                expected += with_bits("server_max_window_bits", server_bits);
                expected += with_bits("client_max_window_bits", client_bits);
                CHECK(show(r.response) == show(expected));
                CHECK(describe(r.agreed) ==
                      describe(agreement(true, true, server_bits, client_bits)));
              }
            }
          }
        }
      }
    }
  }

  TEST_CASE("server: parameter order in the offer does not matter") {
    std::array<std::string, 4> params = {
        "server_no_context_takeover", "client_no_context_takeover",
        "server_max_window_bits=11", "client_max_window_bits=13"};
    std::sort(params.begin(), params.end());
    int permutations = 0;
    do {
      std::string offer = "permessage-deflate";
      for (const auto& p : params) offer += "; " + p;
      CAPTURE(offer);
      const auto r = negotiate(offer);
      CHECK(r.response ==
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
            " server_max_window_bits=11");
      CHECK(describe(r.agreed) == describe(agreement(true, true, 11, 13)));
      ++permutations;
    } while (std::next_permutation(params.begin(), params.end()));
    CHECK(permutations == 24);
  }

  TEST_CASE("server: policy") {
    struct row {
      const char* what;
      deflate_options policy;
      std::string offer;
      std::optional<std::string> response;
      deflate_agreement agreed;
    };
    const auto none = std::optional<std::string>();
    const auto declined = sentinel;
    const std::vector<row> rows = {
        {"requiring client_no_context_takeover", options(false, true), "permessage-deflate",
         "permessage-deflate; client_no_context_takeover", agreement(false, true, 15, 15)},
        {"requiring it when offered anyway", options(false, true),
         "permessage-deflate; client_no_context_takeover",
         "permessage-deflate; client_no_context_takeover", agreement(false, true, 15, 15)},
        {"not keeping our context", options(true), "permessage-deflate",
         "permessage-deflate; server_no_context_takeover", agreement(true, false, 15, 15)},
        {"capping our window", options(false, false, 10), "permessage-deflate",
         "permessage-deflate; server_max_window_bits=10", agreement(false, false, 10, 15)},
        {"capping our window below the offer", options(false, false, 10),
         "permessage-deflate; server_max_window_bits=12",
         "permessage-deflate; server_max_window_bits=10", agreement(false, false, 10, 15)},
        {"the offer below our cap", options(false, false, 10),
         "permessage-deflate; server_max_window_bits=9",
         "permessage-deflate; server_max_window_bits=9", agreement(false, false, 9, 15)},
        {"a server window of 8 requested", options(false, false, 10),
         "permessage-deflate; server_max_window_bits=8", none, declined},
        {"a server window of 8 requested, then a fallback", options(),
         "permessage-deflate; server_max_window_bits=8, permessage-deflate; "
         "server_max_window_bits=9",
         "permessage-deflate; server_max_window_bits=9", agreement(false, false, 9, 15)},
        {"a configured server window of 8 is used as 9", options(false, false, 8),
         "permessage-deflate", "permessage-deflate; server_max_window_bits=9",
         agreement(false, false, 9, 15)},
        {"a configured server window above 15 is 15", options(false, false, 20),
         "permessage-deflate", "permessage-deflate", agreement(false, false, 15, 15)},
        {"a configured server window below 8 is 9", options(false, false, -3),
         "permessage-deflate; server_max_window_bits=15",
         "permessage-deflate; server_max_window_bits=9", agreement(false, false, 9, 15)},
        {"capping the client's window without client_max_window_bits offered",
         options(false, false, 15, 10), "permessage-deflate", none, declined},
        {"capping the client's window, bare client_max_window_bits",
         options(false, false, 15, 10), "permessage-deflate; client_max_window_bits",
         "permessage-deflate; client_max_window_bits=10", agreement(false, false, 15, 10)},
        {"capping the client's window below its hint", options(false, false, 15, 10),
         "permessage-deflate; client_max_window_bits=12",
         "permessage-deflate; client_max_window_bits=10", agreement(false, false, 15, 10)},
        {"the client's hint below our cap", options(false, false, 15, 10),
         "permessage-deflate; client_max_window_bits=9",
         "permessage-deflate; client_max_window_bits=9", agreement(false, false, 15, 9)},
        {"the client's own hint of 8 is kept", options(false, false, 15, 10),
         "permessage-deflate; client_max_window_bits=8",
         "permessage-deflate; client_max_window_bits=8", agreement(false, false, 15, 8)},
        {"a configured client window of 8 is asked as 9", options(false, false, 15, 8),
         "permessage-deflate; client_max_window_bits",
         "permessage-deflate; client_max_window_bits=9", agreement(false, false, 15, 9)},
        {"no cap: the client's hint is not answered", options(),
         "permessage-deflate; client_max_window_bits=11", "permessage-deflate",
         agreement(false, false, 15, 11)},
        {"capping the client's window: first offer without the parameter declined",
         options(false, false, 15, 12),
         "permessage-deflate, permessage-deflate; client_max_window_bits",
         "permessage-deflate; client_max_window_bits=12", agreement(false, false, 15, 12)},
        {"everything", options(true, true, 10, 11), "permessage-deflate; client_max_window_bits",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=10; client_max_window_bits=11",
         agreement(true, true, 10, 11)},
    };
    for (const auto& r : rows) {
      CAPTURE(r.what);
      CAPTURE(r.offer);
      const auto got = negotiate(r.offer, r.policy);
      CHECK(show(got.response) == show(r.response));
      CHECK(describe(got.agreed) == describe(r.agreed));
    }
  }

  TEST_CASE("server: invalid offers are declined, the next one is taken") {
    // Well-formed headers whose permessage-deflate offer breaks 7.1: the
    // server declines that offer without failing (and a later acceptable
    // offer is accepted).
    const std::vector<std::string> invalid = {
        // server_max_window_bits: a value 8-15 is required
        "server_max_window_bits",
        "server_max_window_bits=7",
        "server_max_window_bits=16",
        "server_max_window_bits=0",
        "server_max_window_bits=abc",
        "server_max_window_bits=08",
        "server_max_window_bits=008",
        "server_max_window_bits=010",
        "server_max_window_bits=-10",
        "server_max_window_bits=+10",
        "server_max_window_bits=1e1",
        "server_max_window_bits=10.0",
        "server_max_window_bits=0xa",
        "server_max_window_bits=A",
        "server_max_window_bits=99999999999999999999999999",
        "server_max_window_bits=4294967306",
        "server_max_window_bits=\"16\"",
        "server_max_window_bits=\"08\"",
        "server_max_window_bits=\"abc\"",
        // ... and a window of 8, which zlib cannot compress with
        "server_max_window_bits=8",
        "server_max_window_bits=\"8\"",
        // client_max_window_bits: no value, or 8-15
        "client_max_window_bits=7",
        "client_max_window_bits=16",
        "client_max_window_bits=abc",
        "client_max_window_bits=08",
        "client_max_window_bits=-9",
        "client_max_window_bits=\"16\"",
        // no value allowed on the no_context_takeover parameters
        "server_no_context_takeover=1",
        "server_no_context_takeover=true",
        "server_no_context_takeover=\"x\"",
        "client_no_context_takeover=1",
        "client_no_context_takeover=\"true\"",
        // unknown parameters
        "foo",
        "x=1",
        "server_max_window_bit=10",
        "server_max_window_bits_=10",
        "max_window_bits=10",
        "no_context_takeover",
        "client_max_window_bits; foo",
        // repeated parameters
        "server_no_context_takeover; server_no_context_takeover",
        "client_no_context_takeover; client_no_context_takeover",
        "server_max_window_bits=10; server_max_window_bits=10",
        "server_max_window_bits=10; server_max_window_bits=11",
        "client_max_window_bits; client_max_window_bits",
        "client_max_window_bits=10; client_max_window_bits",
        "client_max_window_bits; client_max_window_bits=10",
        "server_no_context_takeover; SERVER_NO_CONTEXT_TAKEOVER",
    };
    for (const auto& params : invalid) {
      const auto offer = "permessage-deflate; " + params;
      CAPTURE(offer);
      const auto alone = negotiate(offer);
      CHECK_FALSE(alone.response);
      CHECK(describe(alone.agreed) == describe(sentinel));

      const auto then_plain = negotiate(offer + ", permessage-deflate");
      CHECK(then_plain.response == "permessage-deflate");
      CHECK(describe(then_plain.agreed) == describe(agreement(false, false, 15, 15)));

      const auto among_others = negotiate("x-webkit-deflate-frame, " + offer + ",," + offer +
                                          " ,permessage-deflate; client_max_window_bits=12");
      CHECK(among_others.response == "permessage-deflate");
      CHECK(describe(among_others.agreed) == describe(agreement(false, false, 15, 12)));
    }
  }

  TEST_CASE("server: a malformed header declines everything") {
    for (std::string_view bad :
         {"permessage-deflate;", "permessage-deflate; ;", "permessage-deflate; =10",
          "permessage-deflate; server_max_window_bits=\"10",
          "permessage-deflate; server_max_window_bits=\" 10\"",
          "permessage-deflate; server_max_window_bits=1\"0\"", "\"permessage-deflate\"",
          "permessage-deflate client_max_window_bits", "@", "foo; x=\"a b\""}) {
      CAPTURE(bad);
      CHECK_FALSE(negotiate(bad).response);
      const auto before = "permessage-deflate, " + std::string(bad);
      const auto after = std::string(bad) + ", permessage-deflate";
      CHECK_FALSE(negotiate(before).response);
      CHECK_FALSE(negotiate(after).response);
      deflate_agreement untouched = sentinel;
      CHECK_FALSE(negotiate_deflate(before, options(), untouched));
      CHECK(describe(untouched) == describe(sentinel));
    }
  }

  TEST_CASE("server: other extensions are ignored") {
    CHECK_FALSE(negotiate("").response);
    CHECK_FALSE(negotiate("x-webkit-deflate-frame").response);
    CHECK_FALSE(negotiate("deflate-frame; max_window_bits=10").response);
    CHECK_FALSE(negotiate("permessage-deflatex, xpermessage-deflate").response);
    // Their parameters are theirs: ours are not checked against them.
    const auto r = negotiate(
        "x-webkit-deflate-frame; server_max_window_bits=99; foo=\"bar\", "
        "foo, permessage-deflate; server_max_window_bits=11, bar");
    CHECK(r.response == "permessage-deflate; server_max_window_bits=11");
    CHECK(describe(r.agreed) == describe(agreement(false, false, 11, 15)));
  }

  TEST_CASE("server: names are compared without case") {
    const auto r = negotiate("PerMessage-Deflate; Server_Max_Window_Bits=10; CLIENT_MAX_WINDOW_BITS");
    CHECK(r.response == "permessage-deflate; server_max_window_bits=10");
    CHECK(describe(r.agreed) == describe(agreement(false, false, 10, 15)));
  }

  TEST_CASE("server: the first acceptable offer wins") {
    const auto r = negotiate(
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits,"
        " permessage-deflate; client_max_window_bits, permessage-deflate");
    CHECK(r.response == "permessage-deflate; server_max_window_bits=10");
    CHECK(describe(r.agreed) == describe(agreement(false, false, 10, 15)));

    // Over several header fields joined by the caller.
    const auto joined = negotiate(
        "permessage-deflate; server_max_window_bits=8, "
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=9");
    CHECK(joined.response == "permessage-deflate; server_no_context_takeover");
    CHECK(describe(joined.agreed) == describe(agreement(true, false, 15, 9)));
  }

  TEST_CASE("client: the offer") {
    struct row {
      deflate_options opts;
      std::string offer;
    };
    const std::vector<row> rows = {
        {options(), "permessage-deflate; client_max_window_bits"},
        {options(true), "permessage-deflate; server_no_context_takeover; client_max_window_bits"},
        {options(false, true),
         "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
        {options(false, false, 10),
         "permessage-deflate; server_max_window_bits=10; client_max_window_bits"},
        {options(false, false, 15, 12), "permessage-deflate; client_max_window_bits=12"},
        {options(true, true, 10, 12),
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=10; client_max_window_bits=12"},
        {options(false, false, 9, 9),
         "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"},
        // Out of range settings: 8 (zlib cannot) and below become 9, above 15 is 15.
        {options(false, false, 8, 8),
         "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"},
        {options(false, false, 0, -1),
         "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"},
        {options(false, false, 16, 99), "permessage-deflate; client_max_window_bits"},
    };
    for (const auto& r : rows) {
      const auto offer = deflate_offer(r.opts);
      CHECK(offer == r.offer);
      element(offer);  // one well-formed element
    }
  }

  TEST_CASE("client: the response is refused") {
    struct row {
      const char* what;
      deflate_options opts;
      std::string response;
    };
    const auto d = options();
    const std::vector<row> rows = {
        {"an unknown parameter", d, "permessage-deflate; foo"},
        {"an unknown parameter with a value", d, "permessage-deflate; foo=1"},
        {"an unknown parameter after known ones", d,
         "permessage-deflate; server_no_context_takeover; x-foo"},
        {"repeated server_no_context_takeover", d,
         "permessage-deflate; server_no_context_takeover; server_no_context_takeover"},
        {"repeated client_no_context_takeover", d,
         "permessage-deflate; client_no_context_takeover; client_no_context_takeover"},
        {"repeated server_max_window_bits", d,
         "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"},
        {"repeated client_max_window_bits", d,
         "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10"},
        {"server_max_window_bits=7", d, "permessage-deflate; server_max_window_bits=7"},
        {"server_max_window_bits=16", d, "permessage-deflate; server_max_window_bits=16"},
        {"server_max_window_bits=abc", d, "permessage-deflate; server_max_window_bits=abc"},
        {"server_max_window_bits=08", d, "permessage-deflate; server_max_window_bits=08"},
        {"server_max_window_bits=\"16\"", d, "permessage-deflate; server_max_window_bits=\"16\""},
        {"server_max_window_bits without a value", d, "permessage-deflate; server_max_window_bits"},
        {"client_max_window_bits=7", d, "permessage-deflate; client_max_window_bits=7"},
        {"client_max_window_bits=16", d, "permessage-deflate; client_max_window_bits=16"},
        {"client_max_window_bits=abc", d, "permessage-deflate; client_max_window_bits=abc"},
        {"client_max_window_bits=+9", d, "permessage-deflate; client_max_window_bits=+9"},
        {"client_max_window_bits without a value (7.1.2.2)", d,
         "permessage-deflate; client_max_window_bits"},
        {"a value on server_no_context_takeover", d,
         "permessage-deflate; server_no_context_takeover=1"},
        {"a value on client_no_context_takeover", d,
         "permessage-deflate; client_no_context_takeover=\"x\""},
        {"server_max_window_bits above the offered one", options(false, false, 10),
         "permessage-deflate; server_max_window_bits=11"},
        {"server_max_window_bits=15 after offering 9", options(false, false, 9),
         "permessage-deflate; server_max_window_bits=15"},
        {"server_max_window_bits offered, not answered", options(false, false, 10),
         "permessage-deflate"},
        {"server_no_context_takeover offered, not answered", options(true),
         "permessage-deflate"},
        {"server_no_context_takeover offered, not answered (the rest is)",
         options(true, false, 12), "permessage-deflate; server_max_window_bits=12"},
        {"client_max_window_bits above the offered value", options(false, false, 15, 10),
         "permessage-deflate; client_max_window_bits=11"},
        {"client_max_window_bits=15 after offering 9", options(false, false, 15, 9),
         "permessage-deflate; client_max_window_bits=15"},
        {"client_max_window_bits=8", d, "permessage-deflate; client_max_window_bits=8"},
        {"client_max_window_bits=8 below the offered value", options(false, false, 15, 10),
         "permessage-deflate; client_max_window_bits=8"},
        {"not permessage-deflate", d, "x-webkit-deflate-frame"},
        // (client_max_window_bits "when not offered" cannot happen with
        // deflate_offer: it always offers the parameter.)
    };
    for (const auto& r : rows) {
      CAPTURE(r.what);
      CAPTURE(r.response);
      const auto got = accept(r.response, r.opts);
      REQUIRE(got.failure.has_value());
      CHECK_FALSE(got.failure->empty());
      CHECK(describe(got.agreed) == describe(sentinel));
    }
  }

  TEST_CASE("client: the response is accepted") {
    struct row {
      const char* what;
      deflate_options opts;
      std::string response;
      deflate_agreement agreed;
    };
    const auto d = options();
    const std::vector<row> rows = {
        {"plain", d, "permessage-deflate", agreement(false, false, 15, 15)},
        {"server_no_context_takeover unasked (7.1.1.1 allows it)", d,
         "permessage-deflate; server_no_context_takeover", agreement(true, false, 15, 15)},
        {"client_no_context_takeover unasked", d,
         "permessage-deflate; client_no_context_takeover", agreement(false, true, 15, 15)},
        {"server_max_window_bits unasked", d, "permessage-deflate; server_max_window_bits=12",
         agreement(false, false, 12, 15)},
        {"server_max_window_bits=8: the server's window, we only inflate", d,
         "permessage-deflate; server_max_window_bits=8", agreement(false, false, 8, 15)},
        {"server_max_window_bits=15 unasked", d, "permessage-deflate; server_max_window_bits=15",
         agreement(false, false, 15, 15)},
        {"a quoted value", d, "permessage-deflate; server_max_window_bits=\"12\"",
         agreement(false, false, 12, 15)},
        {"a quoted value with a quoted-pair", d,
         "permessage-deflate; client_max_window_bits=\"1\\1\"", agreement(false, false, 15, 11)},
        {"client_max_window_bits=9", d, "permessage-deflate; client_max_window_bits=9",
         agreement(false, false, 15, 9)},
        {"client_max_window_bits=15", d, "permessage-deflate; client_max_window_bits=15",
         agreement(false, false, 15, 15)},
        {"server_max_window_bits as offered", options(false, false, 10),
         "permessage-deflate; server_max_window_bits=10", agreement(false, false, 10, 15)},
        {"server_max_window_bits below the offer", options(false, false, 10),
         "permessage-deflate; server_max_window_bits=9", agreement(false, false, 9, 15)},
        {"client_max_window_bits not answered: our own limit", options(false, false, 15, 10),
         "permessage-deflate", agreement(false, false, 15, 10)},
        {"client_max_window_bits as offered", options(false, false, 15, 10),
         "permessage-deflate; client_max_window_bits=10", agreement(false, false, 15, 10)},
        {"client_max_window_bits below the offer", options(false, false, 15, 10),
         "permessage-deflate; client_max_window_bits=9", agreement(false, false, 15, 9)},
        {"client_no_context_takeover offered binds us even unanswered", options(false, true),
         "permessage-deflate", agreement(false, true, 15, 15)},
        {"client_no_context_takeover offered and answered", options(false, true),
         "permessage-deflate; client_no_context_takeover", agreement(false, true, 15, 15)},
        {"server_no_context_takeover offered and answered", options(true),
         "permessage-deflate; server_no_context_takeover", agreement(true, false, 15, 15)},
        {"all four, any order", options(true, true, 11, 12),
         "permessage-deflate;client_max_window_bits=10 ; server_max_window_bits=11;"
         "client_no_context_takeover;server_no_context_takeover",
         agreement(true, true, 11, 10)},
        {"names without case", d, "PERMESSAGE-DEFLATE; Server_No_Context_Takeover",
         agreement(true, false, 15, 15)},
        {"configured 8 was offered as 9", options(false, false, 8, 8),
         "permessage-deflate; server_max_window_bits=9", agreement(false, false, 9, 9)},
    };
    for (const auto& r : rows) {
      CAPTURE(r.what);
      CAPTURE(r.response);
      const auto got = accept(r.response, r.opts);
      CHECK(show(got.failure) == show(std::nullopt));
      CHECK(describe(got.agreed) == describe(r.agreed));
    }
  }

  TEST_CASE("round trip: offer, server answer, client check") {
    // Both ends must come to the same agreement, whatever each was
    // configured with, and it must honour both configurations.
    const std::vector<int> windows = {0, 8, 9, 10, 12, 14, 15, 16};
    auto effective = [](int bits) { return std::clamp(bits, 9, 15); };
    int trips = 0;
    for (bool c_snct : {false, true}) {
      for (bool c_cnct : {false, true}) {
        for (int c_s : windows) {
          for (int c_c : windows) {
            const auto client = options(c_snct, c_cnct, c_s, c_c);
            const auto offer = deflate_offer(client);
            for (bool s_snct : {false, true}) {
              for (bool s_cnct : {false, true}) {
                for (int s_s : windows) {
                  for (int s_c : windows) {
                    const auto server = options(s_snct, s_cnct, s_s, s_c);
                    CAPTURE(offer);
                    CAPTURE(describe(agreement(s_snct, s_cnct, s_s, s_c)));
                    deflate_agreement on_server = sentinel;
                    const auto response = negotiate_deflate(offer, server, on_server);
                    REQUIRE(response.has_value());
                    CAPTURE(*response);
                    deflate_agreement on_client = sentinel;
                    const auto failure =
                        accept_deflate_response(element(*response), client, on_client);
                    REQUIRE(show(failure) == show(std::nullopt));
                    REQUIRE(describe(on_client) == describe(on_server));
                    // What each side asked for.
                    const auto expected =
                        agreement(c_snct || s_snct, c_cnct || s_cnct,
                                  std::min(effective(c_s), effective(s_s)),
                                  std::min(effective(c_c), effective(s_c)));
                    REQUIRE(describe(on_server) == describe(expected));
                    ++trips;
                  }
                }
              }
            }
          }
        }
      }
    }
    CHECK(trips == 256 * 256);
  }

  TEST_CASE("round trip: a foreign first offer declined, ours accepted") {
    const auto client = options(true, false, 11, 10);
    const auto header =
        "permessage-deflate; server_max_window_bits=8, " + deflate_offer(client);
    deflate_agreement on_server = sentinel;
    const auto response = negotiate_deflate(header, options(false, true, 12), on_server);
    REQUIRE(response);
    CHECK(*response ==
          "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
          "server_max_window_bits=11");
    deflate_agreement on_client = sentinel;
    CHECK_FALSE(accept_deflate_response(element(*response), client, on_client));
    CHECK(describe(on_client) == describe(on_server));
    CHECK(describe(on_client) == describe(agreement(true, true, 11, 10)));
  }
}
