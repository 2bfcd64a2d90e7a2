// lameduck-restart: a program in which the HTTP server is only one part, and which replaces its
// server while it runs (say, after renewing a certificate). GET /next ends a generation: the
// next one starts at once on the same listening sockets (server::hand_over_listeners(), so the
// port never closes and no connection is refused or reset), the old one drains beside it, and
// each generation's report is printed when its drain ends. After the last generation's drain,
// the program exits.
//
// With --rebind it does what one can do without a handover, for comparison (bench/restart.sh):
// on GET /next the old server stops accepting (stop_accepting(): the port is free when its
// future completes; connects that arrive meanwhile are refused), the next server binds the same
// address anew, and then the old one drains.

#include <chrono>
#include <condition_variable>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <lameduck/lameduck.hpp>

namespace {

std::mutex output;

// One line to standard output; reports arrive on the servers' threads.
void say(const std::string& line) {
  std::lock_guard lock(output);
  std::cout << line << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:8080";
  int generations = 3;
  bool rebind = false;
  CLI::App app{
      "lameduck-restart: serves, and on GET /next starts the next server on the same sockets "
      "while the old one drains, GENERATIONS times"};
  app.add_option("--listen", listen, "Address to listen on, HOST:PORT")->capture_default_str();
  app.add_option("--generations", generations, "How many servers to run one after another")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  app.add_flag("--rebind", rebind,
               "Instead of handing the listening sockets over, stop accepting (the port is free), "
               "then bind the next server to the same address, then drain the old one; connects "
               "in between are refused (for comparison; bench/restart.sh). Exit status 1 if the "
               "next server cannot bind");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << "lameduck-restart: " << e.what() << " (see --help)\n";
    return 2;
  }

  std::mutex mutex;
  std::condition_variable next_asked;
  int asked = 0;  // generations that a client asked to end (GET /next)

  auto start = [&](int generation, lameduck::server_options options) {
    options.threads = 1;
    lameduck::router routes;
    routes.get("/", [generation](const lameduck::request&, lameduck::response res) {
      res.send("generation " + std::to_string(generation) + "\n");
    });
    routes.get("/next", [&, generation](const lameduck::request&, lameduck::response res) {
      res.send("generation " + std::to_string(generation) + " ends\n");
      std::lock_guard lock(mutex);
      asked = std::max(asked, generation);
      next_asked.notify_one();  // the main thread replaces the server: a handler never blocks
    });
    auto server = std::make_unique<lameduck::server>(options, routes);
    server->start();
    return server;
  };
  auto report = [](int generation) {
    return [generation](const lameduck::stop_report& r) {
      say("generation " + std::to_string(generation) + " drained" +
          (r.graceful ? "" : " by force") + " in " +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(r.took).count()) +
          " ms: " + std::to_string(r.requests_completed) + " requests completed, " +
          std::to_string(r.requests_aborted) + " aborted");
    };
  };

  std::vector<std::unique_ptr<lameduck::server>> servers;
  int status = 0;
  try {
    lameduck::server_options first;
    first.listen = {listen};
    servers.push_back(start(1, first));
  } catch (const std::system_error& e) {
    std::cerr << "lameduck-restart: cannot listen on " << listen << ": " << e.code().message()
              << "\n";
    return 2;
  }
  say("generation 1 listening on http://" + servers.back()->local_addresses().front());

  for (int generation = 1; generation <= generations; ++generation) {
    {
      std::unique_lock lock(mutex);
      next_asked.wait(lock, [&] { return asked >= generation; });
    }
    lameduck::server& old = *servers.back();
    if (generation < generations && rebind) {
      // The port closes, then the next server binds it: the best one can do without handover.
      const std::string address = old.local_addresses().front();
      old.stop_accepting().get();
      lameduck::server_options next;
      next.listen = {address};
      try {
        servers.push_back(start(generation + 1, next));
      } catch (const std::system_error& e) {
        std::cerr << "lameduck-restart: cannot listen again on " << address << ": "
                  << e.code().message() << "\n";
        old.close(report(generation));
        status = 1;
        break;
      }
      say("generation " + std::to_string(generation + 1) + " listening on http://" +
          servers.back()->local_addresses().front() + " (bound again)");
    } else if (generation < generations) {
      // The next server listens on the same sockets before the old one lets go of them.
      lameduck::server_options next;
      next.listen_sockets = old.hand_over_listeners();
      servers.push_back(start(generation + 1, next));
      say("generation " + std::to_string(generation + 1) + " listening on http://" +
          servers.back()->local_addresses().front() + " (the same sockets)");
    }
    // The rest of the program keeps running; the old server drains beside the new one.
    old.close(report(generation));
  }
  for (auto& server : servers)
    server->wait();
  return status;
}
