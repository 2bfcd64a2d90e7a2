#pragma once
// The `lameduck` command line: `run` with its options (and a TOML file), and the subcommands
// that talk to a running supervisor. Parsing does nothing else: no socket, no process.

#include <optional>
#include <string>
#include <string_view>

#include "config.hpp"

namespace lameduck::supervisor {

/// What the command line asks for.
struct parsed_command {
  enum class verb { run, status, reload, stop, scale, upgrade, logs, help };
  verb what = verb::help;
  /// verb::run: the configuration (file, then flags over it), complete and validated.
  run_config run;
  /// The control socket of every verb (--control, or the default).
  std::string control;
  bool json = false;          ///< status --json
  bool wait = false;          ///< reload --wait: queue behind a running reload instead of refusing
  bool follow = false;        ///< logs -f
  std::size_t lines = 100;    ///< logs -n
  std::optional<int> worker;  ///< logs --worker
  int instances = 0;          ///< scale N
  std::string program;        ///< scale/reload/logs --program NAME (several programs); empty: all
  /// verb::help: the text to print before exiting with status 0.
  std::string help;
};

/// Parses the arguments after the program name; throws config_error (one line) on anything
/// wrong or missing, in the flags or in a --config file.
parsed_command parse_command_line(int argc, const char* const* argv);

/// Reads a TOML configuration file into run_config; throws config_error naming the file, the
/// line when there is one, and the problem.
run_config load_config_file(const std::string& path);

/// Parses the text of a TOML configuration file (load_config_file reads the file, the fuzzer
/// feeds memory); file_name is only for the messages. Throws config_error like the loader.
run_config parse_config(std::string_view text, std::string_view file_name);

/// Checks what no flag parser can (a program, instances ≥ 0, surge ≥ 1, addresses that parse,
/// no two listeners with one name...); throws config_error. Fills defaults that depend on
/// other fields (ready_fd, instances 0 → online cores, control path).
void validate(run_config& config);

}  // namespace lameduck::supervisor
