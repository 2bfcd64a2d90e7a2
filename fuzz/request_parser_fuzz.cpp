// libFuzzer target for the request parser: arbitrary bytes, fed in two pieces split where the
// first input byte says, must never crash, overrun, or report more bytes used than given.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http1/request_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const lameduck::limits limits{.max_request_line = 256,
                                       .max_header_bytes = 1024,
                                       .max_header_count = 16,
                                       .max_body_bytes = 4096,
                                       .max_chunk_extension_bytes = 64,
                                       .max_connections = 1};
  lameduck::http1::request_parser parser(limits);
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::size_t split = input.empty() ? 0 : data[0] % (input.size() + 1);
  std::string_view pieces[2] = {input.substr(0, split), input.substr(split)};
  for (std::string_view piece : pieces) {
    while (!piece.empty()) {
      std::size_t used = 0;
      auto event = parser.feed(piece, used);
      if (used > piece.size()) std::abort();
      piece.remove_prefix(used);
      using event_t = lameduck::http1::request_parser::event;
      if (event == event_t::error) return 0;
      if (event == event_t::message_complete) {
        auto& req = parser.get();
        (void)req.header("host");
        // The authority is a view into the request's bytes: reading it must stay inside them.
        for (char c : req.host())
          (void)c;
        (void)req.port();
        (void)req.query_param("q");
        parser.reset();
      } else if (event == event_t::need_more) {
        break;
      }
    }
  }
  return 0;
}
