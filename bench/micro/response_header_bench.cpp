// response::header (include/lameduck/response.hpp): the checks (a token name, a value free of
// control characters), the fields the server keeps for itself (Content-Length, Connection) and
// the append to the exchange's field block, which every response header of every request
// passes through. The response is a real handle on a real exchange of a worker whose loop
// never runs a thread; the field block is cleared, its capacity kept, before each response,
// as a pooled exchange is. Items are header() calls.

#include <lameduck/response.hpp>

#include <benchmark/benchmark.h>

#include <string_view>

#include "exchange.hpp"
#include "worker.hpp"

namespace {

using namespace lameduck;

// A worker of a server that never starts, and one exchange of it with a response handle.
struct fixture {
  detail::server_shared shared;
  detail::worker worker{shared};
  detail::exchange* ex = worker.acquire_exchange();
  response res = detail::exchange::new_response(*ex);

  fixture() {
    worker.loop().run_once(std::chrono::milliseconds(0));  // this thread counts as the worker's
    ex->fields.reserve(1024);
  }
  ~fixture() {
    res.send("");  // answered: dropping the handle later posts nothing
    ex->release_on_loop();
  }
};

// The demo's two fields, as hello's "/" handler sets them.
void BM_response_header_two_fields(benchmark::State& state) {
  fixture f;
  for (auto _ : state) {
    f.ex->fields.clear();
    f.res.header("Content-Type", "text/plain").header("Cache-Control", "no-store");
    benchmark::DoNotOptimize(f.ex->fields.data());
  }
  state.SetItemsProcessed(2 * state.iterations());
}
BENCHMARK(BM_response_header_two_fields);

// A browser-facing response: six fields, one of them Content-Length (parsed, not appended).
void BM_response_header_six_fields(benchmark::State& state) {
  fixture f;
  for (auto _ : state) {
    f.ex->fields.clear();
    f.res.header("Content-Type", "text/html; charset=utf-8")
        .header("Content-Length", "1024")
        .header("Cache-Control", "max-age=60, public")
        .header("ETag", "\"5f3c-1a2b3c4d\"")
        .header("X-Content-Type-Options", "nosniff")
        .header("Vary", "Accept-Encoding");
    benchmark::DoNotOptimize(f.ex->fields.data());
  }
  state.SetItemsProcessed(6 * state.iterations());
}
BENCHMARK(BM_response_header_six_fields);

}  // namespace
