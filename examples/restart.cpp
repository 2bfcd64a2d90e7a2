// lameduck-restart: a program in which the HTTP server is only one part. It serves until a
// client asks for /next, drains the server, goes on with its own work (here: it says so), and
// starts a new server on the same port: one generation after another, in one process.

#include <chrono>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <lameduck/lameduck.hpp>

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:8080";
  int generations = 3;
  CLI::App app{
      "lameduck-restart: serves, drains and starts again on the same port, "
      "GENERATIONS times; GET /next ends a generation"};
  app.add_option("--listen", listen, "Address to listen on, HOST:PORT")->capture_default_str();
  app.add_option("--generations", generations, "How many servers to run one after another")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << "lameduck-restart: " << e.what() << " (see --help)\n";
    return 2;
  }

  for (int generation = 1; generation <= generations; ++generation) {
    lameduck::server_options options;
    options.listen = {listen};
    options.threads = 1;
    lameduck::server* current = nullptr;
    lameduck::router routes;
    routes.get("/", [generation](const lameduck::request&, lameduck::response res) {
      res.send("generation " + std::to_string(generation) + "\n");
    });
    routes.get("/next", [generation, &current](const lameduck::request&, lameduck::response res) {
      res.send("generation " + std::to_string(generation) + " ends\n");
      current->shutdown(std::chrono::seconds(10));  // from inside a handler: never blocks
    });
    lameduck::server server(options, routes);
    current = &server;
    std::error_code ec;
    server.start(ec);
    if (ec) {
      std::cerr << "lameduck-restart: cannot listen on " << listen << ": " << ec.message() << "\n";
      return 2;
    }
    // After the first generation, the port is the one the kernel chose, if it was 0.
    listen = server.local_addresses().front();
    std::cout << "generation " << generation << " listening on http://" << listen << std::endl;
    server.wait();
    // The rest of the program keeps running; the port is free again at this point.
    std::cout << "generation " << generation << " stopped; the program goes on" << std::endl;
  }
  return 0;
}
