// The control protocol from memory (requests, answers, the status table) and its socket in a
// temporary directory: permissions, a live or stale supervisor, other users, and the client
// of the subcommands against a supervisor played by a thread.

#include "control.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <sstream>
#include <string>
#include <thread>

#include "client.hpp"

// Designated initializers name the fields a test is about and leave the rest at their
// defaults, which is what GCC 12's -Wextra warns of here (GCC 13 no longer does).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace lameduck::supervisor {
namespace {

supervisor_status sample_status() {
  supervisor_status s;
  s.pid = 4242;
  s.uptime_ms = (2 * 3600 + 3 * 60 + 7) * 1000;
  s.state = "running";
  program_status web;
  web.name = "web";
  web.instances = 3;
  web.generation = 7;
  web.reload = "idle";
  web.workers = {
      {.slot = 0,
       .pid = 4243,
       .generation = 7,
       .state = "ready",
       .uptime_ms = 3'400,
       .restarts = 0,
       .ready = true,
       .memory_bytes = 12'900'000,
       .last_exit = ""},
      {.slot = 1,
       .pid = 51234,
       .generation = 7,
       .state = "ready",
       .uptime_ms = (4 * 60 + 12) * 1000 + 999,
       .restarts = 12,
       .ready = true,
       .memory_bytes = 2'000,
       .last_exit = "killed by SIGSEGV"},
      {.slot = 2,
       .pid = 0,
       .generation = 6,
       .state = "restarting (backoff)",
       .uptime_ms = 0,
       .restarts = 3,
       .ready = false,
       .memory_bytes = 0,
       .last_exit = "exit 1"},
  };
  program_status jobs;
  jobs.name = "jobs";
  jobs.instances = 1;
  jobs.generation = 1;
  jobs.reload = "running";
  jobs.workers = {{.slot = 0,
                   .pid = 99,
                   .generation = 1,
                   .state = "starting",
                   .uptime_ms = 5LL * 86400 * 1000 + 7 * 3600 * 1000,
                   .restarts = 0,
                   .ready = false,
                   .memory_bytes = 3ULL << 30,
                   .last_exit = ""}};
  s.programs = {web, jobs};
  return s;
}

// Expects line to be refused with a one-line reason, and returns the reason.
std::string refusal(std::string_view line) {
  try {
    decode_request(line);
  } catch (const protocol_error& e) {
    std::string why = e.what();
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(why.find('\n'), std::string::npos) << why;
    return why;
  } catch (...) {
    ADD_FAILURE() << "not a protocol_error";
    return {};
  }
  ADD_FAILURE() << "accepted";
  return {};
}

TEST(ControlRequest, EncodesOneCompactLineWithTheCommandFirst) {
  EXPECT_EQ(encode_request({.what = request::verb::reload, .wait = true}),
            "{\"command\":\"reload\",\"wait\":true}\n");
  EXPECT_EQ(encode_request({.what = request::verb::scale, .instances = 4}),
            "{\"command\":\"scale\",\"instances\":4}\n");
  EXPECT_EQ(
      encode_request({.what = request::verb::logs,
                      .follow = true,
                      .lines = 100,
                      .worker = 1,
                      .program = "web"}),
      "{\"command\":\"logs\",\"lines\":100,\"follow\":true,\"worker\":1,\"program\":\"web\"}\n");
  EXPECT_EQ(encode_request({.what = request::verb::status}), "{\"command\":\"status\"}\n");
}

TEST(ControlRequest, RoundTripsEveryVerb) {
  const request requests[] = {
      {.what = request::verb::status},
      {.what = request::verb::reload},
      {.what = request::verb::reload, .wait = true, .program = "web"},
      {.what = request::verb::stop},
      {.what = request::verb::kill},
      {.what = request::verb::scale, .instances = 0},
      {.what = request::verb::scale, .instances = max_instances, .program = "jobs"},
      {.what = request::verb::upgrade},
      {.what = request::verb::logs},
      {.what = request::verb::logs, .follow = true, .lines = 0, .worker = 0},
      {.what = request::verb::logs, .lines = max_log_lines, .worker = 1023, .program = "é"},
  };
  for (const auto& r : requests) {
    std::string line = encode_request(r);
    SCOPED_TRACE(line);
    ASSERT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1);
    line.pop_back();
    EXPECT_EQ(decode_request(line), r);
  }
}

