#pragma once
// The control protocol between `lameduck SUBCOMMAND` and a running supervisor: one request, a
// JSON object on one line, over a Unix stream socket with owner-only permissions; the answer
// is JSON lines: progress and log lines as they happen, then one result line, then the end.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace lameduck::supervisor {

/// The longest request line a supervisor reads (without its '\n'); a longer one is refused.
inline constexpr std::size_t max_request_bytes = 64 * 1024;
/// The most workers one program may be scaled to.
inline constexpr int max_instances = 1024;
/// The most past log lines one `lameduck logs` may ask for.
inline constexpr std::size_t max_log_lines = 1'000'000;

/// A request that cannot be understood: what() says why (sent back as the result).
class protocol_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What a client asks of the supervisor.
struct request {
  enum class verb { status, reload, stop, kill, scale, upgrade, logs };
  verb what = verb::status;
  bool wait = false;          ///< reload: queue behind a running reload
  bool follow = false;        ///< logs: keep streaming new lines
  std::size_t lines = 100;    ///< logs: how many past lines
  std::optional<int> worker;  ///< logs: one slot only
  int instances = 0;          ///< scale
  std::string program;        ///< the program it is about (several in one file); empty: all
  bool operator==(const request&) const = default;
};

/// The request as one line of JSON, ending in '\n'.
std::string encode_request(const request& r);
/// The request in one line (without its '\n'); throws protocol_error.
request decode_request(std::string_view line);

/// One worker in `lameduck status`.
struct worker_status {
  int slot = 0;
  pid_t pid = 0;  ///< 0 while the slot waits to restart
  std::uint64_t generation = 0;
  std::string state;  ///< starting, ready, replacing, stopping, restarting (backoff), ...
  std::int64_t uptime_ms = 0;
  int restarts = 0;
  bool ready = false;
  std::uint64_t memory_bytes = 0;
  std::string last_exit;  ///< "exit 1", "killed by SIGSEGV", or empty
  bool operator==(const worker_status&) const = default;
};
/// One program in `lameduck status`.
struct program_status {
  std::string name;
  int instances = 0;
  std::uint64_t generation = 0;
  std::string reload;  ///< "idle" or "running"
  std::vector<worker_status> workers;
  bool operator==(const program_status&) const = default;
};
/// The whole supervisor in `lameduck status`.
struct supervisor_status {
  pid_t pid = 0;
  std::int64_t uptime_ms = 0;
  std::string state;  ///< running, stopping
  std::vector<program_status> programs;
  bool operator==(const supervisor_status&) const = default;
};

/// Answer lines. A progress or log line carries text; the result ends the answer.
std::string encode_progress(std::string_view message);
std::string encode_log_line(std::string_view line);
std::string encode_result(bool ok, std::string_view message,
                          const supervisor_status* status = nullptr);

/// One decoded answer line.
struct answer_line {
  enum class kind { progress, log, result };
  kind what = kind::result;
  bool ok = false;
  std::string text;  ///< the message or the log line
  std::optional<supervisor_status> status;
};
/// Throws protocol_error on a line that is not an answer.
answer_line decode_answer(std::string_view line);

/// `lameduck status --json`: the status as indented JSON (the same fields as in a result line),
/// ending in '\n'.
std::string format_status_json(const supervisor_status& s);

/// `lameduck status` as a table (slot, pid, generation, state, uptime, restarts, ready,
/// memory, last exit), one block per program.
std::string format_status_table(const supervisor_status& s);

/// Binds the control socket at path: creates its directory (0700) if missing, refuses (with
/// errc::... / a clear error) when a live supervisor answers there, replaces a stale socket,
/// and leaves the socket 0600. Returns the listening descriptor (non-blocking, close-on-exec).
/// Errors: address_in_use (a supervisor answers there), permission_denied (the directory is
/// open to others or not ours), not_a_directory, file_exists (a file that is no socket),
/// filename_too_long (108 bytes or more), or the system's. Sets the umask for a moment: call it
/// before starting threads that create files. From its look at the path to the listen() it
/// holds the directory's lock (flock), so that two supervisors starting together take turns.
int bind_control_socket(const std::string& path, std::error_code& ec);
/// bind_control_socket, and on failure why: one line to print after "lameduck: " (for
/// errc::address_in_use, "another supervisor is running on PATH").
int bind_control_socket(const std::string& path, std::error_code& ec, std::string& why);
/// Connects to the supervisor at path; -1 and ec when none answers.
int connect_control_socket(const std::string& path, std::error_code& ec);
/// Whether the process at the other end of a connected Unix socket runs as our effective user
/// or as root (SO_PEERCRED); false when the kernel cannot say.
bool peer_is_owner(int fd);

}  // namespace lameduck::supervisor
