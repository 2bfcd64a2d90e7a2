#pragma once
// Listening sockets passed to the process by its service manager (LISTEN_FDS).

#include <vector>

namespace lameduck::detail {

/// The sockets passed with LISTEN_FDS (from descriptor 3) when LISTEN_PID is this process;
/// removes the variables, so that they are taken once. Empty when none were passed.
std::vector<int> take_passed_sockets();

}  // namespace lameduck::detail
