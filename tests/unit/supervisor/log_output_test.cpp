// The supervisor's standard output over a real pipe, socket and file made by the test: lines
// queue while the reader stalls, are dropped whole past the buffer, and one notice follows
// once output flows; the descriptor it was given keeps its flags (it is shared with others).

#include "log_output.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace lameduck::supervisor {
namespace {

// Lines of 100 bytes, numbered: "line 00042 xxx...x\n".
std::string numbered(int i) {
  char head[32];
  std::snprintf(head, sizeof head, "line %05d ", i);
  std::string line = head;
  line.resize(99, 'x');
  return line + "\n";
}

struct SupervisorLogOutput : ::testing::Test {
  static std::unique_ptr<log_output> make(int fd, std::size_t capacity) {
    return std::make_unique<log_output>(
        fd, capacity,
        [](std::uint64_t dropped, std::string since) {
          return "dropped " + std::to_string(dropped) + " since " + since + "\n";
        },
        [] { return std::string("T"); });
  }
  // Everything readable on fd now (a non-blocking reader).
  static std::string read_all(int fd) {
    std::string all;
    char buffer[65536];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof buffer)) > 0)
      all.append(buffer, static_cast<std::size_t>(n));
    return all;
  }
};

TEST_F(SupervisorLogOutput, APipeFillsThenLinesAreDroppedWholeAndOneNoticeFollowsTheGap) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ASSERT_EQ(::fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
  ASSERT_GT(::fcntl(p[1], F_SETPIPE_SZ, 4096), 0);  // one page: 40 of the lines
  {
    auto out = make(p[1], 1000);  // 10 lines
    EXPECT_GE(out->pollable(), 0);
    EXPECT_EQ(::fcntl(p[1], F_GETFL) & O_NONBLOCK, 0) << "the shared description is left alone";
    for (int i = 0; i < 100; ++i)
      out->write(numbered(i));  // returns at once: the test reads nothing yet
    EXPECT_EQ(out->buffered(), 1000u);
    EXPECT_TRUE(out->wants_write());
    EXPECT_EQ(out->dropped_total(), 50u);
    // A reader that takes a little: the buffer is over half full, so writing stays stopped
    // (one gap, not lines and gaps by turns).
    char some[300];
    ASSERT_EQ(::read(p[0], some, sizeof some), 300);
    out->flush();
    out->write(numbered(100));
    EXPECT_EQ(out->dropped_total(), 51u);
    // The reader catches up: the lines kept, in order, then the notice, then what follows.
    std::string seen(some, sizeof some);
    seen += read_all(p[0]);
    out->flush();
    seen += read_all(p[0]);
    out->write(numbered(101));
    seen += read_all(p[0]);
    std::string expected;
    for (int i = 0; i < 50; ++i)
      expected += numbered(i);
    expected += "dropped 51 since T\n" + numbered(101);
    EXPECT_EQ(seen, expected);
    EXPECT_FALSE(out->wants_write());
  }
  ::close(p[0]);
  ::close(p[1]);
}

