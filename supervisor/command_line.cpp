// The command line: CLI11 finds the flags and subcommands, this file gives them meaning, lays
// them over a --config file, checks the result and turns every mistake into one line.
#include "command_line.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <limits>
#include <set>
#include <thread>

#include <CLI/CLI.hpp>

#include "config_values.hpp"
#include "net/address.hpp"

namespace lameduck::supervisor {

namespace {

constexpr std::string_view run_usage = "lameduck run [options] -- PROGRAM [ARGS...]";
// More workers than this is a typo, not a plan (and each has descriptors and a log buffer).
constexpr int max_instances = 1024;
// Descriptors above this may exceed the workers' RLIMIT_NOFILE soft limit (1024 by default).
constexpr int max_ready_fd = 1023;
// Lines kept per worker for `lameduck logs`: a million is already hundreds of megabytes.
constexpr std::size_t max_log_lines = 1'000'000;
// sockaddr_un::sun_path holds 108 bytes with the terminating NUL.
constexpr std::size_t max_unix_path = 107;
constexpr int max_signal = 64;  // SIGRTMAX on Linux
// A program's name appears in log file names and in --program: no '/', no spaces.
constexpr std::size_t max_name = 64;

[[noreturn]] void fail(const std::string& message) {
  throw config_error(one_line(message));
}

int online_cores() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = static_cast<long>(std::thread::hardware_concurrency());
  return static_cast<int>(std::clamp<long>(n, 1, max_instances));
}

bool has_nul(std::string_view text) {
  return text.find('\0') != std::string_view::npos;
}

bool is_unix_path(std::string_view address) {
  return !address.empty() && (address.front() == '/' || address.front() == '.');
}

bool valid_program_name(std::string_view name) {
  if (name.empty() || name.size() > max_name) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// systemd's fdname_is_valid(): printable ASCII without ':' (the LISTEN_FDNAMES separator).
bool valid_fd_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return c >= 0x20 && c < 0x7f && c != ':'; });
}

// Messages name the flag and the file's key: validate() cannot know which one set the value.
std::string field(std::string_view flag, std::string_view key) {
  return std::string(flag) + " (" + std::string(key) + ")";
}

void check_duration(const std::string& where, std::string_view flag, std::string_view key,
                    milliseconds d) {
  if (d.count() < 0) fail(where + field(flag, key) + " is negative");
  if (d > max_duration) {
    fail(where + field(flag, key) + " " + format_duration(d) + " is longer than " +
         format_duration(max_duration));
  }
}

void check_count(const std::string& where, std::string_view flag, std::string_view key, int value,
                 int min, int max) {
  if (value < min) {
    fail(where + field(flag, key) + " is " + std::to_string(value) + ", less than " +
         std::to_string(min));
  }
  if (value > max) {
    fail(where + field(flag, key) + " is " + std::to_string(value) + ", more than " +
         std::to_string(max));
  }
}

// The listening address in a form where two spellings of one socket compare equal; empty for
// those that may be listed twice (port 0: each bind gets its own port).
std::string check_listen(const std::string& where, const listen_spec& spec) {
  std::string flag = where + field("--listen", "listen") + " " + quote(spec.address);
  if (!spec.name.empty() && !valid_fd_name(spec.name)) {
    fail(where + field("--listen", "listen") + " name " + quote(spec.name) +
         " is not valid in LISTEN_FDNAMES (printable, no ':', at most 255 bytes)");
  }
  if (is_unix_path(spec.address)) {
    if (has_nul(spec.address)) fail(flag + ": a path cannot hold a NUL byte");
    if (spec.address.size() > max_unix_path) {
      fail(flag + ": a Unix socket path has at most " + std::to_string(max_unix_path) + " bytes");
    }
    return "unix:" + spec.address;
  }
  std::error_code ec;
  auto address = lameduck::detail::parse_listen_address(spec.address, ec);
  if (ec) {
    fail(flag + " is not HOST:PORT (HOST an IPv4 address, [IPv6], localhost or *) or a Unix " +
         "socket path (/... or ./...)");
  }
  auto port = address.any.sa_family == AF_INET6 ? address.v6.sin6_port : address.v4.sin_port;
  if (port == 0) return {};
  return lameduck::detail::format_address(&address.any);
}

