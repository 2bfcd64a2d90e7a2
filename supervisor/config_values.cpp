// Durations, sizes, signals and listen specs from text, for the command line and the file.
#include "config_values.hpp"

#include <charconv>
#include <cmath>
#include <csignal>
#include <cstring>
#include <limits>

namespace lameduck::supervisor {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

char to_upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_upper(a[i]) != to_upper(b[i])) return false;
  }
  return true;
}

// Unsigned decimal digits only (no sign, no spaces), the whole text; nullopt on overflow.
std::optional<std::uint64_t> parse_digits(std::string_view digits) {
  std::uint64_t value = 0;
  auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (err != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  return value;
}

}  // namespace

std::string quote(std::string_view text) {
  // Long enough to recognise the value, short enough for one terminal line.
  constexpr std::size_t max_shown = 80;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size() && i < max_shown; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max_shown) out += "...";
  out += '"';
  return out;
}

std::string one_line(std::string message) {
  for (char& c : message) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return message;
}

milliseconds parse_duration(std::string_view text) {
  // "0" needs no unit: zero is zero in any of them, and "--watchdog 0" reads naturally.
  if (text == "0") return milliseconds{0};
  if (!text.empty() && text.front() == '-') throw bad_value(quote(text) + " is negative");
  std::size_t unit_at = 0;
  while (unit_at < text.size() && (is_digit(text[unit_at]) || text[unit_at] == '.'))
    ++unit_at;
  std::string_view number = text.substr(0, unit_at), unit = text.substr(unit_at);
  auto dot = number.find('.');
  std::string_view whole = number.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? "" : number.substr(dot + 1);
  if (whole.empty() && fraction.empty()) {
    throw bad_value(quote(text) + " is not a duration (e.g. 250ms, 5s, 1.5s, 2m, 1h)");
  }
  if (fraction.find('.') != std::string_view::npos) {
    throw bad_value(quote(text) + " is not a duration (e.g. 250ms, 5s, 1.5s, 2m, 1h)");
  }
  if (unit.empty()) throw bad_value(quote(text) + " needs a unit (ms, s, m, h), e.g. 5s");
  std::int64_t unit_ms = 0;
  if (unit == "ms") {
    unit_ms = 1;
  } else if (unit == "s") {
    unit_ms = 1000;
  } else if (unit == "m") {
    unit_ms = 60'000;
  } else if (unit == "h") {
    unit_ms = 3'600'000;
  } else {
    throw bad_value(quote(text) + " has an unknown unit " + quote(unit) + " (ms, s, m, h)");
  }
  // Exact decimal arithmetic rather than a double: "1.005s" is 1005ms, not 1004.999...
  while (!fraction.empty() && fraction.back() == '0')
    fraction.remove_suffix(1);
  std::int64_t fraction_ms = 0;
  if (!fraction.empty()) {
    std::int64_t scale = 1;
    for (std::size_t i = 0; i < fraction.size(); ++i)
      scale *= 10;
    auto digits = fraction.size() <= 9 ? parse_digits(fraction) : std::nullopt;
    if (!digits || (static_cast<std::int64_t>(*digits) * unit_ms) % scale != 0) {
      throw bad_value(quote(text) + " is not a whole number of milliseconds");
    }
    fraction_ms = static_cast<std::int64_t>(*digits) * unit_ms / scale;
  }
  std::int64_t total = 0;
  auto whole_value = whole.empty() ? std::optional<std::uint64_t>{0} : parse_digits(whole);
  if (!whole_value || *whole_value > static_cast<std::uint64_t>(max_duration.count()) ||
      __builtin_mul_overflow(static_cast<std::int64_t>(*whole_value), unit_ms, &total) ||
      total + fraction_ms > max_duration.count()) {
    throw bad_value(quote(text) + " is longer than " + format_duration(max_duration));
  }
  return milliseconds{total + fraction_ms};
}