TEST(ControlRequest, DecodesTheDocumentedExamples) {
  EXPECT_EQ(decode_request(R"({"command":"reload","wait":true})"),
            (request{.what = request::verb::reload, .wait = true}));
  EXPECT_EQ(
      decode_request(R"({"command":"logs","lines":100,"follow":true,"worker":1,"program":"web"})"),
      (request{.what = request::verb::logs,
               .follow = true,
               .lines = 100,
               .worker = 1,
               .program = "web"}));
  EXPECT_EQ(decode_request(R"( { "instances" : 4 , "command" : "scale" } )"),
            (request{.what = request::verb::scale, .instances = 4}));
}

TEST(ControlRequest, RefusesWhatIsNotJsonOrNotAnObject) {
  for (std::string_view line :
       {"", " ", "[]", "\"status\"", "null", "42", "{", R"({"command":"status"} x)",
        R"({"command":"status"}{})", R"(/* hi */ {"command":"status"})", R"({"command":"status",})",
        "{'command':'status'}"}) {
    SCOPED_TRACE(line);
    refusal(line);
  }
  EXPECT_NE(refusal("[]").find("object"), std::string::npos);
}

TEST(ControlRequest, RefusesInvalidUtf8AndStrayBytes) {
  using namespace std::string_literals;
  for (std::string line : {"{\"command\":\"st\xff\"}"s, "{\"command\":\"\xc0\xaf\"}"s,
                           "{\"command\":\"\xed\xa0\x80\"}"s, R"({"command":"\ud800"})"s,
                           "{\"command\":\"status\"}\0"s, "{\"command\":\"status\"}\0{\"x\":1}"s,
                           "{\"command\":\"sta\0tus\"}"s, "\xff{\"command\":\"status\"}"s,
                           "{\"command\":\"a\nb\"}"s}) {
    SCOPED_TRACE(line);
    refusal(line);
  }
}

TEST(ControlRequest, RefusesUnknownCommandsAndFields) {
  EXPECT_EQ(refusal("{}"), "a request has no \"command\"");
  EXPECT_EQ(refusal(R"({"command":"dance"})"), "unknown command \"dance\"");
  EXPECT_EQ(refusal(R"({"command":"STATUS"})"), "unknown command \"STATUS\"");
  EXPECT_EQ(refusal(R"({"command":1})"), "\"command\" is not a string in a request");
  EXPECT_EQ(refusal(R"({"command":"status","verbose":true})"),
            "\"verbose\" is not a field of a status request");
  // A field of another command is as wrong as an unknown one.
  EXPECT_EQ(refusal(R"({"command":"reload","lines":5})"),
            "\"lines\" is not a field of a reload request");
  refusal(R"({"command":"stop","program":"web"})");
  refusal(R"({"command":"upgrade","wait":true})");
  refusal(R"({"command":"status","command":"stop"})");  // which one?
  refusal(R"({"command":"reload","wait":true,"wait":false})");
  // An unknown command's name comes back cut short and escaped.
  std::string why = refusal(R"({"command":")" + std::string(1000, 'x') + "\\n\"}");
  EXPECT_LT(why.size(), 120u);
}

TEST(ControlRequest, RefusesWrongTypes) {
  for (std::string_view line : {
           R"({"command":"reload","wait":1})",
           R"({"command":"reload","wait":"true"})",
           R"({"command":"reload","wait":null})",
           R"({"command":"reload","wait":{"a":1}})",
           R"({"command":"logs","follow":0})",
           R"({"command":"logs","lines":"100"})",
           R"({"command":"logs","lines":true})",
           R"({"command":"logs","lines":[100]})",
           R"({"command":"logs","worker":null})",
           R"({"command":"logs","worker":1.5})",
           R"({"command":"scale","instances":4.0})",
           R"({"command":"scale","instances":"4"})",
           R"({"command":"reload","program":5})",
           R"({"command":"reload","program":["web"]})",
       }) {
    SCOPED_TRACE(line);
    refusal(line);
  }
}

