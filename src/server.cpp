// THE lifecycle file: the connection states, the stop order that every verb strengthens, the
// verbs, how each worker carries a stop out, and the report.
//
// States. Every connection is in exactly one (docs/lifecycle.md has the diagram); a
// connection derives its state from its phase (connection.hpp) and worker::set_state() makes
// every change, on the connection's own thread, keeping the registry and the counts.
//
// Stops. A verb takes the mutex only to strengthen the one stop_order and posts the new order
// to every worker; each worker applies it on its own thread (apply() and the steps below it),
// so no verb blocks a loop and any verb may be called from a handler. A worker is done when
// its listeners are closed and its registry is empty; the last worker to be done completes the
// stop with its report, at that moment, without polling.

#include <lameduck/server.hpp>
#include <lameduck/systemd.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

#include "log/record.hpp"
#include "metrics/exposition.hpp"
#include "metrics/server_metrics.hpp"
#include "net/address.hpp"
#include "net/listener.hpp"
#include "process/systemd.hpp"
#include "tls/certificates.hpp"
#include "tls/reloader.hpp"
#include "tls/session_tickets.hpp"
#include "worker.hpp"

namespace lameduck {

// ---- States ---------------------------------------------------------------------------------

std::string_view to_string(connection_state s) noexcept {
  switch (s) {
    case connection_state::fresh:
      return "fresh";
    case connection_state::active:
      return "active";
    case connection_state::idle:
      return "idle";
    case connection_state::upgraded:
      return "upgraded";
    case connection_state::closing:
      return "closing";
    case connection_state::closed:
      return "closed";
  }
  return "unknown";
}

std::size_t connection_counts::open() const noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < connection_state_count; ++i) {
    if (i != static_cast<std::size_t>(connection_state::closed)) n += by_state[i];
  }
  return n;
}

namespace detail {

// ---- The stop order -------------------------------------------------------------------------

/// What the verbs called so far ask of the server; each verb only ever strengthens it.
struct stop_order {
  bool close_listeners = false;
  bool drain = false;
  bool destroy = false;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::chrono::milliseconds idle_grace{0};
  /// A drain's lame-duck delay ends here: until then listeners stay open and nothing changes
  /// but readiness.
  std::chrono::steady_clock::time_point drain_from{};

  bool operator==(const stop_order&) const = default;
};

namespace {

/// A listen address ("HOST:PORT", or "NAME=HOST:PORT"): its name, empty if it has none, and the
/// address. A HOST:PORT never holds '='.
std::pair<std::string_view, std::string_view> split_name(std::string_view text) noexcept {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos) return {{}, text};
  return {text.substr(0, eq), text.substr(eq + 1)};
}

/// Every listen address of the options with its role: -1 plain, -2 health, else a tls_listen
/// index.
template <class F>
void for_each_address(const server_options& o, F f) {
  for (const auto& text : o.listen)
    f(text, -1);
  for (std::size_t t = 0; t < o.tls_listen.size(); ++t)
    f(o.tls_listen[t].address, static_cast<int>(t));
  for (const auto& text : o.health.listen)
    f(text, -2);
}

/// What is wrong with the names of the listen addresses; empty when nothing is.
std::string invalid_name(const server_options& o) {
  std::vector<std::string_view> names;
  std::string why;
  for_each_address(o, [&](const std::string& text, int) {
    if (!why.empty() || text.find('=') == std::string::npos) return;
    const std::string_view name = split_name(text).first;
    // What systemd allows in a FileDescriptorName=, which LISTEN_FDNAMES carries.
    const bool printable = std::all_of(name.begin(), name.end(),
                                       [](char c) { return c > ' ' && c < 0x7f && c != ':'; });
    if (name.empty() || name.size() > 255 || !printable) {
      why = "listen address \"" + text +
            "\" has an invalid name (1 to 255 printable characters, no ':' or space)";
    } else if (std::find(names.begin(), names.end(), name) != names.end()) {
      why = "the name \"" + std::string(name) + "\" is given to two listen addresses";
    }
    names.push_back(name);
  });
  return why;
}

/// What is wrong with the options, naming the option; empty when nothing is.
std::string invalid_option(const server_options& o) {
  using std::chrono::milliseconds;
  const std::pair<const char*, milliseconds> durations[] = {
      {"timeouts.header", o.timeouts.header},
      {"timeouts.body", o.timeouts.body},
      {"timeouts.idle", o.timeouts.idle},
      {"timeouts.write", o.timeouts.write},
      {"timeouts.linger", o.timeouts.linger},
      {"timeouts.min_body_rate.grace", o.timeouts.min_body_rate.grace},
      {"timeouts.min_response_rate.grace", o.timeouts.min_response_rate.grace},
      {"drain.idle_grace", o.drain.idle_grace},
      {"drain.lame_duck_delay", o.drain.lame_duck_delay},
  };
  for (const auto& [name, d] : durations) {
    if (d < milliseconds::zero()) return std::string(name) + " is negative";
  }
  const std::pair<const char*, std::size_t> sizes[] = {
      {"limits.max_request_line", o.limits.max_request_line},
      {"limits.max_header_bytes", o.limits.max_header_bytes},
      {"limits.max_header_count", o.limits.max_header_count},
      {"limits.max_connections", o.limits.max_connections},
  };
  for (const auto& [name, n] : sizes) {
    if (n == 0) return std::string(name) + " is 0 (nothing could be served)";
  }
  // Each thread has its own epoll set and stack; more than this is a mistake, not a plan.
  constexpr unsigned max_threads = 1024;
  if (o.threads > max_threads) {
    return "threads is " + std::to_string(o.threads) + " (at most " + std::to_string(max_threads) +
           ")";
  }
  if (o.backlog < 1) return "backlog is " + std::to_string(o.backlog) + " (at least 1)";
  const health_options& h = o.health;
  const std::pair<const char*, const std::string*> paths[] = {
      {"health.readiness_path", &h.readiness_path},
      {"health.liveness_path", &h.liveness_path},
      {"health.metrics_path", &h.metrics_path},
  };
  for (const auto& [name, path] : paths) {
    if (!path->empty() && path->front() != '/') {
      return std::string(name) + " \"" + *path + "\" does not start with '/'";
    }
  }
  for (std::size_t i = 0; i < std::size(paths); ++i) {
    for (std::size_t j = i + 1; j < std::size(paths); ++j) {
      if (!paths[i].second->empty() && *paths[i].second == *paths[j].second) {
        return std::string(paths[i].first) + " and " + paths[j].first + " are the same path";
      }
    }
  }
  if (!h.listen.empty() && h.readiness_path.empty() && h.liveness_path.empty() &&
      h.metrics_path.empty()) {
    return "health.listen is set but no readiness, liveness or metrics path is";
  }
  if (o.tls.min_version != 0x0303 && o.tls.min_version != 0x0304) {
    return "tls.min_version is neither TLS 1.2 (0x0303) nor TLS 1.3 (0x0304)";
  }
  if (o.tls.session_lifetime.count() < 0) return "tls.session_lifetime is negative";
  if (o.tls.watch_files.count() < 0) return "tls.watch_files is negative";
  for (std::size_t t = 0; t < o.tls_listen.size(); ++t) {
    if (o.tls_listen[t].certificates.empty()) {
      return "tls_listen[" + std::to_string(t) + "] has no certificate";
    }
  }
  return invalid_name(o);
}

}  // namespace
}  // namespace detail