void validate_program(program_config& p, const std::string& where,
                      std::map<std::string, std::string>& addresses) {
  if (!valid_program_name(p.name)) {
    fail(where + field("--name", "name") + " " + quote(p.name) +
         " is not a name (letters, digits, '.', '_', '-'; at most 64)");
  }
  if (p.command.empty()) fail(where + "no program given (" + std::string(run_usage) + ")");
  if (p.command.front().empty()) fail(where + "the program to run is an empty string");
  for (const auto& argument : p.command) {
    if (has_nul(argument)) fail(where + "the command argument " + quote(argument) + " holds a NUL");
  }

  check_count(where, "--instances", "instances", p.instances, 0, max_instances);
  if (p.instances == 0) p.instances = online_cores();
  check_count(where, "--surge", "surge", p.surge, 1, std::numeric_limits<int>::max());
  check_count(where, "--max-unavailable", "max_unavailable", p.max_unavailable, 1,
              std::numeric_limits<int>::max());

  check_duration(where, "--restart-delay", "restart.delay", p.restart.initial);
  check_duration(where, "--restart-max", "restart.max", p.restart.max);
  check_duration(where, "--restart-reset", "restart.reset", p.restart.stable_after);
  // Written so that NaN fails too.
  if (!(p.restart.factor >= 1.0 && p.restart.factor <= 1e6)) {
    fail(where + field("--restart-factor", "restart.factor") + " is " +
         std::to_string(p.restart.factor) + "; it must be at least 1 (1: a constant delay)");
  }
  if (p.restart.initial > p.restart.max) {
    fail(where + field("--restart-delay", "restart.delay") + " " +
         format_duration(p.restart.initial) + " is longer than " +
         field("--restart-max", "restart.max") + " " + format_duration(p.restart.max));
  }

  std::set<std::string> listener_names;
  for (const auto& spec : p.listen) {
    auto key = check_listen(where, spec);
    if (!spec.name.empty() && !listener_names.insert(spec.name).second) {
      fail(where + field("--listen", "listen") + ": two listeners are named " + quote(spec.name));
    }
    if (key.empty()) continue;
    auto [it, inserted] = addresses.emplace(key, p.name);
    if (!inserted) {
      fail(where + field("--listen", "listen") + " " + quote(spec.address) + " is listed twice (" +
           (it->second == p.name ? "in one program" : "also in program " + quote(it->second)) +
           ")");
    }
  }

  check_duration(where, "--ready-timeout", "ready_timeout", p.ready_timeout);
  if (p.ready_timeout.count() == 0) {
    fail(where + field("--ready-timeout", "ready_timeout") + " must be longer than 0");
  }
  check_duration(where, "--ready-after", "ready_after", p.ready_after);
  const int first_free_fd = 3 + static_cast<int>(p.listen.size());
  if (p.readiness == readiness_mode::fd) {
    if (p.ready_fd < 0) p.ready_fd = first_free_fd;
    if (p.ready_fd < first_free_fd) {
      std::string taken = p.listen.empty() ? "is a standard stream (0 to 2)"
                                           : "clashes with the passed sockets (descriptors 3 to " +
                                                 std::to_string(first_free_fd - 1) + ")";
      fail(where + field("--ready-fd", "ready_fd") + " " + std::to_string(p.ready_fd) + " " +
           taken + "; use " + std::to_string(first_free_fd) + " or more");
    }
    if (p.ready_fd > max_ready_fd) {
      fail(where + field("--ready-fd", "ready_fd") + " " + std::to_string(p.ready_fd) +
           " is more than " + std::to_string(max_ready_fd));
    }
  }
  if (p.readiness == readiness_mode::after) {
    if (p.ready_after.count() == 0) {
      fail(where + field("--ready-after", "ready_after") +
           " is needed (and above 0) with --ready after (ready = \"after\")");
    }
    if (p.ready_after >= p.ready_timeout) {
      fail(where + field("--ready-after", "ready_after") + " " + format_duration(p.ready_after) +
           " is not shorter than " + field("--ready-timeout", "ready_timeout") + " " +
           format_duration(p.ready_timeout));
    }
  }

  if (p.stop_signal < 1 || p.stop_signal > max_signal) {
    fail(where + field("--stop-signal", "stop_signal") + " " + std::to_string(p.stop_signal) +
         " is not a signal (1 to " + std::to_string(max_signal) + ")");
  }
  if (p.stop_signal == SIGKILL || p.stop_signal == SIGSTOP) {
    fail(where + field("--stop-signal", "stop_signal") + " cannot be " +
         (p.stop_signal == SIGKILL ? "KILL" : "STOP") +
         ": a worker must be able to catch it to drain (TERM is the default)");
  }
  check_duration(where, "--kill-timeout", "kill_timeout", p.kill_timeout);
  check_duration(where, "--watchdog", "watchdog", p.watchdog);

  if (p.log_lines > max_log_lines) {
    fail(where + field("--log-lines", "log_lines") + " " + std::to_string(p.log_lines) +
         " is more than " + std::to_string(max_log_lines));
  }
  if (has_nul(p.log_dir)) fail(where + field("--log-dir", "log_dir") + " holds a NUL");
  if (has_nul(p.directory)) fail(where + field("--directory", "directory") + " holds a NUL");
  for (const auto& [name, value] : p.environment) {
    if (name.empty() || name.find('=') != std::string::npos || has_nul(name)) {
      fail(where + field("--env", "environment") + ": " + quote(name) +
           " is not a variable name (not empty, no '=' or NUL)");
    }
    if (has_nul(value)) {
      fail(where + field("--env", "environment") + ": the value of " + quote(name) +
           " holds a NUL");
    }
  }
}

