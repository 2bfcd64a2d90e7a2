// `lameduck`: runs a cluster of workers of any program on shared sockets (`run`), and talks
// to a running supervisor (`status`, `reload`, `scale`, `stop`, `logs`, `upgrade`).

#include <cstdio>
#include <exception>

#include "client.hpp"
#include "command_line.hpp"
#include "daemon.hpp"

int main(int argc, char** argv) {
  using namespace lameduck::supervisor;
  parsed_command command;
  try {
    command = parse_command_line(argc - 1, argv + 1);
  } catch (const config_error& e) {
    // Bad command lines and configuration: one line, status 2, nothing started.
    std::fprintf(stderr, "lameduck: %s\n", e.what());
    return 2;
  }
  switch (command.what) {
    case parsed_command::verb::help:
      std::fputs(command.help.c_str(), stdout);
      return 0;
    case parsed_command::verb::run:
      return run_supervisor(std::move(command.run));
    default:
      return run_client(command);
  }
}
