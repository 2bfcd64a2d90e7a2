// lameduck-hello: the demo server. Its delayed and streamed answers are completed from a
// separate timer thread, which shows that a response can be finished later, from anywhere,
// without blocking the thread that serves the connection.

#include <signal.h>

#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <lameduck/lameduck.hpp>

#include "timer_thread.hpp"

namespace {

// Reads a non-negative integer query parameter, or gives `fallback`; false when malformed.
bool number_param(const lameduck::request& req, std::string_view name, long max, long fallback,
                  long& out) {
  auto v = req.query_param(name);
  if (!v) {
    out = fallback;
    return true;
  }
  try {
    std::size_t used = 0;
    out = std::stol(std::string(*v), &used);
    return used == v->size() && out >= 0 && out <= max;
  } catch (const std::exception&) {
    return false;
  }
}

void bad_request(lameduck::response res, std::string_view what) {
  res.header("Content-Type", "text/plain");
  res.send(400, std::string(what) + "\n");
}

// Streams the remaining chunks of /stream, one per interval, from the timer thread.
void stream_chunks(timer_thread& timers, std::shared_ptr<lameduck::response> res, long left,
                   std::chrono::milliseconds interval, long index) {
  if (left == 0 || res->stop_token().stop_requested()) {
    res->end();
    return;
  }
  res->write("chunk " + std::to_string(index) + "\n");
  timers.at(timer_thread::clock::now() + interval, [&timers, res, left, interval, index] {
    stream_chunks(timers, res, left - 1, interval, index + 1);
  });
}

// What the root answers: "Hello, World!", or the first line of --greeting-file, which SIGHUP
// reads again; shared by the loop threads and the reload.
class greeting {
 public:
  std::shared_ptr<const std::string> get() const {
    std::lock_guard lock(mutex_);
    return text_;
  }
  // Reads the file; a missing, unreadable or empty one is an error and changes nothing.
  std::error_code load(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    if (!in) return std::make_error_code(std::errc::no_such_file_or_directory);
    if (!std::getline(in, line) || line.empty()) {
      return std::make_error_code(std::errc::invalid_argument);
    }
    std::lock_guard lock(mutex_);
    text_ = std::make_shared<const std::string>(line + "\n");
    return {};
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const std::string> text_ = std::make_shared<const std::string>("Hello, World!\n");
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> listen, health_listen, tls_listen, tls_certs, tls_keys;
  unsigned threads = 0;
  std::size_t max_connections = lameduck::limits{}.max_connections;
  double drain_timeout = 30, idle_grace = 0, lame_duck = 0, tls_watch = 0, ready_after = 0;
  std::string greeting_file, metrics_path;
  lameduck::log_format log_format = lameduck::log_format::text;
  bool kernel_tls = false;
  CLI::App app{
      "lameduck-hello: the lameduck demo server.\n"
      "SIGTERM or SIGINT drains it (exit 0, or 3 if the deadline forced it); a second "
      "signal stops it at once (exit 128+signal). SIGHUP reloads the TLS certificates and the "
      "--greeting-file."};
  app.add_option("--listen", listen,
                 "Address to listen on, HOST:PORT (repeatable); NAME=HOST:PORT takes the socket "
                 "passed with that name (LISTEN_FDNAMES) instead, when there is one")
      ->default_str("127.0.0.1:8080");
  app.add_option("--health-listen", health_listen,
                 "Serve /readyz and /livez (and --metrics-path) only here, HOST:PORT (repeatable; "
                 "default: on --listen)");
  app.add_option("--metrics-path", metrics_path,
                 "Serve the server's metrics in Prometheus's text format at this path, e.g. "
                 "/metrics, beside /readyz and /livez (default: off)")
      ->check(
          [](const std::string& path) -> std::string {
            if (path.empty() || path.front() != '/') return "it must start with '/'";
            if (path == "/readyz" || path == "/livez") return "/readyz and /livez are taken";
            return "";
          },
          "PATH");
  app.add_option("--threads", threads, "Event-loop threads (default: one per core)")
      ->check(CLI::Range(0u, 1024u));
  app.add_option("--max-connections", max_connections,
                 "Open connections at most; past it a new connection gets a 503 and is closed")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000'000}));
  app.add_option("--drain-timeout", drain_timeout,
                 "Seconds a graceful shutdown may take before what is left is closed")
      ->default_val(30)
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--idle-grace", idle_grace,
                 "Seconds a shutdown keeps idle keep-alive connections for their next request "
                 "(0: close them at once, safely)")
      ->default_val(0)
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--lame-duck", lame_duck,
                 "Seconds a shutdown keeps listening and serving, with /readyz already saying "
                 "503, before the drain proper (counts against --drain-timeout)")
      ->default_val(0)
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--tls-listen", tls_listen, "HTTPS address to listen on, HOST:PORT (repeatable)");
  app.add_option("--tls-cert", tls_certs,
                 "PEM certificate chain for --tls-listen (repeatable, each with its --tls-key: "
                 "chosen by the client's SNI name, the first by default)");
  app.add_option("--tls-key", tls_keys, "PEM private key of the --tls-cert in the same place");
  app.add_option("--tls-watch", tls_watch,
                 "Reload the certificates when their files change, once they have not changed "
                 "for this many seconds (0: only on SIGHUP)")
      ->default_val(0)
      ->check(CLI::Range(0.0, 3600.0));
  app.add_flag("--kernel-tls", kernel_tls, "Let the kernel encrypt (kTLS) where it can");
  app.add_option("--ready-after", ready_after,
                 "Seconds after the start until the application says it is ready, as one "
                 "warming a database pool would: /readyz says 503 and READY=1 waits until then")
      ->default_val(0)
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--greeting-file", greeting_file,
                 "Answer / with this file's first line, read again on SIGHUP (a file that cannot "
                 "be read fails the reload and the previous greeting stays)");
  const std::map<std::string, lameduck::log_format> formats{
      {"text", lameduck::log_format::text},
      {"logfmt", lameduck::log_format::logfmt},
      {"json", lameduck::log_format::json}};
  app.add_option("--log-format", log_format,
                 "Format of the server's log lines on standard error (each phase of a stop "
                 "writes one): text, logfmt or json")
      ->transform(CLI::CheckedTransformer(formats))
      ->default_str("text");
  try {
    app.parse(argc, argv);
    if (tls_certs.size() != tls_keys.size()) {
      throw CLI::ValidationError("--tls-cert and --tls-key must come in pairs");
    }
    if (!tls_listen.empty() && tls_certs.empty()) {
      throw CLI::ValidationError("--tls-listen needs a --tls-cert and a --tls-key");
    }
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << "lameduck-hello: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (listen.empty() && tls_listen.empty()) listen.push_back("127.0.0.1:8080");

  greeting hello;
  if (!greeting_file.empty()) {
    if (const auto ec = hello.load(greeting_file)) {
      std::cerr << "lameduck-hello: cannot read --greeting-file: " << ec.message() << "\n";
      return 2;
    }
  }
  timer_thread timers;
  lameduck::router routes;
  routes.get("/", [&hello](const lameduck::request&, lameduck::response res) {
    res.header("Content-Type", "text/plain");
    res.send(std::string(*hello.get()));
  });
  routes.get("/delay", [&timers](const lameduck::request& req, lameduck::response res) {
    long ms = 0;
    if (!number_param(req, "ms", 3'600'000, 0, ms)) return bad_request(std::move(res), "bad ms");
    auto shared = std::make_shared<lameduck::response>(std::move(res));
    timers.at(timer_thread::clock::now() + std::chrono::milliseconds(ms), [shared, ms] {
      shared->header("Content-Type", "text/plain");
      shared->send("waited " + std::to_string(ms) + " ms\n");
    });
  });
  routes.get("/stream", [&timers](const lameduck::request& req, lameduck::response res) {
    long chunks = 0, interval = 0;
    if (!number_param(req, "chunks", 1'000'000, 10, chunks) ||
        !number_param(req, "interval_ms", 60'000, 100, interval)) {
      return bad_request(std::move(res), "bad chunks or interval_ms");
    }
    res.header("Content-Type", "text/plain");
    stream_chunks(timers, std::make_shared<lameduck::response>(std::move(res)), chunks,
                  std::chrono::milliseconds(interval), 1);
  });
  routes.post("/echo", [](const lameduck::request& req, lameduck::response res) {
    if (auto type = req.header("Content-Type")) res.header("Content-Type", *type);
    res.send(std::string(req.body()));
  });

  auto seconds = [](double s) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(s));
  };
  lameduck::server_options options;
  options.listen = listen;
  options.threads = threads;
  options.limits.max_connections = max_connections;
  options.drain.idle_grace = seconds(idle_grace);
  options.drain.lame_duck_delay = seconds(lame_duck);
  options.health = {"/readyz", "/livez", health_listen, metrics_path};
  for (const auto& address : tls_listen) {
    lameduck::tls_listen_options l{address, {}};
    for (std::size_t i = 0; i < tls_certs.size(); ++i)
      l.certificates.push_back({tls_certs[i], tls_keys[i], ""});
    options.tls_listen.push_back(l);
  }
  options.tls.watch_files = seconds(tls_watch);
  options.tls.kernel_tls = kernel_tls;
  options.log_format = log_format;
  // Installed before the server starts, so that a signal is never missed.
  lameduck::signal_shutdown signals(seconds(drain_timeout));
  if (!greeting_file.empty()) {
    signals.on_reload([&hello, &greeting_file] { return hello.load(greeting_file); });
  }
  lameduck::server server(options, routes);
  // Not ready until the "pool" is warm: the probes say 503, and READY=1 waits for it.
  // Its own timer, declared after the server so that it is gone before the server is.
  timer_thread warming;
  if (ready_after > 0) {
    server.set_ready(false);
    warming.at(timer_thread::clock::now() + seconds(ready_after),
               [&server] { server.set_ready(true); });
  }
  std::error_code ec;
  server.start(ec);
  if (ec) {
    std::cerr << "lameduck-hello: cannot start: " << ec.message() << "\n";
    return 2;
  }
  // local_addresses() lists the plain addresses, then the HTTPS ones, then the health ones.
  const auto addresses = server.local_addresses();
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    const bool tls = i >= listen.size() && i < listen.size() + tls_listen.size();
    std::cout << "listening on " << (tls ? "https://" : "http://") << addresses[i] << "\n";
  }
  const std::string first = (listen.empty() ? "https://" : "http://") + addresses.front();
  // The health addresses come last; the endpoints are answered there when there are some.
  const std::string health = health_listen.empty() || addresses.size() < health_listen.size()
                                 ? first
                                 : "http://" + addresses[addresses.size() - health_listen.size()];
  std::cout << "try:\n"
            << "  curl " << first << "/\n"
            << "  curl '" << first << "/delay?ms=500'\n"
            << "  curl -N '" << first << "/stream?chunks=5&interval_ms=200'\n"
            << "  curl -d 'quack' " << first << "/echo\n"
            << "  curl -i " << health << "/readyz   (503 once a shutdown has begun)\n";
  if (!metrics_path.empty()) {
    std::cout << "  curl " << health << metrics_path << "   (Prometheus's text format)\n";
  }
  std::cout << "stop with Ctrl-C (twice to stop at once)" << std::endl;

  return signals.run(server);
}
