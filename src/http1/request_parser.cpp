#include "http1/request_parser.hpp"

#include <algorithm>
#include <array>

#include "http1/ascii.hpp"
#include "http1/authority.hpp"
#include "http1/request_builder.hpp"

namespace lameduck::http1 {

namespace {

std::string_view trim_trailing_space(std::string_view v) {
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
    v.remove_suffix(1);
  return v;
}

constexpr bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t';
}

// RFC 9110 section 5.6.2: tchar, the bytes of a token.
constexpr auto token_bytes = detail::alnum_and("!#$%&'*+-.^_`|~");

constexpr bool is_tchar(char c) noexcept {
  return token_bytes[static_cast<unsigned char>(c)];
}

// RFC 9110 section 5.6.4: qdtext, what a quoted-string holds unescaped: HTAB, SP, VCHAR but
// DQUOTE and backslash, and obs-text.
constexpr bool is_qdtext(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != '"' && u != '\\' && u != 0x7f);
}

// What may follow a backslash in a quoted-pair: HTAB, SP, VCHAR and obs-text.
constexpr bool is_quotable(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

// The largest chunk size, 2^64 - 1, has 16 hex digits: more can only be leading zeros, and a
// line of them would be read without end.
constexpr std::uint8_t max_chunk_size_digits = 16;

}  // namespace

// llhttp calls plain C functions; these forward to the parser that owns the llhttp_t.
struct parser_callbacks {
  static request_parser& self(llhttp_t* p) { return *static_cast<request_parser*>(p->data); }

  static int on_message_begin(llhttp_t* p) {
    self(p).started_ = true;
    return 0;
  }
  static int on_method(llhttp_t* p, const char* at, size_t n) {
    auto& s = self(p);
    s.line_bytes_ += n;
    s.method_size_ += static_cast<std::uint32_t>(n);
    s.arena_.append(at, n);
    return 0;
  }
  static int on_url(llhttp_t* p, const char* at, size_t n) {
    auto& s = self(p);
    s.line_bytes_ += n;
    // The line is method SP target SP "HTTP/1.1": the version's size is known in advance.
    constexpr std::size_t spaces_and_version = 2 + 8;
    if (s.line_bytes_ + spaces_and_version > s.limits_.max_request_line) {
      return s.fail(414, "request line too long");
    }
    s.target_size_ += static_cast<std::uint32_t>(n);
    s.arena_.append(at, n);
    return 0;
  }
  static int on_header_field(llhttp_t* p, const char* at, size_t n) {
    auto& s = self(p);
    if (s.head_complete_) return s.count_trailer_part(n, !s.in_name_);
    return s.append_field_part({at, n}, false) ? 0 : -1;
  }
  static int on_header_field_complete(llhttp_t* p) {
    auto& s = self(p);
    if (!s.in_name_ || (!s.head_complete_ && s.fields_.back().name_size == 0)) {
      return s.fail(400, "empty header field name");
    }
    s.in_name_ = false;  // the next name piece begins a new field, even after an empty value
    return 0;
  }
  static int on_header_value(llhttp_t* p, const char* at, size_t n) {
    auto& s = self(p);
    if (s.head_complete_) return s.count_trailer_part(n, false);
    return s.append_field_part({at, n}, true) ? 0 : -1;
  }
  static int on_headers_complete(llhttp_t* p) { return self(p).finish_head(); }
  static int on_body(llhttp_t* p, const char* at, size_t n) {
    auto& s = self(p);
    if (s.body_.size() + n > s.limits_.max_body_bytes) return s.fail(413, "body too large");
    s.body_.append(at, n);
    return 0;
  }
  static int on_message_complete(llhttp_t* p) {
    auto& s = self(p);
    detail::request_builder::set_body(s.request_, s.body_);
    detail::request_builder::set_keep_alive(s.request_, llhttp_should_keep_alive(p) != 0);
    // RFC 9110 section 7.8: an Upgrade header in an HTTP/1.0 request is ignored.
    detail::request_builder::set_upgrade_requested(
        s.request_, p->upgrade != 0 && (p->method == HTTP_CONNECT || p->http_minor >= 1));
    s.message_complete_ = true;
    return HPE_PAUSED;  // stop at the message boundary: the next request waits its turn
  }

  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t s = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = on_message_begin;
      s.on_method = on_method;
      s.on_url = on_url;
      s.on_header_field = on_header_field;
      s.on_header_field_complete = on_header_field_complete;
      s.on_header_value = on_header_value;
      s.on_headers_complete = on_headers_complete;
      s.on_body = on_body;
      s.on_message_complete = on_message_complete;
      return s;
    }();
    return s;
  }
};

