// Starts a lameduck server on a kernel-chosen port, answers one request from itself, stops.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <lameduck/lameduck.hpp>

int main() {
  lameduck::server_options options;
  options.listen = {"127.0.0.1:0"};
  options.threads = 1;
  lameduck::server server(
      options, [](const lameduck::request&, lameduck::response res) { res.send("consumed\n"); });
  server.start();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(server.port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 1;
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) return 1;
  std::string got;
  char buf[1024];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    got.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  server.destroy().wait();
  bool ok = got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0 &&
            got.find("\r\n\r\nconsumed\n") != std::string::npos;
  std::puts(ok ? "consumer: ok" : got.c_str());
  return ok ? 0 : 1;
}