struct server::impl {
  using clock = std::chrono::steady_clock;

  impl(server_options o, handler h) {
    shared.options = std::move(o);
    shared.main = std::move(h);
    const health_options& health = shared.options.health;
    // The endpoints are answered before the handler, or only on their own addresses.
    const bool has_endpoints = !health.readiness_path.empty() || !health.liveness_path.empty() ||
                               !health.metrics_path.empty();
    if (has_endpoints && health.listen.empty()) {
      shared.main = [this, inner = std::move(shared.main)](const request& req, response res) {
        if (!answer_health(req, res)) inner(req, std::move(res));
      };
    }
    shared.health = [this](const request& req, response res) {
      if (answer_health(req, res)) return;
      res.header("Content-Type", "text/plain");
      res.send(404, "Not Found\n");
    };
    if (!shared.options.log) {
      shared.options.log = [](std::string_view line) {
        std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
      };
    }
    // Records go to the sink as they are; every plain line the server (or server::log) writes
    // is put in the chosen format on the way.
    sink = shared.options.log;
    if (const auto f = shared.options.log_format; f != log_format::text) {
      shared.options.log = [f, s = sink](std::string_view line) {
        s(detail::format_plain_log(f, line));
      };
    }
    shared.on_registry_empty = [this](detail::worker& w) { on_registry_empty(w); };
  }

  ~impl() {
    release_threads();
    for (const auto& s : shared.options.listen_sockets)  // given, and never started on
      if (s.fd >= 0) ::close(s.fd);
  }

  void start(std::error_code& ec, std::string& why);
  /// Whether the server is started and no stop has been asked for; with the mutex held.
  bool serving() const {
    return running && !order.close_listeners && !order.drain && !order.destroy;
  }
  /// Whether the server is serving and the application ready (its flag, then its checks, run on
  /// the calling thread); the first time it is, calls the when_ready() callbacks.
  bool ready() const;
  /// Has a loop thread evaluate readiness soon (for the when_ready() callbacks); with the
  /// mutex held.
  void ask_readiness_soon() const;
  /// Writes a record to the log in the chosen format; never throws.
  void write(const detail::log_record& r) const noexcept;
  /// Connections per state now, from every worker's counts; while running (the workers stay).
  std::array<std::size_t, connection_state_count> open_now() const noexcept;
  /// A record's figures for the connections per state, as found now.
  void add_found(detail::log_record& r, std::string& text) const;
  /// The line a newly strengthened stop order gets; with the mutex held.
  std::optional<detail::log_record> order_line(const detail::stop_order& next) const;
  /// Queues a stop line and writes the queue; mutex not held.
  void emit(detail::log_record r);
  /// Writes the stop lines queued so far, in order; mutex not held.
  void flush_deferred() noexcept;
  /// The line that ends a stop.
  detail::log_record stopped_line(const stop_report& done) const;
  /// Declared before a verb's lock: writes the deferred lines once the lock is released.
  struct flush_on_exit {
    impl& i;
    ~flush_on_exit() { i.flush_deferred(); }
  };
  /// Answers a readiness or liveness probe or a metrics scrape; false when the request is not
  /// one.
  bool answer_health(const request& req, response& res) const;
  /// What a scrape of the metrics endpoint reports now; from any thread.
  std::string scrape() const;
  /// Hands a stronger stop order to every worker; called with the mutex held.
  void order_stop(const detail::stop_order& next);
  std::shared_future<stop_report> stop_future_or_last();
  void add_stop_callback(stop_callback done);
  void release_threads();

  // On a worker's thread: its part in the stop.
  void apply(detail::worker& w, const detail::stop_order& o);
  void close_listeners(detail::worker& w);
  void reach(detail::worker& w);
  void begin_drain(detail::worker& w, const detail::stop_order& o);
  void force_close(detail::worker& w);
  void deadline_passed(detail::worker& w);
  void end_idle_grace(detail::worker& w);
  void on_registry_empty(detail::worker& w);
  void check_done(detail::worker& w);

  /// One listening address, as bound.
  struct listener {
    detail::socket_address bound{};
    bool health_only = false;  ///< a health_options::listen address
    int tls = -1;              ///< its server_options::tls_listen entry; -1: plain HTTP
    int fd = -1;  ///< the server's own duplicate, closed after the workers' or handed over
  };