request_parser::request_parser(const limits& l) : limits_(l) {
  llhttp_init(&parser_, HTTP_REQUEST, &parser_callbacks::settings());
  parser_.data = this;
  reset();
}

void request_parser::release_buffers_over(std::size_t keep) noexcept {
  if (body_.capacity() > keep) std::string().swap(body_);
  if (arena_.capacity() > keep) std::string().swap(arena_);
  if (fields_.capacity() * sizeof(field_offsets) > keep) std::vector<field_offsets>().swap(fields_);
}

std::size_t request_parser::buffer_capacity() const noexcept {
  return body_.capacity() + arena_.capacity() + fields_.capacity() * sizeof(field_offsets);
}

void request_parser::reset() {
  llhttp_reset(&parser_);
  parser_.data = this;
  detail::request_builder::clear(request_);
  arena_.clear();
  body_.clear();
  fields_.clear();
  method_size_ = target_size_ = 0;
  line_bytes_ = header_bytes_ = 0;
  error_status_ = 0;
  error_reason_ = "";
  method_ = 0;
  started_ = head_complete_ = message_complete_ = expects_continue_ = in_name_ = false;
  chunked_body_ = request_line_begun_ = request_line_ended_ = leading_empty_lines_ = false;
  request_line_seen_ = 0;
  chunk_ = chunk_state::off;
  chunk_size_digits_ = 0;
  chunk_extension_bytes_ = 0;
  chunk_left_ = 0;
  trailer_count_ = 0;
  previous_byte_ = 0;
}

int request_parser::count_trailer_part(std::size_t size, bool begins_field) {
  // Trailer fields are not kept, but they count against the head's limits: a client must not
  // stream them without end.
  if (begins_field) {
    in_name_ = true;
    header_bytes_ += 4;
    if (++trailer_count_ + fields_.size() > limits_.max_header_count) {
      return fail(431, "too many header fields");
    }
  }
  header_bytes_ += size;
  return header_bytes_ > limits_.max_header_bytes ? fail(431, "header fields too large") : 0;
}

int request_parser::fail(int status, const char* reason) {
  error_status_ = status;
  error_reason_ = reason;
  return -1;
}

bool request_parser::append_field_part(std::string_view part, bool is_value) {
  header_bytes_ += part.size();
  if (header_bytes_ > limits_.max_header_bytes) return fail(431, "header fields too large"), false;
  auto at = static_cast<std::uint32_t>(arena_.size());
  if (!is_value) {
    if (!in_name_) {  // a new field begins
      if (fields_.size() == limits_.max_header_count) {
        return fail(431, "too many header fields"), false;
      }
      fields_.push_back({at, 0, at, 0});
      header_bytes_ += 4;  // ": " and CRLF
      in_name_ = true;
    }
    // llhttp takes "Name :" as a name with a space; RFC 9112 section 5.1 says reject it.
    for (char c : part) {  // not find_first_of, which calls memchr for every byte
      if (c == ' ' || c == '\t') return fail(400, "whitespace in a header field name"), false;
    }
    fields_.back().name_size += static_cast<std::uint32_t>(part.size());
  } else {
    // The pieces of one value are contiguous in the arena: nothing else is appended between.
    if (fields_.back().value_size == 0) fields_.back().value_at = at;
    fields_.back().value_size += static_cast<std::uint32_t>(part.size());
  }
  arena_.append(part);
  return true;
}

