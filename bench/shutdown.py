#!/usr/bin/python3
"""Orchestrator of bench/shutdown.sh (standard library only; a benchmark, never run by CI).

Run it through bench/shutdown.sh, which builds the client and the floor, installs the Node.js
peers, raises the open-file limit, pins itself to CLIENT_CPU and takes the benchmark lock.
Every server is started here on 127.0.0.1, pinned to SERVER_CPU with taskset; every measurement
is made by shutdown_client (pinned to CLIENT_CPU), which also sends the stop signal itself.
Servers are stopped by pid only (their process tree is recorded when they start).

Part "stop": for each N in NS and K in INFLIGHT, each server of STOP_SERVERS gets N idle
keep-alive connections (one request each) and K requests in flight (GET /delay?ms=DELAY_MS),
then its stop; ROUNDS rounds, servers interleaved (the order rotates every round).
Part "race": scenarios a, b, c of shutdown_client race, TRIALS connections per scenario and
server, BATCH connections per trial (so TRIALS/BATCH server starts), servers interleaved.

Writes OUT_DIR/shutdown-<date>-<time>/: stop.jsonl and race.jsonl (one JSON object per
measurement, the client's raw figures included), servers/*.log, summary.md (the tables).
"""

import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def env(name, default):
    value = os.environ.get(name)
    return default if value is None or value == "" else value


QUICK = env("QUICK", "0") == "1"
NS = [int(x) for x in env("NS", "100" if QUICK else "100 5000 10000").split()]
INFLIGHT = [int(x) for x in env("INFLIGHT", "0 100").split()]
DELAY_MS = int(env("DELAY_MS", "2000"))
SETTLE_MS = int(env("SETTLE_MS", "300"))
ROUNDS = int(env("ROUNDS", "1" if QUICK else "5"))
TRIALS = int(env("TRIALS", "100" if QUICK else "10000"))
BATCH = int(env("BATCH", "100"))
SCENARIOS = env("SCENARIOS", "a b c").split()
PARTS = env("PARTS", "stop race").split()
IDLE_GRACE = env("IDLE_GRACE", "1")
DRAIN_TIMEOUT = env("DRAIN_TIMEOUT", "30")
PROBE_US = int(env("PROBE_US", "200"))
RACE_SPREAD_US = int(env("RACE_SPREAD_US", "5000"))
ALL_SERVERS = ("floor lameduck lameduck-destroy lameduck-grace nginx-quit nginx-stop "
               "node-close node-closeall http-terminator stoppable")
STOP_SERVERS = env("STOP_SERVERS", ALL_SERVERS).split()
RACE_SERVERS = env("RACE_SERVERS", ALL_SERVERS).split()
LAMEDUCK_HELLO = env("LAMEDUCK_HELLO", os.path.join(ROOT, "build/release/bin/lameduck-hello"))
NGINX = env("NGINX", "/usr/sbin/nginx")
NODE = env("NODE", "/usr/bin/node")
SERVER_CPU = env("SERVER_CPU", "0")
CLIENT_CPU = env("CLIENT_CPU", "1")
BIN_DIR = env("BIN_DIR", os.path.join(HERE, "out"))
RUN_DIR = env("RUN_DIR", os.path.join(HERE, "out", time.strftime("shutdown-%Y%m%d-%H%M%S")))
CLIENT = os.path.join(BIN_DIR, "shutdown_client")
FLOOR = os.path.join(BIN_DIR, "epoll_floor")

VARIANTS = {
    "floor": dict(kind="floor", signals="TERM", label="epoll floor: close all, exit"),
    "lameduck": dict(kind="lameduck", signals="TERM", label="lameduck SIGTERM (drain)"),
    "lameduck-destroy": dict(kind="lameduck", signals="TERM,TERM",
                             label="lameduck SIGTERM×2 (destroy)"),
    "lameduck-grace": dict(kind="lameduck", signals="TERM", grace=True,
                           label=f"lameduck --idle-grace {IDLE_GRACE} SIGTERM"),
    "nginx-quit": dict(kind="nginx", signals="QUIT", label="nginx -s quit (SIGQUIT)"),
    "nginx-stop": dict(kind="nginx", signals="TERM", label="nginx -s stop (SIGTERM)"),
    "node-close": dict(kind="node", mode="close", signals="TERM", label="Node.js close()"),
    "node-closeall": dict(kind="node", mode="closeall", signals="TERM",
                          label="Node.js close() + closeAllConnections()"),
    "http-terminator": dict(kind="node", mode="terminator", signals="TERM",
                            label="http-terminator terminate()"),
    "stoppable": dict(kind="node", mode="stoppable", signals="TERM", label="stoppable stop()"),
}