  /// Reads every tls_listen entry's certificates; false, with `why`, if one fails.
  bool load_certificates(std::vector<std::shared_ptr<const detail::certificate_set>>& sets,
                         std::string& why) const;
  /// The reloader's work: load, then publish to every loop (reloader.hpp).
  void reload(std::vector<std::promise<reload_result>> waiting);

  detail::server_shared shared;
  std::vector<std::unique_ptr<detail::worker>> workers;
  std::vector<listener> listeners;
  // Joined before the workers go: it posts to their loops.
  std::unique_ptr<detail::certificate_reloader> reloader;

  /// The user's log sink (server_options::log as given, or standard error).
  std::function<void(std::string_view)> sink;
  /// The application's own readiness (server::set_ready()).
  std::atomic<bool> app_ready{true};
  /// Each phase of a stop is written once: the first worker to reach it writes it.
  std::atomic<bool> drain_line_written{false}, deadline_line_written{false};

  /// Taken before `mutex` (never after), by whoever writes the deferred lines.
  std::mutex log_mutex;
  mutable std::mutex mutex;  // guards everything below
  /// server::add_readiness_check(); replaced, never changed, so that it is run unlocked.
  std::shared_ptr<const std::vector<std::function<bool()>>> checks;
  /// server::when_ready()
  mutable std::vector<std::function<void()>> on_ready;
  /// Stop lines in the order of their events, waiting for the mutex to be released (the sink
  /// may take its time, and may ask the server something).
  std::vector<detail::log_record> deferred;
  bool running = false;
  bool listeners_handed_over = false;  // the workers close theirs without accepting the queue
  detail::stop_order order;
  clock::time_point stop_began;
  std::size_t completed_at_stop = 0, aborted_at_stop = 0;
  unsigned workers_listening = 0, workers_running = 0;
  std::promise<void> accept_stopped;
  std::shared_future<void> accept_stopped_future;
  std::vector<std::function<void()>> on_accept_stopped;
  stop_report report;  // being gathered, or the last one
  std::promise<stop_report> stopped;
  std::shared_future<stop_report> stopped_future;
  std::vector<stop_callback> on_stopped;
  /// The counts of the loops of earlier runs, so that a server started again goes on counting
  /// where it was (a counter that falls is a restart to Prometheus), and the stops completed.
  detail::loop_totals retired_totals;
  std::uint64_t stops_graceful = 0, stops_forced = 0;
};

// ---- Start ----------------------------------------------------------------------------------

void server::impl::start(std::error_code& ec, std::string& why) {
  std::lock_guard lock(mutex);
  if (running) {
    ec = make_error_code(errc::already_started);
    return;
  }
  const server_options& options = shared.options;
  why = detail::invalid_option(options);
  if (!why.empty()) {
    ec = make_error_code(errc::invalid_option);
    shared.options.log("lameduck: cannot start the server: " + why);
    return;
  }
  // One slot per listener, in the order local_addresses() reports them: plain, HTTPS, health.
  // Sockets handed over by another server stand for every address, health ones included.
  // Sockets passed by the service manager stand for the addresses of their names (LISTEN_FDNAMES)
  // when the addresses have names, else for the plain ones. Either is taken once: a stopped
  // server that starts again binds its addresses. Every other address is bound.
  struct slot {
    int fd = -1;  // a socket to adopt; -1: bind `address`
    std::string_view address;
    bool health_only = false;
    int tls = -1;
  };
  std::vector<slot> slots;
  std::vector<int> fds;  // every descriptor the server owns so far
  auto close_all = [&] {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  };
  const std::vector<listening_socket> handed = std::exchange(shared.options.listen_sockets, {});
  for (const auto& h : handed) {
    slots.push_back({h.fd, {}, h.health_only, h.tls});
    fds.push_back(h.fd);
  }
  std::vector<detail::passed_socket> passed;
  if (handed.empty() && options.adopt_passed_sockets) passed = detail::take_passed_sockets();
  for (const auto& p : passed)
    fds.push_back(p.fd);
  bool named = false;
  detail::for_each_address(options, [&](const std::string& text, int) {
    named = named || text.find('=') != std::string::npos;
  });
  if (!named) {
    for (const auto& p : passed)
      slots.push_back({p.fd, {}, false, -1});
  }
  std::vector<bool> matched(passed.size());
  detail::for_each_address(options, [&](const std::string& text, int role) {
    if (!handed.empty() || (!named && role == -1 && !passed.empty())) return;
    const auto [name, address] = detail::split_name(text);
    slot s{-1, address, role == -2, std::max(role, -1)};
    for (std::size_t i = 0; named && !name.empty() && i < passed.size(); ++i) {
      if (!matched[i] && passed[i].name == name) {
        matched[i] = true;
        s.fd = passed[i].fd;
        break;
      }
    }
    slots.push_back(s);
  });
  if (std::all_of(slots.begin(), slots.end(), [](const slot& s) { return s.health_only; })) {
    ec = make_error_code(errc::no_listen_address);  // health endpoints alone serve nothing
    return close_all();
  }
  for (std::size_t i = 0; named && i < passed.size(); ++i) {
    if (matched[i]) continue;
    ec = make_error_code(errc::unmatched_passed_socket);
    const std::string& name = passed[i].name;
    shared.options.log(
        "lameduck: cannot start the server: a socket was passed " +
        (name.empty() ? std::string("without a name") : "with the name \"" + name + "\"") +
        ", which no listen address has");
    return close_all();
  }
  release_threads();  // a stopped server may start again
  // The certificates first: a bad one fails the start before anything is bound.
  std::vector<std::shared_ptr<const detail::certificate_set>> certificates;
  if (!load_certificates(certificates, why)) {
    ec = make_error_code(errc::invalid_certificate);
    shared.options.log("lameduck: cannot start the server: " + why);
    return close_all();
  }
  std::vector<listener> bound;
  std::vector<int> listen_fds;  // parallel to bound
  const detail::listen_settings settings{options.backlog, options.reuse_port};
  for (const auto& s : slots) {
    listener li;
    li.health_only = s.health_only;
    li.tls = s.tls;
    int fd = s.fd;
    if (fd >= 0) {
      if (s.tls >= static_cast<int>(certificates.size()) || !detail::adopt_listener(fd, li.bound)) {
        ec = make_error_code(errc::unusable_passed_socket);
        return close_all();
      }
    } else {
      li.bound = detail::parse_listen_address(s.address, ec);
      if (ec) return close_all();
      fd = detail::open_listener(li.bound, settings, ec);
      if (fd < 0) return close_all();
      fds.push_back(fd);
    }
    bound.push_back(li);
    listen_fds.push_back(fd);
  }

  unsigned n =
      options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  try {
    // Every worker's copy of a listener's ticket keys starts from the same seed.
    std::vector<detail::ticket_seed> seeds;
    for (std::size_t t = 0; t < certificates.size(); ++t)
      seeds.push_back(detail::ticket_seed::random(options.tls.session_lifetime));
    for (unsigned i = 0; i < n; ++i) {
      workers.push_back(std::make_unique<detail::worker>(shared));
      for (std::size_t k = 0; k < listen_fds.size(); ++k) {
        if (const int t = bound[k].tls; t >= 0) {
          workers[i]->add_tls_listener(listen_fds[k], t, certificates[t], seeds[t]);
        } else {
          workers[i]->add_listener(listen_fds[k], bound[k].health_only);
        }
      }
    }
    if (!certificates.empty()) {
      std::vector<std::string> files;
      for (const auto& l : options.tls_listen) {
        for (const auto& c : l.certificates) {
          files.push_back(c.certificate_chain_file);
          files.push_back(c.private_key_file);
        }
      }
      reloader = std::make_unique<detail::certificate_reloader>(
          [this](std::vector<std::promise<reload_result>> waiting) { reload(std::move(waiting)); },
          files, options.tls.watch_files, shared.options.log);
    }
  } catch (const std::system_error& e) {
    ec = e.code();
    close_all();
    workers.clear();
    return;
  }
  // Each worker holds its own duplicate, and the server one more, to hand over: the listening
  // socket closes with the last of them.
  for (std::size_t k = 0; k < listen_fds.size(); ++k)
    bound[k].fd = listen_fds[k];
  listeners = std::move(bound);
  listeners_handed_over = false;
  if (const auto interval = detail::watchdog_interval(); interval.count() > 0) {
    shared.watchdog = std::make_unique<detail::loop_watchdog>(
        interval, n, detail::coarse_now_ns(), [] { notify_service_manager("WATCHDOG=1"); });
  } else {
    shared.watchdog.reset();
  }
  for (unsigned i = 0; i < n; ++i)
    workers[i]->start(i);
  running = true;
  order = {};
  workers_listening = workers_running = n;
  accept_stopped = {};
  accept_stopped_future = accept_stopped.get_future().share();
  report = {};
  stopped = {};
  stopped_future = stopped.get_future().share();
  drain_line_written = deadline_line_written = false;
  ask_readiness_soon();
}