int request_parser::finish_head() {
  head_complete_ = true;
  method_ = parser_.method;
  std::string_view arena = arena_;
  int version = parser_.http_major * 10 + parser_.http_minor;
  if (parser_.http_major != 1) return fail(400, "unsupported HTTP version");
  // RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
  if (version < 11 && (parser_.flags & F_TRANSFER_ENCODING)) {
    return fail(400, "Transfer-Encoding in HTTP/1.0");
  }
  detail::request_builder::set_line(request_, arena.substr(0, method_size_),
                                    arena.substr(method_size_, target_size_), version);
  auto& headers = detail::request_builder::headers(request_);
  int hosts = 0;
  std::size_t host_index = 0;
  for (const auto& f : fields_) {
    header_field h{arena.substr(f.name_at, f.name_size),
                   trim_trailing_space(arena.substr(f.value_at, f.value_size))};
    if (f.value_size == 0) h.value = {};
    headers.push_back(h);
    if (detail::ascii_iequals(h.name, "host")) {
      ++hosts;
      host_index = headers.size() - 1;
    } else if (detail::ascii_iequals(h.name, "expect")) {
      if (!detail::ascii_iequals(h.value, "100-continue"))
        return fail(417, "unsupported expectation");
      expects_continue_ = version >= 11;
    }
  }
  // RFC 9112 section 3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0, and a 400
  // for an invalid one, whatever the target.
  if (hosts > 1 || (hosts == 0 && version >= 11)) return fail(400, "missing or repeated Host");
  header_field* host = hosts == 1 ? &headers[host_index] : nullptr;
  authority a;
  if (host && !parse_host(host->value, a)) return fail(400, "invalid Host");
  // RFC 9112 section 3.2.2: with an absolute-form target, the server ignores Host and uses the
  // target's authority; section 3.3: a CONNECT's authority-form target is the authority.
  const bool is_connect = method_ == HTTP_CONNECT;
  const target_authority t = find_target_authority(request_.target(), is_connect);
  if (t.absolute || is_connect) {
    // parse_host refuses userinfo ('@'), which RFC 9110 section 4.2.4 has a recipient treat
    // as an error; section 4.2.1 rejects an http URI with an empty host.
    if (!parse_host(t.text, a) || a.host.empty()) {
      return fail(400, "invalid authority in the request target");
    }
    // RFC 9110 section 9.3.6: a CONNECT without a valid port gets a 400.
    if (is_connect && a.port.value_or(0) == 0) return fail(400, "CONNECT without port");
    if (host) host->value = t.text;
  }
  detail::request_builder::set_authority(request_, a);
  if (parser_.content_length > limits_.max_body_bytes && (parser_.flags & F_CONTENT_LENGTH)) {
    return fail(413, "body too large");
  }
  bool has_body = (parser_.flags & F_CHUNKED) ||
                  ((parser_.flags & F_CONTENT_LENGTH) && parser_.content_length > 0);
  if (!has_body) expects_continue_ = false;
  if (parser_.flags & F_CHUNKED) {
    chunked_body_ = true;
    chunk_ = chunk_state::size_start;
  }
  return has_body ? HPE_PAUSED : 0;
}

const char* request_parser::check_line_ends(std::string_view head) const noexcept {
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  if (previous_byte_ == '\n' && !head.empty() && is_space(head[0])) return "obsolete line folding";
  for (std::size_t i = head.find('\n'); i != std::string_view::npos; i = head.find('\n', i + 1)) {
    if ((i > 0 ? head[i - 1] : previous_byte_) != '\r') return "bare LF line ending";
    if (i + 1 < head.size() && is_space(head[i + 1])) return "obsolete line folding";
  }
  return nullptr;
}

// Gives llhttp data[from...]; consumed is where it stopped, counted from data's start.
llhttp_errno_t request_parser::execute(std::string_view data, std::size_t from,
                                       std::size_t& consumed) {
  const llhttp_errno_t err = llhttp_execute(&parser_, data.data() + from, data.size() - from);
  consumed = err == HPE_OK ? data.size()
                           : static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data.data());
  return err;
}