TEST_F(SupervisorLogOutput, ASocketIsSentToWithoutWaitingAndKeepsItsFlags) {
  int s[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
  ASSERT_EQ(::fcntl(s[0], F_SETFL, O_NONBLOCK), 0);
  {
    auto out = make(s[1], 1 << 16);
    for (int i = 0; i < 20000; ++i)  // 2 MB: the socket's buffer and ours many times over
      out->write(numbered(i));
    EXPECT_GT(out->dropped_total(), 0u);
    EXPECT_EQ(::fcntl(s[1], F_GETFL) & O_NONBLOCK, 0);
    std::string seen;
    while (out->wants_write() || !seen.ends_with(" since T\n")) {
      const std::string got = read_all(s[0]);
      if (got.empty() && !out->wants_write()) break;
      seen += got;
      out->flush();
    }
    seen += read_all(s[0]);
    // Whole lines only, each the one expected in order, until the notice.
    std::size_t at = 0;
    int i = 0;
    for (; seen.compare(at, 5, "line ") == 0; ++i, at += 100)
      ASSERT_EQ(seen.substr(at, 100), numbered(i));
    EXPECT_EQ(seen.substr(at), "dropped " + std::to_string(out->dropped_total()) + " since T\n");
    EXPECT_EQ(static_cast<std::uint64_t>(i) + out->dropped_total(), 20000u);
  }
  ::close(s[0]);
  ::close(s[1]);
}

TEST_F(SupervisorLogOutput, ARegularFileIsWrittenAtOnceAndNothingIsDropped) {
  char name[] = "/tmp/lameduck-log-output-XXXXXX";
  const int fd = ::mkstemp(name);
  ASSERT_GE(fd, 0);
  ::unlink(name);
  {
    auto out = make(fd, 100);  // smaller than the lines: a file never waits, nothing queues
    EXPECT_EQ(out->pollable(), -1);
    for (int i = 0; i < 10; ++i)
      out->write(numbered(i));
    EXPECT_EQ(out->dropped_total(), 0u);
    EXPECT_FALSE(out->wants_write());
  }
  ::lseek(fd, 0, SEEK_SET);
  std::string expected;
  for (int i = 0; i < 10; ++i)
    expected += numbered(i);
  EXPECT_EQ(read_all(fd), expected);
  ::close(fd);
}

TEST_F(SupervisorLogOutput, AtExitTheBufferWaitsForTheReaderABoundedTimeThenCountsTheRest) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ASSERT_EQ(::fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
  ASSERT_GT(::fcntl(p[1], F_SETPIPE_SZ, 4096), 0);
  auto out = make(p[1], 1000);
  for (int i = 0; i < 50; ++i)
    out->write(numbered(i));
  ASSERT_TRUE(out->wants_write());
  // Nobody reads: drain gives up at its deadline, and the lines left are dropped and counted.
  const auto began = std::chrono::steady_clock::now();
  out->drain(200);
  const auto took = std::chrono::steady_clock::now() - began;
  EXPECT_GE(took, std::chrono::milliseconds(190));
  EXPECT_LT(took, std::chrono::milliseconds(1000));
  EXPECT_FALSE(out->wants_write());
  EXPECT_EQ(read_all(p[0]).size(), 4000u) << "40 lines in the pipe";
  EXPECT_EQ(out->drops().total, 10u) << "the 10 buffered";
  EXPECT_EQ(out->drops().unnoticed, 10u);
  EXPECT_EQ(out->drops().since, "T");

  // A reader that comes within the time gets every line, after the notice of the gap.
  for (int i = 0; i < 50; ++i)
    out->write(numbered(i));
  std::string expected = "dropped 10 since T\n";
  for (int i = 0; i < 50; ++i)
    expected += numbered(i);
  std::string seen;
  std::thread reader([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (seen.size() < expected.size() && std::chrono::steady_clock::now() < deadline) {
      pollfd r{p[0], POLLIN, 0};
      ::poll(&r, 1, 100);
      seen += read_all(p[0]);
    }
  });
  out->drain(5000);
  reader.join();
  EXPECT_FALSE(out->wants_write());
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(out->drops().total, 10u);
  EXPECT_EQ(out->drops().unnoticed, 0u);
  out.reset();
  ::close(p[0]);
  ::close(p[1]);
}

TEST_F(SupervisorLogOutput, TheNextBinaryGoesOnCountingAndTellsOfTheGapBeforeIt) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ASSERT_EQ(::fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
  auto out = make(p[1], 1000);
  out->carry({7, 3, "earlier"});
  EXPECT_EQ(read_all(p[0]), "dropped 3 since earlier\n");
  EXPECT_EQ(out->drops().total, 7u);
  EXPECT_EQ(out->drops().unnoticed, 0u);
  out->carry({5, 0, ""});
  EXPECT_EQ(read_all(p[0]), "") << "no gap, no notice";
  EXPECT_EQ(out->dropped_total(), 12u);
  out.reset();
  ::close(p[0]);
  ::close(p[1]);
}

TEST_F(SupervisorLogOutput, AReaderThatWentAwayIsNoError) {
  ::signal(SIGPIPE, SIG_IGN);  // as the supervisor does
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  auto out = make(p[1], 1000);
  ::close(p[0]);
  for (int i = 0; i < 100; ++i)
    out->write(numbered(i));
  EXPECT_FALSE(out->wants_write());
  out.reset();
  ::close(p[1]);
}

}  // namespace
}  // namespace lameduck::supervisor
