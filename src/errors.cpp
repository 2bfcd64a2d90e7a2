#include <lameduck/errors.hpp>

namespace lameduck {

namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "lameduck"; }
  std::string message(int e) const override {
    switch (static_cast<errc>(e)) {
      case errc::invalid_listen_address:
        return "invalid listen address (expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080)";
      case errc::no_listen_address:
        return "no listen address given";
      case errc::already_started:
        return "the server is already running";
      case errc::invalid_option:
        return "an option is out of range";
      case errc::unusable_passed_socket:
        return "a socket passed with LISTEN_FDS or listen_sockets is not a listening TCP socket";
      case errc::not_running:
        return "the server is not running";
      case errc::listeners_closed:
        return "the server's listeners were already closed or handed over";
      case errc::invalid_certificate:
        return "a TLS certificate or key cannot be used";
      case errc::unmatched_passed_socket:
        return "a socket passed with LISTEN_FDNAMES has a name that no listen address has";
    }
    return "unknown lameduck error";
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const category c;
  return c;
}

}  // namespace lameduck
