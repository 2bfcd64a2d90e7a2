#!/usr/bin/python3
"""Client, sampler and tables of bench/soak.sh (standard library only; never run by CI).

  run --port P [--tls-port P] --pid PID --server-log FILE --out DIR --seconds S
      [--sample-s 5] [--rate 1.0] [--seed N]
        mixed traffic against 127.0.0.1:P (and HTTPS on the TLS port) for S seconds or until
        the process PID exits, whichever comes first; samples PID's VmRSS, Threads, open
        descriptors and CPU time every SAMPLE seconds; writes DIR/samples.csv and
        DIR/traffic.json
  summarize DIR
        the tables and the verdict from DIR/server.out (soak_server's lines), samples.csv and
        traffic.json

The traffic, by kind (requests per second at --rate 1; each kind is one or a few coroutines on
one asyncio loop, each bounded in time and in count):
  keepalive     4 keep-alive connections, GET / every 25 ms each (160/s)
  close         a new connection per GET / with Connection: close, every 50 ms (20/s)
  http10        an HTTP/1.0 GET / (the server closes), every 200 ms
  pipelined     8 GET / written at once on a keep-alive connection, every 200 ms (40/s)
  chunked       POST /echo, Transfer-Encoding: chunked, 1-8 chunks of 1-16 KiB, the echo checked,
                every 100 ms
  expect        POST /echo with Expect: 100-continue (4 KiB, sent after the 100), every 500 ms
  slow_reader   2 clients: GET /big?kb=1024 read 16 KiB every 20 ms (about 1.3 s each), again
  stalled       GET /big?kb=8192, nothing read for 3 s, then closed, every 10 s
  garbage       a new connection sending 1-2,048 random bytes (half of them after "GET /"),
                read to the end, every 200 ms; ok: a 4xx or a close
  abort         every 250 ms, in turn: half a request head then close; GET /delay?ms=300 and
                close after 50 ms; a POST with Content-Length 10,000, 100 bytes, close
  upgrade       GET /upgrade with Upgrade: echo, 101, 5 messages echoed 100 ms apart, "close",
                every 500 ms
  upgrade_held  2 upgraded connections kept open with a ping a second, until the server closes
                them (a drain tells them to); then opened again
  stream        GET /stream?chunks=5&interval_ms=100 (chunked, from the timer thread), every 1 s
  long_stream   GET /stream?chunks=150&interval_ms=100 (15 s), every 20 s: most drains find one
                under way and end by their deadline
  delay         GET /delay?ms=200 on a keep-alive connection, every 200 ms
  tls_keepalive a keep-alive HTTPS connection, GET / every 50 ms (with --tls-port)
  tls_new       a new HTTPS connection (full handshake) per GET /, every 500 ms (with --tls-port)
  idle          20 keep-alive connections, one GET / each, then idle until the server closes
                them (each drain does); then opened again 200 ms later
Outcomes are counted per kind: "ok", or what went wrong (refused, reset, closed, timeout,
status N, wrong body...). Around each restart some are expected: connections refused while no
server listens, keep-alive requests written as a drain closed the connection.
"""

import asyncio
import collections
import csv
import json
import os
import random
import ssl
import statistics
import sys
import time

# --------------------------------------------------------------------------- measuring


def proc_sample(pid):
    """(rss_kb, threads, fds, cpu_ticks) of one process, or None once it has gone."""
    try:
        rss = threads = None
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        rest = stat[stat.rindex(")") + 2:].split()
        ticks = int(rest[11]) + int(rest[12])
        if rest[0] == "Z":
            return None
        return rss, threads, fds, ticks
    except (OSError, ValueError, IndexError):
        return None


class state:
    cycle = 0          # the server's current cycle (from its log)
    serving = False    # between "started" and "stopped"
    log_offset = 0
    done = False


def follow_server_log(path):
    try:
        with open(path) as f:
            f.seek(state.log_offset)
            text = f.read()
    except OSError:
        return
    complete = text[:text.rfind("\n") + 1]
    state.log_offset += len(complete.encode())
    for line in complete.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "cycle":
            state.cycle = int(parts[1])
            state.serving = parts[2] == "started"