bool server::impl::load_certificates(
    std::vector<std::shared_ptr<const detail::certificate_set>>& sets, std::string& why) const {
  const server_options& o = shared.options;
  for (std::size_t t = 0; t < o.tls_listen.size(); ++t) {
    sets.push_back(detail::certificate_set::load(o.tls_listen[t], o.tls, why));
    if (!sets.back()) {
      why = "tls_listen[" + std::to_string(t) + "]: " + why;
      return false;
    }
  }
  return true;
}

namespace {

// Answers a reload's requests when the last loop has switched to the new certificates (or
// has exited without: the server stopped meanwhile).
struct publication {
  std::vector<std::promise<reload_result>> waiting;
  std::atomic<std::size_t> loops_left{0};
  ~publication() {
    reload_result r;
    if (loops_left.load() != 0) r = {make_error_code(errc::not_running), "the server stopped"};
    for (auto& p : waiting)
      p.set_value(r);
  }
};

}  // namespace

void server::impl::reload(std::vector<std::promise<reload_result>> waiting) {
  std::vector<std::shared_ptr<const detail::certificate_set>> sets;
  std::string why;
  if (!load_certificates(sets, why)) {
    shared.options.log("lameduck: certificate reload refused, the previous certificates stay: " +
                       why);
    for (auto& p : waiting)
      p.set_value({make_error_code(errc::invalid_certificate), why});
    return;
  }
  auto done = std::make_shared<publication>();
  done->waiting = std::move(waiting);
  done->loops_left = workers.size();
  for (auto& w : workers) {
    w->loop().post([done, sets, w = w.get()] {
      for (std::size_t t = 0; t < sets.size(); ++t)
        w->use_certificates(t, sets[t]);
      done->loops_left.fetch_sub(1);
    });
  }
}

namespace {

/// Adds what a worker counted for the metrics, its counts per state and requests aborted
/// included.
void add_counted(detail::loop_totals& t, const detail::worker& w) noexcept {
  t.add(w.metrics);
  t.closed +=
      w.counts[static_cast<std::size_t>(connection_state::closed)].load(std::memory_order_relaxed);
  t.aborted += w.requests_aborted.load();
  w.add_tls_handshakes(t);
}

}  // namespace

void server::impl::release_threads() {
  reloader.reset();
  for (auto& w : workers) {
    w->loop().allow_exit();
    w->loop().join();
    add_counted(retired_totals, *w);
  }
  workers.clear();
}

server::server(server_options options, handler h)
    : impl_(std::make_unique<impl>(std::move(options), std::move(h))) {}

server::~server() {
  destroy().wait();
  impl_->release_threads();
}

void server::start() {
  std::error_code ec;
  std::string why;
  impl_->start(ec, why);
  if (ec) {
    throw std::system_error(ec,
                            "lameduck: cannot start the server" + (why.empty() ? "" : ": " + why));
  }
}

void server::start(std::error_code& ec) {
  ec.clear();
  std::string why;
  impl_->start(ec, why);
}

