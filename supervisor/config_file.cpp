// The TOML configuration file (examples/supervisor/lameduck.toml shows and explains its shape):
// read into run_config with every mistake reported as "FILE:LINE: problem". Unknown keys are
// errors, so that a misspelt key is not silently a default.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>

#include <toml++/toml.h>

#include "command_line.hpp"
#include "config_values.hpp"

namespace lameduck::supervisor {

namespace {

// A configuration file larger than this is not one (a binary or a log given by mistake).
constexpr std::size_t max_file_size = 1 << 20;

// Where values come from, for the error messages.
class reader {
 public:
  explicit reader(std::string_view file) : file_(file) {}

  [[noreturn]] void fail(const toml::source_region& where, const std::string& what) const {
    std::string message(file_);
    // Appended piece by piece: GCC 12 warns falsely (-Wrestrict, its bug 105329) about
    // ":" + std::to_string(...) in a release build.
    if (where.begin.line != 0) message.append(":").append(std::to_string(where.begin.line));
    throw config_error(one_line(message.append(": ").append(what)));
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw config_error(one_line(std::string(file_) + ": " + what));
  }

  std::string string(const toml::node& node, std::string_view key) const {
    if (const auto* s = node.as_string()) return s->get();
    fail(node.source(), std::string(key) + " must be a string");
  }

  std::int64_t integer(const toml::node& node, std::string_view key, std::int64_t min,
                       std::int64_t max) const {
    const auto* i = node.as_integer();
    if (i == nullptr) fail(node.source(), std::string(key) + " must be an integer");
    if (i->get() < min) {
      fail(node.source(), std::string(key) + " = " + std::to_string(i->get()) +
                              (min == 0 ? " is negative" : " is less than " + std::to_string(min)));
    }
    if (i->get() > max) {
      fail(node.source(), std::string(key) + " = " + std::to_string(i->get()) + " is more than " +
                              std::to_string(max));
    }
    return i->get();
  }

  // The int fields: nothing negative means anything in the file, and validate() checks the
  // finer ranges for the command line and the file alike.
  int count(const toml::node& node, std::string_view key) const {
    return static_cast<int>(integer(node, key, 0, std::numeric_limits<int>::max()));
  }

  // A string parsed by one of config_values' parsers, its bad_value placed at the node.
  template <typename Parser>
  auto parsed(const toml::node& node, std::string_view key, Parser parse) const {
    try {
      return parse(string(node, key));
    } catch (const bad_value& e) {
      fail(node.source(), std::string(key) + ": " + e.what());
    }
  }

  // "5s", or an integer number of milliseconds.
  milliseconds duration(const toml::node& node, std::string_view key) const {
    if (node.is_integer()) return milliseconds{integer(node, key, 0, max_duration.count())};
    if (!node.is_string()) {
      fail(node.source(),
           std::string(key) + " must be a duration like \"5s\" or an integer of milliseconds");
    }
    return parsed(node, key, parse_duration);
  }

  std::vector<std::string> strings(const toml::node& node, std::string_view key) const {
    const auto* array = node.as_array();
    if (array == nullptr) fail(node.source(), std::string(key) + " must be an array of strings");
    std::vector<std::string> out;
    for (const auto& element : *array)
      out.push_back(string(element, key));
    return out;
  }

 private:
  std::string_view file_;
};

void read_restart(const reader& in, const toml::node& node, backoff_policy& restart) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    in.fail(node.source(), "restart must be a table: { delay = \"100ms\", factor = 2.0, ... }");
  }
  for (const auto& [key, value] : *table) {
    std::string_view k = key.str();
    if (k == "delay") {
      restart.initial = in.duration(value, "restart.delay");
    } else if (k == "factor") {
      if (value.is_integer()) {
        restart.factor = static_cast<double>(in.integer(value, "restart.factor", 1, 1'000'000));
      } else if (const auto* f = value.as_floating_point();
                 f != nullptr && std::isfinite(f->get())) {
        restart.factor = f->get();
      } else {
        in.fail(value.source(), "restart.factor must be a number, e.g. 2.0");
      }
    } else if (k == "max") {
      restart.max = in.duration(value, "restart.max");
    } else if (k == "reset") {
      restart.stable_after = in.duration(value, "restart.reset");
    } else {
      in.fail(key.source(), "unknown key " + quote(k) + " in [program.restart]");
    }
  }
}

