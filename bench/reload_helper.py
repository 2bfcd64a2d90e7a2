#!/usr/bin/env python3
"""Helper of bench/reload.sh (a benchmark, never run by CI).

    reload_helper.py freeport
    reload_helper.py wait-port PORT PID SECONDS        0 once 127.0.0.1:PORT accepts, 1 if PID died
    reload_helper.py ownticks PID                      utime+stime of PID itself, in clock ticks
    reload_helper.py treeticks PID                     the same summed over PID and its descendants
    reload_helper.py tree PID                          PID and its descendants, one line
    reload_helper.py brief CLIENT_JSON                 one line from a client's summary
    reload_helper.py ready-workers                     (stdin: lameduck status --json) ready workers
    reload_helper.py pm2-pids                          (stdin: pm2 jlist) pids of the apps, one line
    reload_helper.py record ARGS...                    one results.jsonl line (see reload.sh)
    reload_helper.py compare-record ARGS...            one compare.jsonl line (see reload.sh)
    reload_helper.py summarize RUN_DIR                 the tables (also to RUN_DIR/summary.md)
"""
import json
import os
import socket
import statistics
import sys
import time


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name (field 2) may hold spaces and ')'; the rest follows the last ')'.
    return stat[stat.rindex(")") + 2:].split()


def own_ticks(pid):
    """utime + stime (fields 14 and 15 of proc(5)) of the process alone, not its children."""
    try:
        rest = _stat_fields(pid)
    except OSError:
        return -1
    return int(rest[11]) + int(rest[12])


def tree_ticks(pid):
    """utime + stime of PID and of its live descendants, each its own (no cutime/cstime)."""
    return sum(max(own_ticks(p), 0) for p in process_tree(pid))


def process_tree(pid):
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents[int(name)] = int(_stat_fields(name)[1])
            except (OSError, ValueError, IndexError):
                pass
    tree, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        tree += children
        frontier += children
    return tree


def alive(pid):
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def ready_workers(text):
    """How many workers `lameduck status --json` says are ready (every program)."""
    try:
        status = json.loads(text)
    except ValueError:
        return -1
    return sum(1 for p in status.get("programs", []) for w in p.get("workers", [])
               if w.get("ready"))


def pm2_pids(text):
    try:
        apps = json.loads(text)
    except ValueError:
        return []
    return [a["pid"] for a in apps if a.get("pid")]


# ---------------------------------------------------------------------------- results

def record(args):
    """record CASE MODE ROUND CLIENT_JSON_FILE RELOADS_FILE CPU_FILE CLK_TCK EXTRA_JSON"""
    case, mode, rnd, client_file, reloads_file, cpu_file, clk_tck, extra = args
    try:
        client = json.load(open(client_file))
    except (OSError, ValueError):
        client = None
    reloads = []
    for line in open(reloads_file):
        start, end, rc = line.split()
        reloads.append({"start": float(start), "end": float(end), "rc": int(rc)})
    cpu = dict(line.split() for line in open(cpu_file))
    hz = float(clk_tck)

    def secs(a, b):
        if a not in cpu or b not in cpu or int(cpu[a]) < 0 or int(cpu[b]) < 0:
            return None
        return (int(cpu[b]) - int(cpu[a])) / hz

    out = {
        "case": case, "mode": mode, "round": int(rnd), "client": client, "reloads": reloads,
        "supervisor_cpu_steady_s": secs("steady_start", "steady_end"),
        "supervisor_cpu_reloads_s": secs("steady_end", "reloads_end"),
        "supervisor_cpu_total_s": secs("started", "reloads_end"),
    }
    out.update(json.loads(extra))
    print(json.dumps(out))


def compare_record(args):
    """compare-record WAY ROUND CLIENT_JSON_FILE TICKS_BEFORE TICKS_AFTER CLK_TCK"""
    way, rnd, client_file, before, after, clk_tck = args
    try:
        client = json.load(open(client_file))
    except (OSError, ValueError):
        client = None
    ok = (client or {}).get("total", {}).get("ok", 0)
    cpu_us = (int(after) - int(before)) * 1e6 / float(clk_tck) / ok if ok else None
    print(json.dumps({"way": way, "round": int(rnd), "client": client, "server_cpu_us_per_req": cpu_us}))


def brief(path):
    """One line from a client's JSON summary."""
    try:
        t = json.load(open(path))["total"]
    except (OSError, ValueError, KeyError):
        return "no result"
    return f"{t['rps']:,.0f} req/s, p99 {t['p99_ms']:.2f} ms, {t['failed']} failed"


# ---------------------------------------------------------------------------- tables

KINDS = ("connect", "reset", "eof", "timeout", "status", "bad")


def _phase(client, name):
    for p in (client or {}).get("phases", []):
        if p["name"] == name:
            return p
    return None