// A chunked body up to its last chunk: sizes, extensions, data and CRLFs. The data is copied
// once, into the body, as llhttp's on_body would; llhttp is left the last chunk's line (from
// its CR on), the trailer section and the end of the message.
llhttp_errno_t request_parser::execute_chunked(std::string_view data, std::size_t& consumed) {
  // The states a chunk goes through follow each other in the switch, so that the usual path
  // falls through from one to the next: a jump through the switch for each state cost more
  // than reading the chunk. A break leaves the switch only where data has run out.
  std::size_t pos = 0;
  while (pos < data.size()) {
    switch (chunk_) {
      case chunk_state::off:
        return execute(data, pos, consumed);
      case chunk_state::size_start:
      case chunk_state::size:
        for (; pos < data.size(); ++pos) {
          const char c = data[pos];
          if (!detail::ascii_hex(c)) break;
          // At most 16 digits: the size fits in 64 bits and cannot overflow.
          if (++chunk_size_digits_ > max_chunk_size_digits) {
            fail(400, "chunk size too long");
            return HPE_USER;
          }
          const unsigned digit = c <= '9' ? static_cast<unsigned>(c - '0')
                                          : static_cast<unsigned>((c | 0x20) - 'a') + 10;
          chunk_left_ = chunk_left_ * 16 + digit;
          chunk_ = chunk_state::size;
        }
        if (pos == data.size()) break;
        if (chunk_ == chunk_state::size_start ||
            (data[pos] != '\r' && data[pos] != ';' && !is_blank(data[pos]))) {
          fail(400, "invalid character in chunk size");
          return HPE_USER;
        }
        if (chunk_left_ == 0) {
          // The last chunk: llhttp, which has seen no chunk yet, is told its size here (the
          // digits may have come in an earlier read) and reads on from the line's CR.
          static constexpr char zero = '0';
          const llhttp_errno_t err = llhttp_execute(&parser_, &zero, 1);
          if (err != HPE_OK) return err;
        } else if (chunk_left_ > limits_.max_body_bytes - body_.size()) {
          fail(413, "body too large");  // known from the size, before any of the data
          return HPE_USER;
        }
        if (data[pos] != '\r') {
          chunk_ = chunk_state::after_value;
          continue;
        }
        chunk_ = chunk_state::line_cr;
        [[fallthrough]];
      case chunk_state::line_cr:
        if (chunk_left_ == 0) {
          chunk_ = chunk_state::off;
          continue;
        }
        ++pos;  // the CR, checked when the state was entered
        chunk_ = chunk_state::line_lf;
        if (pos == data.size()) break;
        [[fallthrough]];
      case chunk_state::line_lf:
        if (data[pos] != '\n') {
          fail(400, "expected LF after chunk size");
          return HPE_USER;
        }
        ++pos;
        chunk_ = chunk_state::data;
        if (pos == data.size()) break;
        [[fallthrough]];
      case chunk_state::data: {
        const auto n =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, data.size() - pos));
        body_.append(data.data() + pos, n);
        pos += n;
        chunk_left_ -= n;
        if (chunk_left_ != 0) break;
        chunk_ = chunk_state::data_cr;
        if (pos == data.size()) break;
        [[fallthrough]];
      }
      case chunk_state::data_cr:
        if (data[pos] != '\r') {
          fail(400, "expected CRLF after chunk data");
          return HPE_USER;
        }
        ++pos;
        chunk_ = chunk_state::data_lf;
        if (pos == data.size()) break;
        [[fallthrough]];
      case chunk_state::data_lf:
        if (data[pos] != '\n') {
          fail(400, "expected CRLF after chunk data");
          return HPE_USER;
        }
        ++pos;
        chunk_ = chunk_state::size_start;
        chunk_size_digits_ = 0;
        continue;
      default:  // in the extensions
        if (!skip_chunk_extensions(data, pos)) return HPE_USER;
        continue;
    }
  }
  consumed = data.size();
  return HPE_OK;
}

// Reads chunk extensions (RFC 9112 section 7.1.1) from data[pos] up to the line's CR, where it
// stops in state line_cr, or to data's end. Valid extensions are skipped, as a recipient must
// ignore those it does not understand; false after fail() for invalid ones.
//   chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//   chunk-ext-name = token; chunk-ext-val = token / quoted-string
bool request_parser::skip_chunk_extensions(std::string_view data, std::size_t& pos) {
  for (; pos < data.size(); ++pos) {
    const char c = data[pos];
    if (c != '\r' && ++chunk_extension_bytes_ > limits_.max_chunk_extension_bytes) {
      return fail(413, "chunk extensions too large"), false;
    }
    switch (chunk_) {
      case chunk_state::token:
        if (is_tchar(c)) continue;
        [[fallthrough]];
      case chunk_state::after_value:
        if (c == ';') {
          chunk_ = chunk_state::name_start;
        } else if (is_blank(c)) {
          chunk_ = chunk_state::bws_before_semi;
        } else if (c == '\r') {
          break;
        } else {
          return fail(400, "invalid chunk extension"), false;
        }
        continue;
      case chunk_state::bws_before_semi:
        if (c == ';') {
          chunk_ = chunk_state::name_start;
        } else if (!is_blank(c)) {
          return fail(400, "invalid chunk extension"), false;
        }
        continue;
      case chunk_state::name_start:
        if (is_tchar(c)) {
          chunk_ = chunk_state::name;
        } else if (!is_blank(c)) {
          return fail(400, "invalid chunk extension"), false;
        }
        continue;
      case chunk_state::name:
        if (is_tchar(c)) continue;
        if (c == ';') {
          chunk_ = chunk_state::name_start;
        } else if (c == '=') {
          chunk_ = chunk_state::value_start;
        } else if (is_blank(c)) {
          chunk_ = chunk_state::bws_after_name;
        } else if (c == '\r') {
          break;
        } else {
          return fail(400, "invalid chunk extension"), false;
        }
        continue;
      case chunk_state::bws_after_name:
        if (c == ';') {
          chunk_ = chunk_state::name_start;
        } else if (c == '=') {
          chunk_ = chunk_state::value_start;
        } else if (!is_blank(c)) {
          return fail(400, "invalid chunk extension"), false;
        }
        continue;
      case chunk_state::value_start:
        if (is_tchar(c)) {
          chunk_ = chunk_state::token;
        } else if (c == '"') {
          chunk_ = chunk_state::quoted;
        } else if (!is_blank(c)) {
          return fail(400, "invalid chunk extension"), false;
        }
        continue;
      case chunk_state::quoted:
        if (c == '"') {
          chunk_ = chunk_state::after_value;
        } else if (c == '\\') {
          chunk_ = chunk_state::quoted_pair;
        } else if (!is_qdtext(c)) {
          return fail(400, "invalid chunk extension"), false;
        }
        continue;
      case chunk_state::quoted_pair:
        if (!is_quotable(c)) return fail(400, "invalid chunk extension"), false;
        chunk_ = chunk_state::quoted;
        continue;
      default:
        return fail(400, "invalid chunk extension"), false;  // not reached: no extension here
    }
    chunk_ = chunk_state::line_cr;  // where an extension may end
    return true;
  }
  return true;
}