// ---- Verbs ----------------------------------------------------------------------------------

std::shared_future<void> server::stop_accepting() {
  const impl::flush_on_exit flush{*impl_};
  std::lock_guard lock(impl_->mutex);
  detail::stop_order next = impl_->order;
  next.close_listeners = true;
  impl_->order_stop(next);
  if (impl_->accept_stopped_future.valid()) return impl_->accept_stopped_future;
  std::promise<void> p;
  p.set_value();
  return p.get_future().share();
}

void server::stop_accepting(std::function<void()> done) {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->running && impl_->workers_listening != 0) {
      impl_->on_accept_stopped.push_back(std::move(done));
      done = nullptr;
    }
  }
  stop_accepting();
  if (done) done();  // the ports were already free
}

std::vector<listening_socket> server::hand_over_listeners(std::error_code& ec) {
  ec.clear();
  const impl::flush_on_exit flush{*impl_};
  std::lock_guard lock(impl_->mutex);
  const detail::stop_order& order = impl_->order;
  if (!impl_->running) {
    ec = make_error_code(errc::not_running);
    return {};
  }
  // A drain past its lame-duck delay closes the listeners too, if it has not yet.
  if (order.close_listeners || order.destroy ||
      (order.drain && impl::clock::now() >= order.drain_from)) {
    ec = make_error_code(errc::listeners_closed);
    return {};
  }
  std::vector<listening_socket> out;
  for (auto& li : impl_->listeners)
    out.push_back({std::exchange(li.fd, -1), li.health_only, li.tls});
  impl_->listeners_handed_over = true;
  // A worker may accept in the instant before it sees the order; those clients connected to a
  // port that never closed, so a drain waits for their request instead of closing them.
  for (auto& w : impl_->workers)
    w->keep_fresh.store(true, std::memory_order_relaxed);
  detail::stop_order next = order;
  next.close_listeners = true;
  impl_->order_stop(next);
  return out;
}

std::vector<listening_socket> server::hand_over_listeners() {
  std::error_code ec;
  auto out = hand_over_listeners(ec);
  if (ec) throw std::system_error(ec, "lameduck: cannot hand over the listeners");
  return out;
}

std::shared_future<stop_report> server::shutdown(std::chrono::steady_clock::duration deadline) {
  auto now = impl::clock::now();
  // A deadline too far to represent is no deadline.
  auto at = deadline >= impl::clock::time_point::max() - now ? impl::clock::time_point::max()
                                                             : now + deadline;
  const impl::flush_on_exit flush{*impl_};
  std::lock_guard lock(impl_->mutex);
  detail::stop_order next = impl_->order;
  if (!next.drain) {
    next.idle_grace = impl_->shared.options.drain.idle_grace;
    next.drain_from = now + impl_->shared.options.drain.lame_duck_delay;
  }
  next.drain = true;
  next.deadline = std::min(next.deadline, at);
  impl_->order_stop(next);
  return impl_->stop_future_or_last();
}

void server::shutdown(std::chrono::steady_clock::duration deadline, stop_callback done) {
  impl_->add_stop_callback(std::move(done));
  shutdown(deadline);
}

std::shared_future<stop_report> server::close() {
  return shutdown(std::chrono::steady_clock::duration::max());
}

void server::close(stop_callback done) {
  impl_->add_stop_callback(std::move(done));
  close();
}

std::shared_future<stop_report> server::destroy() {
  const impl::flush_on_exit flush{*impl_};
  std::lock_guard lock(impl_->mutex);
  detail::stop_order next = impl_->order;
  next.close_listeners = true;
  next.destroy = true;
  impl_->order_stop(next);
  return impl_->stop_future_or_last();
}

void server::destroy(stop_callback done) {
  impl_->add_stop_callback(std::move(done));
  destroy();
}

void server::when_stopped(stop_callback done) {
  impl_->add_stop_callback(std::move(done));
}

void server::wait() {
  std::shared_future<stop_report> f;
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->running) return;
    f = impl_->stopped_future;
  }
  f.wait();
}

void server::impl::order_stop(const detail::stop_order& next) {
  if (!running || next == order) return;  // idempotent: nothing stronger was asked
  if (auto line = order_line(next)) deferred.push_back(std::move(*line));
  if ((next.drain || next.destroy) && !(order.drain || order.destroy)) {
    stop_began = clock::now();
    completed_at_stop = aborted_at_stop = 0;
    for (auto& w : workers) {
      completed_at_stop += w->requests_completed.load();
      aborted_at_stop += w->requests_aborted.load();
    }
  }
  if (next.drain && !order.drain && next.drain_from <= clock::now()) {
    // Without a lame-duck delay the drain begins with the call: no response written after it
    // says keep-alive, even on a worker that has not yet seen the order.
    for (auto& w : workers) {
      w->keep_idle.store(next.idle_grace.count() > 0, std::memory_order_relaxed);
      w->draining.store(true, std::memory_order_release);  // keep_idle is seen with it
    }
  }
  order = next;
  for (auto& w : workers) {
    w->loop().post([this, w = w.get(), o = order] { apply(*w, o); });
  }
}

// ---- A worker's part in a stop (on its thread) ----------------------------------------------

void server::impl::apply(detail::worker& w, const detail::stop_order& o) {
  detail::worker_stop& ws = w.stop;
  if (ws.done) return;
  // In the lame-duck delay only readiness has changed: listeners stay open, requests are
  // served as usual. The delay's end applies whatever the order has become by then.
  const bool lame_duck = o.drain && !o.destroy && clock::now() < o.drain_from;
  if (lame_duck && !ws.lame_duck) {
    ws.lame_duck = true;
    ws.lame_duck_timer.start_at(o.drain_from, [this, &w] {
      detail::stop_order now;
      {
        std::lock_guard lock(mutex);
        now = order;
      }
      apply(w, now);
    });
  }
  if ((o.close_listeners || o.destroy || (o.drain && !lame_duck)) && !ws.listeners_closed) {
    close_listeners(w);
  }
  if (o.destroy) {
    if (!ws.destroyed) force_close(w);
  } else if (o.drain) {
    if (!lame_duck && !ws.drain_begun) begin_drain(w, o);
    if (o.deadline < ws.deadline) {
      // The deadline counts from the call, lame-duck delay included.
      ws.deadline = o.deadline;
      ws.deadline_timer.start_at(o.deadline, [this, &w] { deadline_passed(w); });
    }
  }
  check_done(w);
}