TEST(ControlRequest, RefusesNumbersOutOfRange) {
  EXPECT_EQ(refusal(R"({"command":"scale","instances":-1})"),
            "\"instances\" in a scale request is not an integer from 0 to 1024");
  for (std::string_view line : {
           R"({"command":"scale"})",
           R"({"command":"scale","instances":1025})",
           R"({"command":"scale","instances":4294967296})",
           R"({"command":"scale","instances":18446744073709551615})",
           R"({"command":"scale","instances":18446744073709551616})",
           R"({"command":"scale","instances":-9223372036854775808})",
           R"({"command":"scale","instances":1e30})",
           R"({"command":"scale","instances":1e2})",
           R"({"command":"logs","lines":1000001})",
           R"({"command":"logs","lines":-1})",
           R"({"command":"logs","worker":1024})",
           R"({"command":"logs","worker":-1})",
       }) {
    SCOPED_TRACE(line);
    refusal(line);
  }
  EXPECT_EQ(decode_request(R"({"command":"logs","lines":1000000,"worker":1023})").lines,
            max_log_lines);
}

TEST(ControlRequest, RefusesAnEmptyProgramName) {
  EXPECT_NE(refusal(R"({"command":"scale","instances":1,"program":""})").find("program"),
            std::string::npos);
}

TEST(ControlRequest, RefusesALineOver64KiB) {
  // Valid JSON padded with spaces: the length alone is refused, before any parsing.
  std::string line = R"({"command":"status"})";
  line.append(max_request_bytes - line.size(), ' ');
  EXPECT_EQ(decode_request(line).what, request::verb::status);
  line += ' ';
  EXPECT_EQ(refusal(line), "a request longer than 65536 bytes");
}

