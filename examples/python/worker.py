#!/usr/bin/env python3
"""A Python worker for the lameduck supervisor, with the standard library only.

    lameduck run --listen 127.0.0.1:8080 --ready fd -- python3 examples/python/worker.py

It serves on the socket the supervisor passes (LISTEN_FDS: descriptor 3), says it is ready with
one newline on the ready pipe (LAMEDUCK_READY_FD; or READY=1 on NOTIFY_SOCKET when there is no
pipe), and on SIGTERM stops accepting, finishes the requests it has, and exits 0. It answers
HTTP/1.0-style, one request per connection, so that no idle keep-alive connection can race the
drain: a client never sees a connection close under a request it has sent.
"""

import http.server
import os
import signal
import socket
import sys
import threading


class Hello(http.server.BaseHTTPRequestHandler):
    # One request per connection (see above); the supervisor makes new connections cheap.
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = b"Hello from Python, worker %s\n" % os.environ.get("LAMEDUCK_WORKER", "?").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # the supervisor keeps the worker's output; requests are not worth a line each


def passed_socket():
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1:
        sys.exit("worker.py: no socket passed (run it under lameduck run --listen ...)")
    listener = socket.socket(fileno=3)
    # Every worker waits on the same socket: after select() says a connection is there, another
    # worker may take it first, and a blocking accept() would then wait for the next one, deaf
    # to shutdown(). Non-blocking, socketserver just goes back to waiting.
    listener.setblocking(False)
    return listener


def say_ready():
    fd = os.environ.get("LAMEDUCK_READY_FD")
    if fd:
        os.write(int(fd), b"\n")
        os.close(int(fd))
        return
    name = os.environ.get("NOTIFY_SOCKET", "")
    if name:
        address = "\0" + name[1:] if name.startswith("@") else name
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"READY=1", address)


def main():
    server = http.server.ThreadingHTTPServer(("", 0), Hello, bind_and_activate=False)
    server.socket = passed_socket()
    # Requests being answered finish before the process exits (server_close() joins them).
    server.daemon_threads = False
    # The stop signals are blocked before any thread starts (threads inherit the mask) and
    # taken with sigwait: a Python handler runs only when the signal lands on the main thread,
    # and a main thread asleep in Event.wait() never learnt of one that landed elsewhere.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    say_ready()
    signal.sigwait(stop_signals)
    # Stop accepting: the connections still queued on the shared socket go to other workers.
    server.shutdown()
    serving.join()
    server.server_close()  # closes only this process's copy of the listening socket
    return 0


if __name__ == "__main__":
    sys.exit(main())
