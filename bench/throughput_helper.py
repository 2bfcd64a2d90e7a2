#!/usr/bin/python3
"""Helper for bench/throughput.sh (standard library only; never run by CI).

Subcommands:
  freeport                      print a free TCP port on 127.0.0.1
  tree PID                      print PID and the pids of all its live descendants
  wait-port PORT PID SECONDS    exit 0 once 127.0.0.1:PORT accepts a connection; 1 if PID exits
                                or SECONDS pass first
  get PORT [http|https]         one GET / on a fresh connection; print the status line and body
                                (https: TLS, certificate not verified)
  cputicks PID                  utime+stime+cutime+cstime (clock ticks) summed over PID and all
                                of its live descendants (nginx master + workers, h2o's helpers)
  rss PID                       VmRSS in bytes summed over PID and its live descendants
  cpuidle CPU                   idle+iowait clock ticks of one CPU so far (from /proc/stat)
  wrk-parse FILE                turn wrk --latency output into "requests rps p99_ms errors"
  idle PORT PID CONNS SECONDS   open CONNS keep-alive connections, one GET / on each, read the
                                answers, keep them all open and idle, and report the change in
                                the server's RSS; all within SECONDS
  summarize RESULTS MEMORY      print the final tables (medians over rounds, ratios to nginx)
"""

import errno
import os
import re
import resource
import selectors
import socket
import statistics
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: lameduck-bench\r\n\r\n"


# ---------------------------------------------------------------------------- process tree

def _ppid_map():
    """pid -> parent pid for every process we can read."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # the process went away meanwhile
        # The command name (field 2) may contain spaces and ')'; the rest follows the last ')'.
        rest = stat[stat.rindex(")") + 2:].split()
        parents[int(name)] = int(rest[1])
    return parents


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def process_tree(pid):
    parents = _ppid_map()
    tree, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        tree += children
        frontier += children
    return tree


def cpu_ticks(pid):
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        # Fields 14..17 of proc(5) (utime stime cutime cstime) are rest[11..14].
        total += sum(int(x) for x in rest[11:15])
    return total


def rss_bytes(pid):
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def cpu_idle_ticks(cpu):
    with open("/proc/stat") as f:
        for line in f:
            fields = line.split()
            if fields[0] == f"cpu{cpu}":
                return int(fields[4]) + int(fields[5])
    return 0


# ---------------------------------------------------------------------------- small probes

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}") or _state(pid) == "Z":
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def get(port, scheme="http"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        s = raw
        if scheme == "https":
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            s = context.wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    return status, body


# ---------------------------------------------------------------------------- wrk output

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(text):
    requests = rps = p99 = None
    errors = 0
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"(\d+) requests in", line)
        if m:
            requests = int(m.group(1))
        m = re.match(r"Requests/sec:\s+([\d.]+)", line)
        if m:
            rps = float(m.group(1))
        m = re.match(r"99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\b", line)
        if m:
            p99 = float(m.group(1)) * _UNITS_MS[m.group(2)]
        m = re.match(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", line)
        if m:
            errors += sum(int(x) for x in m.groups())
        m = re.match(r"Non-2xx or 3xx responses: (\d+)", line)
        if m:
            errors += int(m.group(1))
    fmt = lambda v: "nan" if v is None else str(v)
    return f"{fmt(requests)} {fmt(rps)} {fmt(p99)} {errors}"


# ---------------------------------------------------------------------------- idle connections

def _raise_nofile(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, 65536)) if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want >= needed + 64, want


def _response_complete(buf):
    """True once buf holds a whole response with a Content-Length body (all our servers send one)."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", buf[:head_end])
    length = int(m.group(1)) if m else 0
    return len(buf) >= head_end + 4 + length


def idle(port, pid, conns, seconds, window=256):
    """Returns a dict of figures; never raises on a slow or misbehaving server."""
    deadline = time.monotonic() + seconds
    ok_limit, limit = _raise_nofile(conns)
    if not ok_limit:
        print(f"idle: RLIMIT_NOFILE is {limit}; opening fewer connections may fail", file=sys.stderr)

    # Let the server settle after its start and after the readiness probe, then take the baseline.
    time.sleep(0.5)
    rss_before = rss_bytes(pid)

    sel = selectors.DefaultSelector()
    held = []          # sockets that got their answer and now sit idle
    in_flight = {}     # socket -> bytes received so far (None while still connecting)
    failed = 0
    started = 0

    def start_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            return False
        in_flight[s] = None
        sel.register(s, selectors.EVENT_WRITE)
        return True

    def drop(s):
        nonlocal failed
        failed += 1
        sel.unregister(s)
        del in_flight[s]
        s.close()

    while (started < conns or in_flight) and time.monotonic() < deadline:
        # Keep at most `window` handshakes/requests outstanding, so that the server's listen
        # backlog never overflows (an overflow costs a 1 s SYN retransmit per connection).
        while started < conns and len(in_flight) < window:
            started += 1
            try:
                if not start_one():
                    failed += 1
            except OSError as e:
                failed += 1
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    print(f"idle: out of file descriptors after {len(held)} connections",
                          file=sys.stderr)
                    started = conns
        for key, events in sel.select(timeout=0.2):
            s = key.fileobj
            if in_flight[s] is None:  # connect finished
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    drop(s)
                    continue
                try:
                    s.send(REQUEST)  # tiny; fits the empty send buffer whole
                except OSError:
                    drop(s)
                    continue
                in_flight[s] = b""
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                drop(s)
                continue
            if not chunk:
                drop(s)
                continue
            in_flight[s] += chunk
            if _response_complete(in_flight[s]):
                sel.unregister(s)
                del in_flight[s]
                held.append(s)

    open_seconds = seconds - (deadline - time.monotonic())
    for s in list(in_flight):  # timed out: give up on these
        drop(s)

    # Let the server finish whatever it does after answering (freeing request state), then
    # check that the connections are still open (an idle socket that is readable has EOF
    # or an unexpected byte) and read the server's RSS while they are.
    time.sleep(1.0)
    rss_after = rss_bytes(pid)
    check = selectors.DefaultSelector()
    for s in held:
        check.register(s, selectors.EVENT_READ)
    closed_early = len(check.select(timeout=0))
    check.close()

    for s in held:
        s.close()
    sel.close()
    open_count = len(held) - closed_early
    return {
        "wanted": conns, "held": open_count, "failed": failed + closed_early,
        "rss_before": rss_before, "rss_after": rss_after,
        "per_conn": (rss_after - rss_before) / open_count if open_count else float("nan"),
        "open_seconds": open_seconds,
    }


