#pragma once
// The values the command line and the TOML file share (durations, sizes, signals, listen
// specs, readiness modes), parsed from text in one place so that "5s" means the same in both.
// Each parser throws bad_value with what is wrong with the value; the caller adds where it
// came from (a flag, or a file and line) and turns it into a config_error.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "config.hpp"

namespace lameduck::supervisor {

/// A value that does not parse: what() describes the value and the problem, without context.
class bad_value : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The longest duration accepted anywhere (a year): the arithmetic done with durations later
/// (deadlines from now, WATCHDOG_USEC in microseconds) cannot overflow.
inline constexpr milliseconds max_duration{365LL * 24 * 3'600'000};

/// The text in double quotes, control and non-ASCII bytes escaped and long text cut, so that an
/// error message quoting it stays on one line.
std::string quote(std::string_view text);

/// The message on one line: line breaks and other control bytes become spaces.
std::string one_line(std::string message);

/// "250ms", "5s", "1.5s", "2m", "1h" (or "0"): a whole number of milliseconds, ≥ 0.
milliseconds parse_duration(std::string_view text);

/// A duration as the shortest text parse_duration reads back ("1500ms", "5s", "2m").
std::string format_duration(milliseconds d);

/// Bytes: "1048576", "300000K", "512M", "1G" (also KiB, MiB, GiB; powers of 1024).
std::uint64_t parse_size(std::string_view text);

/// A signal by name ("TERM", "SIGTERM", "usr1": the C library's names, sigabbrev_np) or number
/// ("15"); not range-checked here.
int parse_signal(std::string_view text);

/// "SIGTERM", or "signal 40" for one without a name.
std::string signal_name(int sig);

/// "notify", "fd" or "after".
readiness_mode parse_readiness(std::string_view text);

/// "text", "logfmt" or "json".
lameduck::log_format parse_log_format(std::string_view text);

/// "[NAME=]ADDRESS": the name is what comes before the first '=' when that holds no '/', ':' or
/// '[' (so "/run/a=b.sock" is a path, not a name); the address is checked by validate().
listen_spec parse_listen_spec(std::string_view text);

/// "NAME=VALUE" as for --env; the name must be non-empty.
std::pair<std::string, std::string> parse_environment_entry(std::string_view text);

/// A decimal integer in [min, max], the whole text.
std::int64_t parse_integer(std::string_view text, std::int64_t min, std::int64_t max);

/// A decimal number (the restart factor), the whole text; finite.
double parse_number(std::string_view text);

}  // namespace lameduck::supervisor
