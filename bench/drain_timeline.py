#!/usr/bin/env python3
"""The clients of bench/drain_timeline.sh (a benchmark, never run by CI).

    drain_timeline.py run --port P --pid PID --events FILE [options]     the clients, then the stop
    drain_timeline.py summarize RUN_DIR                                  the table (summary.md)

Against the server of drain_timeline.cpp on 127.0.0.1:P, from one asyncio loop, every loop
bounded in time and count:

- a load balancer's health check: GET /readyz on a new connection every --check-ms (500); after
  --fall (2) answers in a row that are not 200 the server is out of the pool (HAProxy's
  `inter` and `fall`), and the load and slow clients below start nothing more;
- load: --load (8) keep-alive connections sending GET / back to back while the server is in
  the pool (the traffic a balancer forwards); out of the pool, each closes its connection;
- slow: --slow (20) keep-alive connections sending GET /slow?ms=N, N drawn between
  --slow-min-ms (500) and --slow-max-ms (3000), one after the other, while in the pool:
  requests in flight when the stop comes;
- idle: --idle (200) keep-alive connections that send one GET / and then wait, as a browser
  keeps its connection: the drain closes them;
- upgraded: --upgraded (20) connections upgraded to the server's echo protocol (GET /upgrade,
  Upgrade: echo), each sending a line every --ping-ms (250) and reading it back. When the server
  says "bye" (its drain has begun) the client finishes for a time drawn between
  --close-min-ms (200) and --close-max-ms (2000), still pinging, then sends "close": the
  closing handshake of a WebSocket.

Once every connection is up, it waits --before-ms (2000), sends SIGTERM to PID, and goes on
until PID has exited or --max-s (60) have passed. Every failure (a refused connect, a reset,
an end of stream or a timeout before a complete answer, a status that is not 2xx) is written to
--events with its time (CLOCK_MONOTONIC, the server's clock too) and kind; so are the balancer's
decisions, the signal, each idle connection closed by the server and each upgraded connection's
"bye" and end. The last line of --events, and standard output, is the summary.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time


def now_ms():
    return time.monotonic() * 1000


class Recorder:
    def __init__(self, path):
        self.f = open(path, "w")
        self.counts = {}

    def event(self, **fields):
        self.f.write(json.dumps({"t_ms": round(now_ms(), 3), **fields}) + "\n")

    def count(self, conn, outcome):
        key = f"{conn}:{outcome}"
        self.counts[key] = self.counts.get(key, 0) + 1

    def failed(self, conn, kind, detail=""):
        self.count(conn, "failed")
        self.count(conn, f"failed-{kind}")
        self.event(event="failed", conn=conn, kind=kind, detail=detail)


async def read_response(reader):
    """Reads one response with Content-Length; returns (status, keep_alive). Raises
    EOFError (with how much was read) on an end of stream before it is complete."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await reader.read(4096)
        if not chunk:
            raise EOFError("no bytes" if not head else "partial head")
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip().lower()
    length = int(fields.get("content-length", "0"))
    while len(rest) < length:
        chunk = await reader.read(length - len(rest))
        if not chunk:
            raise EOFError("partial body")
        rest += chunk
    return status, fields.get("connection") != "close"


def failure_kind(e):
    if isinstance(e, ConnectionRefusedError):
        return "connect", "refused"
    if isinstance(e, (ConnectionResetError, BrokenPipeError)):
        return "reset", type(e).__name__
    if isinstance(e, EOFError):
        return "eof", str(e)
    if isinstance(e, asyncio.TimeoutError):
        return "timeout", ""
    return "other", repr(e)