# ---------------------------------------------------------------------------- final tables

def _fmt(v, digits):
    if v is None or v != v:  # None or NaN
        return "—"
    return f"{v:,.{digits}f}"


def _median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def _ratio(a, b):
    return a / b if (a == a and b == b and b) else float("nan")


def summarize(results_path, memory_path):
    # results: "round server conns requests rps p99_ms cpu_us busy_pct errors" per measured run
    runs = {}
    order = []
    with open(results_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 9:
                continue
            _, server, conns, _req, rps, p99, cpu, busy, errors = parts
            key = (server, int(conns))
            if key not in runs:
                runs[key] = []
                order.append(key)
            runs[key].append((float(rps), float(p99), float(cpu), float(busy), int(errors)))

    servers = list(dict.fromkeys(s for s, _ in order))
    conn_levels = sorted({c for _, c in order})
    med = {k: tuple(_median([r[i] for r in v]) for i in range(4)) for k, v in runs.items()}

    if not runs:
        print("No throughput measurements (no server started).")
    else:
        print("Keep-alive throughput, tiny response (medians over rounds; ratios of the medians)")
        print()
    header = ["server", "conns", "runs", "req/s", "p99 ms", "CPU µs/req", "server busy",
              "req/s ÷ nginx", "p99 ÷ nginx", "CPU ÷ nginx", "errors"]
    rows = []
    for c in conn_levels:
        base = med.get(("nginx", c))
        for s in servers:
            if (s, c) not in med:
                continue
            rps, p99, cpu, busy = med[(s, c)]
            errs = sum(r[4] for r in runs[(s, c)])
            valid = sum(1 for r in runs[(s, c)] if r[0] == r[0])
            rows.append([s, str(c), str(valid), _fmt(rps, 0), _fmt(p99, 2), _fmt(cpu, 2),
                         _fmt(busy, 0) + " %" if busy == busy else "—",
                         _fmt(_ratio(rps, base[0]) if base else None, 2),
                         _fmt(_ratio(p99, base[1]) if base else None, 2),
                         _fmt(_ratio(cpu, base[2]) if base else None, 2),
                         str(errs)])
    if rows:
        _table(header, rows)

    mem_rows = []
    if memory_path and os.path.exists(memory_path):
        with open(memory_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 5:
                    continue
                server, held, failed, delta, per_conn = parts
                mem_rows.append((server, int(held), int(failed), float(delta), float(per_conn)))
    if mem_rows:
        print()
        print("Resident memory per idle keep-alive connection ((VmRSS after - before) / connections)")
        print()
        base = next((r[4] for r in mem_rows if r[0] == "nginx"), None)
        _table(["server", "idle conns", "failed", "RSS growth KiB", "bytes/conn", "÷ nginx"],
               [[s, f"{h:,}", str(fl), _fmt(d / 1024, 0), _fmt(p, 0),
                 _fmt(_ratio(p, base) if base is not None else None, 2)]
                for s, h, fl, d, p in mem_rows])


def _table(header, rows):
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i])
              for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    print(line(header))
    print("|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2))
                         for i, w in enumerate(widths)) + "|")
    for r in rows:
        print(line(r))


# ---------------------------------------------------------------------------- main

def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "freeport":
        print(free_port())
    elif cmd == "wait-port":
        return 0 if wait_port(int(argv[2]), int(argv[3]), float(argv[4])) else 1
    elif cmd == "get":
        status, body = get(int(argv[2]), argv[3] if len(argv) > 3 else "http")
        print(status)
        sys.stdout.write(body.decode(errors="replace"))
    elif cmd == "tree":
        print(" ".join(str(p) for p in process_tree(int(argv[2]))))
    elif cmd == "cputicks":
        print(cpu_ticks(int(argv[2])))
    elif cmd == "cpuidle":
        print(cpu_idle_ticks(int(argv[2])))
    elif cmd == "rss":
        print(rss_bytes(int(argv[2])))
    elif cmd == "wrk-parse":
        with open(argv[2]) as f:
            print(parse_wrk(f.read()))
    elif cmd == "idle":
        r = idle(int(argv[2]), int(argv[3]), int(argv[4]), float(argv[5]))
        print(f"{r['held']} {r['failed']} {r['rss_after'] - r['rss_before']} {r['per_conn']:.1f}"
              f" {r['open_seconds']:.2f}")
    elif cmd == "summarize":
        summarize(argv[2], argv[3] if len(argv) > 3 else None)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