std::string format_duration(milliseconds d) {
  auto ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::uint64_t parse_size(std::string_view text) {
  std::size_t unit_at = 0;
  while (unit_at < text.size() && is_digit(text[unit_at]))
    ++unit_at;
  std::string_view number = text.substr(0, unit_at), unit = text.substr(unit_at);
  if (number.empty()) {
    throw bad_value(quote(text) + " is not a size (bytes, or a whole number with K, M or G, " +
                    "e.g. 512M)");
  }
  std::uint64_t multiplier = 0;
  if (unit.empty()) {
    multiplier = 1;
  } else if (equals_ignoring_case(unit, "K") || equals_ignoring_case(unit, "KiB")) {
    multiplier = std::uint64_t{1} << 10;
  } else if (equals_ignoring_case(unit, "M") || equals_ignoring_case(unit, "MiB")) {
    multiplier = std::uint64_t{1} << 20;
  } else if (equals_ignoring_case(unit, "G") || equals_ignoring_case(unit, "GiB")) {
    multiplier = std::uint64_t{1} << 30;
  } else {
    throw bad_value(quote(text) + " has an unknown unit " + quote(unit) +
                    " (K, M, G or KiB, MiB, GiB: powers of 1024)");
  }
  auto value = parse_digits(number);
  std::uint64_t bytes = 0;
  if (!value || __builtin_mul_overflow(*value, multiplier, &bytes)) {
    throw bad_value(quote(text) + " is too large");
  }
  return bytes;
}

std::string signal_name(int sig) {
  const char* abbreviation = ::sigabbrev_np(sig);
  return abbreviation ? std::string("SIG") + abbreviation : "signal " + std::to_string(sig);
}

int parse_signal(std::string_view text) {
  if (!text.empty() && is_digit(text.front())) {
    return static_cast<int>(parse_integer(text, 0, std::numeric_limits<int>::max()));
  }
  std::string_view name = text;
  if (name.size() > 3 && equals_ignoring_case(name.substr(0, 3), "SIG")) name.remove_prefix(3);
  // Every signal the C library has a name for, KILL and STOP included, so that validate() can
  // say why it refuses those rather than "not a signal".
  for (int sig = 1; sig < NSIG; ++sig) {
    const char* abbreviation = ::sigabbrev_np(sig);
    if (abbreviation != nullptr && equals_ignoring_case(name, abbreviation)) return sig;
  }
  throw bad_value(quote(text) + " is not a signal (a name like TERM, INT, QUIT, HUP, USR1, " +
                  "USR2, or a number)");
}

readiness_mode parse_readiness(std::string_view text) {
  if (text == "notify") return readiness_mode::notify;
  if (text == "fd") return readiness_mode::fd;
  if (text == "after") return readiness_mode::after;
  throw bad_value(quote(text) + " is not a readiness mode (notify, fd or after)");
}

lameduck::log_format parse_log_format(std::string_view text) {
  if (text == "text") return lameduck::log_format::text;
  if (text == "logfmt") return lameduck::log_format::logfmt;
  if (text == "json") return lameduck::log_format::json;
  throw bad_value(quote(text) + " is not a log format (text, logfmt or json)");
}

listen_spec parse_listen_spec(std::string_view text) {
  listen_spec spec;
  auto equals = text.find('=');
  if (equals != std::string_view::npos &&
      text.substr(0, equals).find_first_of("/:[") == std::string_view::npos) {
    if (equals == 0) throw bad_value(quote(text) + " has an empty name before \"=\"");
    spec.name = std::string(text.substr(0, equals));
    text.remove_prefix(equals + 1);
  }
  if (text.empty()) throw bad_value("the address is empty");
  spec.address = std::string(text);
  return spec;
}

std::pair<std::string, std::string> parse_environment_entry(std::string_view text) {
  auto equals = text.find('=');
  if (equals == std::string_view::npos) throw bad_value(quote(text) + " is not NAME=VALUE");
  if (equals == 0) throw bad_value(quote(text) + " has an empty name");
  return {std::string(text.substr(0, equals)), std::string(text.substr(equals + 1))};
}

std::int64_t parse_integer(std::string_view text, std::int64_t min, std::int64_t max) {
  std::int64_t value = 0;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || end != text.data() + text.size() ||
      (err != std::errc{} && err != std::errc::result_out_of_range)) {
    throw bad_value(quote(text) + " is not a number");
  }
  bool out_of_range = err == std::errc::result_out_of_range;
  if (out_of_range ? text.front() != '-' : value > max) {
    throw bad_value(quote(text) + " is more than " + std::to_string(max));
  }
  if (out_of_range || value < min) {
    throw bad_value(min == 0 ? quote(text) + " is negative"
                             : quote(text) + " is less than " + std::to_string(min));
  }
  return value;
}

double parse_number(std::string_view text) {
  double value = 0;
  auto [end, err] =
      std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
  if (text.empty() || err != std::errc{} || end != text.data() + text.size() ||
      !std::isfinite(value)) {
    throw bad_value(quote(text) + " is not a number");
  }
  return value;
}

}  // namespace lameduck::supervisor
