// soak_server: the server of bench/soak.sh (a benchmark, never run by CI).
//
// Runs a lameduck server for CYCLE seconds, stops it gracefully with a deadline, destroys it,
// and starts a fresh one on the same address, CYCLES times, all in one process, so that
// whatever a server's life leaves behind (memory, descriptors, threads) adds up and shows:
//
//   soak_server [--listen 127.0.0.1:0] [--tls-cert FILE --tls-key FILE] [--cycles 30]
//               [--cycle-s 60] [--deadline-s 5] [--threads 2] [--warm-openssl 200]
//               [--smaps 1]
//
// The first server binds --listen (port 0: the kernel's choice), and HTTPS on another port of
// the kernel's choice with --tls-cert and --tls-key; every later one binds the same ports again
// (retrying for up to 5 s if the port is still taken). Between two servers, when the old one is
// destroyed and before the next starts, the process measures itself: VmRSS and Threads from
// /proc/self/status, the heap in use (mallinfo2), VmRSS after malloc_trim(0), and the entries
// of /proc/self/fd. With TLS, OpenSSL's own caches are filled first (--warm-openssl contexts;
// see warm_openssl()), so that their growth does not pass for lameduck's. --smaps 1 also lists its
// mappings with the most resident memory then, on standard error.
//
// Routes (every server has them; the responses completed later come from one timer thread
// that lives as long as the process, so some of them outlive the server they belong to):
//   GET  /                          "Hello, World!\n"
//   POST /echo                      the request's body back (chunked uploads are de-chunked)
//   GET  /big?kb=N                  N KiB (at most 16384), for slow readers
//   GET  /delay?ms=N                answered N ms later (at most 60000), from the timer thread
//   GET  /stream?chunks=N&interval_ms=M   N chunks, one every M ms, from the timer thread
//   GET  /upgrade                   with "Upgrade: echo": 101, then every byte comes back;
//                                   a piece holding "close" closes it; a drain closes it too
//
// Output, one line each, flushed, on standard output:
//   openssl warm-up: N contexts, heap in use A -> B KiB      (with TLS)
//   listening http PORT [https PORT]
//   cycle N started T_MS
//   cycle N stopped T_MS graceful=0|1 took_ms=.. completed=.. aborted=.. fresh=.. active=..
//                   idle=.. upgraded=.. closing=..   (connections closed by the stop, by state)
//   drain N at 1000|3000 ms: K open: STATE PEER [tls] requests=.. age_ms=.., ...
//                   (while a drain lasts: what it waits for, at most 8 connections)
//   between N T_MS rss_kb=.. heap_kb=.. rss_trimmed_kb=.. fds=.. threads=..
//                   (see self_measure(): VmRSS, the heap in use, VmRSS after malloc_trim(0))
//   done
// T_MS: milliseconds since the program started. SIGTERM or SIGINT ends the cycle under way
// early and stops after it. Exit status 0, 2 on usage or when a server cannot start.

#include <dirent.h>
#include <malloc.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include <openssl/ssl.h>
#include <lameduck/lameduck.hpp>

#include "../examples/timer_thread.hpp"
#include "bench_signals.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
const clock_type::time_point program_start = clock_type::now();

long long since_start_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - program_start)
      .count();
}

std::mutex output;
void say(const std::string& line) {
  std::lock_guard lock(output);
  std::cout << line << std::endl;
}

long number(const lameduck::request& req, std::string_view name, long fallback, long max) {
  auto v = req.query_param(name);
  if (!v) return fallback;
  long n = std::strtol(std::string(*v).c_str(), nullptr, 10);
  return n < 0 ? 0 : (n > max ? max : n);
}

void stream_chunks(timer_thread& timers, std::shared_ptr<lameduck::response> res, long left,
                   std::chrono::milliseconds interval, long index) {
  if (left == 0 || res->stop_token().stop_requested()) {
    res->end();
    return;
  }
  res->write("chunk " + std::to_string(index) + "\n");
  timers.at(clock_type::now() + interval, [&timers, res, left, interval, index] {
    stream_chunks(timers, res, left - 1, interval, index + 1);
  });
}