void server::impl::close_listeners(detail::worker& w) {
  bool handed_over;
  {
    std::lock_guard lock(mutex);
    handed_over = listeners_handed_over;
  }
  w.stop.listeners_closed = true;
  // Handed over, the queue is the next server's to accept; closed, it is accepted first.
  w.close_listeners(!handed_over);
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock(mutex);
    if (--workers_listening != 0) return;
    // Every worker's duplicate is closed, and now the server's own: the ports are free (or the
    // sockets live on in the next server).
    for (auto& li : listeners)
      if (li.fd >= 0) ::close(std::exchange(li.fd, -1));
    accept_stopped.set_value();
    callbacks.swap(on_accept_stopped);
  }
  for (auto& cb : callbacks)
    cb();
}

void server::impl::reach(detail::worker& w) {
  detail::worker_stop& ws = w.stop;
  if (ws.reached) return;
  ws.reached = true;
  w.connections.for_each([&](detail::connection_base& c) {
    ++ws.closed_by_state[static_cast<std::size_t>(c.state())];
  });
}

void server::impl::begin_drain(detail::worker& w, const detail::stop_order& o) {
  detail::worker_stop& ws = w.stop;
  ws.drain_begun = true;
  if (ws.lame_duck && !drain_line_written.exchange(true)) {
    // The order's line said when; this one says what the drain proper found.
    detail::log_record r;
    std::string found;
    add_found(r, found);
    r.message = "lameduck: lame-duck delay over, draining; open: " + found;
    r.fields.insert(r.fields.begin(), {"event", std::string("drain_began")});
    emit(std::move(r));
  }
  reach(w);
  w.keep_idle.store(o.idle_grace.count() > 0, std::memory_order_relaxed);
  w.draining.store(true, std::memory_order_release);
  if (o.idle_grace.count() > 0) {
    ws.grace_timer.start_after(o.idle_grace, [this, &w] { end_idle_grace(w); });
  }
  w.connections.for_each([](detail::connection_base& c) { c.on_drain(); });
}

void server::impl::force_close(detail::worker& w) {
  detail::worker_stop& ws = w.stop;
  ws.destroyed = true;
  ws.grace_timer.cancel();
  ws.lame_duck_timer.cancel();  // a deadline inside the lame-duck delay ends it
  if (!ws.listeners_closed) close_listeners(w);
  reach(w);
  w.connections.for_each([&](detail::connection_base& c) {
    if (c.state() != connection_state::closing) ws.forced = true;
    c.abort();
  });
  check_done(w);
}

void server::impl::deadline_passed(detail::worker& w) {
  if (!w.stop.destroyed && !deadline_line_written.exchange(true)) {
    detail::log_record r;
    std::string found;
    add_found(r, found);
    r.message = "lameduck: drain deadline passed, closing what is left by force; open: " + found;
    r.fields.insert(r.fields.begin(), {"event", std::string("deadline_passed")});
    emit(std::move(r));
  }
  force_close(w);
}

void server::impl::end_idle_grace(detail::worker& w) {
  w.keep_idle.store(false, std::memory_order_relaxed);
  w.connections.for_each([](detail::connection_base& c) { c.on_drain(); });
  check_done(w);
}

void server::impl::on_registry_empty(detail::worker& w) {
  if (!w.stop.reached) return;
  // Posted: the connection that just closed is still on the stack.
  w.loop().post([this, &w] { check_done(w); });
}

// ---- The report -----------------------------------------------------------------------------

void server::impl::check_done(detail::worker& w) {
  detail::worker_stop& ws = w.stop;
  if (ws.done || !ws.reached || !ws.listeners_closed || !w.connections.empty()) return;
  // The moment the last connection of the last worker closes, the stop completes.
  ws.done = true;
  ws.deadline_timer.cancel();
  ws.grace_timer.cancel();
  ws.lame_duck_timer.cancel();
  // Its timer re-arms itself for ever: left running, it would hold the loop's thread (and the
  // server's destruction, which joins it) after the stop.
  w.stop_watchdog();
  std::vector<stop_callback> callbacks;
  stop_report done;
  std::promise<stop_report> finishing;
  {
    std::lock_guard lock(mutex);
    for (std::size_t s = 0; s < connection_state_count; ++s) {
      report.closed_by_state[s] += ws.closed_by_state[s];
    }
    if (ws.forced) report.graceful = false;
    if (--workers_running != 0) return;
    ++(report.graceful ? stops_graceful : stops_forced);
    std::size_t completed = 0, aborted = 0;
    for (auto& other : workers) {
      completed += other->requests_completed.load();
      aborted += other->requests_aborted.load();
      other->loop().allow_exit();
    }
    report.requests_completed = completed - completed_at_stop;
    report.requests_aborted = aborted - aborted_at_stop;
    report.took = clock::now() - stop_began;
    running = false;
    done = report;
    callbacks.swap(on_stopped);
    on_ready.clear();  // never ready now: dropped
    deferred.push_back(stopped_line(done));
    finishing = std::move(stopped);
  }
  // The last line is out before anyone hears of the end.
  flush_deferred();
  finishing.set_value(done);
  for (auto& cb : callbacks)
    cb(done);
}

std::shared_future<stop_report> server::impl::stop_future_or_last() {
  // Called with the mutex held.
  if (stopped_future.valid()) return stopped_future;
  std::promise<stop_report> p;
  p.set_value(report);
  return p.get_future().share();
}