// `run`'s flags that set one field of the program; they are applied over a --config file's
// program only when given.
struct program_flag {
  const char* name = "";
  const char* value_name = "";
  const char* help = "";
  std::function<void(program_config&, const std::string&)> apply;
  std::string value;
  CLI::Option* option = nullptr;
};

std::vector<program_flag> make_program_flags() {
  constexpr auto int_max = std::numeric_limits<int>::max();
  auto count = [](int program_config::*member) {
    return [member](program_config& p, const std::string& v) {
      p.*member = static_cast<int>(parse_integer(v, 0, int_max));
    };
  };
  auto duration = [](milliseconds program_config::*member) {
    return [member](program_config& p, const std::string& v) { p.*member = parse_duration(v); };
  };
  auto backoff = [](milliseconds backoff_policy::*member) {
    return [member](program_config& p, const std::string& v) {
      p.restart.*member = parse_duration(v);
    };
  };
  auto text = [](std::string program_config::*member) {
    return [member](program_config& p, const std::string& v) { p.*member = v; };
  };
  std::vector<program_flag> flags;
  auto add = [&flags](const char* name, const char* value_name, const char* help,
                      std::function<void(program_config&, const std::string&)> apply) {
    program_flag flag;
    flag.name = name;
    flag.value_name = value_name;
    flag.help = help;
    flag.apply = std::move(apply);
    flags.push_back(std::move(flag));
  };
  add("--name", "NAME", "A short name for logs and status (default: app)",
      text(&program_config::name));
  add("--instances", "N", "How many workers (0 or absent: one per online core)",
      count(&program_config::instances));
  add("--directory", "DIR", "Working directory of the workers", text(&program_config::directory));
  add("--ready-fd", "N",
      "The ready pipe's descriptor in the worker (implies --ready fd; default: "
      "after the sockets)",
      count(&program_config::ready_fd));
  add("--ready-after", "DURATION",
      "Count a worker as ready this long after its start (implies --ready after)",
      duration(&program_config::ready_after));
  add("--ready-timeout", "DURATION", "Kill a worker not ready within this (default: 30s)",
      duration(&program_config::ready_timeout));
  add("--stop-signal", "SIG",
      "The signal asking a worker to drain: TERM, INT, QUIT, HUP, USR1, USR2 or a "
      "number (default: TERM)",
      [](program_config& p, const std::string& v) { p.stop_signal = parse_signal(v); });
  add("--kill-timeout", "DURATION",
      "Kill a worker still alive this long after its stop signal (default: 30s)",
      duration(&program_config::kill_timeout));
  add("--watchdog", "DURATION", "WATCHDOG_USEC for the workers (default: 0, off)",
      duration(&program_config::watchdog));
  add("--max-memory", "SIZE",
      "Replace a worker whose resident memory exceeds this, e.g. 512M (default: 0, "
      "no limit)",
      [](program_config& p, const std::string& v) { p.max_memory = parse_size(v); });
  add("--surge", "N", "Replacements a reload starts at once (default: 1)",
      count(&program_config::surge));
  add("--max-unavailable", "N",
      "Old workers a reload stops at once; each replacement counts from its start, as it stops one "
      "when ready, so this also caps --surge (default: 1)",
      count(&program_config::max_unavailable));
  add("--restart-delay", "DURATION",
      "The first delay before restarting a crashed worker (default: 100ms)",
      backoff(&backoff_policy::initial));
  add("--restart-factor", "X",
      "Each further crash in a row multiplies the delay by this (default: 2, >= 1)",
      [](program_config& p, const std::string& v) { p.restart.factor = parse_number(v); });
  add("--restart-max", "DURATION", "The longest restart delay (default: 30s)",
      backoff(&backoff_policy::max));
  add("--restart-reset", "DURATION", "A worker up this long resets the crash count (default: 10s)",
      backoff(&backoff_policy::stable_after));
  add("--log-dir", "DIR", "One log file per worker slot in DIR (default: none)",
      text(&program_config::log_dir));
  add("--log-lines", "N", "Output lines kept in memory for `lameduck logs` (default: 1000)",
      [](program_config& p, const std::string& v) {
        p.log_lines =
            static_cast<std::size_t>(parse_integer(v, 0, std::numeric_limits<std::int64_t>::max()));
      });
  return flags;
}

