#pragma once
// The supervisor's standard output, which never blocks its loop. Whatever reads it (a log
// shipper, a pipe, a terminal paused with Ctrl-S) may stall; a blocking write would then stop
// the one loop that reaps, restarts, answers `lameduck status` and relays every worker's
// output (whose pipes would fill, stalling the workers in turn), as runit-style supervisors
// do. Lines go to a bounded buffer written when the descriptor is writable; when it is full,
// whole lines are dropped and counted, and once output flows again one line says how many
// were lost and since when, as HAProxy does for its logs.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "spawner.hpp"

namespace lameduck::supervisor {

class log_output {
 public:
  /// The notice of a gap: dropped lines, the time of the first one; a formatted line
  /// ending in '\n'.
  using notice_function = std::function<std::string(std::uint64_t dropped, std::string since)>;
  /// The time now, as the log lines write it (for the notice's "since").
  using clock_function = std::function<std::string()>;

  /// Writes to fd (standard output) holding at most capacity bytes not yet written.
  log_output(int fd, std::size_t capacity, notice_function notice, clock_function clock);
  ~log_output();
  log_output(const log_output&) = delete;
  log_output& operator=(const log_output&) = delete;

  /// The descriptor to watch for writability, or -1 when writes never block (a regular
  /// file, /dev/null: epoll refuses them) and nothing needs watching.
  int pollable() const noexcept { return pollable_ && !gone_ ? fd_.get() : -1; }
  /// Whether to watch for writability now: something waits.
  bool wants_write() const noexcept { return buffered() > 0 && !gone_; }

  /// Queues one whole line (ending in '\n'), or drops and counts it when it does not fit.
  void write(std::string_view line);
  /// Writes what the descriptor takes without blocking.
  void flush();
  /// The descriptor reported an error or a hang-up (the reader closed its end): what waits
  /// and what follows is discarded, and pollable() is -1 from now on.
  void lost();
  /// At exit or before an upgrade: writes what is buffered, waiting up to timeout_ms for the
  /// reader, then drops the lines left and counts them.
  void drain(int timeout_ms);

  /// Lines dropped, in all and since the last notice (the first of those at since).
  struct drop_count {
    std::uint64_t total = 0;
    std::uint64_t unnoticed = 0;
    std::string since;
  };
  drop_count drops() const { return {dropped_total_, dropped_since_notice_, first_dropped_at_}; }
  /// Takes over the count of the binary before this one (`lameduck upgrade`): the total goes
  /// on, and the lines it dropped without a notice get theirs here.
  void carry(const drop_count& earlier);

  /// Lines dropped since the supervisor started, because the buffer was full or the reader
  /// took nothing until the exit or upgrade.
  std::uint64_t dropped_total() const noexcept { return dropped_total_; }
  /// Bytes waiting.
  std::size_t buffered() const noexcept { return buffer_.size() - written_; }

 private:
  enum class mode { write, send, blocking };
  // Writes from the unwritten part's front; false when the descriptor takes no more.
  bool write_some();
  // Queues the notice of a gap once there is room for it.
  void after_writing();
  // Counts lines dropped now, the first of a gap at the clock's time.
  void count_dropped(std::uint64_t lines);

  unique_fd fd_;
  mode mode_ = mode::write;
  bool pollable_ = false;
  bool gone_ = false;  // the reader went away (EPIPE): lines are discarded, as before
  std::size_t capacity_;
  std::string buffer_;
  std::size_t written_ = 0;  // of buffer_'s front
  std::uint64_t dropped_total_ = 0;
  std::uint64_t dropped_since_notice_ = 0;
  std::string first_dropped_at_;
  notice_function notice_;
  clock_function clock_;
};

}  // namespace lameduck::supervisor
