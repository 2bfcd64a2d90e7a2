// Listen addresses: "HOST:PORT" parsed into socket addresses (IPv4, "[IPv6]", "localhost", "*"),
// every malformed shape rejected with errc::invalid_listen_address, and socket addresses
// formatted back to text, "[ADDRESS]:PORT" for IPv6.

#include "net/address.hpp"

#include <arpa/inet.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <system_error>

#include <lameduck/errors.hpp>

namespace lameduck::detail {
namespace {

using namespace std::string_view_literals;

// Parses text and fails the test unless it parses.
socket_address parse_ok(std::string_view text) {
  std::error_code ec = make_error_code(std::errc::io_error);  // must be cleared
  socket_address a = parse_listen_address(text, ec);
  EXPECT_FALSE(ec) << text << ": " << ec.message();
  return a;
}

// The error parsing text gives.
std::error_code parse_error(std::string_view text) {
  std::error_code ec;
  parse_listen_address(text, ec);
  return ec;
}

std::string ipv4_text(const socket_address& a) {
  char text[INET_ADDRSTRLEN] = "";
  ::inet_ntop(AF_INET, &a.v4.sin_addr, text, sizeof text);
  return text;
}

std::string ipv6_text(const socket_address& a) {
  char text[INET6_ADDRSTRLEN] = "";
  ::inet_ntop(AF_INET6, &a.v6.sin6_addr, text, sizeof text);
  return text;
}

// ---- Parsing: what is accepted ------------------------------------------------------------------

TEST(ParseListenAddress, Ipv4AndPortGiveAnAfInetAddressInNetworkOrder) {
  socket_address a = parse_ok("192.168.1.20:8080");
  EXPECT_EQ(a.any.sa_family, AF_INET);
  EXPECT_EQ(ntohs(a.v4.sin_port), 8080);
  EXPECT_EQ(a.v4.sin_port, htons(8080));
  EXPECT_EQ(ipv4_text(a), "192.168.1.20");
  EXPECT_EQ(a.size(), sizeof(sockaddr_in));
}

TEST(ParseListenAddress, BracketedIpv6AndPortGiveAnAfInet6Address) {
  socket_address a = parse_ok("[::1]:8443");
  EXPECT_EQ(a.any.sa_family, AF_INET6);
  EXPECT_EQ(ntohs(a.v6.sin6_port), 8443);
  EXPECT_EQ(ipv6_text(a), "::1");
  EXPECT_EQ(a.size(), sizeof(sockaddr_in6));
  EXPECT_EQ(a.v6.sin6_flowinfo, 0u);
  EXPECT_EQ(a.v6.sin6_scope_id, 0u);
}

TEST(ParseListenAddress, FullAndMappedIpv6FormsParse) {
  EXPECT_EQ(ipv6_text(parse_ok("[2001:db8:0:0:0:0:0:7]:80")), "2001:db8::7");
  EXPECT_EQ(ipv6_text(parse_ok("[::]:80")), "::");
  socket_address mapped = parse_ok("[::ffff:10.0.0.1]:80");
  EXPECT_EQ(mapped.any.sa_family, AF_INET6);
  EXPECT_EQ(ipv6_text(mapped), "::ffff:10.0.0.1");
}

TEST(ParseListenAddress, LocalhostMeansIpv4Loopback) {
  socket_address a = parse_ok("localhost:3000");
  EXPECT_EQ(a.any.sa_family, AF_INET);
  EXPECT_EQ(ipv4_text(a), "127.0.0.1");
  EXPECT_EQ(ntohs(a.v4.sin_port), 3000);
}

TEST(ParseListenAddress, AsteriskMeansEveryIpv4Interface) {
  socket_address a = parse_ok("*:80");
  EXPECT_EQ(a.any.sa_family, AF_INET);
  EXPECT_EQ(a.v4.sin_addr.s_addr, htonl(INADDR_ANY));
  EXPECT_EQ(ntohs(a.v4.sin_port), 80);
}

TEST(ParseListenAddress, PortZeroAsksTheKernelAndPort65535IsTheLast) {
  EXPECT_EQ(ntohs(parse_ok("127.0.0.1:0").v4.sin_port), 0);
  EXPECT_EQ(ntohs(parse_ok("127.0.0.1:65535").v4.sin_port), 65535);
  EXPECT_EQ(ntohs(parse_ok("[::1]:65535").v6.sin6_port), 65535);
  EXPECT_EQ(ntohs(parse_ok("127.0.0.1:00080").v4.sin_port), 80) << "leading zeros are digits";
}

TEST(ParseListenAddress, SuccessClearsAnErrorCodeSetBefore) {
  std::error_code ec = make_error_code(errc::invalid_listen_address);
  parse_listen_address("127.0.0.1:1", ec);
  EXPECT_FALSE(ec);
}

TEST(ParseListenAddress, UnusedBytesOfTheAddressAreZero) {
  // The union is handed to bind() whole; sin_zero must not carry garbage.
  socket_address a = parse_ok("10.1.2.3:9");
  for (unsigned char b : a.v4.sin_zero)
    EXPECT_EQ(b, 0);
  socket_address b = parse_ok("[::1]:9");
  EXPECT_EQ(b.v6.sin6_scope_id, 0u);
}

// ---- Parsing: what is rejected ------------------------------------------------------------------

TEST(ParseListenAddress, ErrorsAreInvalidListenAddressWithAMessageShowingTheExpectedForm) {
  std::error_code ec = parse_error("nonsense");
  EXPECT_EQ(ec, make_error_code(errc::invalid_listen_address));
  EXPECT_EQ(ec, errc::invalid_listen_address);
  EXPECT_STREQ(ec.category().name(), "lameduck");
  EXPECT_NE(ec.message().find("HOST:PORT"), std::string::npos) << ec.message();
}

TEST(ParseListenAddress, MissingOrEmptyPartsAreRejected) {
  for (std::string_view text : {""sv, ":"sv, "8080"sv, "127.0.0.1"sv, "127.0.0.1:"sv, ":8080"sv,
                                "[::1]"sv, "[::1]:"sv, "[]:80"sv, "localhost"sv, "*"sv}) {
    EXPECT_EQ(parse_error(text), errc::invalid_listen_address) << '"' << text << '"';
  }
}

TEST(ParseListenAddress, PortsThatAreNotPlainDecimalIn0To65535AreRejected) {
  for (std::string_view port :
       {"65536"sv, "99999"sv, "4294967296"sv, "99999999999999999999999"sv, "-1"sv, "+80"sv, " 80"sv,
        "80 "sv, "8 0"sv, "0x50"sv, "80a"sv, "http"sv, "８０"sv}) {
    EXPECT_EQ(parse_error("127.0.0.1:" + std::string(port)), errc::invalid_listen_address)
        << '"' << port << '"';
  }
}

TEST(ParseListenAddress, HostsThatAreNotIpv4BracketedIpv6LocalhostOrAsteriskAreRejected) {
  for (std::string_view text : {"example.com:80"sv,
                                "LOCALHOST:80"sv,
                                "localhost.:80"sv,
                                "**:80"sv,
                                "0:80"sv,
                                "127.1:80"sv,
                                "256.0.0.1:80"sv,
                                "1.2.3.4.5:80"sv,
                                "01.2.3.4:80"sv,
                                " 127.0.0.1:80"sv,
                                "127.0.0.1 :80"sv,
                                "::1:80"sv,
                                "[::1:80"sv,
                                "::1]:80"sv,
                                "[[::1]]:80"sv,
                                "[1.2.3.4]:80"sv,
                                "[localhost]:80"sv,
                                "[*]:80"sv,
                                "[::g]:80"sv,
                                "[fe80::1%lo]:80"sv,
                                "http://127.0.0.1:80"sv}) {
    EXPECT_EQ(parse_error(text), errc::invalid_listen_address) << '"' << text << '"';
  }
}

TEST(ParseListenAddress, ANulByteInsideTheHostIsRejected) {
  // The host is handed to inet_pton as a C string; what follows a NUL must not be ignored.
  EXPECT_EQ(parse_error("127.0.0.1\0junk:80"sv), errc::invalid_listen_address);
  EXPECT_EQ(parse_error("[::1\0junk]:80"sv), errc::invalid_listen_address);
}

// ---- Formatting ---------------------------------------------------------------------------------

TEST(FormatAddress, Ipv4IsAddressColonPort) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(54321);
  ASSERT_EQ(::inet_pton(AF_INET, "203.0.113.9", &v4.sin_addr), 1);
  EXPECT_EQ(format_address(reinterpret_cast<const sockaddr*>(&v4)), "203.0.113.9:54321");
}

TEST(FormatAddress, Ipv6IsBracketedAndCompressed) {
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(8080);
  ASSERT_EQ(::inet_pton(AF_INET6, "2001:db8:0:0:0:0:0:1", &v6.sin6_addr), 1);
  EXPECT_EQ(format_address(reinterpret_cast<const sockaddr*>(&v6)), "[2001:db8::1]:8080");
}

TEST(FormatAddress, Ipv4MappedIpv6KeepsItsIpv6Form) {
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(1);
  ASSERT_EQ(::inet_pton(AF_INET6, "::ffff:192.0.2.1", &v6.sin6_addr), 1);
  EXPECT_EQ(format_address(reinterpret_cast<const sockaddr*>(&v6)), "[::ffff:192.0.2.1]:1");
}

TEST(FormatAddress, PortZeroAndTheLargestPortAreWrittenInDecimal) {
  socket_address a = parse_ok("0.0.0.0:0");
  EXPECT_EQ(format_address(&a.any), "0.0.0.0:0");
  a = parse_ok("255.255.255.255:65535");
  EXPECT_EQ(format_address(&a.any), "255.255.255.255:65535");
}

TEST(FormatAddress, OtherFamiliesAreUnknown) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, "/tmp/sock");
  EXPECT_EQ(format_address(reinterpret_cast<const sockaddr*>(&un)), "unknown");
  sockaddr_in6 unset{};  // family 0, as a request's peer before one is set
  EXPECT_EQ(format_address(reinterpret_cast<const sockaddr*>(&unset)), "unknown");
}

TEST(FormatAddress, ParsedAddressesFormatBackToTheirCanonicalText) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"127.0.0.1:8080", "127.0.0.1:8080"},
      {"[::1]:8080", "[::1]:8080"},
      {"[0:0:0:0:0:0:0:1]:9", "[::1]:9"},
      {"localhost:1", "127.0.0.1:1"},
      {"*:443", "0.0.0.0:443"},
      {"127.0.0.1:080", "127.0.0.1:80"},
  };
  for (const auto& [in, out] : cases) {
    socket_address a = parse_ok(in);
    EXPECT_EQ(format_address(&a.any), out) << in;
  }
}

}  // namespace
}  // namespace lameduck::detail
