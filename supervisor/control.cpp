// The control protocol: requests and answers as JSON lines (nlohmann-json), the status table,
// and the owner-only Unix socket they travel on.
#include "control.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

namespace lameduck::supervisor {

// The status as JSON, each field named once, written in the order listed ("pid" first, where a
// person reads it). This is NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE's own expansion, templated on the
// json type as nlohmann's later releases have it: Debian 12's 3.11.2 ties the macro to
// nlohmann::json, whose objects are std::maps and come out in alphabetical order.
#define LAMEDUCK_JSON_FIELDS(Type, ...)                                                       \
  template <class BasicJsonType,                                                              \
            std::enable_if_t<nlohmann::detail::is_basic_json<BasicJsonType>::value, int> = 0> \
  void to_json(BasicJsonType& nlohmann_json_j, const Type& nlohmann_json_t) {                 \
    NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(NLOHMANN_JSON_TO, __VA_ARGS__))                  \
  }                                                                                           \
  template <class BasicJsonType,                                                              \
            std::enable_if_t<nlohmann::detail::is_basic_json<BasicJsonType>::value, int> = 0> \
  void from_json(const BasicJsonType& nlohmann_json_j, Type& nlohmann_json_t) {               \
    NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(NLOHMANN_JSON_FROM, __VA_ARGS__))                \
  }

LAMEDUCK_JSON_FIELDS(worker_status, slot, pid, generation, state, uptime_ms, restarts, ready,
                     memory_bytes, last_exit)
LAMEDUCK_JSON_FIELDS(program_status, name, instances, generation, reload, workers)
LAMEDUCK_JSON_FIELDS(supervisor_status, pid, uptime_ms, state, programs)
#undef LAMEDUCK_JSON_FIELDS

