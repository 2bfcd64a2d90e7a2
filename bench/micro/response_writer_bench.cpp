// The response writer (src/http1/response_writer.hpp) appending to one std::string that is
// cleared, its capacity kept, before each response, as a connection reuses its output buffer.
// Bytes are the bytes written; items are responses. write_head includes formatting the Date
// field, which http_date() does at most once a second (the benchmark sees the cached path).

#include "http1/response_writer.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

namespace {

namespace http1 = lameduck::http1;

void BM_write_head(benchmark::State& state, http1::response_head head) {
  std::string out;
  out.reserve(4096);
  for (auto _ : state) {
    out.clear();
    benchmark::DoNotOptimize(head);  // the head is not known to the compiler
    http1::write_head(out, head);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();  // the bytes written count as used
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(out.size()));
  state.counters["bytes/resp"] = static_cast<double>(out.size());
}

// What the demo's handler answers: 200 with a Content-Length and two fields of its own.
http1::response_head ok_content_length() {
  http1::response_head head;
  head.status = 200;
  head.fields = "Content-Type: text/plain\r\nCache-Control: no-store\r\n";
  head.body_framing = http1::framing::content_length;
  head.content_length = 14;  // "Hello, World!\n"
  return head;
}

BENCHMARK_CAPTURE(BM_write_head, 200_content_length_2_fields, ok_content_length());

// A complete error response (status line, head and one-line body) that closes the connection.
void BM_write_error(benchmark::State& state) {
  const int status = static_cast<int>(state.range(0));
  std::string out;
  out.reserve(4096);
  for (auto _ : state) {
    out.clear();
    int s = status;
    benchmark::DoNotOptimize(s);
    http1::write_error(out, s);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(out.size()));
  state.counters["bytes/resp"] = static_cast<double>(out.size());
}

BENCHMARK(BM_write_error)->ArgName("status")->Arg(400)->Arg(431)->Arg(503);

}  // namespace
