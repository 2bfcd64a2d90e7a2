// lameduck-test-server: the server the integration tests start. Every limit and timeout is a
// flag, and it has routes that misbehave on purpose (throw, drop the response, stream slowly).

#include <csignal>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <lameduck/lameduck.hpp>

int main(int argc, char** argv) {
  lameduck::server_options o;
  long header_ms = o.timeouts.header.count(), body_ms = o.timeouts.body.count(),
       idle_ms = o.timeouts.idle.count(), write_ms = o.timeouts.write.count(),
       linger_ms = o.timeouts.linger.count();
  long body_rate_grace_ms = o.timeouts.min_body_rate.grace.count(),
       response_rate_grace_ms = o.timeouts.min_response_rate.grace.count();
  std::vector<std::string> tls_certs, tls_keys;
  CLI::App app{"lameduck-test-server"};
  app.add_option("--listen", o.listen);
  // With a certificate, every --listen address speaks HTTPS: the same tests, over TLS.
  app.add_option("--tls-cert", tls_certs);
  app.add_option("--tls-key", tls_keys);
  long watch_ms = 0;
  app.add_option("--tls-watch-ms", watch_ms);
  app.add_option("--threads", o.threads);
  app.add_option("--max-request-line", o.limits.max_request_line);
  app.add_option("--max-header-bytes", o.limits.max_header_bytes);
  app.add_option("--max-header-count", o.limits.max_header_count);
  app.add_option("--max-body-bytes", o.limits.max_body_bytes);
  app.add_option("--max-connections", o.limits.max_connections);
  app.add_option("--header-timeout-ms", header_ms);
  app.add_option("--body-timeout-ms", body_ms);
  app.add_option("--idle-timeout-ms", idle_ms);
  app.add_option("--write-timeout-ms", write_ms);
  app.add_option("--linger-ms", linger_ms);
  app.add_option("--min-body-rate", o.timeouts.min_body_rate.bytes_per_second);
  app.add_option("--min-body-rate-grace-ms", body_rate_grace_ms);
  app.add_option("--min-response-rate", o.timeouts.min_response_rate.bytes_per_second);
  app.add_option("--min-response-rate-grace-ms", response_rate_grace_ms);
  CLI11_PARSE(app, argc, argv);
  o.timeouts.header = std::chrono::milliseconds(header_ms);
  o.timeouts.body = std::chrono::milliseconds(body_ms);
  o.timeouts.idle = std::chrono::milliseconds(idle_ms);
  o.timeouts.write = std::chrono::milliseconds(write_ms);
  o.timeouts.linger = std::chrono::milliseconds(linger_ms);
  o.timeouts.min_body_rate.grace = std::chrono::milliseconds(body_rate_grace_ms);
  o.timeouts.min_response_rate.grace = std::chrono::milliseconds(response_rate_grace_ms);
  o.tls.watch_files = std::chrono::milliseconds(watch_ms);
  if (!tls_certs.empty()) {
    for (const auto& address : std::exchange(o.listen, {})) {
      lameduck::tls_listen_options l{address, {}};
      for (std::size_t i = 0; i < tls_certs.size() && i < tls_keys.size(); ++i)
        l.certificates.push_back({tls_certs[i], tls_keys[i], ""});
      o.tls_listen.push_back(l);
    }
  }

  lameduck::server* self = nullptr;
  lameduck::router routes;
  routes.get("/",
             [](const lameduck::request&, lameduck::response res) { res.send("Hello, World!\n"); });
  // Answers after ms milliseconds, from another thread.
  routes.get("/delay", [](const lameduck::request& req, lameduck::response res) {
    int ms = std::stoi(std::string(req.query_param("ms").value_or("0")));
    std::thread([ms, res = std::move(res)]() mutable {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      res.send("waited\n");
    }).detach();
  });
  // Blocks the loop's thread for ms milliseconds, then answers: what a handler must never do,
  // and what the server must survive without cutting its other timeouts short.
  routes.get("/block", [](const lameduck::request& req, lameduck::response res) {
    int ms = std::stoi(std::string(req.query_param("ms").value_or("0")));
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    res.send("blocked\n");
  });
  // Streams n pieces ("piece 0\n"..., or each of `bytes` letters) from another thread,
  // interval_ms apart; with declared=N it announces Content-Length N first (true or not)
  // instead of chunking.
  routes.get("/stream", [](const lameduck::request& req, lameduck::response res) {
    int n = std::stoi(std::string(req.query_param("chunks").value_or("3")));
    int ms = std::stoi(std::string(req.query_param("interval_ms").value_or("0")));
    std::size_t bytes = std::stoul(std::string(req.query_param("bytes").value_or("0")));
    if (auto declared = req.query_param("declared")) res.header("Content-Length", *declared);
    std::thread([n, ms, bytes, res = std::move(res)]() mutable {
      for (int i = 0; i < n; ++i) {
        res.write(bytes ? std::string(bytes, static_cast<char>('a' + i % 26))
                        : "piece " + std::to_string(i) + "\n");
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      }
      res.end();
    }).detach();
  });
  // Writes a piece from another thread, then ends the response on the loop's thread before the
  // loop has run that write: they must go out in the order they were made.
  routes.get("/write-there-end-here", [](const lameduck::request&, lameduck::response res) {
    auto shared = std::make_shared<lameduck::response>(std::move(res));
    std::thread([shared] { shared->write("written on another thread\n"); }).join();
    shared->end();
  });
  routes.post("/echo", [](const lameduck::request& req, lameduck::response res) {
    res.send(std::string(req.body()));
  });
  routes.get("/big", [](const lameduck::request& req, lameduck::response res) {
    auto bytes = std::stoul(std::string(req.query_param("bytes").value_or("1048576")));
    res.send(std::string(bytes, 'x'));
  });
  routes.get("/throw", [](const lameduck::request&, lameduck::response) {
    throw std::runtime_error("thrown on purpose");
  });
  routes.get("/drop", [](const lameduck::request&, lameduck::response) {});
  routes.get("/close", [](const lameduck::request&, lameduck::response res) {
    res.header("Connection", "close").send("bye\n");
  });
  routes.get("/headers", [](const lameduck::request& req, lameduck::response res) {
    std::string out;
    for (const auto& h : req.headers())
      out += std::string(h.name) + ": " + std::string(h.value) + "\n";
    res.send(std::move(out));
  });
  routes.get("/peer", [](const lameduck::request& req, lameduck::response res) {
    res.send(req.peer() + "\n");
  });
  // An echo protocol after an upgrade (or a CONNECT): every byte comes back; "close" in a
  // piece makes the server close after echoing it. from_thread=1 upgrades from another thread.
  auto echo = [] {
    lameduck::upgrade_handlers h;
    h.on_data = [](lameduck::upgraded_connection& self, std::string_view bytes) {
      self.send(std::string(bytes));
      if (bytes.find("close") != std::string_view::npos) self.close();
    };
    return h;
  };
  routes.get("/upgrade", [echo](const lameduck::request& req, lameduck::response res) {
    if (!req.upgrade_requested()) {
      res.header("Upgrade", "echo").header("Connection", "Upgrade");
      return res.send(426, "Upgrade Required\n");
    }
    if (req.query_param("from_thread")) {
      std::thread([res = std::move(res), echo]() mutable { res.upgrade("echo", echo()); }).detach();
    } else {
      res.upgrade("echo", echo());
    }
  });
  // Calls upgrade() whether or not the request asked for one; reports the refusal.
  routes.get("/upgrade-anyway", [echo](const lameduck::request& req, lameduck::response res) {
    try {
      res.upgrade(req.query_param("protocol").value_or(""), echo());
    } catch (const std::logic_error& e) {
      res.send(409, std::string(e.what()) + "\n");
    }
  });
  routes.route(
      "CONNECT", "tunnel.test:443",
      [echo](const lameduck::request&, lameduck::response res) { res.upgrade("", echo()); });
  routes.get("/counts", [&self](const lameduck::request&, lameduck::response res) {
    auto c = self->counts();
    std::string out;
    for (std::size_t s = 0; s < lameduck::connection_state_count; ++s) {
      out += std::string(lameduck::to_string(static_cast<lameduck::connection_state>(s))) + " " +
             std::to_string(c.by_state[s]) + "\n";
    }
    res.send(std::move(out));
  });

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  lameduck::server server(o, routes);
  self = &server;
  std::error_code ec;
  server.start(ec);
  if (ec) {
    std::cerr << "lameduck-test-server: " << ec.message() << "\n";
    return 2;
  }
  for (const auto& a : server.local_addresses())
    std::cout << "listening on " << (tls_certs.empty() ? "http://" : "https://") << a << "\n";
  std::cout.flush();
  // SIGHUP reloads the certificates and says how on standard error.
  for (int sig = 0; sigwait(&signals, &sig) == 0 && sig == SIGHUP;) {
    auto r = server.reload_certificates().get();
    std::cerr << (r ? std::string("reloaded") : "reload refused: " + r.why) << std::endl;
  }
  server.destroy().wait();
  return 0;
}