namespace {

// An exception's message without nlohmann's "[json.exception.parse_error.101] " tag, on one
// line and cut short.
std::string without_tag(std::string_view what) {
  if (auto tag = what.find("] "); what.starts_with("[json.") && tag != std::string_view::npos)
    what.remove_prefix(tag + 2);
  constexpr std::size_t max_message = 200;
  std::string message(what.substr(0, max_message));
  if (what.size() > max_message) message += "...";
  std::replace(message.begin(), message.end(), '\n', ' ');
  return message;
}

// Integers are read strictly: nlohmann's own conversion takes 4294967296 for a pid_t (as 0),
// -1 for a byte count (as 2^64 - 1), and 4.5 or true for a count.
template <class T, class = void>
struct strict_serializer : nlohmann::adl_serializer<T> {};

template <class T>
struct strict_serializer<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>>
    : nlohmann::adl_serializer<T> {
  template <class BasicJsonType>
  static void from_json(const BasicJsonType& j, T& value) {
    using unsigned_t = typename BasicJsonType::number_unsigned_t;
    using signed_t = typename BasicJsonType::number_integer_t;
    if (j.is_number_unsigned() && std::in_range<T>(j.template get_ref<const unsigned_t&>())) {
      value = static_cast<T>(j.template get_ref<const unsigned_t&>());
    } else if (j.is_number_integer() && !j.is_number_unsigned() &&
               std::in_range<T>(j.template get_ref<const signed_t&>())) {
      value = static_cast<T>(j.template get_ref<const signed_t&>());
    } else {
      throw protocol_error("expected an integer from " +
                           std::to_string(std::numeric_limits<T>::min()) + " to " +
                           std::to_string(std::numeric_limits<T>::max()) + ", got " +
                           (j.is_number() ? j.dump() : std::string(j.type_name())));
    }
  }
};

// Insertion order keeps "command" and "type" first on the wire, where a human reads them.
using json =
    nlohmann::basic_json<nlohmann::ordered_map, std::vector, std::string, bool, std::int64_t,
                         std::uint64_t, double, std::allocator, strict_serializer>;

struct verb_name {
  request::verb what;
  std::string_view name;
};
constexpr std::array<verb_name, 7> verb_names{{{request::verb::status, "status"},
                                               {request::verb::reload, "reload"},
                                               {request::verb::stop, "stop"},
                                               {request::verb::kill, "kill"},
                                               {request::verb::scale, "scale"},
                                               {request::verb::upgrade, "upgrade"},
                                               {request::verb::logs, "logs"}}};

std::string_view name_of(request::verb v) {
  for (const auto& entry : verb_names) {
    if (entry.what == v) return entry.name;
  }
  return "status";
}

// The fields each command may carry besides "command": anything else is refused, so that a
// misspelt field fails loudly instead of being ignored.
std::vector<std::string_view> fields_of(request::verb v) {
  switch (v) {
    case request::verb::reload:
      return {"wait", "program"};
    case request::verb::scale:
      return {"instances", "program"};
    case request::verb::logs:
      return {"lines", "follow", "worker", "program"};
    default:
      return {};
  }
}

// One line of JSON. Replacing invalid UTF-8 (with U+FFFD) instead of throwing matters for log
// lines, where a worker may have printed any bytes at all.
std::string dump_line(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  s += '\n';
  return s;
}

// A value quoted for an error message: JSON-escaped, so that the message stays one line, and
// cut short, so that a 60 KiB string does not come back whole.
std::string quote_for_message(std::string_view text) {
  constexpr std::size_t max_quoted = 64;
  bool cut = text.size() > max_quoted;
  std::string s = json(std::string(text.substr(0, max_quoted)))
                      .dump(-1, ' ', false, json::error_handler_t::replace);
  if (cut) s.insert(s.size() - 1, "...");
  return s;
}

[[noreturn]] void refuse(std::string why) {
  throw protocol_error(std::move(why));
}

// Parses one line into JSON, refusing what nlohmann accepts but a strict reader should not: an
// object with the same key twice (nlohmann keeps the last, silently).
json parse_line(std::string_view line) {
  std::vector<std::set<std::string>> keys;  // one set per object being parsed
  bool duplicate = false;
  json::parser_callback_t check = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second) {
          duplicate = true;
        }
        break;
      default:
        break;
    }
    return true;
  };
  // nlohmann takes a NUL byte for the end of the input and ignores what follows it; raw, a
  // NUL is not JSON anywhere (in a string it is written \u0000).
  if (line.find('\0') != std::string_view::npos) refuse("a NUL byte in a line of JSON");
  json j;
  try {
    j = json::parse(line.begin(), line.end(), check);
  } catch (const json::exception& e) {
    refuse("not JSON: " + without_tag(e.what()));
  }
  if (duplicate) refuse("a key appears twice in one object");
  return j;
}

const json& field(const json& object, const char* key, std::string_view context) {
  auto it = object.find(key);
  if (it == object.end()) refuse(std::string(context) + " has no \"" + key + '"');
  return *it;
}

std::string string_field(const json& object, const char* key, std::string_view context) {
  const json& v = field(object, key, context);
  if (!v.is_string()) {
    refuse(std::string("\"") + key + "\" is not a string in " + std::string(context));
  }
  return v.get<std::string>();
}

bool bool_field(const json& object, const char* key, std::string_view context) {
  const json& v = field(object, key, context);
  if (!v.is_boolean()) {
    refuse(std::string("\"") + key + "\" is not true or false in " + std::string(context));
  }
  return v.get<bool>();
}