program_config read_program(const reader& in, const toml::node& node, std::string_view where) {
  const auto* table = node.as_table();
  if (table == nullptr) in.fail(node.source(), std::string(where) + " must be a table");
  program_config p;
  bool has_command = false;
  const toml::node* ready = nullptr;
  const toml::node* ready_fd = nullptr;
  const toml::node* ready_after = nullptr;
  for (const auto& [key, value] : *table) {
    std::string_view k = key.str();
    if (k == "name") {
      p.name = in.string(value, k);
    } else if (k == "command") {
      p.command = in.strings(value, k);
      if (p.command.empty()) in.fail(value.source(), "command is empty");
      has_command = true;
    } else if (k == "instances") {
      p.instances = in.count(value, k);
    } else if (k == "listen") {
      p.listen.clear();
      const auto* array = value.as_array();
      if (array == nullptr) in.fail(value.source(), "listen must be an array of strings");
      for (const auto& element : *array)
        p.listen.push_back(in.parsed(element, k, parse_listen_spec));
    } else if (k == "environment") {
      const auto* env = value.as_table();
      if (env == nullptr) {
        in.fail(value.source(), "environment must be a table: { NAME = \"value\", ... }");
      }
      for (const auto& [name, setting] : *env) {
        p.environment[std::string(name.str())] =
            in.string(setting, "environment." + std::string(name.str()));
      }
    } else if (k == "directory") {
      p.directory = in.string(value, k);
    } else if (k == "ready") {
      p.readiness = in.parsed(value, k, parse_readiness);
      ready = &value;
    } else if (k == "ready_fd") {
      p.ready_fd = in.count(value, k);
      ready_fd = &value;
    } else if (k == "ready_after") {
      p.ready_after = in.duration(value, k);
      ready_after = &value;
    } else if (k == "ready_timeout") {
      p.ready_timeout = in.duration(value, k);
    } else if (k == "stop_signal") {
      p.stop_signal = value.is_integer() ? in.count(value, k) : in.parsed(value, k, parse_signal);
    } else if (k == "kill_timeout") {
      p.kill_timeout = in.duration(value, k);
    } else if (k == "watchdog") {
      p.watchdog = in.duration(value, k);
    } else if (k == "max_memory") {
      p.max_memory = value.is_integer()
                         ? static_cast<std::uint64_t>(
                               in.integer(value, k, 0, std::numeric_limits<std::int64_t>::max()))
                         : in.parsed(value, k, parse_size);
    } else if (k == "surge") {
      p.surge = in.count(value, k);
    } else if (k == "max_unavailable") {
      p.max_unavailable = in.count(value, k);
    } else if (k == "restart") {
      read_restart(in, value, p.restart);
    } else if (k == "log_dir") {
      p.log_dir = in.string(value, k);
    } else if (k == "log_lines") {
      p.log_lines = static_cast<std::size_t>(
          in.integer(value, k, 0, std::numeric_limits<std::int64_t>::max()));
    } else {
      in.fail(key.source(), "unknown key " + quote(k) + " in " + std::string(where));
    }
  }
  if (!has_command) {
    in.fail(node.source(), std::string(where) +
                               " has no command (command = [\"/path/to/program\", \"arg\", ...])");
  }
  // The same rules as the flags: ready_fd means fd, ready_after means after, and neither may
  // contradict an explicit ready.
  if (ready_fd != nullptr && ready_after != nullptr && ready == nullptr) {
    in.fail(ready_after->source(), "ready_fd and ready_after ask for two readiness modes");
  }
  if (ready == nullptr && ready_fd != nullptr) p.readiness = readiness_mode::fd;
  if (ready == nullptr && ready_after != nullptr) p.readiness = readiness_mode::after;
  if (ready_fd != nullptr && p.readiness != readiness_mode::fd) {
    in.fail(ready_fd->source(), "ready_fd needs ready = \"fd\"");
  }
  if (ready_after != nullptr && p.readiness != readiness_mode::after) {
    in.fail(ready_after->source(), "ready_after needs ready = \"after\"");
  }
  return p;
}

}  // namespace

run_config parse_config(std::string_view text, std::string_view file_name) {
  reader in(file_name);
  toml::table root;
  try {
    root = toml::parse(text, file_name);
  } catch (const toml::parse_error& e) {
    in.fail(e.source(), std::string(e.description()));
  }
  run_config config;
  bool has_program = false;
  for (const auto& [key, value] : root) {
    std::string_view k = key.str();
    if (k == "control") {
      config.control = in.string(value, k);
    } else if (k == "log_format") {
      config.log_format = in.parsed(value, k, parse_log_format);
    } else if (k == "metrics_listen") {
      config.metrics_listen = in.string(value, k);
    } else if (k == "program") {
      has_program = true;
      if (const auto* array = value.as_array()) {
        if (array->empty()) in.fail(value.source(), "program is an empty array");
        for (const auto& element : *array) {
          config.programs.push_back(read_program(in, element, "[[program]]"));
        }
      } else {
        config.programs.push_back(read_program(in, value, "[program]"));
      }
    } else {
      in.fail(key.source(),
              "unknown key " + quote(k) +
                  " (the top level has control, log_format, metrics_listen and program)");
    }
  }
  if (!has_program) in.fail("no [program] table (or [[program]] tables) to run");
  return config;
}

run_config load_config_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw config_error(one_line(path + ": " + std::strerror(errno)));
  std::string text;
  char buffer[16384];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      throw config_error(one_line(path + ": " + std::strerror(error)));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > max_file_size) {
      ::close(fd);
      throw config_error(one_line(path + ": larger than 1 MiB, not a configuration file"));
    }
  }
  ::close(fd);
  return parse_config(text, path);
}

}  // namespace lameduck::supervisor
