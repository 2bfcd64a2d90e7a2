#pragma once
/// @file The service manager's side channel (systemd's sd_notify protocol, which other
/// supervisors speak too): telling it the process is ready, reloading or stopping.

#include <string_view>

namespace lameduck {

/// Sends state lines to the service manager named by NOTIFY_SOCKET (a socket path, or "@name"
/// for an abstract one), e.g. "READY=1", "RELOADING=1", "STOPPING=1" or "STATUS=draining";
/// several go in one call separated by newlines. False when NOTIFY_SOCKET is not set or the
/// message could not be sent; never throws.
bool notify_service_manager(std::string_view state) noexcept;

}  // namespace lameduck