// The first of the arguments nobody took, as one line.
[[noreturn]] void fail_extra(const CLI::App* sub, const std::string& extra) {
  if (sub == nullptr) {
    if (extra.size() > 1 && extra.front() == '-') fail("unknown option " + quote(extra));
    fail("unknown command " + quote(extra) +
         " (run, status, reload, stop, scale, upgrade, logs; see lameduck --help)");
  }
  std::string prefix = sub->get_name() + ": ";
  if (extra.size() > 1 && extra.front() == '-') {
    fail(prefix + "unknown option " + quote(extra) + " (see lameduck " + sub->get_name() +
         " --help)");
  }
  if (sub->get_name() == "run") {
    fail(prefix + "unexpected argument " + quote(extra) +
         " (the program goes after \"--\": " + std::string(run_usage) + ")");
  }
  fail(prefix + "unexpected argument " + quote(extra));
}

// CLI11's own errors (a flag without its value, mostly), cut to their first line.
[[noreturn]] void fail_parse(const CLI::ParseError& e) {
  std::string message = e.what();
  message = message.substr(0, message.find('\n'));
  // "--instances: 1 required TEXT missing" says less than it could.
  auto colon = message.find(": ");
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr && colon != std::string::npos &&
      message.find("required", colon) != std::string::npos) {
    fail(message.substr(0, colon) + ": needs a value");
  }
  fail(message);
}

}  // namespace

std::string control_default_path() {
  // A user's supervisor lives in the user's runtime directory; root's in /run.
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && *runtime != '\0' && ::geteuid() != 0) {
    return std::string(runtime) + "/lameduck/control.sock";
  }
  return "/run/lameduck/control.sock";
}