// An integer from lo to hi. A float (4.0, 1e30) is not an integer here: nlohmann keeps the
// two apart, and a huge literal becomes a float.
template <class T>
T integer_field(const json& object, const char* key, std::string_view context,
                T lo = std::numeric_limits<T>::min(), T hi = std::numeric_limits<T>::max()) {
  const json& v = field(object, key, context);
  auto out_of_range = [&] {
    refuse(std::string("\"") + key + "\" in " + std::string(context) + " is not an integer from " +
           std::to_string(lo) + " to " + std::to_string(hi));
  };
  if (!v.is_number_integer()) out_of_range();
  if (v.is_number_unsigned()) {
    auto u = v.get<std::uint64_t>();
    if (std::cmp_less(u, lo) || std::cmp_greater(u, hi)) out_of_range();
    return static_cast<T>(u);
  }
  auto s = v.get<std::int64_t>();
  if (std::cmp_less(s, lo) || std::cmp_greater(s, hi)) out_of_range();
  return static_cast<T>(s);
}

// Statuses are read strictly in what they must hold (every field, of its type: integers by
// the strict serializer) and leniently in what they may add: a newer supervisor may report
// more than this client knows. What the types cannot say is checked here.
supervisor_status status_from_json(const json& j) {
  supervisor_status s;
  try {
    j.get_to(s);
  } catch (const std::exception& e) {  // json::exception, or a strict integer's protocol_error
    refuse("the status is not readable: " + without_tag(e.what()));
  }
  auto negative = [](auto... values) { return ((values < 0) || ...); };
  if (negative(s.pid, s.uptime_ms)) refuse("the status has a negative pid or uptime");
  for (const auto& p : s.programs) {
    if (negative(p.instances)) refuse("a program's status has negative instances");
    for (const auto& w : p.workers) {
      if (negative(w.slot, w.pid, w.uptime_ms, w.restarts)) {
        refuse("a worker's status has a negative slot, pid, uptime or restart count");
      }
    }
  }
  return s;
}

}  // namespace

std::string encode_request(const request& r) {
  json j = json::object();
  j["command"] = name_of(r.what);
  switch (r.what) {
    case request::verb::reload:
      j["wait"] = r.wait;
      break;
    case request::verb::scale:
      j["instances"] = r.instances;
      break;
    case request::verb::logs:
      j["lines"] = r.lines;
      j["follow"] = r.follow;
      if (r.worker) j["worker"] = *r.worker;
      break;
    default:
      break;
  }
  auto fields = fields_of(r.what);
  if (!r.program.empty() && std::find(fields.begin(), fields.end(), "program") != fields.end()) {
    j["program"] = r.program;
  }
  return dump_line(j);
}

request decode_request(std::string_view line) {
  if (line.size() > max_request_bytes) {
    refuse("a request longer than " + std::to_string(max_request_bytes) + " bytes");
  }
  json j = parse_line(line);
  if (!j.is_object()) refuse("a request is a JSON object");
  std::string command = string_field(j, "command", "a request");
  auto known = std::find_if(verb_names.begin(), verb_names.end(),
                            [&](const verb_name& v) { return v.name == command; });
  if (known == verb_names.end()) refuse("unknown command " + quote_for_message(command));
  request r;
  r.what = known->what;
  std::string context = std::string(known->name) + " request";
  context.insert(0, context[0] == 'u' ? "an " : "a ");
  auto fields = fields_of(r.what);
  for (const auto& item : j.items()) {
    if (item.key() == "command") continue;
    if (std::find(fields.begin(), fields.end(), item.key()) == fields.end()) {
      refuse(quote_for_message(item.key()) + " is not a field of " + context);
    }
  }
  if (j.contains("wait")) r.wait = bool_field(j, "wait", context);
  if (j.contains("follow")) r.follow = bool_field(j, "follow", context);
  if (j.contains("lines")) {
    r.lines = integer_field<std::size_t>(j, "lines", context, 0, max_log_lines);
  }
  if (j.contains("worker"))
    r.worker = integer_field<int>(j, "worker", context, 0, max_instances - 1);
  if (r.what == request::verb::scale) {
    r.instances = integer_field<int>(j, "instances", context, 0, max_instances);
  }
  if (j.contains("program")) {
    r.program = string_field(j, "program", context);
    if (r.program.empty()) refuse("\"program\" is empty in " + context + " (leave it out for all)");
  }
  return r;
}

