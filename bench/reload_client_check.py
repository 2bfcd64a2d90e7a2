#!/usr/bin/env python3
"""Checks that reload_client counts each kind of failure as what it is (bench/reload.sh runs
it before the benchmark; a benchmark helper, never run by CI).

    bench/reload_client_check.py CLIENT_BINARY

Runs the client for about a second against raw servers on 127.0.0.1, each misbehaving in one
way, and compares its JSON summary with what that server did: a clean keep-alive server (no
failure), one that says `Connection: close` on every answer (no failure: the client
reconnects), chunked and read-to-the-end bodies (no failure), then resets, ends of stream
before any answer, on a fresh and on a reused connection, half answers, 503s, silence
(timeouts) and a closed port (connect errors). Prints one line per case and exits 1 if any
case was counted wrong. Every server thread and every client run is bounded in time.
"""
import json
import socket
import struct
import subprocess
import sys
import threading
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"


def read_request(conn, buf=b""):
    """Reads one request head; returns (head, rest) or (None, buf) at the end of stream."""
    while b"\r\n\r\n" not in buf:
        try:
            data = conn.recv(4096)
        except OSError:
            return None, buf
        if not data:
            return None, buf
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def reset(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


# Each behaviour serves one connection; the server runs it on a thread per connection.
def keepalive(conn):
    buf = b""
    while True:
        head, buf = read_request(conn, buf)
        if head is None:
            return
        conn.sendall(OK)


def say_close(conn):
    head, _ = read_request(conn)
    if head is not None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n")
    conn.close()


def chunked(conn):
    buf = b""
    while True:
        head, buf = read_request(conn, buf)
        if head is None:
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n3\r\nlo\n\r\n0\r\n\r\n")


def to_eof(conn):
    head, _ = read_request(conn)
    if head is not None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nhello, until the end of stream\n")
    conn.shutdown(socket.SHUT_WR)
    time.sleep(0.05)
    conn.close()


def reset_at_request(conn):
    head, _ = read_request(conn)
    reset(conn)


def eof_at_request(conn):
    head, _ = read_request(conn)
    conn.shutdown(socket.SHUT_WR)
    time.sleep(0.05)
    conn.close()


def eof_second_request(conn):
    # Answers the first request as keep-alive, then ends the stream at the second one: the race
    # of a server that closes an idle keep-alive connection.
    head, buf = read_request(conn)
    if head is None:
        return
    conn.sendall(OK)
    read_request(conn, buf)
    conn.shutdown(socket.SHUT_WR)
    time.sleep(0.05)
    conn.close()


def reset_second_request(conn):
    head, buf = read_request(conn)
    if head is None:
        return
    conn.sendall(OK)
    read_request(conn, buf)
    reset(conn)


def half_answer(conn):
    head, _ = read_request(conn)
    if head is not None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhal")
    conn.shutdown(socket.SHUT_WR)
    time.sleep(0.05)
    conn.close()


def status_503(conn):
    buf = b""
    while True:
        head, buf = read_request(conn, buf)
        if head is None:
            return
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy\n")


def silent(conn):
    conn.settimeout(3)
    read_request(conn)
    time.sleep(1.5)  # longer than the client's --timeout-ms 300
    conn.close()


def garbage(conn):
    head, _ = read_request(conn)
    if head is not None:
        conn.sendall(b"SPDY/9 what\r\n\r\n")
    time.sleep(0.05)
    conn.close()


class server:
    def __init__(self, behaviour):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.behaviour = behaviour
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        end = time.monotonic() + 30
        while not self.stop and time.monotonic() < end:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(5)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            self.behaviour(conn)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def run_client(client, port, mode, seconds=1, timeout_ms=300):
    out = subprocess.run(
        [client, "--port", str(port), "--connections", "4", "--mode", mode, "--max-s", str(seconds),
         "--timeout-ms", str(timeout_ms), "--retry-ms", "5", "--phases", "all"],
        capture_output=True, text=True, timeout=seconds + 15)
    if out.returncode != 0:
        raise RuntimeError(f"client exited {out.returncode}: {out.stderr.strip()}")
    return json.loads(out.stdout)


KINDS = ("connect", "reset", "eof", "timeout", "status", "bad")


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    client = sys.argv[1]
    # name, behaviour (None: a closed port), mode, kinds expected (> 0), ok expected (> 0),
    # the detail expected among the failures, reconnects expected
    cases = [
        ("clean keep-alive", keepalive, "keepalive", set(), True, None, False),
        ("clean, new connection per request", say_close, "close", set(), True, None, False),
        ("Connection: close on keep-alive", say_close, "keepalive", set(), True, None, True),
        ("chunked body", chunked, "keepalive", set(), True, None, False),
        ("body to the end of stream", to_eof, "keepalive", set(), True, None, True),
        ("reset at the request", reset_at_request, "close", {"reset"}, False, "reset:ECONNRESET-fresh-no-bytes", False),
        ("end of stream at the request", eof_at_request, "close", {"eof"}, False, "eof:fresh-no-bytes", False),
        ("end of stream on a reused connection", eof_second_request, "keepalive", {"eof"}, True, "eof:reused-no-bytes", False),
        ("reset on a reused connection", reset_second_request, "keepalive", {"reset"}, True, "reset:ECONNRESET-reused-no-bytes", False),
        ("half an answer", half_answer, "close", {"eof"}, False, "eof:fresh-partial", False),
        ("503", status_503, "keepalive", {"status"}, False, "status:503", False),
        ("no answer (timeout 300 ms)", silent, "close", {"timeout"}, False, "timeout:waiting", False),
        ("unparsable answer", garbage, "close", {"bad"}, False, "bad:unparsable", False),
        ("closed port", None, "close", {"connect"}, False, "connect:ECONNREFUSED", False),
    ]
    wrong = 0
    for name, behaviour, mode, kinds, want_ok, detail, want_reconnects in cases:
        if behaviour is None:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()  # bound, never listening, then closed: connects are refused
            srv = None
        else:
            srv = server(behaviour)
            port = srv.port
        try:
            r = run_client(client, port, mode)
        finally:
            if srv:
                srv.close()
        t = r["total"]
        got = {k for k in KINDS if t[k] > 0}
        problems = []
        if got != kinds:
            problems.append(f"failure kinds {sorted(got)}, expected {sorted(kinds)}")
        if want_ok != (t["ok"] > 0):
            problems.append(f"ok {t['ok']}")
        if detail and detail not in t["details"]:
            problems.append(f"no {detail} among {sorted(t['details'])}")
        if want_reconnects != (r["reconnects_asked"] > 0):
            problems.append(f"reconnects_asked {r['reconnects_asked']}")
        counts = ", ".join(f"{k} {t[k]}" for k in KINDS if t[k]) or "no failure"
        print(f"  {'ok   ' if not problems else 'WRONG'} {name:40s} {mode:9s} ok {t['ok']:6d}, {counts}"
              + ("" if not problems else "  <- " + "; ".join(problems)))
        wrong += bool(problems)
    print(f"reload_client check: {len(cases) - wrong} cases counted right, {wrong} wrong")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