def _fmt(v, digits=0, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float) and v != v:
        return "–"
    return f"{v:,.{digits}f}{unit}"


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _table(head, rows):
    width = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["| " + " | ".join(h.ljust(width[i]) if i < 2 else h.rjust(width[i])
                               for i, h in enumerate(head)) + " |",
             "|" + "|".join("-" * (width[i] + 2) if i < 2 else "-" * (width[i] + 1) + ":"
                            for i in range(len(head))) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(c.ljust(width[i]) if i < 2 else c.rjust(width[i])
                                       for i, c in enumerate(r)) + " |")
    return lines


def failure_starts(run_dir, row):
    """(start, kind, detail) of each failed request of a run (a results.jsonl row), from its
    failures.csv: start in epoch seconds (a timeout ends TIMEOUT_MS later)."""
    path = f"{run_dir}/client/{row['case']}-{row['mode']}-r{row['round']}.failures.csv"
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        next(f, None)
        for line in f:
            parts = line.strip().split(",")
            if len(parts) >= 4:
                out.append(((float(parts[0]) - float(parts[3])) / 1000, parts[1], parts[2]))
    return out


def _failure_timeline(run_dir, row):
    """Failed requests of a run placed against its reloads by the time they started: 'during
    reload N' (from the reload command's start to its return), 'after reload N' (before the
    next one), 'before the reloads', 'after the last'."""
    reloads = row["reloads"]
    where = {}
    for t, kind, detail in failure_starts(run_dir, row):
        label = "before the reloads"
        for i, r in enumerate(reloads):
            if r["start"] <= t <= r["end"]:
                label = f"during reload {i + 1}"
                break
            if t > r["end"]:
                label = f"after reload {i + 1}" if i + 1 < len(reloads) else "after the last reload"
        key = (label, f"{kind}:{detail}")
        where[key] = where.get(key, 0) + 1
    return where