std::string encode_progress(std::string_view message) {
  json j = json::object();
  j["type"] = "progress";
  j["message"] = message;
  return dump_line(j);
}

std::string encode_log_line(std::string_view line) {
  json j = json::object();
  j["type"] = "log";
  j["line"] = line;
  return dump_line(j);
}

std::string encode_result(bool ok, std::string_view message, const supervisor_status* status) {
  json j = json::object();
  j["type"] = "result";
  j["ok"] = ok;
  j["message"] = message;
  if (status) j["status"] = *status;
  return dump_line(j);
}

answer_line decode_answer(std::string_view line) {
  json j = parse_line(line);
  if (!j.is_object()) refuse("an answer line is a JSON object");
  std::string type = string_field(j, "type", "an answer line");
  answer_line a;
  if (type == "progress") {
    a.what = answer_line::kind::progress;
    a.text = string_field(j, "message", "a progress line");
  } else if (type == "log") {
    a.what = answer_line::kind::log;
    a.text = string_field(j, "line", "a log line");
  } else if (type == "result") {
    a.what = answer_line::kind::result;
    a.ok = bool_field(j, "ok", "a result");
    a.text = string_field(j, "message", "a result");
    if (auto it = j.find("status"); it != j.end()) a.status = status_from_json(*it);
  } else {
    refuse("unknown answer type " + quote_for_message(type));
  }
  return a;
}

std::string format_status_json(const supervisor_status& s) {
  std::string text = json(s).dump(2, ' ', false, json::error_handler_t::replace);
  text += '\n';
  return text;
}

