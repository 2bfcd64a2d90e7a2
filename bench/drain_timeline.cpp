// drain_timeline: the server of bench/drain_timeline.sh (a benchmark, never run by CI).
//
// A lameduck server that records what a graceful stop does, as seen through the library's
// public API: every SAMPLE milliseconds a thread of its own reads server::counts() (the
// connections in each state), server::ready() and the number of responses completed so far,
// and writes one line; the server's stop log lines (server_options::log, in JSON) and the stop
// report are written with the instant they came. bench/charts.py draws the drain timeline of
// docs/ from these files.
//
//   drain_timeline --samples FILE --events FILE [--listen 127.0.0.1:0] [--threads 1]
//                  [--sample-ms 10] [--lame-duck-ms 3000] [--deadline-ms 15000]
//                  [--idle-grace-ms 0] [--tail-ms 500] [--max-s 120]
//
// Routes:
//   GET /                 "Hello, World!\n"
//   GET /slow?ms=N        answered N ms later (at most 60000), from a timer thread: a request in
//                         flight for as long as the application takes
//   GET /upgrade          with "Upgrade: echo": 101, then every byte comes back. When a drain
//                         begins (upgrade_handlers::on_shutdown) the server sends "bye\n", as a
//                         WebSocket server sends its close frame; the client finishes and answers
//                         "close", and the server then closes the connection
//   GET /readyz           readiness (server_options::health): 503 from the stop signal on
//
// The first SIGTERM or SIGINT calls shutdown(DEADLINE) with a lame-duck delay of LAME_DUCK ms
// and an idle grace of IDLE_GRACE ms; a second one calls destroy(). TAIL ms after the stop has
// completed (or at MAX seconds, with a destroy) the program exits 0; 2 on usage or when the
// server cannot start.
//
// Output. Standard output: "listening PORT" once serving. --samples, CSV:
//   t_ms,fresh,active,idle,upgraded,closing,closed,answered,ready
// (t_ms: CLOCK_MONOTONIC in ms, the clock of every process on the machine; closed: every
// connection closed so far; answered: responses completed so far, 101s included, probes not).
// --events, one JSON object per line: {"t_ms":T,"event":"listening","port":P},
// {"t_ms":T,"event":"signal","signal":N}, {"t_ms":T,"log":{...}} for each line the server logs
// (its stop lines carry "event": stop_ordered, drain_began, deadline_passed, stopped), and
// {"t_ms":T,"event":"report",...} with the stop report.

#include <signal.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <lameduck/lameduck.hpp>

#include "../examples/timer_thread.hpp"
#include "bench_signals.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6;
}

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "drain_timeline: " << why << " (see the comment at the top of drain_timeline.cpp)\n";
  std::exit(2);
}

// One line at a time to the events file, from any thread.
class event_log {
 public:
  explicit event_log(std::FILE* f) : f_(f) {}
  void write(const std::string& json_fields) {
    std::lock_guard lock(mutex_);
    std::fprintf(f_, "{\"t_ms\":%.3f,%s}\n", monotonic_ms(), json_fields.c_str());
    std::fflush(f_);
  }

 private:
  std::mutex mutex_;
  std::FILE* f_;
};

long number(const lameduck::request& req, std::string_view name, long fallback, long max) {
  auto v = req.query_param(name);
  if (!v) return fallback;
  long n = std::strtol(std::string(*v).c_str(), nullptr, 10);
  return n < 0 ? 0 : (n > max ? max : n);
}

