#!/usr/bin/python3
"""Tables of bench/https.sh (standard library only; never run by CI).

  summarize DIR   print the tables of a run's directory (results.txt, handshakes.txt,
                  memory.txt, notes.txt), as Markdown

The process-tree, /proc and wrk helpers are throughput_helper.py's.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from throughput_helper import _fmt, _median, _ratio, _table  # noqa: E402

# Each row's peer, for the "÷ nginx" columns, and its plain-HTTP self, for "÷ own HTTP".
PEER = {"lameduck-https": "nginx-https", "lameduck-ktls": "nginx-https",
        "baseline-https": "nginx-https", "nginx-https": "nginx-https",
        "lameduck-http": "nginx-http", "baseline-http": "nginx-http", "nginx-http": "nginx-http"}
PLAIN = {"lameduck-https": "lameduck-http", "lameduck-ktls": "lameduck-http",
         "baseline-https": "baseline-http", "nginx-https": "nginx-http"}


def _lines(path, fields):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f if len(line.split()) == fields]


def _notes(path):
    notes = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, _, text = line.rstrip("\n").partition(" ")
                notes[key] = text
    return notes


def throughput_table(d, notes):
    runs, order = {}, []
    for _, server, conns, _req, rps, p99, cpu, busy, errors in _lines(f"{d}/results.txt", 9):
        key = (server, int(conns))
        if key not in runs:
            runs[key] = []
            order.append(key)
        runs[key].append((float(rps), float(p99), float(cpu), float(busy), int(errors)))
    if not runs:
        return
    print("1. Keep-alive throughput, tiny response, wrk -t1 (medians over rounds; ratios of the "
          "medians; ÷ nginx: to nginx with the same protocol; ÷ own HTTP: CPU µs/req to the same "
          "server's plain HTTP)")
    print()
    med = {k: tuple(_median([r[i] for r in v]) for i in range(4)) for k, v in runs.items()}
    servers = list(dict.fromkeys(s for s, _ in order))
    rows = []
    for c in sorted({c for _, c in order}):
        for s in servers:
            if (s, c) not in med:
                continue
            rps, p99, cpu, busy = med[(s, c)]
            base = med.get((PEER.get(s, ""), c))
            own = med.get((PLAIN.get(s, ""), c))
            rows.append([s, str(c), str(sum(1 for r in runs[(s, c)] if r[0] == r[0])),
                         _fmt(rps, 0), _fmt(p99, 2), _fmt(cpu, 2),
                         _fmt(busy, 0) + " %" if busy == busy else "—",
                         _fmt(_ratio(rps, base[0]) if base else None, 2),
                         _fmt(_ratio(p99, base[1]) if base else None, 2),
                         _fmt(_ratio(cpu, base[2]) if base else None, 2),
                         _fmt(_ratio(cpu, own[2]) if own else None, 2),
                         str(sum(r[4] for r in runs[(s, c)])),
                         notes.get(f"ktls:{s}", "—")])
    _table(["server", "conns", "runs", "req/s", "p99 ms", "CPU µs/req", "server busy",
            "req/s ÷ nginx", "p99 ÷ nginx", "CPU ÷ nginx", "CPU ÷ own HTTP", "errors", "kTLS"],
           rows)


def handshake_table(d, hz):
    # round server mode completed full resumed errors seconds renewed ticks
    runs, order = {}, []
    for _, server, mode, done, full, resumed, errors, secs, renewed, ticks in \
            _lines(f"{d}/handshakes.txt", 10):
        done, secs, ticks = int(done), float(secs), int(ticks)
        key = (server, mode)
        if key not in runs:
            runs[key] = []
            order.append(key)
        cpu_us = ticks * 1e6 / hz / done if done else float("nan")
        runs[key].append((done / secs if secs else float("nan"), cpu_us,
                          100 * ticks / hz / secs if secs else float("nan"),
                          int(full), int(resumed), int(errors), int(renewed), done))
    if not runs:
        return
    print()
    print("2. New connections: one TLS 1.3 handshake + one GET / + close per connection "
          "(medians over rounds). The client is the bottleneck: the server's CPU per "
          "connection, and the rate it implies for one core (1e6 / CPU µs), are the figures")
    print()
    label = {"full": "full handshake", "resume": "resumed (ticket)",
             "plain": "plain TCP, no TLS"}
    rows = []
    med = {k: (_median([r[0] for r in v]), _median([r[1] for r in v]),
               _median([r[2] for r in v])) for k, v in runs.items()}
    for mode in ("full", "resume", "plain"):
        for s, m in order:
            if m != mode:
                continue
            rate, cpu, busy = med[(s, m)]
            v = runs[(s, m)]
            base = med.get((PEER.get(s, ""), m))
            total = sum(r[7] for r in v)
            resumed = sum(r[4] for r in v)
            renewed = sum(r[6] for r in v)
            rows.append([s, label[m], str(len(v)), _fmt(rate, 0), _fmt(cpu, 1),
                         _fmt(1e6 / cpu if cpu == cpu and cpu else None, 0),
                         _fmt(busy, 0) + " %" if busy == busy else "—",
                         _fmt(_ratio(cpu, base[1]) if base else None, 2),
                         "—" if m == "plain" else f"{resumed:,} of {total:,}",
                         "—" if m != "resume" else f"{renewed:,}",
                         str(sum(r[5] for r in v))])
    _table(["server", "connection", "runs", "conn/s (client-bound)", "server CPU µs/conn",
            "implied conn/s per core", "server busy", "CPU ÷ nginx", "resumed",
            "new ticket after resumption", "errors"], rows)


def memory_table(d):
    rows = _lines(f"{d}/memory.txt", 5)
    if not rows:
        return
    print()
    print("3. Resident memory per idle connection, after its handshake and one GET / "
          "((VmRSS after - before) / connections)")
    print()
    per = {r[0]: float(r[4]) for r in rows}
    out = []
    for server, held, failed, delta, per_conn in rows:
        base = per.get(PEER.get(server, ""))
        out.append([server, f"{int(held):,}", failed, _fmt(float(delta) / 1024, 0),
                    _fmt(float(per_conn), 0), _fmt(_ratio(float(per_conn), base)
                                                   if base is not None else None, 2)])
    _table(["server", "idle conns", "failed", "RSS growth KiB", "bytes/conn", "÷ nginx"], out)


def summarize(d):
    notes = _notes(f"{d}/notes.txt")
    hz = int(notes.get("clk_tck", "100"))
    throughput_table(d, notes)
    handshake_table(d, hz)
    memory_table(d)
    extra = [v for k, v in notes.items() if k.startswith("note:")]
    if extra:
        print()
        for v in extra:
            print(f"- {v}")


def main(argv):
    if len(argv) == 3 and argv[1] == "summarize":
        summarize(argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