void server::impl::add_stop_callback(stop_callback done) {
  {
    std::lock_guard lock(mutex);
    if (running) {
      on_stopped.push_back(std::move(done));
      return;
    }
  }
  done(stop_future_or_last().get());
}

// ---- Observers ------------------------------------------------------------------------------

std::vector<std::string> server::local_addresses() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::string> out;
  for (const auto& li : impl_->listeners)
    out.push_back(detail::format_address(&li.bound.any));
  return out;
}

std::uint16_t server::port(std::size_t i) const {
  std::lock_guard lock(impl_->mutex);
  if (i >= impl_->listeners.size()) return 0;
  const auto& a = impl_->listeners[i].bound;
  return ntohs(a.any.sa_family == AF_INET6 ? a.v6.sin6_port : a.v4.sin_port);
}

connection_counts server::counts() const noexcept {
  connection_counts c;
  std::lock_guard lock(impl_->mutex);
  for (const auto& w : impl_->workers) {
    for (std::size_t s = 0; s < connection_state_count; ++s) {
      c.by_state[s] += w->counts[s].load(std::memory_order_relaxed);
    }
  }
  return c;
}

bool server::impl::ready() const {
  std::shared_ptr<const std::vector<std::function<bool()>>> asked;
  {
    std::lock_guard lock(mutex);
    if (!serving() || !app_ready.load(std::memory_order_acquire)) return false;
    asked = checks;
  }
  // Unlocked: a check is the application's code.
  for (const auto& check : asked ? *asked : std::vector<std::function<bool()>>{}) {
    try {
      if (!check()) return false;
    } catch (...) {
      return false;
    }
  }
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock(mutex);
    if (!serving()) return false;  // a stop began meanwhile
    callbacks.swap(on_ready);
  }
  for (auto& cb : callbacks)
    cb();
  return true;
}

void server::impl::ask_readiness_soon() const {
  if (!running || workers.empty() || on_ready.empty()) return;
  workers.front()->loop().post([this] { ready(); });
}

bool server::ready() const noexcept {
  try {
    return impl_->ready();
  } catch (...) {
    return false;  // a callback that threw, or no memory
  }
}

void server::set_ready(bool application_ready) noexcept {
  impl_->app_ready.store(application_ready, std::memory_order_release);
  if (!application_ready) return;
  try {
    std::lock_guard lock(impl_->mutex);
    impl_->ask_readiness_soon();
  } catch (...) {
    // No memory for the post: the next probe finds it ready.
  }
}

void server::add_readiness_check(std::function<bool()> check) {
  std::lock_guard lock(impl_->mutex);
  auto next = std::make_shared<std::vector<std::function<bool()>>>();
  if (impl_->checks) *next = *impl_->checks;
  next->push_back(std::move(check));
  impl_->checks = std::move(next);
}

void server::when_ready(std::function<void()> done) {
  std::lock_guard lock(impl_->mutex);
  impl_->on_ready.push_back(std::move(done));
  impl_->ask_readiness_soon();
}

// ---- The stop's log lines -------------------------------------------------------------------

namespace {

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string seconds_text(std::chrono::steady_clock::duration d) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f s", seconds(d));
  return buffer;
}

/// The states a stop can find a connection in (closed ones are gone).
constexpr connection_state open_states[] = {connection_state::fresh, connection_state::active,
                                            connection_state::idle, connection_state::upgraded,
                                            connection_state::closing};

/// "2 active, 3 idle" style figures for every open state, and a field for each.
std::string by_state(const std::array<std::size_t, connection_state_count>& n,
                     detail::log_record& r, std::string_view field_prefix) {
  std::string text;
  for (const auto s : open_states) {
    const auto count = n[static_cast<std::size_t>(s)];
    if (!text.empty()) text += ", ";
    text += std::to_string(count) + " " + std::string(to_string(s));
    r.add(std::string(field_prefix) + std::string(to_string(s)), static_cast<std::int64_t>(count));
  }
  return text;
}

}  // namespace

std::array<std::size_t, connection_state_count> server::impl::open_now() const noexcept {
  std::array<std::size_t, connection_state_count> n{};
  for (const auto& w : workers) {
    for (std::size_t s = 0; s < connection_state_count; ++s)
      n[s] += w->counts[s].load(std::memory_order_relaxed);
  }
  return n;
}

void server::impl::add_found(detail::log_record& r, std::string& text) const {
  text = by_state(open_now(), r, "");
}

std::optional<detail::log_record> server::impl::order_line(const detail::stop_order& next) const {
  detail::log_record r;
  std::string what;
  const auto now = clock::now();
  auto deadline_text = [&] {
    if (next.deadline == clock::time_point::max()) return std::string("no deadline");
    const auto left = std::max(next.deadline - now, clock::duration::zero());
    r.add("deadline_s", seconds(left));
    return "a deadline of " + seconds_text(left);
  };
  if (next.destroy && !order.destroy) {
    r.add("order", std::string("destroy"));
    what = order.drain ? "destroy ordered during the drain: every connection closes now"
                       : "destroy ordered: every connection closes now";
  } else if (next.drain && !order.drain) {
    r.add("order", std::string("drain"));
    const auto delay = std::max(next.drain_from - now, clock::duration::zero());
    what = "drain ordered with " + deadline_text();
    r.add("lame_duck_delay_s", seconds(delay));
    r.add("idle_grace_s", seconds(next.idle_grace));
    what += ", a lame-duck delay of " + seconds_text(delay) + " and an idle grace of " +
            seconds_text(next.idle_grace);
  } else if (next.drain && next.deadline < order.deadline) {
    r.add("order", std::string("drain"));
    what = "drain deadline shortened: now " + deadline_text();
  } else if (next.close_listeners && !order.close_listeners && !order.drain && !order.destroy) {
    r.add("order", std::string(listeners_handed_over ? "hand_over_listeners" : "stop_accepting"));
    what = listeners_handed_over
               ? "listeners handed over: nothing more is accepted, open connections go on"
               : "stop_accepting ordered: the listeners close, open connections go on";
  } else {
    return std::nullopt;
  }
  const std::string found = by_state(open_now(), r, "");
  r.message = "lameduck: " + what + "; open: " + found;
  r.fields.insert(r.fields.begin(), {"event", std::string("stop_ordered")});
  return r;
}