namespace {

// 3s, 4m12s, 2h03m, 5d: precise where it changes fast, short where it does not.
std::string format_uptime(std::int64_t ms) {
  std::int64_t s = std::max<std::int64_t>(ms, 0) / 1000;
  char text[32];
  if (s < 60) {
    std::snprintf(text, sizeof text, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  } else {
    std::snprintf(text, sizeof text, "%lldd", static_cast<long long>(s / 86400));
  }
  return text;
}

// 512B, 12.3M, 1.0G (binary units); "-" for 0, which no live process has: not measured.
std::string format_memory(std::uint64_t bytes) {
  if (bytes == 0) return "-";
  if (bytes < 1024) return std::to_string(bytes) + "B";
  constexpr std::string_view units = "KMGTPE";
  double value = static_cast<double>(bytes) / 1024;
  std::size_t unit = 0;
  // 1023.96K would print as "1024.0K": such a value moves up a unit too.
  while (value >= 1023.95 && unit + 1 < units.size()) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%c", value, units[unit]);
  return text;
}

// Names and states come over the wire: a control byte in them must not steer the terminal.
std::string printable(std::string_view text) {
  std::string s(text);
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return s;
}

// Columns padded to their widest cell (in bytes: the cells are ASCII but for names), two
// spaces apart; numbers to the right, text to the left, no space at the end of a line.
void append_table(std::string& out, const std::vector<std::vector<std::string>>& rows,
                  const std::vector<bool>& right) {
  std::vector<std::size_t> width(right.size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (i > 0) line += "  ";
      std::string pad(width[i] - row[i].size(), ' ');
      line += right[i] ? pad + row[i] : row[i] + pad;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line;
    out += '\n';
  }
}

}  // namespace

std::string format_status_table(const supervisor_status& s) {
  std::string out = "lameduck: pid " + std::to_string(s.pid) + ", " + printable(s.state) + ", up " +
                    format_uptime(s.uptime_ms) + '\n';
  for (const auto& p : s.programs) {
    out += '\n';
    out += printable(p.name) + ": generation " + std::to_string(p.generation) + ", reload " +
           printable(p.reload) + ", " + std::to_string(p.instances) +
           (p.instances == 1 ? " instance\n" : " instances\n");
    if (p.workers.empty()) {
      out += "(no workers)\n";
      continue;
    }
    std::vector<std::vector<std::string>> rows{
        {"SLOT", "PID", "GEN", "STATE", "UPTIME", "RESTARTS", "READY", "MEMORY", "LAST EXIT"}};
    for (const auto& w : p.workers) {
      bool running = w.pid != 0;
      rows.push_back({std::to_string(w.slot), running ? std::to_string(w.pid) : "-",
                      std::to_string(w.generation), printable(w.state),
                      running ? format_uptime(w.uptime_ms) : "-", std::to_string(w.restarts),
                      w.ready ? "yes" : "no", running ? format_memory(w.memory_bytes) : "-",
                      w.last_exit.empty() ? "-" : printable(w.last_exit)});
    }
    append_table(out, rows, {true, true, true, false, true, true, false, true, false});
  }
  return out;
}

namespace {

// A failure of bind_control_socket: the code for the caller's logic, the line for the user.
int fail(std::error_code& ec, std::string& why, std::error_code code, std::string message) {
  ec = code;
  why = std::move(message);
  return -1;
}

int fail_errno(std::error_code& ec, std::string& why, std::string message) {
  int error = errno;
  message += ": ";
  message += std::strerror(error);
  return fail(ec, why, {error, std::system_category()}, std::move(message));
}

bool make_address(const std::string& path, sockaddr_un& address, std::error_code& ec) {
  address = {};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.find('\0') != std::string::npos) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return false;
  }
  if (path.size() >= sizeof address.sun_path) {  // the kernel needs room for the final '\0'
    ec = std::make_error_code(std::errc::filename_too_long);
    return false;
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  return true;
}

// The socket's directory, made private if we create it and refused if it exists and is not:
// whoever can write to it could put their own socket in our place.
bool private_directory(const std::string& dir, std::error_code& ec, std::string& why) {
  if (::mkdir(dir.c_str(), 0700) == 0) {
    // The umask may have taken the owner's bits away; exactly 0700 is what we mean.
    if (::chmod(dir.c_str(), 0700) != 0) {
      fail_errno(ec, why, "cannot make the directory " + dir + " private");
      return false;
    }
    return true;
  }
  if (errno != EEXIST) {
    fail_errno(ec, why, "cannot create the directory " + dir);
    return false;
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    fail_errno(ec, why, "cannot inspect " + dir);
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    fail(ec, why, std::make_error_code(std::errc::not_a_directory), dir + " is not a directory");
    return false;
  }
  if (st.st_uid != ::geteuid()) {
    fail(ec, why, std::make_error_code(std::errc::permission_denied),
         "the directory " + dir + " belongs to another user (uid " + std::to_string(st.st_uid) +
             ")");
    return false;
  }
  if ((st.st_mode & 077) != 0) {
    // Not chmod-ed silently: the directory may be shared on purpose, and the user decides.
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    fail(ec, why, std::make_error_code(std::errc::permission_denied),
         "the directory " + dir + " is open to other users (mode " + mode +
             "): make it 0700 or choose another control socket");
    return false;
  }
  return true;
}

enum class probe_result { live, stale, gone, error };

// Whether a supervisor answers on an existing socket file. Non-blocking, so that a live one
// with a full backlog (EAGAIN) answers "live" at once instead of making us wait.
probe_result probe(const sockaddr_un& address) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return probe_result::error;
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  int error = rc == 0 ? 0 : errno;
  ::close(fd);
  errno = error;
  if (rc == 0 || error == EAGAIN || error == EINPROGRESS) return probe_result::live;
  if (error == ECONNREFUSED) return probe_result::stale;
  if (error == ENOENT) return probe_result::gone;
  return probe_result::error;
}