class Run:
    def __init__(self, a):
        self.a = a
        self.rec = Recorder(a.events)
        self.in_pool = True
        self.pool_changed = asyncio.Event()
        self.stopping = False  # the run is over: every loop ends
        self.rng = random.Random(a.seed)

    async def open(self):
        return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.a.port), 5)

    # -------------------------------------------------------------- the balancer's check
    async def health_check(self):
        bad = 0
        while not self.stopping:
            ok = False
            try:
                r, w = await self.open()
                w.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                status, _ = await asyncio.wait_for(read_response(r), 2)
                ok = status == 200
                w.close()
            except (OSError, EOFError, asyncio.TimeoutError, ValueError, IndexError):
                pass
            bad = 0 if ok else bad + 1
            if self.in_pool and bad >= self.a.fall:
                self.in_pool = False
                self.rec.event(event="out_of_pool", checks_failed=bad)
                self.pool_changed.set()
            await asyncio.sleep(self.a.check_ms / 1000)

    # -------------------------------------------------------------- load and slow requests
    async def requests(self, conn, target):
        """One slot: requests one after the other on a keep-alive connection while the server
        is in the pool; a new connection after `Connection: close` or a failure."""
        reader = writer = None
        while not self.stopping and self.in_pool:
            path = target()
            try:
                if writer is None:
                    reader, writer = await self.open()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                status, keep = await asyncio.wait_for(read_response(reader), self.a.timeout_s)
                if 200 <= status < 300:
                    self.rec.count(conn, "ok")
                else:
                    self.rec.failed(conn, "status", str(status))
                if not keep:
                    writer.close()
                    writer = None
            except (OSError, EOFError, asyncio.TimeoutError, ValueError, IndexError) as e:
                self.rec.failed(conn, *failure_kind(e))
                if writer is not None:
                    writer.close()
                writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    # -------------------------------------------------------------- idle keep-alive connections
    async def idle(self, ready):
        try:
            reader, writer = await self.open()
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(read_response(reader), self.a.timeout_s)
            self.rec.count("idle", "ok")
        except (OSError, EOFError, asyncio.TimeoutError, ValueError, IndexError) as e:
            self.rec.failed("idle", *failure_kind(e))
            ready()
            return
        ready()
        try:
            data = await reader.read(1)
            self.rec.count("idle", "closed-by-server" if not data else "unexpected-bytes")
            self.rec.event(event="idle_closed", how="eof" if not data else "bytes")
        except OSError as e:
            self.rec.count("idle", "closed-reset")
            self.rec.event(event="idle_closed", how=type(e).__name__)
        writer.close()

    # -------------------------------------------------------------- upgraded connections
    async def upgraded(self, ready):
        try:
            reader, writer = await self.open()
            writer.write(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = await asyncio.wait_for(reader.read(4096), self.a.timeout_s)
                if not chunk:
                    raise EOFError("no 101")
                head += chunk
            if not head.startswith(b"HTTP/1.1 101"):
                raise ValueError(head.split(b"\r\n")[0].decode("latin-1"))
            self.rec.count("upgraded", "ok")
        except (OSError, EOFError, asyncio.TimeoutError, ValueError) as e:
            self.rec.failed("upgraded", *failure_kind(e))
            ready()
            return
        ready()
        said_bye = asyncio.Event()

        async def ping():
            n = 0
            while not self.stopping:
                n += 1
                try:
                    writer.write(f"ping {n}\n".encode())
                except OSError:
                    return
                try:
                    await asyncio.wait_for(said_bye.wait(), self.a.ping_ms / 1000)
                    break
                except asyncio.TimeoutError:
                    pass
            # The closing handshake: finish what is under way, then say "close".
            await asyncio.sleep(self.rng.uniform(self.a.close_min_ms, self.a.close_max_ms) / 1000)
            writer.write(b"close\n")
            self.rec.event(event="upgraded_close_sent")

        pinger = asyncio.ensure_future(ping())
        how = "eof"
        buffered = b""
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                buffered += data
                if not said_bye.is_set() and b"bye\n" in buffered:
                    said_bye.set()
                    self.rec.event(event="upgraded_bye")
                buffered = buffered[-8:]
        except OSError as e:
            how = type(e).__name__
        self.rec.count("upgraded", "closed-after-bye" if said_bye.is_set() and how == "eof" else f"closed-{how}")
        self.rec.event(event="upgraded_closed", how=how, after_bye=said_bye.is_set())
        pinger.cancel()
        writer.close()

    # -------------------------------------------------------------- the run
    def server_alive(self):
        try:
            with open(f"/proc/{self.a.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    async def main(self):
        a = self.a
        self.rec.event(event="start", settings=vars(a))
        checker = asyncio.ensure_future(self.health_check())
        up = {"n": 0}
        everyone_up = asyncio.Event()
        want = a.idle + a.upgraded

        def ready():
            up["n"] += 1
            if up["n"] >= want:
                everyone_up.set()

        if want == 0:
            everyone_up.set()
        tasks = [asyncio.ensure_future(self.idle(ready)) for _ in range(a.idle)]
        tasks += [asyncio.ensure_future(self.upgraded(ready)) for _ in range(a.upgraded)]
        tasks += [asyncio.ensure_future(self.requests("load", lambda: "/")) for _ in range(a.load)]
        tasks += [asyncio.ensure_future(self.requests(
            "slow", lambda: f"/slow?ms={self.rng.randint(a.slow_min_ms, a.slow_max_ms)}"))
            for _ in range(a.slow)]
        end = time.monotonic() + a.max_s
        try:
            await asyncio.wait_for(everyone_up.wait(), 30)
        except asyncio.TimeoutError:
            self.rec.event(event="setup_incomplete", up=up["n"], wanted=want)
        self.rec.event(event="all_up", up=up["n"])
        await asyncio.sleep(a.before_ms / 1000)
        self.rec.event(event="sigterm")
        os.kill(a.pid, signal.SIGTERM)
        while self.server_alive() and time.monotonic() < end:
            await asyncio.sleep(0.02)
        self.rec.event(event="server_gone" if not self.server_alive() else "gave_up")
        self.stopping = True
        await asyncio.sleep(0.1)
        for t in tasks + [checker]:
            t.cancel()
        await asyncio.gather(*tasks, checker, return_exceptions=True)
        summary = {"event": "summary", "counts": dict(sorted(self.rec.counts.items()))}
        self.rec.event(**summary)
        self.rec.f.close()
        print(json.dumps(summary))


# ------------------------------------------------------------------ summarize

def read_jsonl(path):
    """The objects of a file of one JSON object per line."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_run(run_dir):
    """The server's samples and events and the client's events of a run directory."""
    samples = []
    with open(f"{run_dir}/samples.csv") as f:
        names = f.readline().strip().split(",")
        for line in f:
            parts = line.strip().split(",")
            if len(parts) == len(names):
                samples.append({n: float(v) for n, v in zip(names, parts)})
    return samples, read_jsonl(f"{run_dir}/server-events.jsonl"), read_jsonl(f"{run_dir}/client-events.jsonl")


def phases(server, client):
    """The instants (CLOCK_MONOTONIC ms) of the stop's phases, from the server's own lines."""
    p = {}
    for e in server:
        ev = e.get("event") or (e.get("log") or {}).get("event")
        if e.get("event") == "signal" and "signal" not in p:
            p["signal"] = e["t_ms"]
        elif ev == "drain_began":
            p.setdefault("drain_began", e["t_ms"])
        elif ev == "deadline_passed":
            p.setdefault("deadline_passed", e["t_ms"])
        elif ev == "stopped":
            p.setdefault("stopped", e["t_ms"])
        elif e.get("event") == "report":
            p["report"] = e
        elif ev == "stop_ordered" and "stop_ordered" not in p:
            p["stop_ordered"] = e["t_ms"]
            # Without a lame-duck delay there is no drain_began line: the drain begins at once.
            p["delay_end"] = e["t_ms"] + 1000 * float(e["log"].get("lame_duck_delay_s", 0))
    if "drain_began" not in p and "delay_end" in p and "stopped" in p:
        p["drain_began"] = min(p["delay_end"], p["stopped"])
    for e in client:
        if e.get("event") == "out_of_pool":
            p.setdefault("out_of_pool", e["t_ms"])
    return p


def summarize(run_dir):
    samples, server, client = load_run(run_dir)
    p = phases(server, client)
    t0 = p.get("signal")
    rel = lambda k: f"{p[k] - t0:,.0f}" if k in p and t0 is not None else "–"
    summary = next((e for e in reversed(client) if e.get("event") == "summary"), {"counts": {}})
    c = summary["counts"]
    lines = ["Drain timeline: one graceful stop (SIGTERM) of a lameduck server with idle, active and "
             "upgraded connections; times in ms after the signal", ""]
    lines.append("| out of the balancer's pool | drain began | stopped | graceful | "
                 "requests completed | aborted | closed idle / active / upgraded / fresh / closing |")
    lines.append("|---:|---:|---:|---|---:|---:|---|")
    r = p.get("report", {})
    lines.append(f"| {rel('out_of_pool')} | {rel('drain_began')} | {rel('stopped')} | "
                 f"{'yes' if r.get('graceful') else 'no'} | {r.get('requests_completed', 0):,} | "
                 f"{r.get('requests_aborted', 0):,} | " +
                 " / ".join(str(r.get(f"closed_{s}", "–")) for s in ("idle", "active", "upgraded", "fresh", "closing")) + " |")
    lines.append("")
    lines.append("| clients | ok | failed | other outcomes |")
    lines.append("|---|---:|---:|---|")
    for conn in ("load", "slow", "idle", "upgraded"):
        other = ", ".join(f"{k.split(':', 1)[1]} {v:,}" for k, v in c.items()
                          if k.startswith(conn + ":") and k.split(":", 1)[1] not in ("ok", "failed"))
        lines.append(f"| {conn} | {c.get(conn + ':ok', 0):,} | {c.get(conn + ':failed', 0):,} | {other} |")
    text = "\n".join(lines) + "\n"
    with open(f"{run_dir}/summary.md", "w") as f:
        f.write(text)
    print(text, end="")


def main(argv):
    if len(argv) > 1 and argv[1] == "summarize":
        if len(argv) != 3:
            print("usage: drain_timeline.py summarize RUN_DIR", file=sys.stderr)
            return 2
        summarize(argv[2])
        return 0
    if len(argv) < 2 or argv[1] != "run":
        print(__doc__, file=sys.stderr)
        return 2
    ap = argparse.ArgumentParser(prog="drain_timeline.py run")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--events", required=True)
    for name, default in (("load", 8), ("slow", 20), ("idle", 200), ("upgraded", 20),
                          ("check-ms", 500), ("fall", 2), ("slow-min-ms", 500),
                          ("slow-max-ms", 3000), ("ping-ms", 250), ("close-min-ms", 200),
                          ("close-max-ms", 2000), ("before-ms", 2000), ("max-s", 60), ("seed", 1)):
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--timeout-s", type=float, default=10)
    a = ap.parse_args(argv[2:])
    if a.slow_min_ms > a.slow_max_ms or a.close_min_ms > a.close_max_ms:
        ap.error("a minimum is above its maximum")
    asyncio.run(Run(a).main())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