# --------------------------------------------------------------------------- traffic

class Stats:
    def __init__(self):
        self.kinds = collections.defaultdict(collections.Counter)
        self.cycles = collections.defaultdict(collections.Counter)

    def count(self, kind, outcome, n=1):
        self.kinds[kind][outcome] += n
        self.cycles[state.cycle]["ok" if outcome == "ok" else "other"] += n


class BadResponse(Exception):
    pass


def outcome_of(e):
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, (ConnectionResetError, BrokenPipeError)):
        return "reset"
    if isinstance(e, asyncio.IncompleteReadError):
        return "closed, no answer" if not e.partial else "closed, partial"
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, ssl.SSLError):
        return "tls: " + (e.reason or type(e).__name__)
    if isinstance(e, BadResponse):
        return str(e)
    if isinstance(e, OSError):
        return f"errno {e.errno}"
    return type(e).__name__


T = 10.0  # seconds any single step may take


async def read_response(reader, head_only=False):
    """(status, headers, body) of one response; chunked and Content-Length bodies."""
    line = await asyncio.wait_for(reader.readline(), T)
    if not line:
        raise asyncio.IncompleteReadError(b"", None)
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise BadResponse("bad status line")
    status = int(parts[1])
    headers = {}
    while True:
        h = await asyncio.wait_for(reader.readline(), T)
        if not h:
            raise asyncio.IncompleteReadError(b"head", None)
        if h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if head_only or status in (100, 101, 204, 304):
        return status, headers, b""
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), T)
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size_line = await asyncio.wait_for(reader.readline(), T)
            if not size_line:
                raise asyncio.IncompleteReadError(body, None)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while (await asyncio.wait_for(reader.readline(), T)) not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += await asyncio.wait_for(reader.readexactly(size + 2), T)
            body = body[:-2]
    else:
        body = await asyncio.wait_for(reader.read(), T)
    return status, headers, body