// The path is checked, a stale socket replaced, and the new one bound, under the lock.
int bind_locked(const std::string& path, const sockaddr_un& address, std::error_code& ec,
                std::string& why) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return fail(ec, why, std::make_error_code(std::errc::file_exists),
                  path + " exists and is not a socket");
    }
    switch (probe(address)) {
      case probe_result::live:
        return fail(ec, why, std::make_error_code(std::errc::address_in_use),
                    "another supervisor is running on " + path);
      case probe_result::stale:
        // A supervisor that died without cleaning up: nobody listens, the name is ours.
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
          return fail_errno(ec, why, "cannot remove the stale socket " + path);
        }
        break;
      case probe_result::gone:
        break;
      case probe_result::error:
        return fail_errno(ec, why, "cannot check the existing socket " + path);
    }
  } else if (errno != ENOENT) {
    return fail_errno(ec, why, "cannot inspect " + path);
  }

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_errno(ec, why, "cannot create a socket");
  // The umask makes the socket 0600 as it appears, with no moment at 0755 in which another
  // user could connect. It is process-wide: this runs at start-up, before any other thread.
  mode_t old_mask = ::umask(0177);
  int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  int bind_error = errno;
  ::umask(old_mask);
  if (rc != 0) {
    ::close(fd);
    errno = bind_error;
    if (bind_error == EADDRINUSE) {  // another supervisor bound it since we looked
      return fail(ec, why, std::make_error_code(std::errc::address_in_use),
                  "another supervisor is running on " + path);
    }
    return fail_errno(ec, why, "cannot bind " + path);
  }
  // Also chmod: the umask is a mask, and a socket file must not depend on what it masked.
  if (::chmod(path.c_str(), 0600) != 0 || ::listen(fd, 64) != 0) {
    int error = errno;
    ::close(fd);
    ::unlink(path.c_str());
    errno = error;
    return fail_errno(ec, why, "cannot listen on " + path);
  }
  return fd;
}

}  // namespace

int bind_control_socket(const std::string& path, std::error_code& ec) {
  std::string why;
  return bind_control_socket(path, ec, why);
}

int bind_control_socket(const std::string& path, std::error_code& ec, std::string& why) {
  ec.clear();
  why.clear();
  sockaddr_un address;
  if (!make_address(path, address, ec)) {
    return fail(ec, why, ec,
                ec == std::errc::filename_too_long
                    ? "the control socket path " + path + " is too long (at most " +
                          std::to_string(sizeof address.sun_path - 1) + " bytes)"
                    : std::string("the control socket path is empty"));
  }
  if (path.back() == '/') {
    return fail(ec, why, std::make_error_code(std::errc::is_a_directory),
                "the control socket path " + path + " names a directory");
  }
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (!private_directory(dir, ec, why)) return -1;
  // From the look at the path to the listen(), one supervisor at a time: two that start
  // together would each find a stale socket, and the second would unlink the first's live one
  // and bind its own, leaving the first unreachable (between bind and listen, a socket even
  // looks stale: connect() is refused). The directory's lock covers no more than these few
  // calls, so supervisors sharing a directory lose nothing, and it leaves no file behind.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return fail_errno(ec, why, "cannot open " + dir);
  int locked;
  while ((locked = ::flock(dir_fd, LOCK_EX)) != 0 && errno == EINTR) {
  }
  if (locked != 0) {
    const int error = errno;
    ::close(dir_fd);
    errno = error;
    return fail_errno(ec, why, "cannot lock " + dir);
  }
  const int fd = bind_locked(path, address, ec, why);
  ::close(dir_fd);  // and the lock with it
  return fd;
}

int connect_control_socket(const std::string& path, std::error_code& ec) {
  ec.clear();
  sockaddr_un address;
  if (!make_address(path, address, ec)) return -1;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ec = {errno, std::system_category()};
    return -1;
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    ec = {errno, std::system_category()};
    ::close(fd);
    return -1;
  }
  return fd;
}

bool peer_is_owner(int fd) {
  ucred credentials{};
  socklen_t size = sizeof credentials;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) return false;
  return credentials.uid == ::geteuid() || credentials.uid == 0;
}

}  // namespace lameduck::supervisor
