// The demo server lameduck-hello: its command line and its routes, with curl.

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>

#include "harness.hpp"

namespace lameduck::testing {
namespace {

using clock = std::chrono::steady_clock;

server_process start_hello(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv{bin_path("lameduck-hello"), "--listen", "127.0.0.1:0", "--threads",
                                "2"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return server_process(argv);
}

command_result hello_cli(std::vector<std::string> args) {
  args.insert(args.begin(), bin_path("lameduck-hello"));
  return run(args, 20s);
}

command_result curl(std::vector<std::string> args) {
  std::vector<std::string> argv{"curl", "-sS", "--max-time", "20"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, 30s);
}

// --- command line ----------------------------------------------------------------------------

TEST(Hello, ListsEveryOptionWithHelpAndExitsZero) {
  auto r = hello_cli({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* option : {"--listen", "--threads", "--help"}) {
    EXPECT_NE(r.out.find(option), std::string::npos) << option << " is missing from:\n" << r.out;
  }
  EXPECT_EQ(r.err, "");
}

TEST(Hello, RejectsANonNumericThreadCountWithOneLineAndStatus2) {
  auto r = hello_cli({"--threads", "abc"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.back(), '\n') << r.err;
  EXPECT_NE(r.err.find("threads"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(Hello, RejectsAThreadCountOutOfRangeWithOneLineAndStatus2) {
  auto r = hello_cli({"--threads", "100000"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(Hello, RejectsAnUnknownOptionWithOneLineAndStatus2) {
  auto r = hello_cli({"--bogus"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("--bogus"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(Hello, RejectsAnUnusableListenAddressWithOneLineAndStatus2) {
  auto r = hello_cli({"--listen", "not-an-address"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// --- routes ----------------------------------------------------------------------------------

TEST(Hello, AnswersTheRootWithHelloWorld) {
  auto server = start_hello();
  auto r = curl({"-i", server.url("/")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(status_of(r.out), 200) << r.out;
  EXPECT_EQ(header_of(r.out, "Content-Type"), "text/plain");
  EXPECT_EQ(body_of(r.out), "Hello, World!\n");
}

TEST(Hello, AnswersDelayAfterTheDelay) {
  auto server = start_hello();
  auto start = clock::now();
  auto r = curl({server.url("/delay?ms=50")});
  auto took = clock::now() - start;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "waited 50 ms\n");
  EXPECT_GE(took, 50ms);
}

TEST(Hello, AnswersManyDelaysAtOnceWithoutBlockingItsThread) {
  // One thread, ten requests of 300 ms each at once: together in about 300 ms, not 3 s.
  server_process server({bin_path("lameduck-hello"), "--listen", "127.0.0.1:0", "--threads", "1"});
  std::vector<std::string> args{"-Z", "--parallel-max", "10"};
  for (int i = 0; i < 10; ++i)
    args.push_back(server.url("/delay?ms=300"));
  auto start = clock::now();
  auto r = curl(args);
  auto took = clock::now() - start;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string expected;
  for (int i = 0; i < 10; ++i)
    expected += "waited 300 ms\n";
  EXPECT_EQ(r.out, expected);
  EXPECT_LT(took, 2500ms);
}

TEST(Hello, StreamsChunksAtTheirInterval) {
  auto server = start_hello();
  auto r = curl({"-v", "-N", server.url("/stream?chunks=3&interval_ms=10")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("< Transfer-Encoding: chunked"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "chunk 1\nchunk 2\nchunk 3\n");
}

TEST(Hello, EchoesAPostedBody) {
  auto server = start_hello();
  auto r = curl({"-i", "-H", "Content-Type: application/x-quack", "--data-binary", "quack quack",
                 server.url("/echo")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(status_of(r.out), 200) << r.out;
  EXPECT_EQ(header_of(r.out, "Content-Type"), "application/x-quack");
  EXPECT_EQ(body_of(r.out), "quack quack");
}

TEST(Hello, AnswersOtherPathsWith404) {
  auto server = start_hello();
  auto r = curl({"-w", "%{http_code}\n", "-o", "/dev/null", server.url("/nowhere"), "-o",
                 "/dev/null", server.url("/hello"), "-o", "/dev/null", server.url("/echo/more")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "404\n404\n404\n");
}

TEST(Hello, AnswersReadinessAndLivenessProbes) {
  auto server = start_hello();
  auto r = curl({"-s", server.url("/readyz"), server.url("/livez")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ready\nalive\n");
}

TEST(Hello, ServesProbesOnlyOnItsHealthAddressWhenGivenOne) {
  auto server = start_hello({"--health-listen", "127.0.0.1:0"});
  auto r = curl({"-s", "-w", " %{http_code}\n", server.url("/readyz")});
  EXPECT_EQ(r.out, "Not Found\n 404\n");  // not on the main port
}

TEST(Hello, ServesMetricsOnlyWhenAskedTo) {
  auto plain = start_hello();
  auto r = curl({"-s", "-w", "%{http_code}\n", "-o", "/dev/null", plain.url("/metrics")});
  EXPECT_EQ(r.out, "404\n") << "off by default";

  auto server = start_hello({"--metrics-path", "/metrics"});
  r = curl({"-s", "-o", "/dev/null", server.url("/"), "-o", "/dev/null", server.url("/nowhere")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = curl({"-s", "-i", server.url("/metrics")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(status_of(r.out), 200) << r.out;
  EXPECT_EQ(header_of(r.out, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.out.find("\nlameduck_requests_total{code=\"2xx\"} 1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nlameduck_requests_total{code=\"4xx\"} 1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nlameduck_ready 1\n"), std::string::npos) << r.out;
}

TEST(Hello, RejectsAMetricsPathWithoutASlashWithOneLineAndStatus2) {
  for (const char* path : {"metrics", "/readyz"}) {
    auto r = hello_cli({"--listen", "127.0.0.1:0", "--metrics-path", path});
    EXPECT_EQ(r.exit_code, 2) << path;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("metrics-path"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST(Hello, RejectsABadDelayWith400) {
  auto server = start_hello();
  auto r = curl({"-w", "%{http_code}\n", "-o", "/dev/null", server.url("/delay?ms=soon"), "-o",
                 "/dev/null", server.url("/stream?chunks=-1")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "400\n400\n");
}

TEST(Hello, StopsOnSigtermWithStatus0) {
  auto server = start_hello();
  EXPECT_EQ(body_of(get_once(server.port())), "Hello, World!\n");
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(10s), 0);
}

}  // namespace
}  // namespace lameduck::testing
