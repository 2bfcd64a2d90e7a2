// Real clients against lameduck-test-server: curl, and Node.js's http and https clients with a
// keep-alive agent (scripts in clients/), over plain TCP and over TLS.

#include <gtest/gtest.h>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

const std::string hello = "Hello, World!\n";

command_result curl(std::vector<std::string> args, std::string_view input = {}) {
  std::vector<std::string> argv{"curl", "-sS", "--max-time", "20"};
  if (current_transport() == transport::tls) {
    argv.insert(argv.end(), {"--cacert", tls_certificate().ca});
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, 30s, input);
}

command_result node(const std::string& script, std::vector<std::string> args) {
  std::vector<std::string> argv{"env", "NODE_EXTRA_CA_CERTS=" + tls_certificate().ca, "node",
                                source_path("clients/" + script)};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, 60s);
}

// Over plain TCP and over HTTPS alike.
class HttpCurl : public over_both_transports {};
INSTANTIATE_TEST_SUITE_P(Transports, HttpCurl, both_transports(), transport_name);
class HttpNode : public over_both_transports {};
INSTANTIATE_TEST_SUITE_P(Transports, HttpNode, both_transports(), transport_name);

// --- curl ------------------------------------------------------------------------------------

TEST_P(HttpCurl, GetsHello) {
  auto server = start_test_server();
  auto r = curl({server.url("/")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, hello);
}

TEST_P(HttpCurl, PostsABodyWithContentLengthAndGetsItEchoed) {
  auto server = start_test_server();
  std::string body = "quack\n";
  for (int i = 0; i < 1000; ++i)
    body += "line " + std::to_string(i) + "\n";
  auto r = curl({"-v", "--data-binary", "@-", server.url("/echo")}, body);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("> Content-Length: " + std::to_string(body.size())), std::string::npos)
      << r.err;
  EXPECT_EQ(r.out, body);
}

TEST_P(HttpCurl, PostsAChunkedBodyAndGetsItEchoed) {
  auto server = start_test_server();
  std::string body;
  for (int i = 0; i < 5000; ++i)
    body += "chunk " + std::to_string(i) + "\n";
  auto r = curl(
      {"-v", "-H", "Transfer-Encoding: chunked", "--data-binary", "@-", server.url("/echo")}, body);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("> Transfer-Encoding: chunked"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("> Content-Length"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.size(), body.size());
  EXPECT_TRUE(r.out == body);
}

TEST_P(HttpCurl, GetsOnlyTheHeadWithHead) {
  auto server = start_test_server();
  auto r = curl({"-I", server.url("/")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r.out;
  EXPECT_EQ(header_of(r.out, "Content-Length"), "14");
  EXPECT_EQ(r.out.substr(r.out.size() - 4), "\r\n\r\n") << "a body followed the head: " << r.out;
}

TEST_P(HttpCurl, ReceivesAStreamedResponseWhole) {
  auto server = start_test_server();
  auto r = curl({"-v", server.url("/stream?chunks=5&interval_ms=20")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("< Transfer-Encoding: chunked"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "piece 0\npiece 1\npiece 2\npiece 3\npiece 4\n");
}

TEST_P(HttpCurl, ReusesOneConnectionForSeveralRequests) {
  auto server = start_test_server();
  auto r = curl({server.url("/peer"), server.url("/peer"), server.url("/peer")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto first = r.out.substr(0, r.out.find('\n') + 1);
  ASSERT_EQ(first.rfind("127.0.0.1:", 0), 0u) << r.out;
  EXPECT_EQ(r.out, first + first + first) << "curl had to open more than one connection";
}

TEST_P(HttpCurl, GetsContinueBeforeSendingALargeBody) {
  // curl asks for 100-continue by itself for bodies of 1 MiB and more.
  auto server = start_test_server({"--max-body-bytes", std::to_string(8 << 20)});
  std::string body(2 << 20, 'q');
  for (std::size_t i = 0; i < body.size(); i += 4096)
    body[i] = static_cast<char>('a' + (i / 4096) % 26);
  auto r = curl({"-v", "--data-binary", "@-", server.url("/echo")}, body);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("> Expect: 100-continue"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("< HTTP/1.1 100 Continue"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("Done waiting for 100-continue"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.size(), body.size());
  EXPECT_TRUE(r.out == body);
}

TEST_P(HttpCurl, GetsContinueWhenItAsksForItOnASmallBody) {
  auto server = start_test_server();
  auto r =
      curl({"-v", "-H", "Expect: 100-continue", "--data-binary", "quack", server.url("/echo")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("< HTTP/1.1 100 Continue"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "quack");
}

TEST_P(HttpCurl, GetsTheStatusOfAnErrorResponse) {
  auto server = start_test_server();
  auto r = curl({"-w", "%{http_code}", "-o", "/dev/null", server.url("/throw"), "-o", "/dev/null",
                 server.url("/nowhere")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "500404");
}

// --- Node.js http client with a keep-alive agent ---------------------------------------------

TEST_P(HttpNode, ReusesOneOrTwoConnectionsForManySequentialRequests) {
  auto server = start_test_server();
  auto r = node("keepalive.js", {server.url("/"), "/peer", "200", "2", "sequential"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto report = key_values(r.out);
  EXPECT_EQ(report["requests"], "200") << r.out;
  EXPECT_EQ(report["ok"], "200") << r.out;
  EXPECT_LE(std::stoi(report["sockets"]), 2) << r.out;
  EXPECT_EQ(report["peers"], report["sockets"]) << r.out;
}

TEST_P(HttpNode, SpreadsConcurrentRequestsOverTheAgentsSockets) {
  auto server = start_test_server();
  // Each request waits 20 ms in the server, so all four sockets are needed at once.
  auto r = node("keepalive.js", {server.url("/"), "/delay?ms=20", "100", "4", "concurrent"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto report = key_values(r.out);
  EXPECT_EQ(report["requests"], "100") << r.out;
  EXPECT_EQ(report["ok"], "100") << r.out;
  EXPECT_EQ(report["sockets"], "4") << r.out;
}

TEST_P(HttpNode, AnswersManyConcurrentRequestsFromOneAgent) {
  auto server = start_test_server();
  auto r = node("keepalive.js", {server.url("/"), "/peer", "1000", "16", "concurrent"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto report = key_values(r.out);
  EXPECT_EQ(report["requests"], "1000") << r.out;
  EXPECT_EQ(report["ok"], "1000") << r.out;
  EXPECT_LE(std::stoi(report["sockets"]), 16) << r.out;
  EXPECT_EQ(report["peers"], report["sockets"]) << r.out;
}

TEST_P(HttpNode, SendsAndReceivesChunkedBodiesOverOneKeptAliveSocket) {
  auto server = start_test_server();
  auto r = node("chunked.js", {server.url("/")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto report = key_values(r.out);
  for (std::string round : {"0", "1"}) {
    EXPECT_EQ(report["echo_status." + round], "200") << r.out;
    EXPECT_EQ(report["echo_ok." + round], "1") << r.out;
    EXPECT_EQ(report["stream_status." + round], "200") << r.out;
    EXPECT_EQ(report["stream_encoding." + round], "chunked") << r.out;
    EXPECT_EQ(report["stream_body." + round], R"("piece 0\npiece 1\npiece 2\npiece 3\n")") << r.out;
  }
  EXPECT_EQ(report["sockets"], "1") << r.out;
}

}  // namespace
}  // namespace lameduck::testing