detail::log_record server::impl::stopped_line(const stop_report& done) const {
  detail::log_record r;
  r.add("event", std::string("stopped"))
      .add("graceful", done.graceful)
      .add("took_s", seconds(done.took))
      .add("requests_completed", static_cast<std::int64_t>(done.requests_completed))
      .add("requests_aborted", static_cast<std::int64_t>(done.requests_aborted));
  const std::string closed = by_state(done.closed_by_state, r, "closed_");
  r.message = std::string("lameduck: stopped ") + (done.graceful ? "gracefully" : "by force") +
              " in " + seconds_text(done.took) + ": " + std::to_string(done.requests_completed) +
              " requests completed, " + std::to_string(done.requests_aborted) +
              " aborted; closed " + closed;
  return r;
}

void server::impl::write(const detail::log_record& r) const noexcept {
  try {
    sink(detail::format_log(shared.options.log_format, r));
  } catch (...) {
    // A failing log sink must not take the stop down with it.
  }
}

void server::impl::emit(detail::log_record r) {
  {
    std::lock_guard lock(mutex);
    deferred.push_back(std::move(r));
  }
  flush_deferred();
}

void server::impl::flush_deferred() noexcept {
  // Held while writing: the lines go out in the order they were queued.
  std::lock_guard writing(log_mutex);
  std::vector<detail::log_record> lines;
  {
    std::lock_guard lock(mutex);
    lines.swap(deferred);
  }
  for (const auto& r : lines)
    write(r);
}

void server::log(std::string_view line) const noexcept {
  try {
    impl_->shared.options.log(line);
  } catch (...) {
    // A failing log sink must not take its caller down with it.
  }
}

bool server::impl::answer_health(const request& req, response& res) const {
  const health_options& health = shared.options.health;
  const std::string_view path = req.path();
  if (path.empty()) return false;  // an empty option path disables its endpoint
  const bool readiness = path == health.readiness_path;
  const bool metrics = path == health.metrics_path;
  if (!readiness && !metrics && path != health.liveness_path) return false;
  if (req.method() != "GET" && req.method() != "HEAD") return false;
  if (metrics) {
    res.header("Content-Type", detail::exposition_content_type).header("Cache-Control", "no-store");
    res.send(scrape());
    return true;
  }
  res.header("Content-Type", "text/plain").header("Cache-Control", "no-store");
  if (!readiness) {
    res.send("alive\n");
  } else if (ready()) {
    res.send("ready\n");
  } else {
    res.send(503, "not ready\n");
  }
  return true;
}

std::string server::impl::scrape() const {
  detail::server_metrics_sample s;
  s.ready = ready();  // unlocked: the application's checks run here
  s.max_connections = shared.options.limits.max_connections;
  s.tls = !shared.options.tls_listen.empty();
  {
    std::lock_guard lock(mutex);
    s.totals = retired_totals;
    for (const auto& w : workers) {
      add_counted(s.totals, *w);
      for (std::size_t i = 0; i < connection_state_count; ++i)
        s.open[i] += w->counts[i].load(std::memory_order_relaxed);
    }
    s.open[static_cast<std::size_t>(connection_state::closed)] = 0;
    s.draining = running && order.drain;
    s.lame_duck = s.draining && !order.destroy && clock::now() < order.drain_from;
    s.stops_graceful = stops_graceful;
    s.stops_forced = stops_forced;
  }
  return detail::write_server_metrics(s);
}

std::future<reload_result> server::reload_certificates() {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->running || !impl_->reloader) {
    std::promise<reload_result> p;
    if (impl_->running) {
      p.set_value({});  // no TLS listener: nothing to reload
    } else {
      p.set_value({make_error_code(errc::not_running), "the server is not running"});
    }
    return p.get_future();
  }
  return impl_->reloader->request();
}

namespace {

// What snapshot() gathers from every worker; answers with what it has if a worker exits first.
struct snapshot_gathering {
  std::mutex mutex;
  std::vector<connection_info> found;
  std::size_t workers_left = 0;
  std::promise<std::vector<connection_info>> result;
  bool answered = false;

  void add(std::vector<connection_info>& from_worker) {
    std::lock_guard lock(mutex);
    found.insert(found.end(), from_worker.begin(), from_worker.end());
    if (--workers_left == 0) answer();
  }
  void answer() {
    answered = true;
    result.set_value(std::move(found));
  }
  ~snapshot_gathering() {
    if (!answered) answer();
  }
};

}  // namespace

std::shared_future<std::vector<connection_info>> server::snapshot() const {
  auto gathering = std::make_shared<snapshot_gathering>();
  auto future = gathering->result.get_future().share();
  std::lock_guard lock(impl_->mutex);
  if (!impl_->running) {
    gathering->answer();
    return future;
  }
  gathering->workers_left = impl_->workers.size();
  for (auto& w : impl_->workers) {
    w->loop().post([gathering, w = w.get()] {
      std::vector<connection_info> here;
      const std::int64_t now = w->loop().now_ns();
      w->connections.for_each([&](detail::connection_base& c) {
        connection_info info;
        info.id = c.id;
        info.peer = detail::format_address(reinterpret_cast<const sockaddr*>(&c.peer));
        info.state = c.state();
        info.requests = c.requests;
        info.tls = c.tls;
        info.age = std::chrono::nanoseconds(now - c.created_ns);
        if (c.state() == connection_state::idle) {
          info.idle_for = std::chrono::nanoseconds(now - c.idle_since_ns);
        }
        here.push_back(std::move(info));
      });
      gathering->add(here);
    });
  }
  return future;
}

}  // namespace lameduck
