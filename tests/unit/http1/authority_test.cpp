// The authority checks fed from memory: Host values and request-target authorities against
// RFC 3986's grammar (uri-host [ ":" port ]), with each alternative of uri-host at its edges.

#include "http1/authority.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>

namespace lameduck::http1 {
namespace {

// parse_host as a value, for EXPECT_EQ and EXPECT_FALSE.
std::optional<authority> parse(std::string_view value) {
  authority a;
  if (!parse_host(value, a)) return std::nullopt;
  return a;
}

TEST(Authority, RegNamesWithAndWithoutPort) {
  auto a = parse("example.com");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "example.com");
  EXPECT_EQ(a->port, std::nullopt);
  a = parse("Example.COM:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "Example.COM");  // as sent: a view, not lowercased
  EXPECT_EQ(a->port, 8080);
}

TEST(Authority, EveryByteARegNameMayHoldIsAccepted) {
  // unreserved, sub-delims and pct-encoded (RFC 3986 section 3.2.2).
  for (std::string_view host : {"a-b.c_d~e", "AZaz09", "a!$&'()*+,;=b", "a%20b", "%41%7a",
                                "xn--bcher-kva.example", "localhost", "999.1.1.1", "1.2.3", "_"}) {
    auto a = parse(host);
    ASSERT_TRUE(a) << host;
    EXPECT_EQ(a->host, host);
    EXPECT_EQ(a->port, std::nullopt) << host;
  }
}

TEST(Authority, IpAddressesKeepTheirBrackets) {
  struct want {
    std::string_view value, host;
    std::optional<std::uint16_t> port;
  };
  for (const want& w :
       {want{"127.0.0.1", "127.0.0.1", std::nullopt}, want{"127.0.0.1:80", "127.0.0.1", 80},
        want{"[::1]", "[::1]", std::nullopt}, want{"[::1]:8443", "[::1]", 8443},
        want{"[2001:db8::1]", "[2001:db8::1]", std::nullopt},
        want{"[::ffff:192.0.2.1]:1", "[::ffff:192.0.2.1]", 1},
        want{"[v1.fe80::a+en1]", "[v1.fe80::a+en1]", std::nullopt},
        want{"[VF.x]:9", "[VF.x]", 9}}) {
    auto a = parse(w.value);
    ASSERT_TRUE(a) << w.value;
    EXPECT_EQ(a->host, w.host) << w.value;
    EXPECT_EQ(a->port, w.port) << w.value;
  }
}

TEST(Authority, EmptyHostAndEmptyPortAreWhatTheGrammarAllows) {
  // reg-name = *( ... ) may be empty (a target URI without authority sends an empty Host), and
  // port = *DIGIT may be empty too, which RFC 3986 section 3.2.3 reads as no port.
  auto a = parse("");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "");
  a = parse("h:");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "h");
  EXPECT_EQ(a->port, std::nullopt);
  a = parse(":80");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "");
  EXPECT_EQ(a->port, 80);
}

TEST(Authority, PortsFrom0To65535WithLeadingZeros) {
  EXPECT_EQ(parse("h:0")->port, 0);
  EXPECT_EQ(parse("h:65535")->port, 65535);
  EXPECT_EQ(parse("h:0080")->port, 80);
  EXPECT_EQ(parse("h:000000000000000000000443")->port, 443);
  EXPECT_FALSE(parse("h:65536"));
  EXPECT_FALSE(parse("h:99999999999999999999"));
}