class Client:
    def __init__(self, port, tls_port, rate, deadline, stats, rng):
        self.port, self.tls_port, self.rate = port, tls_port, rate
        self.deadline, self.stats, self.rng = deadline, stats, rng
        self.tls = None
        if tls_port:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self.tls.check_hostname = False
            self.tls.verify_mode = ssl.CERT_NONE

    def running(self):
        return not state.done and time.monotonic() < self.deadline

    async def connect(self, tls=False):
        port = self.tls_port if tls else self.port
        return await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=self.tls if tls else None,
            server_hostname="localhost" if tls else None), T)

    @staticmethod
    def close(writer):
        if writer is None:
            return
        try:
            writer.transport.abort() if writer.transport.is_closing() else writer.close()
        except Exception:  # noqa: BLE001 - closing a broken socket
            pass

    async def every(self, kind, interval, step):
        """Calls step() about every interval seconds (scaled by the rate) until the deadline; at
        most four times the count the time allows. Exceptions count as that kind's outcome."""
        interval /= self.rate
        limit = int((self.deadline - time.monotonic()) / interval * 4) + 10
        next_at = time.monotonic() + self.rng.random() * interval
        for _ in range(limit):
            if not self.running():
                return
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            # Each gap drawn from 0.5 to 1.5 times the interval, so that no kind falls into step
            # with the server's cycles (a 20 s kind and 15 s cycles with 5 s drains would meet
            # every drain at the same phase).
            next_at += interval * (0.5 + self.rng.random())
            if next_at < time.monotonic():
                next_at = time.monotonic() + interval  # fell behind: do not burst
            try:
                outcome = await step()
            except Exception as e:  # noqa: BLE001 - every failure is an outcome
                outcome = outcome_of(e)
            if outcome:
                self.stats.count(kind, outcome)

    # ---- kinds that keep a connection between steps

    async def keep_alive_loop(self, kind, interval, request, check, tls=False, n_requests=1):
        conn = [None, None]

        async def step():
            if conn[1] is None or conn[1].is_closing():
                conn[0], conn[1] = await self.connect(tls)
            r, w = conn
            try:
                w.write(request * n_requests)
                await asyncio.wait_for(w.drain(), T)
                for _ in range(n_requests):
                    status, headers, body = await read_response(r)
                    outcome = check(status, body)
                    if outcome != "ok":
                        raise BadResponse(outcome)
                    self.stats.count(kind, "ok")
                    if headers.get("connection", "").lower() == "close":
                        self.close(w)
                        conn[1] = None
                        break
                return None
            except Exception:
                self.close(w)
                conn[1] = None
                raise
        try:
            await self.every(kind, interval, step)
        finally:
            self.close(conn[1])

    # ---- the kinds

    async def one_shot(self, request, tls=False):
        r, w = await self.connect(tls)
        try:
            w.write(request)
            await asyncio.wait_for(w.drain(), T)
            status, _, body = await read_response(r)
            return status, body
        finally:
            self.close(w)

    async def k_close(self):
        status, body = await self.one_shot(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return "ok" if status == 200 and body == b"Hello, World!\n" else f"status {status}"

    async def k_http10(self):
        status, body = await self.one_shot(b"GET / HTTP/1.0\r\n\r\n")
        return "ok" if status == 200 and body == b"Hello, World!\n" else f"status {status}"

    async def k_tls_new(self):
        status, body = await self.one_shot(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", tls=True)
        return "ok" if status == 200 else f"status {status}"

    async def k_chunked(self, conn):
        if conn[1] is None or conn[1].is_closing():
            conn[0], conn[1] = await self.connect()
        r, w = conn
        chunks = [os.urandom(self.rng.randint(1, 16 * 1024)) for _ in range(self.rng.randint(1, 8))]
        try:
            w.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for c in chunks:
                w.write(b"%x\r\n" % len(c) + c + b"\r\n")
                await asyncio.wait_for(w.drain(), T)
            w.write(b"0\r\n\r\n")
            status, headers, body = await read_response(r)
            if headers.get("connection", "").lower() == "close":
                self.close(w)
                conn[1] = None
            if status != 200:
                return f"status {status}"
            return "ok" if body == b"".join(chunks) else "wrong body"
        except Exception:
            self.close(w)
            conn[1] = None
            raise

    async def k_expect(self):
        r, w = await self.connect()
        try:
            body = os.urandom(4096)
            w.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n"
                    b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
            await asyncio.wait_for(w.drain(), T)
            status, _, _ = await read_response(r, head_only=True)
            if status != 100:
                return f"status {status} instead of 100"
            w.write(body)
            status, _, echoed = await read_response(r)
            if status != 200:
                return f"status {status}"
            return "ok" if echoed == body else "wrong body"
        finally:
            self.close(w)

    async def k_slow_reader(self):
        r, w = await self.connect()
        try:
            w.write(b"GET /big?kb=1024 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await asyncio.wait_for(w.drain(), T)
            status, headers, _ = await read_response(r, head_only=True)
            if status != 200:
                return f"status {status}"
            want, got = int(headers.get("content-length", "0")), 0
            for _ in range(want // 16384 + 10):  # bounded: one read of at most 16 KiB per step
                if got >= want:
                    break
                data = await asyncio.wait_for(r.read(16384), T)
                if not data:
                    return "closed, partial"
                got += len(data)
                await asyncio.sleep(0.02)
            return "ok" if got == want else "short body"
        finally:
            self.close(w)

    async def k_stalled(self):
        r, w = await self.connect()
        try:
            w.write(b"GET /big?kb=8192 HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(w.drain(), T)
            await asyncio.sleep(3)
            return "ok"
        finally:
            self.close(w)

    async def k_garbage(self):
        r, w = await self.connect()
        try:
            junk = os.urandom(self.rng.randint(1, 2048))
            if self.rng.random() < 0.5:
                junk = b"GET /" + junk
            w.write(junk)
            await asyncio.wait_for(w.drain(), T)
            try:
                data = await asyncio.wait_for(r.read(4096), 2.0)
            except asyncio.TimeoutError:
                return "no answer in 2 s (an incomplete head, waiting for more)"
            if not data:
                return "ok"  # closed without an answer
            status = data.split(b" ", 2)[1:2]
            code = status[0].decode("latin-1") if status else "?"
            return "ok" if code.startswith("4") else f"answered {code}"
        finally:
            self.close(w)

    async def k_abort(self, turn):
        r, w = await self.connect()
        try:
            which = next(turn) % 3
            if which == 0:
                w.write(b"GET / HTTP/1.1\r\nHo")
            elif which == 1:
                w.write(b"GET /delay?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n")
                await asyncio.wait_for(w.drain(), T)
                await asyncio.sleep(0.05)
            else:
                w.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n" + b"x" * 100)
            await asyncio.wait_for(w.drain(), T)
            return "ok"
        finally:
            w.transport.abort()

    async def k_upgrade(self):
        r, w = await self.connect()
        try:
            w.write(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
            await asyncio.wait_for(w.drain(), T)
            status, _, _ = await read_response(r, head_only=True)
            if status != 101:
                return f"status {status}"
            for i in range(5):
                msg = b"message %d " % i
                w.write(msg)
                await asyncio.wait_for(w.drain(), T)
                if await asyncio.wait_for(r.readexactly(len(msg)), T) != msg:
                    return "wrong echo"
                await asyncio.sleep(0.1)
            w.write(b"close")
            await asyncio.wait_for(r.readexactly(5), T)
            rest = await asyncio.wait_for(r.read(), T)
            return "ok" if rest == b"" else "bytes after close"
        finally:
            self.close(w)

    async def upgrade_held(self):
        limit = int((self.deadline - time.monotonic()) / 0.1) + 10
        for _ in range(limit):
            if not self.running():
                return
            w = None
            try:
                r, w = await self.connect()
                w.write(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
                status, _, _ = await read_response(r, head_only=True)
                if status != 101:
                    self.stats.count("upgrade_held", f"status {status}")
                    continue
                while self.running():
                    w.write(b"ping")
                    await asyncio.wait_for(w.drain(), T)
                    data = await asyncio.wait_for(r.read(4), T)
                    if not data:
                        self.stats.count("upgrade_held", "closed by the server (ok: a drain)")
                        break
                    self.stats.count("upgrade_held", "ok")
                    await asyncio.sleep(1.0)
            except Exception as e:  # noqa: BLE001
                self.stats.count("upgrade_held", outcome_of(e))
                await asyncio.sleep(0.1)
            finally:
                self.close(w)
            await asyncio.sleep(0.1)

    async def k_stream(self, chunks, interval_ms):
        status, body = await self.one_shot(
            f"GET /stream?chunks={chunks}&interval_ms={interval_ms} HTTP/1.1\r\nHost: x\r\n"
            "Connection: close\r\n\r\n".encode())
        if status != 200:
            return f"status {status}"
        return "ok" if body.count(b"chunk ") == chunks else f"{body.count(b'chunk ')} of {chunks} chunks"

    async def idle(self, n):
        async def one():
            limit = int((self.deadline - time.monotonic()) / 0.2) + 10
            for _ in range(limit):
                if not self.running():
                    return
                w = None
                try:
                    r, w = await self.connect()
                    w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    status, _, _ = await read_response(r)
                    self.stats.count("idle", "ok" if status == 200 else f"status {status}")
                    # Idle until the server closes it, or the run ends (checked every second).
                    while self.running():
                        try:
                            data = await asyncio.wait_for(r.read(1), 1.0)
                        except asyncio.TimeoutError:
                            continue
                        self.stats.count("idle", "closed by the server (ok)" if not data else "unsolicited bytes")
                        break
                except Exception as e:  # noqa: BLE001
                    self.stats.count("idle", outcome_of(e))
                finally:
                    self.close(w)
                await asyncio.sleep(0.2)
        await asyncio.gather(*(one() for _ in range(n)))

    def tasks(self):
        hello = lambda s, b: "ok" if s == 200 and b == b"Hello, World!\n" else f"status {s}"  # noqa: E731
        delayed = lambda s, b: "ok" if s == 200 and b.startswith(b"waited") else f"status {s}"  # noqa: E731
        get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        chunked_conn = [None, None]
        turn = iter(range(10 ** 9))
        t = []
        for _ in range(4):
            t.append(self.keep_alive_loop("keepalive", 0.025, get, hello))
        t.append(self.every("close", 0.05, self.k_close))
        t.append(self.every("http10", 0.2, self.k_http10))
        t.append(self.keep_alive_loop("pipelined", 0.2, get, hello, n_requests=8))
        t.append(self.every("chunked", 0.1, lambda: self.k_chunked(chunked_conn)))
        t.append(self.every("expect", 0.5, self.k_expect))
        for _ in range(2):
            t.append(self.every("slow_reader", 0.05, self.k_slow_reader))
        t.append(self.every("stalled", 10.0, self.k_stalled))
        t.append(self.every("garbage", 0.2, self.k_garbage))
        t.append(self.every("abort", 0.25, lambda: self.k_abort(turn)))
        t.append(self.every("upgrade", 0.5, self.k_upgrade))
        for _ in range(2):
            t.append(self.upgrade_held())
        t.append(self.every("stream", 1.0, lambda: self.k_stream(5, 100)))
        t.append(self.every("long_stream", 20.0, lambda: self.k_stream(150, 100)))
        t.append(self.keep_alive_loop("delay", 0.2, b"GET /delay?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n", delayed))
        if self.tls_port:
            t.append(self.keep_alive_loop("tls_keepalive", 0.05, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
                                          hello, tls=True))
            t.append(self.every("tls_new", 0.5, self.k_tls_new))
        t.append(self.idle(20))
        return t


async def sampler(pid, server_log, every, deadline, out):
    t0 = time.monotonic()
    next_at = t0
    limit = int((deadline - t0) / 0.05) + 100  # each turn sleeps at least 50 ms
    for _ in range(limit):
        follow_server_log(server_log)
        now = time.monotonic()
        if now >= next_at:
            s = proc_sample(pid)
            if s is None:
                state.done = True  # the server has exited
                return
            out.writerow([f"{now - t0:.1f}", state.cycle, "serving" if state.serving else "stopping",
                          *s])
            next_at += every
        if now >= deadline:
            state.done = True
            return
        await asyncio.sleep(min(0.5, max(0.05, next_at - time.monotonic())))
    state.done = True


async def run(args):
    port, tls_port = int(args["--port"]), int(args.get("--tls-port", 0))
    pid, out = int(args["--pid"]), args["--out"]
    seconds, every = float(args["--seconds"]), float(args.get("--sample-s", 5))
    rate = float(args.get("--rate", 1.0))
    rng = random.Random(int(args.get("--seed", 1)))
    deadline = time.monotonic() + seconds
    stats = Stats()
    client = Client(port, tls_port, rate, deadline, stats, rng)
    with open(f"{out}/samples.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "cycle", "phase", "rss_kb", "threads", "fds", "cpu_ticks"])
        watcher = asyncio.ensure_future(sampler(pid, args["--server-log"], every, deadline, w))
        traffic = [asyncio.ensure_future(c) for c in client.tasks()]
        await watcher
        state.done = True
        # Every loop ends by itself within a step's timeout; whatever has not is cancelled.
        _, pending = await asyncio.wait(traffic, timeout=T + 5)
        for p in pending:
            p.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    with open(f"{out}/traffic.json", "w") as f:
        json.dump({"kinds": {k: dict(v) for k, v in stats.kinds.items()},
                   "cycles": {str(k): dict(v) for k, v in stats.cycles.items()},
                   "rate": rate, "seconds": seconds}, f, indent=1)


# --------------------------------------------------------------------------- tables

def _slope(xs, ys):
    """Least-squares slope of ys over xs (0 with fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def _table(header, rows):
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i])
              for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    print(line(header))
    print("|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|")
    for r in rows:
        print(line(r))


def summarize(d, warmup=2):
    cycles = collections.OrderedDict()
    with open(f"{d}/server.out") as f:
        for line in f:
            p = line.split()
            if len(p) >= 4 and p[0] == "cycle" and p[2] == "started":
                cycles.setdefault(int(p[1]), {})["start_ms"] = int(p[3])
            elif len(p) >= 4 and p[0] == "cycle" and p[2] == "stopped":
                c = cycles.setdefault(int(p[1]), {})
                c["stop_ms"] = int(p[3])
                c.update(kv.split("=") for kv in p[4:])
            elif len(p) >= 3 and p[0] == "between":
                c = cycles.setdefault(int(p[1]), {})
                c.update(("b_" + k, int(v)) for k, v in (kv.split("=") for kv in p[3:]))
    samples = collections.defaultdict(list)
    if os.path.exists(f"{d}/samples.csv"):
        with open(f"{d}/samples.csv") as f:
            for row in csv.DictReader(f):
                samples[int(row["cycle"])].append(row)
    traffic = {}
    if os.path.exists(f"{d}/traffic.json"):
        with open(f"{d}/traffic.json") as f:
            traffic = json.load(f)
    hz = os.sysconf("SC_CLK_TCK")
    with open(f"{d}/server.out") as f:
        for line in f:
            if line.startswith("openssl warm-up:"):
                print(f"({line.strip()}: OpenSSL's own caches, filled before the first cycle)")
                print()

    print("1. Per cycle: the server process sampled every few seconds while it served and "
          "drained (VmRSS, open descriptors, threads: min / median / max; its CPU), the drain at "
          "the end of the cycle, and the process measured by itself between two servers (the "
          "old one destroyed, the next not yet started): VmRSS, the heap in use (mallinfo2: "
          "allocated and not freed, every arena), VmRSS after malloc_trim(0) (the allocator's "
          "free memory returned), descriptors, threads")
    print()
    rows = []
    for n, c in cycles.items():
        s = samples.get(n, [])
        rss = [int(r["rss_kb"]) / 1024 for r in s]
        fds = [int(r["fds"]) for r in s]
        thr = [int(r["threads"]) for r in s]
        cpu = "—"
        if len(s) >= 2:
            dt = float(s[-1]["t_s"]) - float(s[0]["t_s"])
            if dt > 0:
                cpu = f"{100 * (int(s[-1]['cpu_ticks']) - int(s[0]['cpu_ticks'])) / hz / dt:.0f} %"
        mmm = lambda v, f: " / ".join(f.format(x) for x in (min(v), statistics.median(v), max(v))) if v else "—"  # noqa: E731
        closed = ", ".join(f"{k} {c[k]}" for k in ("fresh", "active", "idle", "upgraded", "closing")
                           if c.get(k, "0") != "0") or "none"
        drain = (("graceful" if c.get("graceful") == "1" else "deadline") + f" {c.get('took_ms', '?')} ms; "
                 f"closed {closed}; {c.get('completed', '?')} completed, {c.get('aborted', '?')} aborted"
                 if "stop_ms" in c else "—")
        tc = traffic.get("cycles", {}).get(str(n), {})
        rows.append([str(n), str(len(s)), mmm(rss, "{:.1f}"), mmm(fds, "{:.0f}"), mmm(thr, "{:.0f}"), cpu,
                     drain,
                     f"{c['b_rss_kb'] / 1024:.1f}" if "b_rss_kb" in c else "—",
                     f"{c['b_heap_kb']:,}" if "b_heap_kb" in c else "—",
                     f"{c['b_rss_trimmed_kb']:,}" if "b_rss_trimmed_kb" in c else "—",
                     str(c.get("b_fds", "—")), str(c.get("b_threads", "—")),
                     f"{tc.get('ok', 0):,} / {tc.get('other', 0):,}"])
    _table(["cycle", "samples", "RSS MiB", "fds", "threads", "server CPU", "drain at the end",
            "between: RSS MiB", "heap in use KiB", "RSS trimmed KiB", "fds", "threads",
            "client: ok / other"], rows)
    print()
    print("2. The samples, per cycle (RSS MiB/fds/threads, one every few seconds; s: while the "
          "server served, d: while it drained or between servers)")
    print()
    for n in cycles:
        s = samples.get(n, [])
        print(f"    cycle {n:>3}: " + " ".join(
            f"{int(r['rss_kb']) / 1024:.1f}/{r['fds']}/{r['threads']}{'s' if r['phase'] == 'serving' else 'd'}"
            for r in s))
    print()
    kinds = traffic.get("kinds", {})
    if kinds:
        print(f"3. The traffic, by kind, over the whole run (at rate ×{traffic.get('rate', 1)}; "
              "outcomes other than ok around restarts are expected: refused while no server "
              "listened, requests written on a keep-alive connection as a drain closed it, "
              "long streams cut by the drain's deadline)")
        print()
        rows = []
        for k, v in kinds.items():
            others = ", ".join(f"{o}: {n:,}" for o, n in sorted(v.items(), key=lambda kv: -kv[1]) if o != "ok")
            rows.append([k, f"{v.get('ok', 0):,}", others or "—"])
        _table(["kind", "ok", "other outcomes"], rows)
        print()

    # The verdict: the between-server measurements (a quiet point of every cycle), after the
    # warm-up cycles (the allocator's arenas, the first TLS contexts, the thread stacks cached).
    # Judged on the heap in use (exact), the trimmed RSS, descriptors and threads; the raw RSS
    # wanders by megabytes with what the allocator keeps for reuse, so its slope is only shown.
    pts = [(n, c) for n, c in cycles.items() if "b_heap_kb" in c]
    used = [(n, c) for n, c in pts if n > warmup] or pts
    if len(used) < 2:
        print("verdict: too few cycles for a slope (need at least two after the warm-up)")
        return
    xs = [n for n, _ in used]
    span = xs[-1] - xs[0]
    first, last = used[0][1], used[-1][1]

    def trend(key):
        ys = [c[key] for _, c in used]
        return _slope(xs, ys), _slope(xs, ys) * span, statistics.fmean(ys)

    parts, flat = [], True
    for key, name, unit, limit in (("b_heap_kb", "heap in use", "KiB", 32),
                                   ("b_rss_trimmed_kb", "RSS trimmed", "KiB", 1024)):
        slope, fit, mean = trend(key)
        ok = abs(fit) < limit
        flat &= ok
        parts.append(f"{name} {slope:+.1f} {unit}/cycle ({first[key]:,} → {last[key]:,} {unit}, fitted "
                     f"{fit:+,.0f} {unit} over the run: {'flat' if ok else 'GROWS'})")
    for key, name in (("b_fds", "fds"), ("b_threads", "threads")):
        slope, fit, _ = trend(key)
        ok = abs(fit) < 1 and last[key] <= first[key]
        flat &= ok
        parts.append(f"{name} {slope:+.2f}/cycle ({first[key]} → {last[key]}: {'flat' if ok else 'GROWS'})")
    raw, _, _ = trend("b_rss_kb")
    live = [(n, statistics.median(int(r["rss_kb"]) for r in samples[n])) for n in xs if samples.get(n)]
    live_slope = _slope([n for n, _ in live], [v for _, v in live]) if len(live) >= 2 else 0.0
    live_fds = [(n, statistics.median(int(r["fds"]) for r in samples[n])) for n in xs if samples.get(n)]
    live_fd_slope = _slope([n for n, _ in live_fds], [v for _, v in live_fds]) if len(live_fds) >= 2 else 0.0
    print(f"verdict: {'FLAT (no leak per cycle)' if flat else 'GROWS'} over cycles {xs[0]}–{xs[-1]} "
          f"({len(used)} cycles after {warmup} of warm-up), between servers: " + "; ".join(parts) +
          f". Not judged: raw RSS between servers {raw:+.1f} KiB/cycle; while serving, median RSS "
          f"{live_slope:+.1f} KiB/cycle, median fds {live_fd_slope:+.2f}/cycle")
    print("(flat: the growth fitted over the cycles is under 32 KiB for the heap in use, which is "
          "exact, and under 1 MiB for the trimmed RSS; descriptors and threads grow by less than one "
          "over the cycles and end no higher than they began)")


def main(argv):
    if len(argv) == 3 and argv[1] == "summarize":
        summarize(argv[2])
        return 0
    if len(argv) >= 2 and argv[1] == "run":
        args = dict(zip(argv[2::2], argv[3::2]))
        for need in ("--port", "--pid", "--server-log", "--out", "--seconds"):
            if need not in args:
                print(f"soak.py run: {need} is needed\n{__doc__}", file=sys.stderr)
                return 2
        asyncio.run(run(args))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