lameduck::router make_routes(timer_thread& timers) {
  lameduck::router routes;
  routes.get("/", [](const lameduck::request&, lameduck::response res) {
    res.header("Content-Type", "text/plain").send("Hello, World!\n");
  });
  routes.post("/echo", [](const lameduck::request& req, lameduck::response res) {
    res.send(std::string(req.body()));
  });
  routes.get("/big", [](const lameduck::request& req, lameduck::response res) {
    const long kb = number(req, "kb", 64, 16384);
    res.header("Content-Type", "application/octet-stream");
    res.send(std::string(std::size_t(kb) * 1024, 'x'));
  });
  routes.get("/delay", [&timers](const lameduck::request& req, lameduck::response res) {
    const long ms = number(req, "ms", 0, 60'000);
    auto shared = std::make_shared<lameduck::response>(std::move(res));
    timers.at(clock_type::now() + std::chrono::milliseconds(ms),
              [shared, ms] { shared->send("waited " + std::to_string(ms) + " ms\n"); });
  });
  routes.get("/stream", [&timers](const lameduck::request& req, lameduck::response res) {
    const long chunks = number(req, "chunks", 10, 100'000);
    const long interval = number(req, "interval_ms", 100, 60'000);
    res.header("Content-Type", "text/plain");
    stream_chunks(timers, std::make_shared<lameduck::response>(std::move(res)), chunks,
                  std::chrono::milliseconds(interval), 1);
  });
  routes.get("/upgrade", [](const lameduck::request& req, lameduck::response res) {
    if (!req.upgrade_requested()) {
      res.header("Upgrade", "echo").header("Connection", "Upgrade");
      return res.send(426, "Upgrade Required\n");
    }
    lameduck::upgrade_handlers h;
    h.on_data = [](lameduck::upgraded_connection& self, std::string_view bytes) {
      self.send(std::string(bytes));
      if (bytes.find("close") != std::string_view::npos) self.close();
    };
    h.on_shutdown = [](lameduck::upgraded_connection& self) { self.close(); };
    res.upgrade("echo", std::move(h));
  });
  return routes;
}

// VmRSS (KiB) and Threads of this process.
std::pair<long, long> rss_and_threads() {
  long rss = -1, threads = -1;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::atol(line.c_str() + 6);
    if (line.rfind("Threads:", 0) == 0) threads = std::atol(line.c_str() + 8);
  }
  return {rss, threads};
}

// This process, measured: VmRSS as it is; the heap in use (what malloc has handed out and not
// got back, over every arena: an exact figure for a leak of allocations); VmRSS again after
// malloc_trim(0), which returns the allocator's free memory to the kernel, so that what remains
// is memory in use or fragmentation (glibc keeps freed blocks, large response bodies among
// them, in its per-thread arenas for reuse, which makes the first figure wander by megabytes
// from one quiet point to the next); threads and open descriptors.
std::string self_measure() {
  const auto [rss, threads] = rss_and_threads();
  const struct mallinfo2 heap = ::mallinfo2();
  const long heap_kb = long((heap.uordblks + heap.hblkhd) / 1024);
  ::malloc_trim(0);
  const long rss_trimmed = rss_and_threads().first;
  long fds = -1;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    fds = 0;
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++fds;
    --fds;  // the directory's own descriptor
    ::closedir(d);
  }
  return "rss_kb=" + std::to_string(rss) + " heap_kb=" + std::to_string(heap_kb) +
         " rss_trimmed_kb=" + std::to_string(rss_trimmed) + " fds=" + std::to_string(fds) +
         " threads=" + std::to_string(threads);
}

// OpenSSL 3.0 grows caches of its own (of decoders, of fetched algorithms) with every SSL_CTX
// made from the same files, by less each time: about 100 KiB of heap over the first 150
// contexts, then a few hundred bytes each, all freed only by OPENSSL_cleanup() at exit. The same
// shows with SSL_CTX_new, loading the files and SSL_CTX_free alone, without lameduck. Making
// that many contexts first, as a TLS server's restarts would over time, keeps that growth out of
// the per-cycle figures, which are about what lameduck leaves behind.
void warm_openssl(const std::string& cert, const std::string& key, int contexts) {
  for (int i = 0; i < contexts; ++i) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return;
    SSL_CTX_use_certificate_chain_file(ctx, cert.c_str());
    SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_check_private_key(ctx);
    SSL_CTX_free(ctx);
  }
}

