#pragma once
// The subcommands that talk to a running supervisor (status, reload, stop, scale, upgrade,
// logs): one request over the control socket, then its answer printed as it arrives.

#include <iosfwd>

#include "command_line.hpp"
#include "control.hpp"

namespace lameduck::supervisor {

/// The request a parsed subcommand sends (only the fields its verb carries).
request make_request(const parsed_command& c);

/// Runs a subcommand against the supervisor on c.control, printing its answer to standard
/// output and errors to standard error; returns the exit status: 0 when the supervisor did it,
/// 1 when it refused or none answers, 2 when c is not a subcommand (run, help).
int run_client(const parsed_command& c);

/// run_client, printing to out and err instead (for tests).
int run_client(const parsed_command& c, std::ostream& out, std::ostream& err);

}  // namespace lameduck::supervisor
