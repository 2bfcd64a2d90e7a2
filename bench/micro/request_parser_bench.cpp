// request_parser::feed (src/http1/request_parser.hpp) on whole requests held in memory, as a
// connection feeds what one read() returned: reset() before each request, as the server does
// when the next request begins, then feed() until message_complete, resuming after
// headers_complete when a body follows. Bytes are the request's bytes on the wire; items are
// requests.

#include "http1/request_parser.hpp"

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using lameduck::http1::request_parser;
using event = request_parser::event;

// What wrk sends for `wrk http://127.0.0.1:8080/`.
const std::string wrk_get = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

// A browser's page load: 10 header fields, about 500 bytes.
const std::string browser_get =
    "GET /articles/lameduck?page=2 HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "*/*;q=0.8\r\n"
    "Accept-Language: en-GB,en;q=0.7,fr;q=0.3\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: http://127.0.0.1:8080/articles\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=4f2a9c1e7b3d48e0a5c6f1d2e3b4a597; theme=dark; consent=1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "\r\n";

std::string body_bytes(std::size_t n) {
  std::string body;
  for (std::size_t i = 0; i < n; ++i)
    body.push_back(static_cast<char>('a' + i % 26));
  return body;
}

// A POST with a 1 KiB body delimited by Content-Length.
const std::string post_content_length =
    "POST /echo HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Length: 1024\r\n"
    "\r\n" +
    body_bytes(1024);

// The same 1 KiB body, chunked: four chunks of 256 bytes, then the last chunk.
const std::string post_chunked = [] {
  std::string r =
      "POST /echo HTTP/1.1\r\n"
      "Host: 127.0.0.1:8080\r\n"
      "Content-Type: application/octet-stream\r\n"
      "Transfer-Encoding: chunked\r\n"
      "\r\n";
  const std::string chunk = body_bytes(256);
  for (int i = 0; i < 4; ++i)
    r += "100\r\n" + chunk + "\r\n";
  return r + "0\r\n\r\n";
}();

// Parses one whole request from `wire`; false when the parser fails or wants more bytes.
bool parse_one(request_parser& parser, std::string_view wire) {
  parser.reset();
  for (;;) {
    std::size_t used = 0;
    const event e = parser.feed(wire, used);
    wire.remove_prefix(used);
    switch (e) {
      case event::message_complete:
        return wire.empty();
      case event::headers_complete:
        continue;  // a body follows: feed the rest, as the connection does
      case event::need_more:
      case event::error:
        return false;
    }
  }
}

void BM_request_parser_feed(benchmark::State& state, const std::string& wire,
                            std::size_t expected_body) {
  const lameduck::limits limits;  // the server's defaults
  request_parser parser(limits);
  // Check once, outside the timing, that the request is what it is meant to be.
  if (!parse_one(parser, wire) || parser.get().body().size() != expected_body) {
    state.SkipWithError("the request did not parse as expected");
    return;
  }
  for (auto _ : state) {
    std::string_view input = wire;
    benchmark::DoNotOptimize(input);  // the bytes are not known to the compiler
    const bool ok = parse_one(parser, input);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(parser.get());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(wire.size()));
  state.counters["bytes/req"] = static_cast<double>(wire.size());
}

BENCHMARK_CAPTURE(BM_request_parser_feed, get_wrk, wrk_get, 0);
BENCHMARK_CAPTURE(BM_request_parser_feed, get_browser_10_fields, browser_get, 0);
BENCHMARK_CAPTURE(BM_request_parser_feed, post_1KiB_content_length, post_content_length, 1024);
BENCHMARK_CAPTURE(BM_request_parser_feed, post_1KiB_chunked, post_chunked, 1024);

}  // namespace
