#pragma once
// The working set of a connection that is exchanging messages: input buffer, parser, the
// request being handled and the response being written. Idle connections hold none; their
// worker pools them. A response handle keeps its exchange alive, even past its connection and
// its worker.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>

#include <lameduck/response.hpp>

#include "http1/request_parser.hpp"
#include "net/rate_meter.hpp"

namespace lameduck::detail {

class worker;
struct worker_anchor;
class connection_base;

/// What a response handle asks of its connection.
enum class response_op : std::uint8_t {
  send,            ///< head and whole body
  write,           ///< one piece of a streamed body (the head first if not yet sent)
  end,             ///< the end of a streamed body
  abort,           ///< the handle was dropped part-way through a stream
  upgrade,         ///< the head of a 101 (or a CONNECT's 2xx); the connection is handed over
  upgraded_send,   ///< bytes for the client of an upgraded connection
  upgraded_close,  ///< the owner of an upgraded connection closes it
};

class exchange {
 public:
  /// Size of the input buffer; a read never asks for more than this at once.
  static constexpr std::size_t input_capacity = 16 * 1024;

  exchange(worker& w, const limits& lim);

  /// Takes one more reference.
  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  /// Drops a reference from any thread; the last one returns the exchange to its worker's
  /// pool, or frees it when the worker is gone.
  void release() noexcept;
  /// Drops a reference on the worker's own thread.
  void release_on_loop() noexcept;
  /// Carries out a response operation on the worker's thread: at once when called there,
  /// otherwise posted with its data (a posted_op); dropped when the worker is gone.
  void commit(response_op op, std::string&& data);
  /// A new handle on this exchange's response (one more reference).
  static response new_response(exchange& ex) {
    ex.add_ref();
    return response(&ex);
  }
  /// A new handle on this exchange's upgraded connection (one more reference).
  static upgraded_connection new_upgraded(exchange& ex) {
    ex.add_ref();
    return upgraded_connection(&ex);
  }
  /// The exchange behind a handle.
  static exchange& of(upgraded_connection& u) noexcept { return *u.exchange_; }
  /// Gets a pooled exchange ready for another connection.
  void reset_for_reuse();
  /// Frees the buffers that one large message grew past what a pooled exchange keeps.
  void release_large_buffers() noexcept;
  /// A buffer larger than this is not kept in the pool: without a bound, each of a worker's
  /// pooled exchanges held the largest body it ever carried (64 concurrent 1 MiB uploads kept
  /// 64 MB after they ended).
  static constexpr std::size_t pooled_buffer_bytes = 64 * 1024;

  // Worker-thread state.
  worker& owner;                     ///< only touched on the worker's thread, where it is alive
  const std::uint64_t owner_serial;  ///< tells the owner's thread without touching the worker
  connection_base* conn = nullptr;   ///< null once the connection has let go
  http1::request_parser parser;
  std::stop_source stop;
  std::unique_ptr<char[]> input;
  std::size_t input_begin = 0, input_end = 0;
  std::string output;
  std::size_t output_sent = 0;
  rate_meter body_rate;    ///< the request body, from the end of its head
  rate_meter output_rate;  ///< output held up by the client, until it is all written
  /// The loop's time when the request being read or handled began (its first byte parsed).
  std::int64_t request_began_ns = 0;

  // The response as the handle's holder builds it; read by the loop only in a response_op.
  int status = 200;
  std::string fields;                            ///< "Name: value\r\n" lines
  std::optional<std::uint64_t> declared_length;  ///< a Content-Length the handler set
  bool close_requested = false;                  ///< the handler set "Connection: close"
  upgrade_handlers upgrade;                      ///< set by response::upgrade()

  /// What commit() posts from another thread: a reference, the operation and its data. Small
  /// enough for a task's inline storage (tests/unit/net/task_test.cpp), so posting a response
  /// allocates nothing once the queue has grown.
  class posted_op {
   public:
    posted_op(exchange* e, response_op op, std::string&& data) noexcept
        : e_(e), op_(op), data_(std::move(data)) {}
    posted_op(posted_op&& o) noexcept
        : e_(std::exchange(o.e_, nullptr)), op_(o.op_), data_(std::move(o.data_)) {}
    posted_op& operator=(posted_op&&) = delete;
    /// Frees the reference, also when the worker went away before running this.
    ~posted_op() {
      if (e_) e_->release();
    }
    void operator()() {
      e_->posted_.fetch_sub(1, std::memory_order_relaxed);  // before: what it runs is not behind it
      e_->apply(op_, data_);
    }

   private:
    exchange* e_;
    response_op op_;
    std::string data_;
  };

 private:
  void apply(response_op op, std::string& data);
  std::atomic<int> refs_{1};
  std::atomic<unsigned> posted_{0};  // operations posted to the loop and not yet run
  std::shared_ptr<worker_anchor> anchor_;
};

}  // namespace lameduck::detail
