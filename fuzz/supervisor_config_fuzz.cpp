// libFuzzer target for the supervisor's configuration file: any bytes, read as TOML and then
// validated, must end in a configuration or in a config_error of one line. Anything else (another
// exception, a crash, a leak, a validated configuration that breaks validate()'s promises) is a
// bug.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "command_line.hpp"

namespace sv = lameduck::supervisor;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  sv::run_config config;
  try {
    config = sv::parse_config(text, "fuzz.toml");
    sv::validate(config);
  } catch (const sv::config_error& e) {
    // The message is printed as one line before exiting with status 2.
    if (std::string_view(e.what()).find('\n') != std::string_view::npos) std::abort();
    return 0;
  }
  // What validate() accepted is complete: defaults filled, ranges kept.
  if (config.programs.empty() || config.control.empty()) std::abort();
  for (const auto& p : config.programs) {
    if (p.command.empty() || p.instances < 1 || p.instances > 1024 || p.surge < 1 ||
        p.max_unavailable < 1 || p.restart.factor < 1.0 || p.restart.initial > p.restart.max ||
        p.stop_signal < 1 || p.stop_signal > 64) {
      std::abort();
    }
    if (p.readiness == sv::readiness_mode::fd &&
        (p.ready_fd < 3 + static_cast<int>(p.listen.size()) || p.ready_fd > 1023)) {
      std::abort();
    }
    if (p.readiness == sv::readiness_mode::after &&
        (p.ready_after.count() <= 0 || p.ready_after >= p.ready_timeout)) {
      std::abort();
    }
  }
  return 0;
}
