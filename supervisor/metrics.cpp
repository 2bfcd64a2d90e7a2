// The supervisor's scrape, written with the library's exposition writer, and a scraper's
// request, read with the library's request parser.

#include "metrics.hpp"

#include <array>
#include <map>

#include "http1/response_writer.hpp"
#include "metrics/exposition.hpp"

namespace lameduck::supervisor {

namespace {

using detail::metric_type;

// Every label value a family has is written from the first scrape on, 0 until it happens: a
// series that appears only at its first event hides that event from rate() and increase().
constexpr std::array<std::string_view, 6> worker_states{"starting", "ready",  "replacing",
                                                        "stopping", "killed", "restarting"};
constexpr std::array<std::string_view, 7> restart_reasons{
    "exit", "signal", "not_ready", "start_failed", "failed_replacement", "watchdog", "memory"};
constexpr std::array<std::string_view, 2> reload_outcomes{"ok", "failed"};
constexpr std::array<std::string_view, 3> exit_outcomes{"graceful", "failed", "forced"};

// "restarting in 1.20s" is "restarting"; a slot not started yet (pid 0) is "starting".
std::string_view state_label(std::string_view state) {
  return state.substr(0, state.find(' '));
}

template <std::size_t N>
void counted(detail::exposition_writer& w, std::string_view program, std::string_view label,
             const std::array<std::string_view, N>& values,
             const std::map<std::string, std::uint64_t>& counts) {
  for (const std::string_view value : values) {
    const auto it = counts.find(std::string(value));
    w.sample({{"program", program}, {label, value}}, it == counts.end() ? 0 : it->second);
  }
}

}  // namespace

std::string format_metrics(const std::vector<program_metrics>& programs, std::uint64_t upgrades,
                           std::uint64_t log_lines_dropped) {
  detail::exposition_writer w;
  w.family("lameduck_supervisor_workers", metric_type::gauge,
           "Workers by state: starting, ready, replacing (a replacement not ready yet), stopping, "
           "killed (stopping, its group killed), restarting (a slot waiting to restart).");
  for (const auto& p : programs) {
    std::map<std::string_view, int> by_state;
    for (const auto& worker : p.status.workers)
      ++by_state[state_label(worker.state)];
    for (const std::string_view state : worker_states)
      w.sample({{"program", p.status.name}, {"state", state}}, by_state[state]);
  }
  w.family("lameduck_supervisor_instances", metric_type::gauge,
           "Worker slots configured (--instances, lameduck scale).");
  for (const auto& p : programs)
    w.sample({{"program", p.status.name}}, p.status.instances);
  w.family("lameduck_supervisor_generation", metric_type::gauge,
           "The generation new workers start with: 1, and one more at each reload.");
  for (const auto& p : programs)
    w.sample({{"program", p.status.name}}, p.status.generation);
  w.family("lameduck_supervisor_reload_running", metric_type::gauge,
           "1 while a reload of the program runs.");
  for (const auto& p : programs)
    w.sample({{"program", p.status.name}}, p.status.reload == "running" ? 1 : 0);
  w.family("lameduck_supervisor_reloads_total", metric_type::counter,
           "Reloads finished, by outcome: ok (every worker replaced), failed.");
  for (const auto& p : programs)
    counted(w, p.status.name, "outcome", reload_outcomes, p.counters.reloads);
  w.family("lameduck_supervisor_restarts_total", metric_type::counter,
           "Workers restarted or replaced, by reason: after an exit, a signal, a readiness "
           "timeout (not_ready), a failed start or a failed replacement; replaced for a silent "
           "watchdog or memory over the limit.");
  for (const auto& p : programs)
    counted(w, p.status.name, "reason", restart_reasons, p.counters.restarts);
  w.family("lameduck_supervisor_worker_exits_total", metric_type::counter,
           "Workers told to stop that have exited, by outcome: graceful (on their own, status 0 "
           "or the stop signal), failed (another status), forced (killed: at the kill timeout, "
           "by lameduck stop --kill, or a replacement given up on).");
  for (const auto& p : programs)
    counted(w, p.status.name, "outcome", exit_outcomes, p.counters.exits);
  w.family("lameduck_supervisor_worker_resident_bytes", metric_type::gauge,
           "Resident memory of each slot's serving worker, its whole process group.");
  for (const auto& p : programs) {
    for (const auto& worker : p.status.workers) {
      const std::string_view state = state_label(worker.state);
      if (worker.pid == 0 || (state != "ready" && state != "starting")) continue;
      w.sample({{"program", p.status.name}, {"slot", std::to_string(worker.slot)}},
               worker.memory_bytes);
    }
  }
  w.family("lameduck_supervisor_upgrades_total", metric_type::counter,
           "Times the supervisor has replaced its own binary (lameduck upgrade), its workers "
           "running on.");
  w.sample(upgrades);
  w.family("lameduck_supervisor_log_lines_dropped_total", metric_type::counter,
           "Lines (the supervisor's and its workers') dropped from its standard output while "
           "the reader stalled: its 1 MiB buffer was full, or the reader took nothing in the "
           "second before an exit or upgrade; the log says when.");
  w.sample(log_lines_dropped);
  return w.take();
}

namespace {

// A scrape's request is "GET /metrics HTTP/1.1" and a few header fields, with no body: what
// is bigger is no scraper's, and the parser answers it 414, 431 or 413.
const limits& scrape_limits() {
  static const limits l = [] {
    limits out;
    out.max_request_line = 1024;
    out.max_header_bytes = 8 * 1024;
    out.max_header_count = 50;
    out.max_body_bytes = 0;
    out.max_chunk_extension_bytes = 0;
    return out;
  }();
  return l;
}

}  // namespace

metrics_exchange::metrics_exchange() : parser_(scrape_limits()) {}

bool metrics_exchange::feed(std::string_view data, const std::function<std::string()>& scrape) {
  while (!answered()) {
    std::size_t used = 0;
    const auto event = parser_.feed(data, used);
    data.remove_prefix(used);
    switch (event) {
      case http1::request_parser::event::need_more:
        return false;
      case http1::request_parser::event::headers_complete:
        if (data.empty()) return false;  // its body (refused at its first byte) is to come
        break;
      case http1::request_parser::event::message_complete:
        respond(scrape);
        break;
      case http1::request_parser::event::error:
        http1::write_error(response_, parser_.error_status(), parser_.error_reason());
        break;
    }
  }
  return true;
}

void metrics_exchange::time_out() {
  if (!answered()) http1::write_error(response_, 408);
}

void metrics_exchange::respond(const std::function<std::string()>& scrape) {
  const lameduck::request& r = parser_.get();
  if (r.path() != "/metrics") {
    http1::write_error(response_, 404);
    return;
  }
  const bool head = r.method() == "HEAD";
  if (r.method() != "GET" && !head) {
    constexpr std::string_view text = "Method Not Allowed: GET or HEAD\n";
    http1::response_head h;
    h.status = 405;
    h.fields = "Allow: GET, HEAD\r\nContent-Type: text/plain\r\n";
    h.content_length = text.size();
    h.close = true;
    http1::write_head(response_, h);
    response_ += text;
    return;
  }
  const std::string body = scrape();
  const std::string fields = "Content-Type: " + std::string(detail::exposition_content_type) +
                             "\r\nCache-Control: no-store\r\n";
  http1::response_head h;
  h.fields = fields;
  h.content_length = body.size();
  h.close = true;
  http1::write_head(response_, h);
  if (!head) response_ += body;
}

}  // namespace lameduck::supervisor