lameduck::router make_routes(timer_thread& timers, std::atomic<std::uint64_t>& answered) {
  lameduck::router routes;
  routes.get("/", [&answered](const lameduck::request&, lameduck::response res) {
    res.header("Content-Type", "text/plain").send("Hello, World!\n");
    answered.fetch_add(1, std::memory_order_relaxed);
  });
  routes.get("/slow", [&timers, &answered](const lameduck::request& req, lameduck::response res) {
    const long ms = number(req, "ms", 1000, 60'000);
    auto shared = std::make_shared<lameduck::response>(std::move(res));
    timers.at(clock_type::now() + std::chrono::milliseconds(ms), [shared, ms, &answered] {
      shared->send("waited " + std::to_string(ms) + " ms\n");
      answered.fetch_add(1, std::memory_order_relaxed);
    });
  });
  routes.get("/upgrade", [&answered](const lameduck::request& req, lameduck::response res) {
    if (!req.upgrade_requested()) {
      res.header("Upgrade", "echo").header("Connection", "Upgrade");
      return res.send(426, "Upgrade Required\n");
    }
    lameduck::upgrade_handlers h;
    h.on_data = [](lameduck::upgraded_connection& self, std::string_view bytes) {
      if (bytes.find("close") != std::string_view::npos) return self.close();
      self.send(std::string(bytes));
    };
    // The server's half of a closing handshake: say so, and close when the client answers.
    h.on_shutdown = [](lameduck::upgraded_connection& self) { self.send("bye\n"); };
    res.upgrade("echo", std::move(h));
    answered.fetch_add(1, std::memory_order_relaxed);
  });
  return routes;
}

std::string report_json(const lameduck::stop_report& r) {
  std::string s =
      "\"event\":\"report\",\"graceful\":" + std::string(r.graceful ? "true" : "false") +
      ",\"took_ms\":" + std::to_string(std::chrono::duration<double, std::milli>(r.took).count()) +
      ",\"requests_completed\":" + std::to_string(r.requests_completed) +
      ",\"requests_aborted\":" + std::to_string(r.requests_aborted);
  for (std::size_t i = 0; i < lameduck::connection_state_count; ++i) {
    const auto state = static_cast<lameduck::connection_state>(i);
    if (state == lameduck::connection_state::closed) continue;
    s += ",\"closed_" + std::string(lameduck::to_string(state)) +
         "\":" + std::to_string(r.closed_by_state[i]);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0", samples_path, events_path;
  long threads = 1, sample_ms = 10, lame_duck_ms = 3000, deadline_ms = 15000, idle_grace_ms = 0,
       tail_ms = 500, max_s = 120;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage("no value for " + flag);
    const std::string v = argv[i + 1];
    char* end = nullptr;
    const long n = std::strtol(v.c_str(), &end, 10);
    const bool numeric = !v.empty() && *end == '\0' && n >= 0;
    auto set = [&](long& field) {
      if (!numeric) usage(flag + " needs a whole number, not '" + v + "'");
      field = n;
    };
    if (flag == "--listen")
      listen = v;
    else if (flag == "--samples")
      samples_path = v;
    else if (flag == "--events")
      events_path = v;
    else if (flag == "--threads")
      set(threads);
    else if (flag == "--sample-ms")
      set(sample_ms);
    else if (flag == "--lame-duck-ms")
      set(lame_duck_ms);
    else if (flag == "--deadline-ms")
      set(deadline_ms);
    else if (flag == "--idle-grace-ms")
      set(idle_grace_ms);
    else if (flag == "--tail-ms")
      set(tail_ms);
    else if (flag == "--max-s")
      set(max_s);
    else
      usage("unknown option " + flag);
  }
  if (samples_path.empty() || events_path.empty()) usage("--samples and --events are needed");
  if (threads < 1 || sample_ms < 1 || max_s < 1)
    usage("--threads, --sample-ms and --max-s must be 1 or more");
  std::FILE* samples = std::fopen(samples_path.c_str(), "w");
  std::FILE* events_file = std::fopen(events_path.c_str(), "w");
  if (!samples || !events_file) usage("cannot write " + (samples ? events_path : samples_path));

  // Before any thread starts: the stop signals are taken with sigtimedwait by this thread only.
  const sigset_t stop_signals = block_stop_signals();

  event_log events(events_file);
  timer_thread timers;
  std::atomic<std::uint64_t> answered{0};
  lameduck::server_options options;
  options.listen = {listen};
  options.threads = unsigned(threads);
  options.health.readiness_path = "/readyz";
  options.drain.lame_duck_delay = std::chrono::milliseconds(lame_duck_ms);
  options.drain.idle_grace = std::chrono::milliseconds(idle_grace_ms);
  options.log_format = lameduck::log_format::json;
  options.log = [&events](std::string_view line) { events.write("\"log\":" + std::string(line)); };
  lameduck::server server(options, make_routes(timers, answered));
  std::error_code ec;
  server.start(ec);
  if (ec) {
    std::cerr << "drain_timeline: cannot start: " << ec.message() << "\n";
    return 2;
  }

  // The sampler: counts() reads per-loop counters without stopping any loop, so sampling every
  // few milliseconds changes nothing the chart shows.
  std::atomic<bool> sampling{true};
  std::fputs("t_ms,fresh,active,idle,upgraded,closing,closed,answered,ready\n", samples);
  std::thread sampler([&] {
    auto next = clock_type::now();
    while (sampling.load()) {
      const double t = monotonic_ms();
      const lameduck::connection_counts c = server.counts();
      using st = lameduck::connection_state;
      std::fprintf(samples, "%.3f,%zu,%zu,%zu,%zu,%zu,%zu,%llu,%d\n", t, c[st::fresh],
                   c[st::active], c[st::idle], c[st::upgraded], c[st::closing], c[st::closed],
                   static_cast<unsigned long long>(answered.load(std::memory_order_relaxed)),
                   server.ready() ? 1 : 0);
      next += std::chrono::milliseconds(sample_ms);
      std::this_thread::sleep_until(next);
    }
    std::fflush(samples);
  });

  const std::uint16_t port = server.port();
  events.write("\"event\":\"listening\",\"port\":" + std::to_string(port));
  std::cout << "listening " << port << std::endl;

  // Waits for the signals until the stop has completed, then TAIL ms more; MAX s in all.
  const auto give_up = clock_type::now() + std::chrono::seconds(max_s);
  std::shared_future<lameduck::stop_report> stop;
  int signals = 0;
  while (true) {
    if (stop.valid() && stop.wait_for(std::chrono::seconds(0)) == std::future_status::ready) break;
    if (clock_type::now() >= give_up) {
      events.write("\"event\":\"gave_up\",\"max_s\":" + std::to_string(max_s));
      stop = server.destroy();
      stop.wait();
      break;
    }
    timespec wait{0, 5'000'000};
    const int sig = ::sigtimedwait(&stop_signals, nullptr, &wait);
    if (sig <= 0) continue;
    events.write("\"event\":\"signal\",\"signal\":" + std::to_string(sig));
    stop =
        ++signals == 1 ? server.shutdown(std::chrono::milliseconds(deadline_ms)) : server.destroy();
  }
  events.write(report_json(stop.get()));
  std::this_thread::sleep_for(std::chrono::milliseconds(tail_ms));
  sampling = false;
  sampler.join();
  std::fclose(samples);
  return 0;
}
