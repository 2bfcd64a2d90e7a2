#pragma once
// Listening sockets passed to the process by its service manager (LISTEN_FDS).

#include <chrono>
#include <string>
#include <vector>

namespace lameduck::detail {

/// A socket passed by the service manager.
struct passed_socket {
  int fd = -1;
  /// Its name in LISTEN_FDNAMES; empty when none was given.
  std::string name;
  bool operator==(const passed_socket&) const = default;
};

/// The sockets passed with LISTEN_FDS (from descriptor 3) when LISTEN_PID is this process,
/// named by LISTEN_FDNAMES (colon-separated) when it has one name per socket; removes the
/// variables, so that they are taken once. Empty when none were passed.
std::vector<passed_socket> take_passed_sockets();

/// The watchdog interval the service manager asked this process for: WATCHDOG_USEC, when
/// WATCHDOG_PID is unset or this process; zero when there is none. The variables are left in
/// place (a second server of this process pings too; WATCHDOG_PID keeps children out).
std::chrono::microseconds watchdog_interval();

}  // namespace lameduck::detail