// RFC 9112 section 3: one SP between the request line's parts. A recipient may split on any
// run of whitespace instead, but llhttp does so for spaces only (tabs are refused), and a
// server that reads a line differently from a proxy in front of it can be smuggled to: a run
// of spaces is refused. Called with the head's bytes until the request line's LF has been seen.
const char* request_parser::check_request_line_spaces(std::string_view head) noexcept {
  constexpr const char* bad = "more than one space between request line parts";
  if (request_line_seen_ == 0 && !head.empty() && (head[0] == '\r' || head[0] == '\n')) {
    leading_empty_lines_ = true;  // RFC 9112 section 2.2 lets a server ignore them; llhttp does
  }
  if (!leading_empty_lines_) {
    // Once llhttp has read the line's LF, the sizes of its parts are known, and with one SP
    // between them the line is method SP target SP "HTTP/1.1" CR (llhttp refuses anything
    // else but more spaces). So no byte needs a look: a loop over them cost 20 ns a request.
    const auto lf = head.find('\n');
    if (lf == std::string_view::npos) {
      request_line_seen_ += head.size();
      return nullptr;
    }
    request_line_ended_ = true;
    constexpr std::size_t spaces_version_cr = 2 + 8 + 1;
    return request_line_seen_ + lf == method_size_ + target_size_ + spaces_version_cr ? nullptr
                                                                                      : bad;
  }
  // After empty lines, which are rare: a look at each byte up to the request line's LF.
  char previous = previous_byte_;
  bool begun = request_line_begun_;
  for (const char c : head) {
    if (c == ' ') {
      if (previous == ' ') return bad;
    } else if (c == '\n') {
      if (begun) {
        request_line_ended_ = true;
        return nullptr;
      }
    } else if (c != '\r') {
      begun = true;
    }
    previous = c;
  }
  request_line_begun_ = begun;
  return nullptr;
}

request_parser::event request_parser::feed(std::string_view data, std::size_t& consumed) {
  const bool in_head = !head_complete_;
  // Only a chunked body takes the longer way; a head or a Content-Length body is one call.
  const llhttp_errno_t err =
      chunked_body_ ? execute_chunked(data, consumed) : execute(data, 0, consumed);
  if (err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
    consumed = 0;
    if (error_status_ == 0) {
      error_status_ = 400;
      error_reason_ = llhttp_get_error_reason(&parser_);
      if (!error_reason_) error_reason_ = llhttp_errno_name(err);
    }
    return event::error;
  }
  // llhttp accepts obsolete line folding and bare LF line ends; RFC 9112 sections 2.2 and 5.2
  // let a server reject them, and a server that reads them differently from a proxy in front
  // of it can be smuggled to. Only head bytes are scanned (the parser pauses where a head ends)
  // and, for a chunked body, the line that ends it.
  const char* bad = nullptr;
  if (in_head) {
    const std::string_view head = data.substr(0, consumed);
    bad = check_line_ends(head);
    if (!bad && !request_line_ended_) bad = check_request_line_spaces(head);
  } else if (message_complete_ && (parser_.flags & F_CHUNKED) && consumed > 0) {
    char before_last = consumed > 1 ? data[consumed - 2] : previous_byte_;
    if (before_last != '\r') bad = "bare LF line ending";
  }
  if (bad) {
    consumed = 0;
    fail(400, bad);
    return event::error;
  }
  if (consumed > 0) previous_byte_ = data[consumed - 1];
  if (err == HPE_OK) return event::need_more;
  if (err == HPE_PAUSED_UPGRADE) {
    llhttp_resume_after_upgrade(&parser_);
  } else {
    llhttp_resume(&parser_);
  }
  return message_complete_ ? event::message_complete : event::headers_complete;
}

}  // namespace lameduck::http1