TEST(ControlRequest, RefusesDeepNestingWithoutCrashing) {
  std::string line =
      R"({"command":"reload","wait":)" + std::string(30'000, '[') + std::string(30'000, ']') + "}";
  refusal(line);
}

TEST(ControlAnswer, RoundTripsProgressLogAndResultLines) {
  auto progress = decode_answer(encode_progress("worker 1 ready (generation 8)"));
  EXPECT_EQ(progress.what, answer_line::kind::progress);
  EXPECT_EQ(progress.text, "worker 1 ready (generation 8)");
  EXPECT_FALSE(progress.status);

  auto log = decode_answer(encode_log_line("GET / 200 \"quoted\" \\ tab\tend"));
  EXPECT_EQ(log.what, answer_line::kind::log);
  EXPECT_EQ(log.text, "GET / 200 \"quoted\" \\ tab\tend");

  auto failed = decode_answer(encode_result(false, "a reload is already running"));
  EXPECT_EQ(failed.what, answer_line::kind::result);
  EXPECT_FALSE(failed.ok);
  EXPECT_EQ(failed.text, "a reload is already running");
  EXPECT_FALSE(failed.status);

  supervisor_status status = sample_status();
  auto done = decode_answer(encode_result(true, "", &status));
  EXPECT_TRUE(done.ok);
  ASSERT_TRUE(done.status);
  EXPECT_EQ(*done.status, status);
}

TEST(ControlAnswer, EncodesEachAsOneLineWithTheTypeFirst) {
  EXPECT_EQ(encode_progress("hi"), "{\"type\":\"progress\",\"message\":\"hi\"}\n");
  EXPECT_EQ(encode_log_line("a\nb\r\x1b[31m"),
            "{\"type\":\"log\",\"line\":\"a\\nb\\r\\u001b[31m\"}\n");
  EXPECT_EQ(encode_result(true, "done"),
            "{\"type\":\"result\",\"ok\":true,\"message\":\"done\"}\n");
  supervisor_status status = sample_status();
  std::string line = encode_result(true, "", &status);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(ControlAnswer, ALogLineOfAnyBytesEncodesWithReplacementCharacters) {
  std::string bytes = "ok \xff\xfe bad \xc3 cut";
  bytes += '\0';
  std::string line;
  ASSERT_NO_THROW(line = encode_log_line(bytes));
  EXPECT_EQ(decode_answer(line).text,
            "ok \xEF\xBF\xBD\xEF\xBF\xBD bad \xEF\xBF\xBD cut" + std::string(1, '\0'));
  ASSERT_NO_THROW(encode_progress("\x80"));
  ASSERT_NO_THROW(encode_result(false, "\xf0\x9f"));
}

TEST(ControlAnswer, IgnoresFieldsItDoesNotKnow) {
  auto a = decode_answer(R"({"type":"progress","message":"m","since":"v2"})");
  EXPECT_EQ(a.text, "m");
}

TEST(ControlAnswer, RefusesLinesThatAreNotAnswers) {
  for (
      std::string_view line : {
          "",
          "[]",
          R"({"message":"m"})",
          R"({"type":"chat","message":"m"})",
          R"({"type":"progress"})",
          R"({"type":"log","message":"m"})",
          R"({"type":"result","message":"m"})",
          R"({"type":"result","ok":"yes","message":"m"})",
          R"({"type":"result","ok":true})",
          R"({"type":"result","ok":true,"message":"m","status":[]})",
          R"({"type":"result","ok":true,"message":"m","status":{}})",
          R"({"type":"result","ok":true,"message":"m","status":{"pid":-1,"uptime_ms":0,"state":"running","programs":[]}})",
          R"({"type":"result","ok":true,"message":"m","status":{"pid":1,"uptime_ms":0,"state":"running","programs":[{"name":"web"}]}})",
          R"({"type":"progress","message":"a","message":"b"})",
      }) {
    SCOPED_TRACE(line);
    EXPECT_THROW(decode_answer(line), protocol_error);
  }
}

TEST(ControlAnswer, RefusesAWorkerWithAFieldOfTheWrongType) {
  supervisor_status status = sample_status();
  std::string line = encode_result(true, "", &status);
  for (auto [from, to] : {std::pair{"\"ready\":true", "\"ready\":1"},
                          {"\"memory_bytes\":12900000", "\"memory_bytes\":-1"},
                          {"\"pid\":4243", "\"pid\":4294967296"},
                          {"\"last_exit\":\"exit 1\"", "\"last_exit\":null"}}) {
    std::string changed = line;
    auto at = changed.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    changed.replace(at, std::strlen(from), to);
    SCOPED_TRACE(changed);
    EXPECT_THROW(decode_answer(changed), protocol_error);
  }
}

TEST(StatusTable, ShowsOneAlignedBlockPerProgram) {
  EXPECT_EQ(format_status_table(sample_status()),
            "lameduck: pid 4242, running, up 2h03m\n"
            "\n"
            "web: generation 7, reload idle, 3 instances\n"
            "SLOT    PID  GEN  STATE                 UPTIME  RESTARTS  READY  MEMORY  LAST EXIT\n"
            "   0   4243    7  ready                     3s         0  yes     12.3M  -\n"
            "   1  51234    7  ready                  4m12s        12  yes      2.0K  killed by "
            "SIGSEGV\n"
            "   2      -    6  restarting (backoff)       -         3  no          -  exit 1\n"
            "\n"
            "jobs: generation 1, reload running, 1 instance\n"
            "SLOT  PID  GEN  STATE     UPTIME  RESTARTS  READY  MEMORY  LAST EXIT\n"
            "   0   99    1  starting      5d         0  no       3.0G  -\n");
}

TEST(StatusTable, ShowsAProgramWithoutWorkersAndSmallMemory) {
  supervisor_status s;
  s.pid = 1;
  s.state = "stopping";
  s.uptime_ms = 59'999;
  s.programs.push_back({.name = "idle", .instances = 0, .generation = 0, .reload = "idle"});
  s.programs.push_back(
      {.name = "tiny\x1b[2J",
       .instances = 1,
       .generation = 2,
       .reload = "idle",
       .workers = {{.slot = 0, .pid = 5, .uptime_ms = 3'600'000, .memory_bytes = 512}}});
  EXPECT_EQ(format_status_table(s),
            "lameduck: pid 1, stopping, up 59s\n"
            "\n"
            "idle: generation 0, reload idle, 0 instances\n"
            "(no workers)\n"
            "\n"
            "tiny?[2J: generation 2, reload idle, 1 instance\n"
            "SLOT  PID  GEN  STATE  UPTIME  RESTARTS  READY  MEMORY  LAST EXIT\n"
            "   0    5    0          1h00m         0  no       512B  -\n");
}

TEST(StatusJson, IsIndentedAndHoldsEveryField) {
  supervisor_status status = sample_status();
  std::string text = format_status_json(status);
  EXPECT_EQ(text.rfind("{\n  \"pid\": 4242,\n  \"uptime_ms\": 7387000,\n", 0), 0u) << text;
  EXPECT_EQ(text.back(), '\n');
  // The same fields as a result line: it reads back through one.
  std::string compact = text;
  std::erase(compact, '\n');
  auto a = decode_answer(R"({"type":"result","ok":true,"message":"","status":)" + compact + "}");
  EXPECT_EQ(a.status, status);
}

// A temporary directory with the control socket's path inside it, removed afterwards.
class ControlSocket : public ::testing::Test {
 protected:
  ControlSocket() {
    std::string templ = "/tmp/lameduck-control-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp");
    root_ = templ;
    dir_ = root_ + "/run";
    path_ = dir_ + "/control.sock";
  }
  ~ControlSocket() override {
    for (int fd : fds_)
      ::close(fd);
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  // Keeps fd until the test ends.
  int keep(int fd) {
    if (fd >= 0) fds_.push_back(fd);
    return fd;
  }
  static mode_t mode_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_mode;
  }
  // Accepts a connection that is already queued on the listener.
  static int accept_one(int listener) {
    pollfd p{.fd = listener, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 10'000) != 1) return -1;
    return ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  }
  // Runs fn in a child as user nobody and returns its exit status (-1: it did not exit).
  template <class Fn>
  static int as_nobody(Fn fn) {
    pid_t child = ::fork();
    if (child == 0) {
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
      ::_exit(fn());
    }
    int status = 0;
    if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
  }

  std::string root_, dir_, path_;
  std::vector<int> fds_;
};

TEST_F(ControlSocket, CreatesA0700DirectoryAndA0600SocketWhateverTheUmask) {
  mode_t old_mask = ::umask(0);  // the most permissive: nothing of 0700/0600 may come from it
  std::error_code ec;
  int fd = keep(bind_control_socket(path_, ec));
  ::umask(old_mask);
  ASSERT_GE(fd, 0) << ec.message();
  EXPECT_FALSE(ec);
  EXPECT_TRUE(S_ISDIR(mode_of(dir_)));
  EXPECT_EQ(mode_of(dir_) & 07777, 0700u);
  EXPECT_TRUE(S_ISSOCK(mode_of(path_)));
  EXPECT_EQ(mode_of(path_) & 07777, 0600u);
  EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);

  int client = keep(connect_control_socket(path_, ec));
  ASSERT_GE(client, 0) << ec.message();
  EXPECT_TRUE(::fcntl(client, F_GETFD) & FD_CLOEXEC);
  EXPECT_FALSE(::fcntl(client, F_GETFL) & O_NONBLOCK);
  int server_side = keep(accept_one(fd));
  ASSERT_GE(server_side, 0);
  EXPECT_TRUE(peer_is_owner(server_side));
  EXPECT_FALSE(peer_is_owner(-1));
}

TEST_F(ControlSocket, MakesTheDirectory0700EvenWhenTheUmaskTakesTheOwnersBits) {
  mode_t old_mask = ::umask(0277);  // mkdir alone would leave it 0500: no bind for non-root
  std::error_code ec;
  int fd = keep(bind_control_socket(path_, ec));
  ::umask(old_mask);
  ASSERT_GE(fd, 0) << ec.message();
  EXPECT_EQ(mode_of(dir_) & 07777, 0700u);
  EXPECT_EQ(mode_of(path_) & 07777, 0600u);
}

TEST_F(ControlSocket, UsesAnExistingPrivateDirectory) {
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  std::error_code ec;
  EXPECT_GE(keep(bind_control_socket(path_, ec)), 0) << ec.message();
}

TEST_F(ControlSocket, RefusesADirectoryOpenToOthersWithoutChangingIt) {
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  std::error_code ec;
  std::string why;
  EXPECT_EQ(bind_control_socket(path_, ec, why), -1);
  EXPECT_EQ(ec, std::errc::permission_denied);
  EXPECT_EQ(why, "the directory " + dir_ +
                     " is open to other users (mode 0755): make it 0700 or choose another "
                     "control socket");
  EXPECT_EQ(mode_of(dir_) & 07777, 0755u);
  EXPECT_NE(::access(path_.c_str(), F_OK), 0);
}

TEST_F(ControlSocket, RefusesAParentThatIsNotADirectory) {
  ASSERT_EQ(::symlink(root_.c_str(), dir_.c_str()), 0);  // even one leading to a directory
  std::error_code ec;
  std::string why;
  EXPECT_EQ(bind_control_socket(path_, ec, why), -1);
  EXPECT_EQ(ec, std::errc::not_a_directory);
  EXPECT_EQ(why, dir_ + " is not a directory");
}

TEST_F(ControlSocket, RefusesADirectoryOfAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a directory away";
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  ASSERT_EQ(::chown(dir_.c_str(), 65534, 65534), 0);
  std::error_code ec;
  std::string why;
  EXPECT_EQ(bind_control_socket(path_, ec, why), -1);
  EXPECT_EQ(ec, std::errc::permission_denied);
  EXPECT_EQ(why, "the directory " + dir_ + " belongs to another user (uid 65534)");
}

TEST_F(ControlSocket, CreatesOnlyTheLastDirectory) {
  std::error_code ec;
  std::string why;
  EXPECT_EQ(bind_control_socket(dir_ + "/deeper/control.sock", ec, why), -1);
  EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
  EXPECT_NE(why.find("cannot create the directory " + dir_ + "/deeper"), std::string::npos) << why;
}

TEST_F(ControlSocket, RefusesWhenALiveSupervisorAnswers) {
  std::error_code ec;
  int live = keep(bind_control_socket(path_, ec));
  ASSERT_GE(live, 0);
  std::string why;
  EXPECT_EQ(bind_control_socket(path_, ec, why), -1);
  EXPECT_EQ(ec, std::errc::address_in_use);
  EXPECT_EQ(why, "another supervisor is running on " + path_);
  // The live one still has its socket.
  int client = keep(connect_control_socket(path_, ec));
  ASSERT_GE(client, 0) << ec.message();
  EXPECT_GE(keep(accept_one(live)), 0);
}

TEST_F(ControlSocket, ReplacesTheSocketOfASupervisorThatIsGone) {
  std::error_code ec;
  int old = bind_control_socket(path_, ec);
  ASSERT_GE(old, 0);
  ::close(old);  // the file stays, with nobody listening
  ASSERT_TRUE(S_ISSOCK(mode_of(path_)));
  int fd = keep(bind_control_socket(path_, ec));
  ASSERT_GE(fd, 0) << ec.message();
  EXPECT_EQ(mode_of(path_) & 07777, 0600u);
  ASSERT_GE(keep(connect_control_socket(path_, ec)), 0) << ec.message();
  EXPECT_GE(keep(accept_one(fd)), 0);
}

TEST_F(ControlSocket, TwoSupervisorsFindingAStaleSocketTakeTurnsAndTheSecondRefuses) {
  std::error_code ec;
  int old = bind_control_socket(path_, ec);
  ASSERT_GE(old, 0);
  ::close(old);  // stale: the file stays, with nobody listening
  // The first supervisor is between its look at the path and its listen(): it holds the
  // directory's lock.
  const int dir = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_EQ(::flock(dir, LOCK_EX), 0);
  std::promise<std::pair<int, std::error_code>> done;
  auto second = done.get_future();
  std::thread starting([&] {
    std::error_code e;
    const int fd = bind_control_socket(path_, e);
    done.set_value({fd, e});
  });
  EXPECT_EQ(second.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "the second looked at the path while the first was replacing the stale socket";
  // The first replaces the stale socket, then lets go.
  ASSERT_EQ(::unlink(path_.c_str()), 0);
  const int first = keep(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
  const bool bound = ::bind(first, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                     ::listen(first, 8) == 0;
  ::close(dir);
  starting.join();
  ASSERT_TRUE(bound) << std::strerror(errno);
  const auto [fd, e] = second.get();
  EXPECT_EQ(keep(fd), -1);
  EXPECT_EQ(e, std::errc::address_in_use);
  ASSERT_GE(keep(connect_control_socket(path_, ec)), 0) << "the first lost its socket";
  EXPECT_GE(keep(accept_one(first)), 0);
}

TEST_F(ControlSocket, LeavesAFileThatIsNotASocketAlone) {
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  int file = ::open(path_.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(file, 0);
  ::close(file);
  std::error_code ec;
  std::string why;
  EXPECT_EQ(bind_control_socket(path_, ec, why), -1);
  EXPECT_EQ(ec, std::errc::file_exists);
  EXPECT_EQ(why, path_ + " exists and is not a socket");
  EXPECT_TRUE(S_ISREG(mode_of(path_)));
}

TEST_F(ControlSocket, TakesAPathOf107BytesButNot108) {
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  std::string longest = dir_ + "/";
  longest.append(107 - longest.size(), 's');
  std::error_code ec;
  EXPECT_GE(keep(bind_control_socket(longest, ec)), 0) << ec.message();
  EXPECT_GE(keep(connect_control_socket(longest, ec)), 0) << ec.message();

  std::string too_long = longest + "x";
  std::string why;
  EXPECT_EQ(bind_control_socket(too_long, ec, why), -1);
  EXPECT_EQ(ec, std::errc::filename_too_long);
  EXPECT_NE(why.find("too long (at most 107 bytes)"), std::string::npos) << why;
  EXPECT_EQ(connect_control_socket(too_long, ec), -1);
  EXPECT_EQ(ec, std::errc::filename_too_long);
  EXPECT_EQ(bind_control_socket("", ec), -1);
  EXPECT_EQ(ec, std::errc::invalid_argument);
}

TEST_F(ControlSocket, ConnectingWhereNobodyRunsFails) {
  std::error_code ec;
  EXPECT_EQ(connect_control_socket(path_, ec), -1);
  EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
}

TEST_F(ControlSocket, AnotherUserCannotConnect) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
  std::error_code ec;
  ASSERT_GE(keep(bind_control_socket(path_, ec)), 0) << ec.message();
  // The root directory is the test's own mkdtemp (0700); open it, so that only the socket's
  // directory and the socket itself keep the other user out.
  ASSERT_EQ(::chmod(root_.c_str(), 0755), 0);
  std::string path = path_;
  int status = as_nobody([&] {
    std::error_code child_ec;
    int fd = connect_control_socket(path, child_ec);
    if (fd >= 0) return 1;
    return child_ec == std::errc::permission_denied ? 0 : 2;
  });
  EXPECT_EQ(status, 0) << "1: it connected, 2: another error";
}

TEST_F(ControlSocket, PeerIsOwnerRefusesAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
  // A socket everyone may reach, bound by hand: only the credential check is left.
  ASSERT_EQ(::chmod(root_.c_str(), 0755), 0);
  std::string path = root_ + "/open.sock";
  int listener = keep(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0777), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  int status = as_nobody([&] {
    std::error_code child_ec;
    return connect_control_socket(path, child_ec) >= 0 ? 0 : 1;
  });
  ASSERT_EQ(status, 0);
  // The connection waits in the backlog; its credentials are those of the connect.
  int server_side = keep(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_GE(server_side, 0);
  EXPECT_FALSE(peer_is_owner(server_side));
}

// A supervisor played by a thread: takes one connection, reads the request line, sends the
// canned answer and closes.
class ControlClient : public ControlSocket {
 protected:
  void serve(std::string answer) {
    std::error_code ec;
    int listener = keep(bind_control_socket(path_, ec));
    ASSERT_GE(listener, 0) << ec.message();
    command_.control = path_;
    server_ = std::thread([this, listener, answer = std::move(answer)] {
      int fd = accept_one(listener);
      if (fd < 0) return;
      char c;
      while (::read(fd, &c, 1) == 1 && c != '\n')
        received_ += c;
      std::string_view rest = answer;
      while (!rest.empty()) {
        ssize_t n = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
        if (n <= 0) break;
        rest.remove_prefix(static_cast<std::size_t>(n));
      }
      ::close(fd);
    });
  }
  int run() {
    int status = run_client(command_, out_, err_);
    if (server_.joinable()) server_.join();
    return status;
  }
  ~ControlClient() override {
    if (server_.joinable()) server_.join();
  }

  parsed_command command_;
  std::thread server_;
  std::string received_;
  std::ostringstream out_, err_;
};

TEST_F(ControlClient, StatusPrintsTheTable) {
  supervisor_status status = sample_status();
  command_.what = parsed_command::verb::status;
  serve(encode_result(true, "", &status));
  EXPECT_EQ(run(), 0);
  EXPECT_EQ(received_ + '\n', encode_request({.what = request::verb::status}));
  EXPECT_EQ(out_.str(), format_status_table(status));
  EXPECT_EQ(err_.str(), "");
}

TEST_F(ControlClient, StatusJsonPrintsTheJsonAlone) {
  supervisor_status status = sample_status();
  command_.what = parsed_command::verb::status;
  command_.json = true;
  serve(encode_result(true, "all well", &status));
  EXPECT_EQ(run(), 0);
  EXPECT_EQ(out_.str(), format_status_json(status));
}

TEST_F(ControlClient, ReloadPrintsProgressThenTheRefusal) {
  command_.what = parsed_command::verb::reload;
  command_.wait = true;
  command_.program = "web";
  command_.lines = 5;  // not a field of reload: not sent
  serve(encode_progress("starting worker 0 (generation 8)") + encode_progress("worker 0 ready") +
        encode_result(false, "worker 1 was not ready within 30s: reload rolled back") +
        encode_progress("after the result: not read"));
  EXPECT_EQ(run(), 1);
  EXPECT_EQ(received_, R"({"command":"reload","wait":true,"program":"web"})");
  EXPECT_EQ(out_.str(), "starting worker 0 (generation 8)\nworker 0 ready\n");
  EXPECT_EQ(err_.str(), "lameduck: worker 1 was not ready within 30s: reload rolled back\n");
}

TEST_F(ControlClient, LogsPrintsTheLinesRawThenTheMessage) {
  command_.what = parsed_command::verb::logs;
  command_.lines = 2;
  command_.worker = 3;
  serve(encode_log_line("[3] GET / 200") + encode_log_line("[3] \x1b[1mbold") +
        encode_result(true, "2 lines"));
  EXPECT_EQ(run(), 0);
  EXPECT_EQ(received_, R"({"command":"logs","lines":2,"follow":false,"worker":3})");
  EXPECT_EQ(out_.str(), "[3] GET / 200\n[3] \x1b[1mbold\n2 lines\n");
}

TEST_F(ControlClient, ScaleSendsTheInstances) {
  command_.what = parsed_command::verb::scale;
  command_.instances = 8;
  serve(encode_result(true, "web: 8 instances"));
  EXPECT_EQ(run(), 0);
  EXPECT_EQ(received_, R"({"command":"scale","instances":8})");
  EXPECT_EQ(out_.str(), "web: 8 instances\n");
}

TEST_F(ControlClient, AnEndWithoutAResultIsAnError) {
  command_.what = parsed_command::verb::stop;
  serve(encode_progress("stopping 4 workers"));
  EXPECT_EQ(run(), 1);
  EXPECT_EQ(out_.str(), "stopping 4 workers\n");
  EXPECT_EQ(err_.str(), "lameduck: the supervisor closed the connection before answering\n");
}

TEST_F(ControlClient, AnAnswerItCannotReadIsAnError) {
  command_.what = parsed_command::verb::upgrade;
  serve("{\"type\":\"result\",\"ok\":\"yes\"}\n");
  EXPECT_EQ(run(), 1);
  EXPECT_EQ(received_, R"({"command":"upgrade"})");
  EXPECT_NE(err_.str().find("does not understand"), std::string::npos) << err_.str();
}

TEST_F(ControlClient, SaysSoWhenNoSupervisorRuns) {
  command_.what = parsed_command::verb::status;
  command_.control = path_;
  EXPECT_EQ(run(), 1);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(),
            "lameduck: no supervisor is running on " + path_ + " (start one with lameduck run)\n");
}

TEST_F(ControlClient, RunAndHelpAreNotSubcommands) {
  command_.what = parsed_command::verb::run;
  EXPECT_EQ(run(), 2);
  command_.what = parsed_command::verb::help;
  EXPECT_EQ(run(), 2);
}

TEST(ControlClientRequest, CarriesOnlyTheFieldsOfItsVerb) {
  parsed_command c;
  c.what = parsed_command::verb::stop;
  c.program = "web";
  c.wait = true;
  EXPECT_EQ(make_request(c), (request{.what = request::verb::stop}));
  c.what = parsed_command::verb::logs;
  c.follow = true;
  c.lines = 7;
  EXPECT_EQ(make_request(c),
            (request{.what = request::verb::logs, .follow = true, .lines = 7, .program = "web"}));
}

}  // namespace
}  // namespace lameduck::supervisor