def note(msg):
    print(f"shutdown: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- processes

def _stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    return rest  # rest[0] state, rest[1] ppid, rest[19] starttime


def process_tree(pid):
    """[(pid, starttime)] of pid and its live descendants."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st:
                parents[int(name)] = (int(st[1]), st[19])
    tree, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        if p in parents:
            tree.append((p, parents[p][1]))
        frontier += [c for c, (pp, _) in parents.items() if pp == p]
    return tree


def kill_tree(tree):
    """SIGKILL each recorded process that is still the same process (same start time)."""
    for pid, start in tree:
        st = _stat(pid)
        if st and st[19] == start and st[0] != "Z":
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


used_ports = set()


def free_port():
    """A port below the ephemeral range, free now and not used before in this run."""
    for _ in range(1000):
        port = random.randint(10000, 30000)
        if port in used_ports:
            continue
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        used_ports.add(port)
        return port
    raise RuntimeError("no free port")


def wait_port(port, proc, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.005)
    return False


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while not data.endswith(b"Hello, World!\n"):  # the floor never closes
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.startswith(b"HTTP/1.1 200") and data.endswith(b"Hello, World!\n")
    except OSError:
        return False


live = set()  # servers started and not stopped yet, for the cleanup on an interruption


class Server:
    """One instance of a variant; `proc` is the server process itself (taskset execs it)."""

    def __init__(self, name, with_upstream):
        self.name, self.v = name, VARIANTS[name]
        self.port = free_port()
        self.dir = os.path.join(RUN_DIR, "servers")
        os.makedirs(self.dir, exist_ok=True)
        self.log = open(os.path.join(self.dir, f"{name}.log"), "ab")
        self.upstream = self.proc = None
        self.tree = []
        live.add(self)
        kind = self.v["kind"]
        pin = ["taskset", "-c", SERVER_CPU]
        if kind == "floor":
            cmd = [FLOOR, str(self.port), str(DELAY_MS)]
        elif kind == "lameduck":
            cmd = [LAMEDUCK_HELLO, "--listen", f"127.0.0.1:{self.port}", "--threads", "1",
                   "--drain-timeout", DRAIN_TIMEOUT]
            if self.v.get("grace"):
                cmd += ["--idle-grace", IDLE_GRACE]
        elif kind == "node":
            cmd = [NODE, os.path.join(HERE, "node", "server.js"), str(self.port), self.v["mode"]]
        elif kind == "nginx":
            up_port = 0
            if with_upstream:
                # nginx has no delay of its own: /delay is proxied to an epoll floor, the way
                # nginx usually waits on an application.
                up_port = free_port()
                self.upstream = subprocess.Popen(pin + [FLOOR, str(up_port), str(DELAY_MS)],
                                                 stdout=self.log, stderr=self.log)
                if not wait_port(up_port, self.upstream, 10):
                    self.stop()
                    raise RuntimeError("the upstream floor for nginx did not start")
            conf = self._nginx_conf(up_port)
            cmd = [NGINX, "-p", self.dir + "/", "-c", conf, "-e", conf + ".error.log"]
        else:
            raise ValueError(kind)
        self.proc = subprocess.Popen(pin + cmd, stdout=self.log, stderr=self.log)
        # Answering GET / also means that nginx's worker is there, for the process tree.
        if not wait_port(self.port, self.proc, 15) or not answers(self.port):
            self.stop()
            raise RuntimeError(f"{name} did not start or does not answer (see {self.log.name})")
        self.tree = process_tree(self.proc.pid)
        if self.upstream:
            self.tree += process_tree(self.upstream.pid)

    def _nginx_conf(self, up_port):
        d = os.path.join(self.dir, f"nginx-{self.port}")
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        temp = "".join(f"  {m}_temp_path {d}/{m};\n"
                       for m in ("client_body", "proxy", "fastcgi", "scgi", "uwsgi"))
        nofile = os.sysconf("SC_OPEN_MAX")
        delay = (f"    location /delay {{ proxy_pass http://127.0.0.1:{up_port}; }}\n"
                 if up_port else "")
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
  worker_connections {nofile};
}}
http {{
  access_log off;
  default_type text/plain;
  keepalive_timeout 60s;
  keepalive_requests 1000000;
{temp}  server {{
    listen 127.0.0.1:{self.port};
    location / {{ return 200 "Hello, World!\\n"; }}
{delay}  }}
}}
""")
        return conf

    def pids(self):
        """The server's own processes (not the upstream), for SIGSTOP/SIGCONT."""
        up = {p for p, _ in process_tree(self.upstream.pid)} if self.upstream else set()
        return [p for p, _ in self.tree if p not in up]

    def wait_exit(self, seconds):
        """The exit status, or None if it had to be killed after `seconds`."""
        try:
            code = self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            code = None
        self.stop()
        return code

    def stop(self):
        live.discard(self)
        # Only processes recorded while the server ran (a pid of an exited process may be
        # reused), plus the live tree of a server that is still running; our own children
        # (not reaped yet, so their pids are still theirs) directly.
        running = self.proc is not None and self.proc.poll() is None
        kill_tree(self.tree + (process_tree(self.proc.pid) if running else []))
        for p in (self.proc, self.upstream):
            if p is None:
                continue
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if not self.log.closed:
            self.log.close()


