// The client side of the control protocol: `lameduck status`, `reload`, `logs`...
#include "client.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <system_error>
#include <utility>

namespace lameduck::supervisor {
namespace {

// An answer line longer than this is not one the supervisor would send: a status of 1024
// workers is about 200 KiB, and a log line is cut long before it.
constexpr std::size_t max_answer_bytes = 16 * 1024 * 1024;

// The descriptor, closed however the client returns.
class descriptor {
 public:
  explicit descriptor(int fd) : fd_(fd) {}
  ~descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  descriptor(const descriptor&) = delete;
  descriptor& operator=(const descriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    // MSG_NOSIGNAL: a supervisor that went away is an error to report, not a SIGPIPE death.
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Whether a failed connect means that nobody runs there (as opposed to, say, EACCES).
bool nobody_there(const std::error_code& ec) {
  return ec == std::errc::no_such_file_or_directory || ec == std::errc::connection_refused ||
         ec == std::errc::not_a_directory;
}

}  // namespace

request make_request(const parsed_command& c) {
  request r;
  switch (c.what) {
    case parsed_command::verb::reload:
      r.what = request::verb::reload;
      r.wait = c.wait;
      r.program = c.program;
      break;
    case parsed_command::verb::stop:
      r.what = request::verb::stop;
      break;
    case parsed_command::verb::scale:
      r.what = request::verb::scale;
      r.instances = c.instances;
      r.program = c.program;
      break;
    case parsed_command::verb::upgrade:
      r.what = request::verb::upgrade;
      break;
    case parsed_command::verb::logs:
      r.what = request::verb::logs;
      r.lines = c.lines;
      r.follow = c.follow;
      r.worker = c.worker;
      r.program = c.program;
      break;
    default:
      r.what = request::verb::status;
      break;
  }
  return r;
}

int run_client(const parsed_command& c) {
  return run_client(c, std::cout, std::cerr);
}

int run_client(const parsed_command& c, std::ostream& out, std::ostream& err) {
  if (c.what == parsed_command::verb::run || c.what == parsed_command::verb::help) {
    err << "lameduck: not a subcommand for a running supervisor\n";
    return 2;
  }
  std::error_code ec;
  descriptor fd(connect_control_socket(c.control, ec));
  if (fd.get() < 0) {
    if (nobody_there(ec)) {
      err << "lameduck: no supervisor is running on " << c.control
          << " (start one with lameduck run)\n";
    } else {
      err << "lameduck: cannot reach the supervisor on " << c.control << ": " << ec.message()
          << '\n';
    }
    return 1;
  }
  // No shutdown(SHUT_WR) after the request: a supervisor may take the end of the stream as
  // the client leaving, which is how `logs -f` ends.
  if (!send_all(fd.get(), encode_request(make_request(c)))) {
    err << "lameduck: cannot send to the supervisor on " << c.control << ": "
        << std::strerror(errno) << '\n';
    return 1;
  }

  std::string buffer;
  std::size_t start = 0;  // the first byte of buffer not yet taken as a line
  char chunk[64 * 1024];
  for (;;) {
    for (std::size_t newline; (newline = buffer.find('\n', start)) != std::string::npos;) {
      std::string_view line(buffer.data() + start, newline - start);
      start = newline + 1;
      answer_line a;
      try {
        a = decode_answer(line);
      } catch (const protocol_error& e) {
        err << "lameduck: the supervisor sent an answer this lameduck does not understand: "
            << e.what() << '\n';
        return 1;
      }
      switch (a.what) {
        case answer_line::kind::progress:
        case answer_line::kind::log:
          // Flushed line by line: progress and `logs -f` are read as they happen.
          out << a.text << '\n' << std::flush;
          break;
        case answer_line::kind::result:
          if (a.status)
            out << (c.json ? format_status_json(*a.status) : format_status_table(*a.status));
          if (!a.ok) {
            out << std::flush;
            err << "lameduck: " << a.text << '\n';
            return 1;
          }
          // With --json, standard output holds the JSON alone, for jq and scripts.
          if (!a.text.empty() && !(c.json && a.status)) out << a.text << '\n';
          out << std::flush;
          return 0;
      }
    }
    buffer.erase(0, start);
    start = 0;
    if (buffer.size() > max_answer_bytes) {
      err << "lameduck: the supervisor sent an answer line longer than " << max_answer_bytes
          << " bytes\n";
      return 1;
    }
    ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err << "lameduck: lost the connection to the supervisor: " << std::strerror(errno) << '\n';
      return 1;
    }
    if (n == 0) {
      err << "lameduck: the supervisor closed the connection before answering\n";
      return 1;
    }
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

}  // namespace lameduck::supervisor