void validate(run_config& config) {
  if (config.programs.empty()) fail("no program to run");
  if (config.control.empty()) config.control = control_default_path();
  if (has_nul(config.control)) fail(field("--control", "control") + " holds a NUL");
  if (config.control.size() > max_unix_path) {
    fail(field("--control", "control") + " " + quote(config.control) + ": a Unix socket path " +
         "has at most " + std::to_string(max_unix_path) + " bytes");
  }
  if (!config.metrics_listen.empty()) {
    std::error_code ec;
    lameduck::detail::parse_listen_address(config.metrics_listen, ec);
    if (ec) {
      fail(field("--metrics-listen", "metrics_listen") + " " + quote(config.metrics_listen) +
           " is not HOST:PORT (HOST an IPv4 address, [IPv6], localhost or *)");
    }
  }
  // Only several programs need saying which one is wrong.
  const bool several = config.programs.size() > 1;
  std::set<std::string> names;
  std::map<std::string, std::string> addresses;
  for (auto& program : config.programs) {
    std::string where = several ? "program " + quote(program.name) + ": " : "";
    validate_program(program, where, addresses);
    if (!names.insert(program.name).second) {
      fail("two programs are named " + quote(program.name) +
           " (give each [[program]] its own name)");
    }
  }
}

parsed_command parse_command_line(int argc, const char* const* argv) {
  parsed_command out;
  std::vector<std::string> args(argv, argv + std::max(argc, 0));
  // The program and its arguments are split off before CLI11 sees them, so that none of them
  // (a "--help" of the program's own) can be taken for the supervisor's.
  std::vector<std::string> program;
  bool has_separator = false;
  if (auto separator = std::find(args.begin(), args.end(), "--"); separator != args.end()) {
    program.assign(separator + 1, args.end());
    args.erase(separator, args.end());
    has_separator = true;
  }

  CLI::App app(
      "Runs a program as a cluster of workers on shared sockets, restarts them, and "
      "replaces them one by one on reload.",
      "lameduck");
  app.set_version_flag("--version", std::string("lameduck ") + LAMEDUCK_VERSION,
                       "Print the version and exit");
  app.require_subcommand(0, 1);
  // Leftover arguments are reported by fail_extra(), in one line, rather than by CLI11.
  app.allow_extras();

  std::string control;
  auto add_control = [&control](CLI::App* sub) {
    sub->allow_extras();
    return sub->add_option("--control", control, "The supervisor's control socket")
        ->type_name("PATH");
  };

  // run
  CLI::App* run = app.add_subcommand("run",
                                     "Start the supervisor: lameduck run [options] -- "
                                     "PROGRAM [ARGS...]");
  run->footer(
      "The program and its arguments come after \"--\". With --config FILE, flags "
      "override the file's values.");
  CLI::Option* run_control = add_control(run);
  std::string config_file;
  CLI::Option* config_option =
      run->add_option("--config", config_file, "A TOML configuration file")->type_name("FILE");
  std::vector<std::string> listen_values, env_values;
  CLI::Option* listen_option =
      run->add_option("--listen", listen_values,
                      "A socket to pass: [NAME=]HOST:PORT, [NAME=][IPV6]:PORT or a Unix path "
                      "(repeatable)")
          ->type_name("[NAME=]ADDR")
          ->allow_extra_args(false);
  CLI::Option* env_option =
      run->add_option("--env", env_values, "An environment variable for the workers (repeatable)")
          ->type_name("NAME=VALUE")
          ->allow_extra_args(false);
  std::string log_format_value;
  CLI::Option* log_format_option =
      run->add_option("--log-format", log_format_value,
                      "The supervisor's output: text (the default), logfmt or json (one object a "
                      "line, the workers' lines wrapped as fields)")
          ->type_name("FORMAT");
  std::string metrics_value;
  CLI::Option* metrics_option =
      run->add_option("--metrics-listen", metrics_value,
                      "Answer GET /metrics (Prometheus's text format) on HOST:PORT: workers by "
                      "state, restarts, reloads")
          ->type_name("HOST:PORT");
  std::string ready_value;
  CLI::Option* ready_option =
      run->add_option("--ready", ready_value,
                      "How a worker says it is ready: notify (NOTIFY_SOCKET, the default), fd (a "
                      "line on a pipe) or after (a fixed time)")
          ->type_name("MODE");
  auto program_flags = make_program_flags();
  for (auto& flag : program_flags) {
    flag.option = run->add_option(flag.name, flag.value, flag.help)->type_name(flag.value_name);
  }

  // The verbs that talk to a running supervisor.
  CLI::App* status = app.add_subcommand("status", "Show the workers of a running supervisor");
  add_control(status);
  status->add_flag("--json", out.json, "Print JSON");
  CLI::App* reload = app.add_subcommand("reload", "Replace every worker, one by one");
  add_control(reload);
  reload->add_flag("--wait", out.wait, "Queue behind a reload in progress instead of refusing");
  reload->add_option("--program", out.program, "Only this program")->type_name("NAME");
  CLI::App* stop = app.add_subcommand("stop", "Stop the workers and the supervisor");
  add_control(stop);
  CLI::App* scale = app.add_subcommand("scale", "Change the number of workers");
  add_control(scale);
  std::string scale_value;
  scale->add_option("N", scale_value, "How many workers (0: one per online core)");
  scale->add_option("--program", out.program, "Only this program")->type_name("NAME");
  CLI::App* upgrade = app.add_subcommand("upgrade", "Replace the supervisor with a new binary");
  add_control(upgrade);
  CLI::App* logs = app.add_subcommand("logs", "Print the workers' recent output");
  add_control(logs);
  logs->add_flag("-f,--follow", out.follow, "Keep printing new lines");
  std::string lines_value, worker_value;
  CLI::Option* lines_option =
      logs->add_option("-n,--lines", lines_value, "How many past lines (default: 100)")
          ->type_name("N");
  CLI::Option* worker_option =
      logs->add_option("--worker", worker_value, "Only this worker slot")->type_name("N");
  logs->add_option("--program", out.program, "Only this program")->type_name("NAME");

  // Set after the subcommands, which would inherit it.
  app.footer("lameduck COMMAND --help describes each command.");

  // Given twice, a flag's last value counts (as a later flag overrides an alias's).
  for (CLI::App* sub : {run, status, reload, stop, scale, upgrade, logs}) {
    for (CLI::Option* option : sub->get_options()) {
      if (option->get_expected_max() == 1) {
        option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
      }
    }
  }

  if (args.empty() && !has_separator) {
    out.what = parsed_command::verb::help;
    out.help = app.help();
    return out;
  }
  try {
    std::reverse(args.begin(), args.end());  // CLI11 consumes the vector from its back
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    out.what = parsed_command::verb::help;
    out.help = app.help();
    return out;
  } catch (const CLI::CallForVersion& e) {
    out.what = parsed_command::verb::help;
    out.help = std::string(e.what()) + "\n";
    return out;
  } catch (const CLI::ParseError& e) {
    fail_parse(e);
  }

  auto selected = app.get_subcommands();
  CLI::App* sub = selected.empty() ? nullptr : selected.front();
  if (auto extras = app.remaining(true); !extras.empty()) {
    // Extras before the subcommand belong to the top level.
    fail_extra(app.remaining(false).empty() ? sub : nullptr, extras.front());
  }
  if (sub == nullptr) {
    if (has_separator)
      fail(std::string("no command before \"--\" (") + std::string(run_usage) + ")");
    out.what = parsed_command::verb::help;
    out.help = app.help();
    return out;
  }
  if (sub != run && has_separator) {
    fail(sub->get_name() + ": nothing may follow \"--\" (only run takes a program)");
  }
  out.control = control.empty() ? control_default_path() : control;

  if (sub == status) {
    out.what = parsed_command::verb::status;
  } else if (sub == reload) {
    out.what = parsed_command::verb::reload;
  } else if (sub == stop) {
    out.what = parsed_command::verb::stop;
  } else if (sub == upgrade) {
    out.what = parsed_command::verb::upgrade;
  } else if (sub == scale) {
    out.what = parsed_command::verb::scale;
    if (scale_value.empty()) fail("scale: how many workers? (lameduck scale N)");
    try {
      out.instances = static_cast<int>(parse_integer(scale_value, 0, max_instances));
    } catch (const bad_value& e) {
      fail(std::string("scale: ") + e.what());
    }
    // Resolved here, as --instances 0 is by validate(): the supervisor gets a number.
    if (out.instances == 0) out.instances = online_cores();
  } else if (sub == logs) {
    out.what = parsed_command::verb::logs;
    try {
      if (lines_option->count() > 0) {
        out.lines = static_cast<std::size_t>(
            parse_integer(lines_value, 0, static_cast<std::int64_t>(max_log_lines)));
      }
    } catch (const bad_value& e) {
      fail(std::string("logs --lines: ") + e.what());
    }
    try {
      if (worker_option->count() > 0) {
        out.worker = static_cast<int>(parse_integer(worker_value, 0, max_instances - 1));
      }
    } catch (const bad_value& e) {
      fail(std::string("logs --worker: ") + e.what());
    }
  } else {
    out.what = parsed_command::verb::run;
    run_config config;
    if (config_option->count() > 0) {
      config = load_config_file(config_file);
    } else {
      config.programs.emplace_back();
    }
    if (run_control->count() > 0) config.control = control;
    if (metrics_option->count() > 0) config.metrics_listen = metrics_value;
    if (log_format_option->count() > 0) {
      try {
        config.log_format = parse_log_format(log_format_value);
      } catch (const bad_value& e) {
        fail(std::string("--log-format: ") + e.what());
      }
    }

    // Flags are for one program: with several in the file, which one would they change?
    std::vector<std::string> given;
    for (const auto& flag : program_flags) {
      if (flag.option->count() > 0) given.push_back(flag.name);
    }
    for (const CLI::Option* option : {listen_option, env_option, ready_option}) {
      if (option->count() > 0) given.push_back(option->get_name());
    }
    if (!program.empty()) given.push_back("-- PROGRAM");
    if (config.programs.size() > 1 && !given.empty()) {
      fail(given.front() + ": " + quote(config_file) + " has " +
           std::to_string(config.programs.size()) +
           " programs; flags and -- PROGRAM apply to a file with one (edit the file instead)");
    }

    program_config& p = config.programs.front();
    auto apply = [](const std::string& name, auto&& set) {
      try {
        set();
      } catch (const bad_value& e) {
        fail(name + ": " + e.what());
      }
    };
    for (const auto& flag : program_flags) {
      if (flag.option->count() > 0) apply(flag.name, [&] { flag.apply(p, flag.value); });
    }
    if (listen_option->count() > 0) {
      // The command line's list replaces the file's: merging would make one impossible to drop.
      p.listen.clear();
      for (const auto& value : listen_values) {
        apply("--listen", [&] { p.listen.push_back(parse_listen_spec(value)); });
      }
    }
    // Variables are merged by name: the flag overrides one without dropping the file's others.
    for (const auto& value : env_values) {
      apply("--env", [&] {
        auto [name, setting] = parse_environment_entry(value);
        p.environment.insert_or_assign(std::move(name), std::move(setting));
      });
    }
    // --ready-fd and --ready-after imply their mode; an explicit --ready must agree with them.
    auto given_flag = [&program_flags](std::string_view name) {
      return std::any_of(program_flags.begin(), program_flags.end(), [name](const auto& flag) {
        return std::string_view(flag.name) == name && flag.option->count() > 0;
      });
    };
    const bool ready_fd_given = given_flag("--ready-fd");
    const bool ready_after_given = given_flag("--ready-after");
    if (ready_option->count() > 0) {
      readiness_mode mode = readiness_mode::notify;
      apply("--ready", [&] { mode = parse_readiness(ready_value); });
      if (ready_fd_given && mode != readiness_mode::fd) {
        fail("--ready-fd: needs --ready fd (or no --ready), not --ready " + quote(ready_value));
      }
      if (ready_after_given && mode != readiness_mode::after) {
        fail("--ready-after: needs --ready after (or no --ready), not --ready " +
             quote(ready_value));
      }
      p.readiness = mode;
    } else if (ready_fd_given && ready_after_given) {
      fail("--ready-fd and --ready-after: a worker has one readiness mode; give one of them");
    } else if (ready_fd_given) {
      p.readiness = readiness_mode::fd;
    } else if (ready_after_given) {
      p.readiness = readiness_mode::after;
    }
    if (!program.empty()) p.command = program;
    if (p.command.empty()) fail("run: no program given (" + std::string(run_usage) + ")");

    validate(config);
    out.control = config.control;
    out.run = std::move(config);
  }
  return out;
}

}  // namespace lameduck::supervisor
