// Upgraded connections over real sockets, byte for byte, against lameduck-test-server's echo
// protocol: the 101 head, bytes both ways (including those that came with the request), an
// upgrade completed from another thread, a CONNECT tunnel, closing from either side, and
// requests that do not qualify for an upgrade. What a drain does to them is in lifecycle_test.

#include <gtest/gtest.h>

#include <string>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

constexpr std::string_view upgrade_request =
    "GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";

std::string counts_line(std::uint16_t port, std::string_view state) {
  return key_values(body_of(get_once(port, "/counts")))[std::string(state)];
}

TEST(Upgrade, SwitchesProtocolsWith101AndPassesBytesBothWays) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(upgrade_request);
  std::string head = c.read_head();
  EXPECT_EQ(status_of(head), 101);
  EXPECT_NE(head.find("HTTP/1.1 101 Switching Protocols\r\n"), std::string::npos);
  EXPECT_EQ(header_of(head, "Upgrade"), "echo");
  EXPECT_EQ(header_of(head, "Connection"), "Upgrade");
  // RFC 9110 section 15.2: a 1xx response has no content, so no framing.
  EXPECT_EQ(header_of(head, "Content-Length"), "");
  EXPECT_EQ(header_of(head, "Transfer-Encoding"), "");
  c.send("ping");
  EXPECT_EQ(c.read_exactly(4), "ping");
  // Not HTTP any more: a request line is just bytes to echo.
  c.send(std::string(upgrade_request));
  EXPECT_EQ(c.read_exactly(upgrade_request.size()), upgrade_request);
  EXPECT_EQ(counts_line(server.port(), "upgraded"), "1");
}

TEST(Upgrade, BytesThatCameWithTheRequestGoToTheNewProtocol) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(std::string(upgrade_request) + "early bytes");
  EXPECT_EQ(status_of(c.read_head()), 101);
  EXPECT_EQ(c.read_exactly(11), "early bytes");
}

TEST(Upgrade, AHandlerCanUpgradeFromAnotherThread) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(
      "GET /upgrade?from_thread=1 HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
      "Upgrade: echo\r\n\r\n");
  EXPECT_EQ(status_of(c.read_head()), 101);
  c.send("from afar");
  EXPECT_EQ(c.read_exactly(9), "from afar");
}

TEST(Upgrade, CarriesMegabytesBothWaysInOrder) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(upgrade_request);
  EXPECT_EQ(status_of(c.read_head()), 101);
  std::string bytes;
  for (int i = 0; bytes.size() < (4u << 20); ++i)
    bytes += std::to_string(i) + ",";
  // The echo fills both directions' buffers: send and read at once.
  std::thread sender([&] { c.send(bytes); });
  std::string echoed = c.read_exactly(bytes.size(), 30s);
  sender.join();
  EXPECT_TRUE(echoed == bytes);
}

TEST(Upgrade, TheServerSideClosesCleanlyAfterWhatItSent) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(upgrade_request);
  EXPECT_EQ(status_of(c.read_head()), 101);
  c.send("please close");
  EXPECT_EQ(c.read_until_close(), "please close");
  EXPECT_FALSE(c.was_reset());
  c.shutdown_write();
  // The server half-closed first and lingers until it reads the client's end of stream: only
  // then is the connection neither upgraded nor closing.
  EXPECT_TRUE(eventually([&] {
    return counts_line(server.port(), "upgraded") == "0" &&
           counts_line(server.port(), "closing") == "0";
  }));
}

TEST(Upgrade, AClientThatClosesEndsTheUpgradedConnection) {
  auto server = start_test_server();
  {
    raw_client c(server.port());
    c.send(upgrade_request);
    EXPECT_EQ(status_of(c.read_head()), 101);
    EXPECT_EQ(counts_line(server.port(), "upgraded"), "1");
  }
  EXPECT_TRUE(eventually([&] { return counts_line(server.port(), "upgraded") == "0"; }));
}

TEST(Upgrade, AClientThatHalfClosesGetsWhatWasQueuedAndThenAnEndOfStream) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send(std::string(upgrade_request) + "last words");
  c.shutdown_write();
  std::string got = c.read_until_close();
  EXPECT_EQ(got.substr(got.find("\r\n\r\n") + 4), "last words");
  EXPECT_FALSE(c.was_reset());
}

TEST(Upgrade, ACONNECTBecomesATunnelAfterA200WithoutFraming) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\n\r\n");
  std::string head = c.read_head();
  EXPECT_EQ(status_of(head), 200);
  // RFC 9110 section 9.3.6: no Content-Length or Transfer-Encoding in a 2xx to CONNECT.
  EXPECT_EQ(header_of(head, "Content-Length"), "");
  EXPECT_EQ(header_of(head, "Transfer-Encoding"), "");
  c.send("tunnelled");
  EXPECT_EQ(c.read_exactly(9), "tunnelled");
}

TEST(Upgrade, ARequestWithoutUpgradeHeadersStaysHttp) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET /upgrade HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\n\r\n");  // no Connection: upgrade
  std::string r = c.read_response();
  EXPECT_EQ(status_of(r), 426);
  EXPECT_EQ(header_of(r, "Connection"), "");  // a handler cannot take over Connection
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(body_of(c.read_response()), "Hello, World!\n");
}

TEST(Upgrade, AnHttp10RequestsUpgradeIsIgnored) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET /upgrade HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
  EXPECT_EQ(status_of(c.read_response()), 426);
}

TEST(Upgrade, UpgradingARequestThatDidNotAskIsRefusedAndTheResponseStillUsable) {
  auto server = start_test_server();
  raw_client c(server.port());
  c.send("GET /upgrade-anyway?protocol=echo HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string r = c.read_response();
  EXPECT_EQ(status_of(r), 409);
  EXPECT_EQ(body_of(r), "lameduck: upgrade() on a request that did not ask for one\n");
  // A tunnel (no protocol) is for CONNECT only.
  c.send("GET /upgrade-anyway HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n");
  r = c.read_response();
  EXPECT_EQ(status_of(r), 409);
  EXPECT_EQ(body_of(r), "lameduck: upgrade() needs a protocol\n");
}

}  // namespace
}  // namespace lameduck::testing