// The mappings of this process with the most resident memory, to standard error (--smaps):
// what a growing or wandering RSS is made of.
void dump_smaps(int cycle) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line, mapping;
  std::vector<std::pair<long, std::string>> big;
  while (std::getline(smaps, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find('-') < 16) {
      mapping = line;
    } else if (line.rfind("Rss:", 0) == 0) {
      const long kb = std::atol(line.c_str() + 4);
      if (kb >= 256) big.emplace_back(kb, mapping);
    }
  }
  std::sort(big.begin(), big.end(), std::greater<>());
  std::string out = "smaps after cycle " + std::to_string(cycle) + ":\n";
  for (std::size_t i = 0; i < big.size() && i < 12; ++i)
    out += "  " + std::to_string(big[i].first) + " kB  " + big[i].second + "\n";
  std::cerr << out << std::flush;
}

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "soak_server: " << why << " (see the comment at the top of soak_server.cpp)\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0", cert, key;
  int cycles = 30, threads = 2;
  double cycle_s = 60, deadline_s = 5;
  bool smaps = false;
  int warm_contexts = 200;
  for (int i = 1; i < argc; i += 2) {
    std::string flag = argv[i];
    if (i + 1 >= argc) usage("no value for " + flag);
    std::string v = argv[i + 1];
    if (flag == "--listen") {
      listen = v;
    } else if (flag == "--tls-cert") {
      cert = v;
    } else if (flag == "--tls-key") {
      key = v;
    } else if (flag == "--cycles") {
      cycles = std::atoi(v.c_str());
    } else if (flag == "--cycle-s") {
      cycle_s = std::atof(v.c_str());
    } else if (flag == "--deadline-s") {
      deadline_s = std::atof(v.c_str());
    } else if (flag == "--threads") {
      threads = std::atoi(v.c_str());
    } else if (flag == "--warm-openssl") {
      warm_contexts = std::atoi(v.c_str());
    } else if (flag == "--smaps") {
      smaps = v == "1";
    } else {
      usage("unknown option " + flag);
    }
  }
  if (cycles < 1 || cycle_s <= 0 || deadline_s < 0 || threads < 1) usage("a value is out of range");
  if (cert.empty() != key.empty()) usage("--tls-cert and --tls-key come together");

  // Before any thread starts: the stop signals are taken with sigtimedwait by this thread only.
  const sigset_t stop_signals = block_stop_signals();

  timer_thread timers;
  const lameduck::router routes = make_routes(timers);
  const auto deadline = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(deadline_s));
  std::string http_address = listen, https_address;
  if (!cert.empty()) {
    https_address = listen.substr(0, listen.rfind(':')) + ":0";
  }
  bool signalled = false;
  if (!cert.empty() && warm_contexts > 0) {
    const auto heap_before = ::mallinfo2();
    warm_openssl(cert, key, warm_contexts);
    const auto heap_after = ::mallinfo2();
    say("openssl warm-up: " + std::to_string(warm_contexts) + " contexts, heap in use " +
        std::to_string((heap_before.uordblks + heap_before.hblkhd) / 1024) + " -> " +
        std::to_string((heap_after.uordblks + heap_after.hblkhd) / 1024) + " KiB");
  }

  for (int cycle = 1; cycle <= cycles && !signalled; ++cycle) {
    lameduck::server_options options;
    options.listen = {http_address};
    if (!cert.empty()) options.tls_listen = {{https_address, {{cert, key, ""}}}};
    options.threads = unsigned(threads);
    std::unique_ptr<lameduck::server> server;
    std::error_code ec;
    // The port was just freed by the last server; another program may hold it for a moment.
    for (int attempt = 0; attempt < 100; ++attempt) {
      server = std::make_unique<lameduck::server>(options, routes);
      ec.clear();
      server->start(ec);
      if (!ec) break;
      server.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (ec) {
      std::cerr << "soak_server: cycle " << cycle << ": cannot start: " << ec.message() << "\n";
      return 2;
    }
    if (cycle == 1) {
      const auto addresses = server->local_addresses();
      http_address = addresses.at(0);
      std::string line = "listening http " + http_address.substr(http_address.rfind(':') + 1);
      if (!cert.empty()) {
        https_address = addresses.at(1);
        line += " https " + https_address.substr(https_address.rfind(':') + 1);
      }
      say(line);
    }
    say("cycle " + std::to_string(cycle) + " started " + std::to_string(since_start_ms()));

    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(cycle_s));
    timespec wait{time_t(ns.count() / 1'000'000'000), long(ns.count() % 1'000'000'000)};
    const auto until = clock_type::now() + ns;
    while (true) {
      int sig = ::sigtimedwait(&stop_signals, nullptr, &wait);
      if (sig > 0) {
        signalled = true;
        break;
      }
      auto left = until - clock_type::now();
      if (left <= clock_type::duration::zero()) break;
      const auto left_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      wait = {time_t(left_ns / 1'000'000'000), long(left_ns % 1'000'000'000)};
    }

    const auto drain_began = clock_type::now();
    // What holds the drain up, one and three seconds in (if it has not completed by then).
    auto drain = server->shutdown(deadline);
    for (auto at : {std::chrono::milliseconds(1000), std::chrono::milliseconds(3000)}) {
      if (drain.wait_until(drain_began + at) == std::future_status::ready) break;
      const auto open = server->snapshot().get();
      std::string held = "drain " + std::to_string(cycle) + " at " + std::to_string(at.count()) +
                         " ms: " + std::to_string(open.size()) + " open";
      for (std::size_t i = 0; i < open.size() && i < 8; ++i) {
        const auto& c = open[i];
        held +=
            (i ? ", " : ": ") + std::string(lameduck::to_string(c.state)) + " " + c.peer +
            (c.tls ? " tls" : "") + " requests=" + std::to_string(c.requests) + " age_ms=" +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(c.age).count());
      }
      say(held);
    }
    const lameduck::stop_report r = drain.get();
    std::string line =
        "cycle " + std::to_string(cycle) + " stopped " + std::to_string(since_start_ms()) +
        " graceful=" + (r.graceful ? "1" : "0") + " took_ms=" +
        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(r.took).count()) +
        " completed=" + std::to_string(r.requests_completed) +
        " aborted=" + std::to_string(r.requests_aborted);
    for (std::size_t s = 0; s < lameduck::connection_state_count; ++s) {
      const auto state = static_cast<lameduck::connection_state>(s);
      if (state == lameduck::connection_state::closed) continue;
      line += " " + std::string(lameduck::to_string(state)) + "=" +
              std::to_string(r.closed_by_state[s]);
    }
    say(line);
    server.reset();  // its threads are joined, its sockets closed
    // Responses of the old server still held by the timer thread (a /delay not yet due, a
    // stream's next chunk) are completed there, into the void, and release what they hold;
    // the measurement waits for that (a few hundred ms at most here; bounded to 2 s).
    for (int i = 0; i < 200 && !timers.empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    say("between " + std::to_string(cycle) + " " + std::to_string(since_start_ms()) + " " +
        self_measure());
    if (smaps) dump_smaps(cycle);
  }
  say("done");
  return 0;
}
