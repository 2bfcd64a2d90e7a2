#!/usr/bin/python3
"""Tests of bench/charts.py and the reader of bench/drain_timeline.py, on small runs written
here in the formats the benchmarks write (bench/README.md). Run by CTest (bench.charts) with
Debian's /usr/bin/python3; exit 77 (skipped) without matplotlib.
"""
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
from contextlib import redirect_stdout

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
CHARTS = os.path.join(BENCH, "charts.py")

try:
    import matplotlib  # noqa: F401
except ImportError:
    print("bench.charts: skipped: no matplotlib (Debian's python3-matplotlib)")
    sys.exit(77)

sys.dont_write_bytecode = True
sys.path.insert(0, BENCH)
import charts  # noqa: E402
import drain_timeline  # noqa: E402


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def make_drain_run(d, lame_duck_ms=2000, failures=()):
    """A stop at t=10,000 ms: the balancer gives up at +500, the drain begins at +LAME_DUCK,
    the stop ends at +LAME_DUCK+1,000; 100 idle connections until the drain, 5 upgraded
    until the end, responses at 1,000/s until the balancer gives up."""
    t0, drain, end = 10_000.0, 10_000.0 + lame_duck_ms, 10_000.0 + lame_duck_ms + 1000
    rows = ["t_ms,fresh,active,idle,upgraded,closing,closed,answered,ready"]
    answered = 0
    for i in range(int((end + 500 - 8000) / 10)):
        t = 8000 + 10 * i
        if t < t0 + 500:
            answered += 10
        idle = 100 if t < drain else 0
        upgraded = 5 if t < end else 0
        rows.append(f"{t:.3f},0,2,{idle},{upgraded},0,0,{answered},{1 if t < t0 else 0}")
    write(f"{d}/samples.csv", "\n".join(rows) + "\n")
    server = [{"t_ms": 7990.0, "event": "listening", "port": 1},
              {"t_ms": t0, "event": "signal", "signal": 15},
              {"t_ms": t0 + 0.1, "log": {"msg": "drain ordered", "event": "stop_ordered",
                                         "lame_duck_delay_s": lame_duck_ms / 1000}}]
    if lame_duck_ms:
        server.append({"t_ms": drain, "log": {"msg": "lame-duck delay over", "event": "drain_began"}})
    server += [{"t_ms": end, "log": {"msg": "stopped gracefully", "event": "stopped"}},
               {"t_ms": end + 1, "event": "report", "graceful": True, "took_ms": end - t0,
                "requests_completed": 500, "requests_aborted": 0, "closed_idle": 100,
                "closed_active": 2, "closed_upgraded": 5, "closed_fresh": 0, "closed_closing": 0}]
    write(f"{d}/server-events.jsonl", "".join(json.dumps(e) + "\n" for e in server))
    client = [{"t_ms": 8000.0, "event": "all_up", "up": 105},
              {"t_ms": t0 + 500, "event": "out_of_pool", "checks_failed": 2}]
    client += [{"t_ms": t, "event": "failed", "conn": "load", "kind": "connect", "detail": "refused"}
               for t in failures]
    client.append({"t_ms": end + 100, "event": "summary",
                   "counts": {"load:ok": 2500, "idle:ok": 100, "load:failed": len(failures)}})
    write(f"{d}/client-events.jsonl", "".join(json.dumps(e) + "\n" for e in client))
    write(f"{d}/settings.txt", "date=2026-12-02T02:12:59+00:00\nmachine=Test CPU, 2 CPUs\n"
          f"kernel=6.1 LOAD=8 IDLE=100 UPGRADED=5 SLOW=2 LAME_DUCK_MS={lame_duck_ms} SAMPLE_MS=10\n")
    write(f"{d}/summary.md", "table\n")


