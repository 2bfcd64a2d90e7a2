#pragma once
/// @file Error codes for lameduck's API: expected failures are values, not exceptions.

#include <string>
#include <system_error>

namespace lameduck {

/// What went wrong in a call to lameduck's API.
enum class errc {
  invalid_listen_address = 1,  ///< a listen address is not HOST:PORT with a numeric port
  no_listen_address,           ///< the server was given nothing to listen on
  already_started,             ///< start() was called on a server that is running
  invalid_option,              ///< an option has a value outside its range
  unusable_passed_socket,   ///< a socket passed (LISTEN_FDS, listen_sockets) is not a listening TCP
                            ///< socket
  not_running,              ///< the server is not running
  listeners_closed,         ///< the listeners were already closed or handed over
  invalid_certificate,      ///< a TLS certificate or key cannot be used (the message says why)
  unmatched_passed_socket,  ///< a socket passed with a name (LISTEN_FDNAMES) that no listen
                            ///< address has
};

/// The category of lameduck::errc values.
const std::error_category& error_category() noexcept;

/// Makes a std::error_code from a lameduck::errc.
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace lameduck

template <>
struct std::is_error_code_enum<lameduck::errc> : std::true_type {};
