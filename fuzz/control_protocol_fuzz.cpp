// libFuzzer target for the control protocol: any bytes given to decode_request and
// decode_answer must either decode or throw protocol_error (nothing else, no crash), and what
// decodes must survive a round trip: decode(encode(x)) == x.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "control.hpp"

namespace {

using namespace lameduck::supervisor;

void check_request(std::string_view line) {
  request r;
  try {
    r = decode_request(line);
  } catch (const protocol_error&) {
    return;
  }
  std::string encoded = encode_request(r);
  if (encoded.empty() || encoded.back() != '\n' || encoded.find('\n') != encoded.size() - 1) {
    std::abort();
  }
  encoded.pop_back();
  // A request the supervisor accepted encodes to one it accepts again, unchanged.
  if (!(decode_request(encoded) == r)) std::abort();
}

void check_answer(std::string_view line) {
  answer_line a;
  try {
    a = decode_answer(line);
  } catch (const protocol_error&) {
    return;
  }
  std::string encoded;
  switch (a.what) {
    case answer_line::kind::progress:
      encoded = encode_progress(a.text);
      break;
    case answer_line::kind::log:
      encoded = encode_log_line(a.text);
      break;
    case answer_line::kind::result:
      encoded = encode_result(a.ok, a.text, a.status ? &*a.status : nullptr);
      if (a.status) (void)format_status_table(*a.status);
      if (a.status) (void)format_status_json(*a.status);
      break;
  }
  if (encoded.empty() || encoded.back() != '\n' || encoded.find('\n') != encoded.size() - 1) {
    std::abort();
  }
  encoded.pop_back();
  answer_line again = decode_answer(encoded);
  if (again.what != a.what || again.ok != a.ok || again.text != a.text ||
      again.status != a.status) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // Any other exception escapes and libFuzzer reports it as a crash.
  check_request(input);
  check_answer(input);
  // Whatever the bytes, encoding them never throws (a worker may print anything).
  (void)encode_log_line(input);
  (void)encode_progress(input);
  (void)encode_result(false, input);
  return 0;
}