def make_throughput_run(d):
    lines = []
    for r in (1, 2, 3):
        for server, rps, cpu in (("lameduck", 120000 + r, 7.0 + r / 10), ("nginx", 110000, 8.0),
                                 ("node", 50000, 20.0), ("floor", 130000, 6.0)):
            lines.append(f"{r} {server} 64 {rps * 10} {rps} 1.0 {cpu:.3f} 90.0 0")
    write(f"{d}/results.txt", "\n".join(lines) + "\n")
    write(f"{d}/memory.txt", "lameduck 10000 0 1753088 175.3\nnginx 10000 0 5267456 526.7\n")
    write(f"{d}/summary.md", "table\n")


def make_reload_run(d):
    """Three reloads at t=100, 110, 120 s; PM2's failures: 2 in reload 1, none in reload 2,
    3 in reload 3 and one before the first (not drawn)."""
    reloads = [{"start": 100.0, "end": 105.0, "rc": 0}, {"start": 110.0, "end": 115.0, "rc": 0},
               {"start": 120.0, "end": 125.0, "rc": 0}]
    rows = []
    for case, failed in (("lameduck-hello", 0), ("pm2", 6)):
        rows.append({"case": case, "mode": "keepalive", "round": 1, "reloads": reloads,
                     "client": {"total": {"ok": 1000, "failed": failed}}})
    write(f"{d}/results.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    # epoch_ms (at the end), kind, detail, ms (how long it had run), reused
    fails = ["epoch_ms,kind,detail,ms,reused",
             "99000.000,eof,x,10.000,1",        # started at 98.99 s: before the reloads
             "101000.000,reset,x,5.000,1",      # reload 1
             "110500.000,reset,x,1000.000,1",   # started at 109.5 s: still reload 1
             "120100.000,eof,x,1.000,1", "124000.000,eof,x,1.000,1",
             "130000.000,timeout,x,5000.000,1"]  # started at 125 s: reload 3, the last begun
    write(f"{d}/client/pm2-keepalive-r1.failures.csv", "\n".join(fails) + "\n")
    write(f"{d}/client/lameduck-hello-keepalive-r1.failures.csv", "epoch_ms,kind,detail,ms,reused\n")
    write(f"{d}/settings.txt", "date=2026-12-02T02:13:27+00:00\nINSTANCES=4 CONNECTIONS=64\n"
          "machine=Test CPU, 2 CPUs\n")
    write(f"{d}/summary.md", "table\n")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def svg_text(path):
    """The text of an SVG (matplotlib writes text as text with svg.fonttype none)."""
    root = ET.parse(path).getroot()
    return " ".join(t.strip() for t in root.itertext() if t.strip())


class Charts(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "out")
        self.runs = os.path.join(self.tmp.name, "runs")

    def tearDown(self):
        self.tmp.cleanup()

    def draw(self, *args):
        with redirect_stdout(io.StringIO()):
            return charts.main(["charts.py", "--bench-out", self.runs, "--out", self.out, *args])

    def test_failures_go_to_the_reload_begun_last(self):
        make_reload_run(f"{self.runs}/reload-20261202-021327")
        rows = drain_timeline.read_jsonl(f"{self.runs}/reload-20261202-021327/results.jsonl")
        per, before = charts.failures_per_reload(f"{self.runs}/reload-20261202-021327", rows[1])
        self.assertEqual(per, [2, 0, 3])
        self.assertEqual(before, 1)

    def test_each_chart_is_drawn_from_the_newest_fitting_run(self):
        make_drain_run(f"{self.runs}/drain-timeline-20261202-010000")
        make_drain_run(f"{self.runs}/drain-timeline-20261202-020000", lame_duck_ms=0,
                       failures=[10_050.0, 10_060.0, 10_450.0])
        # Newer, but cut short (no summary.md): not chosen.
        make_drain_run(f"{self.runs}/drain-timeline-20261202-030000")
        os.remove(f"{self.runs}/drain-timeline-20261202-030000/summary.md")
        make_throughput_run(f"{self.runs}/throughput-20261202-023032")
        make_reload_run(f"{self.runs}/reload-20261202-021327")
        self.assertEqual(self.draw(), 0)
        drain = svg_text(f"{self.out}/drain-timeline.svg")
        self.assertIn("the clients saw 0 failed requests of 2,600", drain)
        self.assertIn("lame-duck delay", drain)
        self.assertIn("drain-timeline-20261202-010000", drain)
        self.assertIn("Run of 2026-12-02 02:12 UTC on Test CPU, 2 CPUs", drain)
        no_delay = svg_text(f"{self.out}/drain-timeline-no-delay.svg")
        self.assertIn("the clients saw 3 failed requests of 2,603", no_delay)
        self.assertIn("failed requests / s (clients)", no_delay)
        self.assertNotIn("lame-duck delay (", no_delay)   # no such phase in the strip
        throughput = svg_text(f"{self.out}/throughput.svg")
        for text in ("lameduck", "nginx", "Node.js http", "epoll floor", "7.20", "(0.90×)", "175"):
            self.assertIn(text, throughput)
        self.assertNotIn("busy only", throughput)
        reload = svg_text(f"{self.out}/reload-failures.svg")
        self.assertIn("PM2 cluster mode, Node.js: 6 failed of 1,006 requests in 3 reloads", reload)
        self.assertIn("lameduck-hello workers: 0 failed of 1,000", reload)

    def test_a_starved_throughput_run_says_so(self):
        make_throughput_run(f"{self.runs}/throughput-1")
        with open(f"{self.runs}/throughput-1/results.txt") as f:
            text = f.read().replace(" 90.0 0", " 15.0 0")
        write(f"{self.runs}/throughput-1/results.txt", text)
        self.assertEqual(self.draw("throughput", "--throughput", f"{self.runs}/throughput-1"), 0)
        self.assertIn("busy only 15–15 %", svg_text(f"{self.out}/throughput.svg"))

    def test_drawing_twice_gives_the_same_file(self):
        make_drain_run(f"{self.runs}/drain-timeline-20261202-010000")
        make_reload_run(f"{self.runs}/reload-20261202-021327")
        self.assertEqual(self.draw("drain", "reload"), 0)
        first = [read_bytes(f"{self.out}/{n}") for n in ("drain-timeline.svg", "reload-failures.svg")]
        self.assertEqual(self.draw("drain", "reload"), 0)
        second = [read_bytes(f"{self.out}/{n}") for n in ("drain-timeline.svg", "reload-failures.svg")]
        self.assertEqual(first, second)
        self.assertNotIn(b"<dc:date>", first[0])

    def test_a_missing_run_is_a_clear_error(self):
        os.makedirs(self.runs)
        make_throughput_run(f"{self.runs}/throughput-20261202-023032")
        p = subprocess.run([sys.executable, CHARTS, "reload", "--bench-out", self.runs, "--out", self.out],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("charts: reload: no fitting reload-* run", p.stderr)
        self.assertIn("run bench/reload.sh", p.stderr)
        p = subprocess.run([sys.executable, CHARTS, "drain", "--drain", f"{self.runs}/nothing"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("is not a directory", p.stderr)
        p = subprocess.run([sys.executable, CHARTS, "pictures"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown chart 'pictures'", p.stderr)
        self.assertFalse(os.path.exists(self.out))


class DrainReader(unittest.TestCase):
    def test_without_a_delay_the_drain_begins_at_the_order(self):
        with tempfile.TemporaryDirectory() as d:
            make_drain_run(d, lame_duck_ms=0)
            _, server, client = drain_timeline.load_run(d)
            p = drain_timeline.phases(server, client)
            self.assertAlmostEqual(p["drain_began"], 10_000.1)
            self.assertEqual(p["out_of_pool"], 10_500.0)
            make_drain_run(d, lame_duck_ms=2000)
            _, server, client = drain_timeline.load_run(d)
            self.assertEqual(drain_timeline.phases(server, client)["drain_began"], 12_000.0)


if __name__ == "__main__":
    unittest.main(verbosity=1)