def run_client(args, timeout):
    cmd = ["taskset", "-c", CLIENT_CPU, CLIENT] + [str(a) for a in args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "client timed out"
    out = {}
    for line in r.stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    if r.returncode != 0:
        return None, (r.stderr.strip() or f"client exit {r.returncode}")
    return out, r.stderr.strip()


def rotate(items, k):
    return items[k % len(items):] + items[:k % len(items)] if items else items


# ---------------------------------------------------------------------------- part 1: stop

def window_ms(name, k):
    w = 3000 + (DELAY_MS if k else 0)
    if VARIANTS[name].get("grace"):
        w += int(float(IDLE_GRACE) * 1000)
    return w


def part_stop(servers, out):
    for rnd in range(1, ROUNDS + 1):
        for n in NS:
            for k in INFLIGHT:
                for name in rotate(servers, rnd - 1):
                    try:
                        srv = Server(name, with_upstream=k > 0)
                    except RuntimeError as e:
                        note(str(e))
                        continue
                    w = window_ms(name, k)
                    res, err = run_client(
                        ["stop", "--port", srv.port, "--pid", srv.proc.pid,
                         "--signals", VARIANTS[name]["signals"], "--idle", n, "--inflight", k,
                         "--delay-ms", DELAY_MS, "--settle-ms", SETTLE_MS, "--window-ms", w,
                         "--probe-us", PROBE_US],
                        timeout=w / 1000 + 120)
                    code = srv.wait_exit(0.5)
                    if res is None:
                        note(f"{name} N={n} K={k}: {err}")
                        rec = dict(server=name, n=n, k=k, round=rnd, error=err)
                    else:
                        if err:
                            note(f"{name} N={n} K={k}: client says: {err}")
                        rec = dict(server=name, n=n, k=k, round=rnd, exit_code=code, **res)
                        print(f"  round {rnd}/{ROUNDS} N={n:<5} K={k:<3} {name:<16} "
                              f"refused {res['refused_ms']:>9} port free {res['port_free_ms']:>9} "
                              f"idle closed {res['idle_first_ms']:>9}–{res['idle_last_ms']:>9} ms "
                              f"(EOF {res['idle_eof']}, reset {res['idle_reset']}, "
                              f"open {res['idle_open']})  in flight: {res['inflight_outcomes']}  "
                              f"exit {res['exit_ms']} ms, status {code}", flush=True)
                    out.write(json.dumps(rec) + "\n")
                    out.flush()


# ---------------------------------------------------------------------------- part 2: race

def part_race(servers, out):
    batches = max(1, TRIALS // BATCH)
    for scenario in SCENARIOS:
        totals = {}
        t_start = time.monotonic()
        for b in range(batches):
            for name in rotate(servers, b):
                try:
                    srv = Server(name, with_upstream=False)
                except RuntimeError as e:
                    note(str(e))
                    continue
                res, err = run_client(
                    ["race", "--scenario", scenario, "--port", srv.port, "--pid", srv.proc.pid,
                     "--signals", VARIANTS[name]["signals"],
                     "--stop-pids", ",".join(str(p) for p in srv.pids()),
                     "--conns", BATCH, "--window-ms", 5000,
                     # Scenario c: trial b spreads its writes over 0, 10 %, ..., 100 % of
                     # RACE_SPREAD_US after the signal (the same steps for every server).
                     "--spread-us", RACE_SPREAD_US * (b % 11) // 10 if scenario == "c" else 0],
                    timeout=60)
                code = srv.wait_exit(5)
                rec = dict(scenario=scenario, server=name, batch=b, exit_code=code)
                if res is None:
                    note(f"race {scenario} {name} batch {b}: {err}")
                    rec["error"] = err
                else:
                    rec.update(res)
                    t = totals.setdefault(name, [0, 0, 0, 0, 0])
                    for i, key in enumerate(("answered", "closed", "reset", "partial", "open")):
                        t[i] += int(res[key])
                out.write(json.dumps(rec) + "\n")
                out.flush()
            if (b + 1) % max(1, batches // 10) == 0 or b + 1 == batches:
                done = ", ".join(f"{s} {t[0]}/{t[1]}/{t[2]}" for s, t in totals.items())
                print(f"  scenario {scenario}: {(b + 1) * BATCH:>6} per server "
                      f"({time.monotonic() - t_start:.0f} s); answered/closed/reset: {done}",
                      flush=True)


# ---------------------------------------------------------------------------- tables

def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _table(header, rows):
    widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    lines = [line(header),
             "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2))
                            for i, w in enumerate(widths)) + "|"]
    lines += [line(r) for r in rows]
    return "\n".join(lines)


def _cell(v, base, missing="never"):
    """'12.3 ×1.05': a median in ms and its ratio to the floor's."""
    if v is None:
        return missing
    text = f"{v:.1f}" if v >= 10 else f"{v:.2f}"
    if base is not None and base > 0:
        text += f" ×{v / base:.2f}"
    elif base is not None:
        text += " ×—"
    return text


def summarize_stop(path):
    recs = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
    recs = [r for r in recs if "error" not in r]
    out = []
    if not recs:
        return "No stop measurements.\n"
    order = [s for s in STOP_SERVERS if any(r["server"] == s for r in recs)]
    for n in NS:
        for k in INFLIGHT:
            case = [r for r in recs if r["n"] == n and r["k"] == k]
            if not case:
                continue
            rounds = max(r["round"] for r in case)
            title = (f"Stop with {n:,} idle keep-alive connections"
                     + (f" and {k} requests in flight ({DELAY_MS} ms handlers)" if k else
                        ", nothing in flight")
                     + f": ms after the stop signal, median of {rounds} round(s), "
                       "×ratio to the epoll floor's median; counts summed over rounds")
            med = {}
            for s in order:
                rs = [r for r in case if r["server"] == s]
                if not rs:
                    continue
                m = {f: _median([_num(r[f]) for r in rs])
                     for f in ("refused_ms", "port_free_ms", "idle_first_ms", "idle_last_ms",
                               "exit_ms", "inflight_last_answer_ms")}
                never = {f: sum(1 for r in rs if _num(r[f]) is None)
                         for f in ("refused_ms", "port_free_ms", "exit_ms")}
                m["never"] = never
                m["watched"] = max(_num(r["watched_ms"]) or 0 for r in rs)
                m["runs"] = len(rs)
                m["eof"] = sum(int(r["idle_eof"]) for r in rs)
                m["reset"] = sum(int(r["idle_reset"]) for r in rs)
                m["open"] = sum(int(r["idle_open"]) for r in rs)
                m["unsolicited"] = sum(int(r["idle_unsolicited"]) for r in rs)
                m["probes"] = sum(int(r["probes_connected"]) for r in rs)
                m["unanswered"] = sum(int(r.get("probes_unanswered", 0)) for r in rs)
                m["listen_failed"] = sum(1 for r in rs
                                         if r["port_free_ms"] != "-" and r.get("listen_ok", "1") != "1")
                outcomes = {}
                for r in rs:
                    for part in r["inflight_outcomes"].split("; "):
                        if part == "-":
                            continue
                        cnt, what = part.split("x ", 1)
                        outcomes[what] = outcomes.get(what, 0) + int(cnt)
                m["outcomes"] = "; ".join(f"{c}× {w}" for w, c in outcomes.items()) or "—"
                m["open_after"] = sum(int(r["inflight_open_after_answer"]) for r in rs)
                # Exit − last in-flight answer, per round: the median and the largest.
                gaps = [_num(r["exit_ms"]) - _num(r["inflight_last_answer_ms"]) for r in rs
                        if _num(r["exit_ms"]) is not None
                        and _num(r["inflight_last_answer_ms"]) is not None]
                m["gap"] = _median(gaps)
                m["gap_max"] = max(gaps) if gaps else None
                m["codes"] = ",".join(sorted({"killed" if r["exit_code"] is None
                                              else str(r["exit_code"]) for r in rs}))
                med[s] = m
            base = med.get("floor")
            header = ["server, stop", "refused", "port free", "first idle closed",
                      "last idle closed", "idle EOF/reset/open"]
            if k:
                header += ["in flight (all rounds)", "last answer", "exit − last answer"]
            header += ["exit", "status"]
            rows = []
            for s, m in med.items():
                def c(f, _m=m):
                    # The median of the rounds in which it happened; when it never happened:
                    # "never" (within the watched window; for the exit, ">W s").
                    if _m[f] is None:
                        return (f">{_m['watched'] / 1000:.1f} s" if f == "exit_ms" else "never")
                    cell = _cell(_m[f], base[f] if base else None)
                    if _m["never"].get(f):
                        cell += f" ({_m['never'][f]} never)"
                    return cell
                idle = f"{m['eof']}/{m['reset']}/{m['open']}"
                if m["unsolicited"]:
                    idle += f" ({m['unsolicited']} got bytes)"
                refused = c("refused_ms")
                if m["probes"]:
                    refused += f" ({m['probes']} connected)"
                if m["unanswered"]:
                    refused += f" ({m['unanswered']} SYN unanswered)"
                port_free = c("port_free_ms")
                if m["listen_failed"]:
                    port_free += f" (listen() failed {m['listen_failed']}×)"
                row = [VARIANTS[s]["label"], refused, port_free, c("idle_first_ms"),
                       c("idle_last_ms"), idle]
                if k:
                    oc = m["outcomes"]
                    if m["open_after"]:
                        oc += f" ({m['open_after']} left open)"
                    gap = _cell(m["gap"], None, "—")
                    if m["gap"] is not None and m["runs"] > 1:
                        gap += f" (max {m['gap_max']:.1f})"
                    row += [oc, _cell(m["inflight_last_answer_ms"], None, "—"), gap]
                row += [c("exit_ms"), m["codes"]]
                rows.append(row)
            out.append(title + "\n\n" + _table(header, rows) + "\n")
    return "\n".join(out)


def summarize_race(path):
    recs = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
    recs = [r for r in recs if "error" not in r]
    if not recs:
        return "No racing-request measurements.\n"
    titles = {
        "a": "Request bytes already in the server's socket buffer on an idle keep-alive "
             "connection when the stop begins",
        "b": "Connections (each with a request) still waiting in the accept queue when the "
             "stop begins",
        "c": "Requests written on idle keep-alive connections at the instant the stop begins "
             f"(spread over 0 to {RACE_SPREAD_US / 1000:g} ms after the signal)",
    }
    out = []
    for sc in SCENARIOS:
        case = [r for r in recs if r["scenario"] == sc]
        if not case:
            continue
        agg = {}
        for r in case:
            a = agg.setdefault(r["server"], dict(conns=0, answered=0, answered_close=0, closed=0,
                                                 reset=0, partial=0, open=0, trials=0,
                                                 statuses={}))
            a["trials"] += 1
            for key in ("conns", "answered", "answered_close", "closed", "reset", "partial", "open"):
                a[key] += int(r[key])
            if r.get("statuses", "-") != "-":
                for part in r["statuses"].split(","):
                    st, cnt = part.split(":")
                    a["statuses"][st] = a["statuses"].get(st, 0) + int(cnt)
        base = agg.get("floor")
        header = ["server, stop", "requests", "answered", "with Connection: close",
                  "closed, no answer", "reset", "partial/none", "resets ÷ floor's"]
        rows = []
        for s in [s for s in RACE_SERVERS if s in agg]:
            a = agg[s]
            pct = lambda x, _a=a: f"{x:,} ({100 * x / _a['conns']:.1f} %)" if _a["conns"] else "0"
            answered = pct(a["answered"])
            non200 = {k: v for k, v in a["statuses"].items() if k != "200"}
            if non200:
                answered += " [" + ", ".join(f"{v}× {k}" for k, v in non200.items()) + "]"
            ratio = ("—" if not base or not base["reset"] else f"{a['reset'] / base['reset']:.3f}")
            rows.append([VARIANTS[s]["label"], f"{a['conns']:,}", answered, f"{a['answered_close']:,}",
                         pct(a["closed"]), pct(a["reset"]), f"{a['partial']}/{a['open']}", ratio])
        out.append(f"Racing requests ({sc}): {titles[sc]}; {BATCH} connections per trial, "
                   f"{max(a['trials'] for a in agg.values())} trials per server\n\n"
                   + _table(header, rows) + "\n")
    return "\n".join(out)


def summarize():
    parts = []
    if "stop" in PARTS:
        parts.append(summarize_stop(os.path.join(RUN_DIR, "stop.jsonl")))
    if "race" in PARTS:
        parts.append(summarize_race(os.path.join(RUN_DIR, "race.jsonl")))
    return "\n".join(parts)


# ---------------------------------------------------------------------------- main

def describe_versions():
    def run(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    try:
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(LAMEDUCK_HELLO)))
    except OSError:
        built = "?"
    parts = [f"lameduck-hello built {built} (work tree now at "
             f"{run(['git', '-C', ROOT, 'describe', '--always', '--dirty'])})",
             f"node {run([NODE, '--version'])}",
             run([NGINX, "-v"]).replace("nginx version: ", "")]
    for pkg in ("http-terminator", "stoppable"):
        try:
            with open(os.path.join(HERE, "node", "node_modules", pkg, "package.json")) as f:
                parts.append(f"{pkg} {json.load(f)['version']}")
        except OSError:
            pass
    return ", ".join(parts)


def available(name):
    kind = VARIANTS[name]["kind"]
    path = {"floor": FLOOR, "lameduck": LAMEDUCK_HELLO, "nginx": NGINX, "node": NODE}[kind]
    if not os.access(path, os.X_OK):
        return f"no {path}"
    if VARIANTS[name].get("mode") in ("terminator", "stoppable"):
        pkg = "http-terminator" if VARIANTS[name]["mode"] == "terminator" else "stoppable"
        if not os.path.isdir(os.path.join(HERE, "node", "node_modules", pkg)):
            return f"{pkg} not installed (npm ci --prefix bench/node)"
    return None


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "summarize":
        global RUN_DIR
        RUN_DIR = sys.argv[2]
        print(summarize())
        return 0
    os.makedirs(RUN_DIR, exist_ok=True)
    chosen = {}
    for part, names in (("stop", STOP_SERVERS), ("race", RACE_SERVERS)):
        chosen[part] = []
        for name in names:
            if name not in VARIANTS:
                note(f"unknown server {name}; known: {' '.join(VARIANTS)}")
                continue
            why = available(name)
            if why:
                note(f"skipping {name}: {why}")
                continue
            chosen[part].append(name)
    print(f"shutdown: servers on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}; "
          f"kernel {os.uname().release}; output in {RUN_DIR}")
    versions = describe_versions()
    print(f"shutdown: {versions}")
    with open(os.path.join(RUN_DIR, "versions.txt"), "w") as f:
        f.write(versions + "\n")
    t = time.monotonic()
    if "stop" in PARTS and chosen["stop"]:
        print(f"shutdown: stop part: N in {NS}, in flight {INFLIGHT} ({DELAY_MS} ms), "
              f"{ROUNDS} round(s), {len(chosen['stop'])} servers", flush=True)
        with open(os.path.join(RUN_DIR, "stop.jsonl"), "a") as out:
            part_stop(chosen["stop"], out)
    if "race" in PARTS and chosen["race"]:
        print(f"shutdown: race part: scenarios {' '.join(SCENARIOS)}, {TRIALS} requests each "
              f"({max(1, TRIALS // BATCH)} trials × {BATCH}), {len(chosen['race'])} servers",
              flush=True)
        with open(os.path.join(RUN_DIR, "race.jsonl"), "a") as out:
            part_race(chosen["race"], out)
    print(f"shutdown: done in {time.monotonic() - t:.0f} s\n")
    text = summarize()
    with open(os.path.join(RUN_DIR, "summary.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        for srv in list(live):
            srv.stop()