def summarize(run_dir):
    rows = []
    if os.path.exists(f"{run_dir}/results.jsonl"):
        rows = [json.loads(l) for l in open(f"{run_dir}/results.jsonl") if l.strip()]
    settings = {}
    if os.path.exists(f"{run_dir}/settings.txt"):
        for line in open(f"{run_dir}/settings.txt"):
            for word in line.split():
                if "=" in word:
                    k, v = word.split("=", 1)
                    settings[k] = v
    keys = []
    for r in rows:
        if (r["case"], r["mode"]) not in keys:
            keys.append((r["case"], r["mode"]))
    lines = []
    lines.append(f"Rolling reloads under load: {settings.get('RELOADS', '?')} reloads of "
                 f"{settings.get('INSTANCES', '?')} workers per run, {settings.get('CONNECTIONS', '?')} "
                 f"connections, steady window {settings.get('DURATION', '?')} s before the reloads; "
                 f"sums over {settings.get('ROUNDS', '?')} round(s)")
    lines.append("")
    head = ["case", "mode", "reloads ok", "requests ok", "failed"] + list(KINDS) + \
           ["reload s median", "reload s max"]
    table = []
    notes = []
    for case, mode in keys:
        runs = [r for r in rows if r["case"] == case and r["mode"] == mode]
        ok = sum((r["client"] or {}).get("total", {}).get("ok", 0) for r in runs)
        failed = {k: sum((r["client"] or {}).get("total", {}).get(k, 0) for r in runs) for k in KINDS}
        reloads = [x for r in runs for x in r["reloads"]]
        good = [x for x in reloads if x["rc"] == 0]
        durations = [x["end"] - x["start"] for x in good]
        table.append([case, mode, f"{len(good)}/{len(reloads)}", f"{ok:,}",
                      f"{sum(failed.values()):,}"] + [f"{failed[k]:,}" for k in KINDS] +
                     [_fmt(_median(durations), 2), _fmt(max(durations) if durations else None, 2)])
        details = {}
        for r in runs:
            for d, n in (r["client"] or {}).get("total", {}).get("details", {}).items():
                details[d] = details.get(d, 0) + n
        bits = []
        if details:
            bits.append("failures: " + ", ".join(f"{d} {n:,}" for d, n in sorted(details.items())))
        timeline = {}
        for r in runs:
            for k, n in _failure_timeline(run_dir, r).items():
                timeline[k] = timeline.get(k, 0) + n
        if timeline:
            shown = sorted(timeline.items(), key=lambda kv: -kv[1])[:8]
            bits.append("when: " + ", ".join(f"{w} {d} {n:,}" for (w, d), n in shown) +
                        (" ..." if len(timeline) > 8 else ""))
        bad_rc = [x["rc"] for x in reloads if x["rc"] != 0]
        if bad_rc:
            bits.append(f"reload commands that failed: {len(bad_rc)} (exit {sorted(set(bad_rc))})")
        for r in runs:
            for k in ("problem", "left_running"):
                if r.get(k):
                    bits.append(f"round {r['round']}: {k.replace('_', ' ')}: {r[k]}")
            if r["client"] is None:
                bits.append(f"round {r['round']}: the client gave no summary")
            elif r["client"].get("abandoned"):
                bits.append(f"round {r['round']}: {r['client']['abandoned']} requests in flight at "
                            "the stop were abandoned")
        if bits:
            notes.append(f"- {case} {mode}: " + "; ".join(bits))
    if rows:
        lines += _table(head, table)
    lines.append("")
    lines.append("Throughput and p99 latency (medians over rounds), steady window against the "
                 "reloads; the supervisor's own CPU time (utime+stime of its process)")
    lines.append("")
    head = ["case", "mode", "steady req/s", "reloads req/s", "ratio", "steady p99 ms",
            "reloads p99 ms", "reloads max ms", "sup. CPU steady ms/s", "sup. CPU ms/reload"]
    table = []
    for case, mode in keys:
        runs = [r for r in rows if r["case"] == case and r["mode"] == mode]
        st = [_phase(r["client"], "steady") for r in runs]
        rl = [_phase(r["client"], "reloads") for r in runs]
        srps = _median([p["rps"] for p in st if p])
        rrps = _median([p["rps"] for p in rl if p])
        cpu_steady = _median([r["supervisor_cpu_steady_s"] * 1000 / p["seconds"]
                              for r, p in zip(runs, st)
                              if p and p["seconds"] > 0 and r["supervisor_cpu_steady_s"] is not None])
        cpu_reload = _median([r["supervisor_cpu_reloads_s"] * 1000 / len(r["reloads"])
                              for r in runs
                              if r["reloads"] and r["supervisor_cpu_reloads_s"] is not None])
        table.append([case, mode, _fmt(srps), _fmt(rrps),
                      _fmt(rrps / srps if srps and rrps is not None else None, 2),
                      _fmt(_median([p["p99_ms"] for p in st if p]), 2),
                      _fmt(_median([p["p99_ms"] for p in rl if p]), 2),
                      _fmt(_median([p["max_ms"] for p in rl if p]), 1),
                      _fmt(cpu_steady, 1), _fmt(cpu_reload, 1)])
    if rows:
        lines += _table(head, table)
    if notes:
        lines.append("")
        lines += notes
    if not rows:
        lines = []
    if os.path.exists(f"{run_dir}/compare.jsonl"):
        comp = [json.loads(l) for l in open(f"{run_dir}/compare.jsonl") if l.strip()]
        ways = []
        for c in comp:
            if c["way"] not in ways:
                ways.append(c["way"])
        if ways:
            if lines:
                lines.append("")
            lines.append("Nothing in the data path: the same keep-alive load against 2 workers under "
                         "the supervisor and against one server with 2 threads (medians over runs; "
                         "server CPU: the supervisor's and the workers' own, or the server's)")
            lines.append("")
            head = ["way", "runs", "req/s", "p99 ms", "failed", "server CPU µs/req",
                    "req/s ÷ alone", "CPU/req ÷ alone"]
            alone = [c for c in comp if c["way"] == "alone-2-threads"]
            base = _median([(c["client"] or {}).get("total", {}).get("rps") for c in alone])
            base_cpu = _median([c.get("server_cpu_us_per_req") for c in alone])
            table = []
            for w in ways:
                cs = [c for c in comp if c["way"] == w]
                rps = _median([(c["client"] or {}).get("total", {}).get("rps") for c in cs])
                cpu = _median([c.get("server_cpu_us_per_req") for c in cs])
                table.append([w, str(len(cs)), _fmt(rps),
                              _fmt(_median([(c["client"] or {}).get("total", {}).get("p99_ms") for c in cs]), 2),
                              f"{sum((c['client'] or {}).get('total', {}).get('failed', 0) for c in cs):,}",
                              _fmt(cpu, 2),
                              _fmt(rps / base if base and rps is not None else None, 3),
                              _fmt(cpu / base_cpu if base_cpu and cpu is not None else None, 3)])
            lines += _table(head, table)
    text = "\n".join(lines) + "\n"
    with open(f"{run_dir}/summary.md", "w") as f:
        f.write(text)
    print(text, end="")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "freeport":
        print(free_port())
    elif cmd == "wait-port":
        return 0 if wait_port(int(argv[2]), int(argv[3]), float(argv[4])) else 1
    elif cmd == "ownticks":
        print(own_ticks(int(argv[2])))
    elif cmd == "treeticks":
        print(tree_ticks(int(argv[2])))
    elif cmd == "brief":
        print(brief(argv[2]))
    elif cmd == "tree":
        print(" ".join(str(p) for p in process_tree(int(argv[2])) if alive(p)))
    elif cmd == "ready-workers":
        print(ready_workers(sys.stdin.read()))
    elif cmd == "pm2-pids":
        print(" ".join(str(p) for p in pm2_pids(sys.stdin.read())))
    elif cmd == "record":
        record(argv[2:])
    elif cmd == "compare-record":
        compare_record(argv[2:])
    elif cmd == "summarize":
        summarize(argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
