#pragma once
// A server in memory, for unit tests that check the bytes a handler's answer becomes: one
// worker whose event loop never runs a thread, and for each round trip a connection over a
// test_stream (test_stream.hpp), set up as tests/unit/connection_test.cpp's fixture does it.
// No socket, no thread: the handler runs on the test's thread inside round_trip(), and what
// it answers is written at once. Unlike lameduck::server it has no listener, so no health
// endpoints and no connection limit's 503: the handler answers every request itself.

#include <sys/epoll.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <lameduck/options.hpp>
#include <lameduck/router.hpp>

#include "connection.hpp"
#include "net/address.hpp"
#include "test_stream.hpp"
#include "worker.hpp"

namespace lameduck::testing {

/// Serves a handler on connections that exist only in memory, one per round trip.
class in_memory_server {
 public:
  /// A server whose every request goes to h, with the limits and timeouts of options.
  explicit in_memory_server(handler h, server_options options = {}) {
    shared_.options = std::move(options);
    if (!shared_.options.log) {
      // As lameduck::server does: a handler that throws is reported where a person sees it.
      shared_.options.log = [](std::string_view line) {
        std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
      };
    }
    shared_.main = std::move(h);
    worker_ = std::make_unique<detail::worker>(shared_);
  }

  /// Closes the connections still open (a round trip whose client did not close) first.
  ~in_memory_server() {
    // A connection deletes itself when it closes, and must go before the worker it is
    // registered with; for_each allows the element it visits to unlink itself.
    worker_->connections.for_each([](detail::connection_base& c) { c.abort(); });
  }

  in_memory_server(const in_memory_server&) = delete;
  in_memory_server& operator=(const in_memory_server&) = delete;

  /// Opens a connection, hands it request_bytes and then, if client_closes, the end of the
  /// stream; returns everything the server wrote on it.
  std::string round_trip(std::string_view request_bytes, bool client_closes = true) {
    auto state = std::make_shared<test_stream_state>();
    detail::connection_base* c = start(state);
    if (!request_bytes.empty()) {  // an empty piece would read as zero bytes, not as nothing
      state->input.emplace_back(request_bytes);
      c->on_ready(EPOLLIN);
    }
    // A connection that closed has deleted itself, and it deletes itself only after closing
    // its stream: the stream's state tells whether c may still be used.
    if (client_closes && !state->closed) {
      state->eof = true;
      c->on_ready(EPOLLIN | EPOLLRDHUP);
    }
    return state->output;
  }

  /// Opens a connection as the acceptor would, and returns its stream's state; the test then
  /// plays the event loop's part through the connection (worker().connections).
  std::shared_ptr<test_stream_state> open() {
    auto state = std::make_shared<test_stream_state>();
    start(state);
    return state;
  }

  /// The worker the connections live on (its loop never runs a thread).
  detail::worker& worker() noexcept { return *worker_; }

 private:
  // A new connection over a stream with this state, started.
  detail::connection_base* start(const std::shared_ptr<test_stream_state>& state) {
    // Makes this thread count as the worker's, so that a response is applied at once rather
    // than posted to a loop nobody runs; again each time, in case another loop claimed it.
    worker_->loop().run_once(std::chrono::milliseconds(0));
    std::error_code ec;
    const auto peer = detail::parse_listen_address("127.0.0.1:4321", ec);
    auto* c = new detail::connection<test_stream>(*worker_, test_stream(state), &peer.any,
                                                  sizeof peer.v4);
    c->id = shared_.next_connection_id.fetch_add(1);
    shared_.open_connections.fetch_add(1);  // as the acceptor does; the close subtracts it
    c->start();
    return c;
  }

  detail::server_shared shared_;            // before the worker, which refers to it
  std::unique_ptr<detail::worker> worker_;  // its connections go in the destructor's body
};

}  // namespace lameduck::testing
