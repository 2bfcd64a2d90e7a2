// HTTP/1.1 behaviour over real sockets, against lameduck-test-server.

#include <gtest/gtest.h>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

server_process start_server(std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{bin_path("lameduck-test-server"), "--listen", "127.0.0.1:0", "--threads", "2"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return server_process(argv);
}

TEST(Http, AnswersAPlainGetOverARawSocket) {
  auto server = start_server();
  raw_client c(server.port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(body_of(r), "Hello, World!\n");
  EXPECT_EQ(header_of(r, "Content-Length"), "14");
  EXPECT_FALSE(header_of(r, "Date").empty());
}

TEST(Http, CurlGetsHello) {
  auto server = start_server();
  auto r = run({"curl", "-sS", "--max-time", "10", server.url("/")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello, World!\n");
}

}  // namespace
}  // namespace lameduck::testing