TEST(Authority, InvalidHostValuesAreRefused) {
  for (std::string_view value : {"a b",
                                 "a/b",
                                 "user@a",
                                 "user:pw@a",
                                 "[::1",
                                 "[::1]x",
                                 "[::1]:x",
                                 "[::1]]",
                                 "a:b",
                                 "a:80:90",
                                 "a:-1",
                                 "a:+80",
                                 "a:8 0",
                                 "a: 80",
                                 "a%2",
                                 "a%zz",
                                 "a%",
                                 "a\"b",
                                 "a[b",
                                 "a]b",
                                 "a{b",
                                 "a\\b",
                                 "a#b",
                                 "a?b",
                                 "a<b",
                                 "a|b",
                                 "a^b",
                                 "a`b",
                                 "\xc3\xa9",
                                 "a\tb",
                                 "[]",
                                 "[v.x]",
                                 "[v1.]",
                                 "[vx.a]",
                                 "[v1x]",
                                 "[v1.a/b]",
                                 "[1.2.3.4]",
                                 "[::1%25eth0]",
                                 "[fe80::1%eth0]",
                                 "[example.com]",
                                 "::1",
                                 "x[::1]"}) {
    EXPECT_FALSE(parse(value)) << testing::PrintToString(std::string(value));
  }
  for (char c = 0; c < 0x20; ++c) {
    EXPECT_FALSE(parse(std::string("a") + c + "b")) << int(c);
  }
  EXPECT_FALSE(parse("a\x7f"));
  EXPECT_TRUE(parse("[::1]:"));  // an empty port after a literal is allowed too
}

TEST(Authority, Ipv6AddressesOfEveryFormInRfc3986) {
  for (std::string_view s :
       {"1:2:3:4:5:6:7:8", "::", "::1", "1::", "1::8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
        "1:2:3:4:5:6::8", "1::3:4:5:6:7:8", "FFFF:ffff:0:00:000:0000:abcd:EF01",
        "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4", "::ffff:255.255.255.255", "1::1.2.3.4",
        "1:2:3:4:5::1.2.3.4"}) {
    EXPECT_TRUE(is_ipv6_address(s)) << s;
  }
  for (std::string_view s : {"",
                             ":",
                             ":::",
                             "1",
                             "1:2:3:4:5:6:7",
                             "1:2:3:4:5:6:7:8:9",
                             "1:2:3:4:5:6:7:8::",
                             "::1:2:3:4:5:6:7:8",
                             "1::2::3",
                             "1:::2",
                             ":1::2",
                             "1::2:",
                             "1:2:3:4:5:6:7:8:",
                             "12345::",
                             "g::",
                             "1:2:3:4:5:6:7:1.2.3.4",
                             "1.2.3.4",
                             "::1.2.3",
                             "::1.2.3.4:1",
                             "::01.2.3.4",
                             "::256.1.1.1",
                             "1::2 ",
                             " ::1",
                             "::1%eth0"}) {
    EXPECT_FALSE(is_ipv6_address(s)) << s;
  }
}

TEST(Authority, Ipv4AddressesAreDottedDecimalWithoutLeadingZeros) {
  for (std::string_view s : {"0.0.0.0", "255.255.255.255", "10.0.0.1", "192.0.2.199"}) {
    EXPECT_TRUE(is_ipv4_address(s)) << s;
  }
  for (std::string_view s : {"", "256.1.1.1", "01.1.1.1", "1.1.1", "1.1.1.1.1", "1..1.1", "1.1.1.",
                             ".1.1.1", "1.1.1.1a", "a.1.1.1", "1.1.1.1000", "1.1.1.-1"}) {
    EXPECT_FALSE(is_ipv4_address(s)) << s;
  }
}

TEST(Authority, TargetsCarryAnAuthorityInAbsoluteFormAndForConnect) {
  auto t = find_target_authority("http://example.com:8080/a/b?c", false);
  EXPECT_TRUE(t.absolute);
  EXPECT_EQ(t.text, "example.com:8080");
  EXPECT_EQ(t.rest, "/a/b?c");
  t = find_target_authority("http://h?q", false);
  EXPECT_EQ(t.text, "h");
  EXPECT_EQ(t.rest, "?q");
  t = find_target_authority("https://[::1]", false);
  EXPECT_EQ(t.text, "[::1]");
  EXPECT_EQ(t.rest, "");
  t = find_target_authority("http://user@h/", false);
  EXPECT_EQ(t.text, "user@h");  // refused later, by parse_host
  for (std::string_view origin : {"/", "/a://b", "*", ""}) {
    t = find_target_authority(origin, false);
    EXPECT_FALSE(t.absolute) << origin;
    EXPECT_EQ(t.text, "") << origin;
  }
  t = find_target_authority("example.com:443", true);
  EXPECT_FALSE(t.absolute);
  EXPECT_EQ(t.text, "example.com:443");
}

}  // namespace
}  // namespace lameduck::http1
