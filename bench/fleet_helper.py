#!/usr/bin/env python3
"""Helper of bench/fleet.sh (a benchmark, never run by CI).

    fleet_helper.py record CASE ROUND METHOD MODE CLIENT_JSON COUNTERS DEPLOY_LOG DEPLOY_RC
                                              one results.jsonl line
    fleet_helper.py brief RESULTS_JSONL CASE ROUND     one line: the failures of that case
    fleet_helper.py summarize RUN_DIR                  the tables (also to RUN_DIR/summary.md)
"""
import json
import os
import re
import sys

CASES = {
    "delay": "rolling deploy, lame-duck delay derived from haproxy.cfg",
    "no-delay": "rolling deploy, no lame-duck delay",
    "delay-no-retry": "rolling deploy with the delay; HAProxy never retries",
    "no-delay-no-retry": "rolling deploy without the delay; HAProxy never retries",
    "kill-supervisor": "SIGKILL to one host's supervisor (its workers get SIGTERM)",
    "kill-host": "SIGKILL to every process of one host (no drain)",
}
KINDS = ("connect", "reset", "eof", "timeout", "status", "bad")


def backend_stats(path):
    """HAProxy's counters for the backend (haproxy_api.py counters: wretr=N ...), {} if none."""
    try:
        with open(path) as f:
            return {k: int(v) for k, v in (w.split("=") for w in f.read().split())}
    except (OSError, ValueError):
        return {}


def deploy_facts(path):
    """Each host's time to DOWN in HAProxy, the lame-duck delay, from deploy.sh's output."""
    down, delay, late = {}, None, []
    try:
        text = open(path).read()
    except OSError:
        return {"down_s": down, "lame_duck_s": delay, "late": late}
    for m in re.finditer(r"^(?:deploy: )?(\w+): DOWN in HAProxy (?:only )?after ([\d.]+) s", text, re.M):
        down[m.group(1)] = float(m.group(2))
    m = re.search(r"lame-duck delay ([\d.]+) s", text)
    if m:
        delay = float(m.group(1))
    late = re.findall(r"^deploy: (\w+): DOWN in HAProxy only after", text, re.M)
    return {"down_s": down, "lame_duck_s": delay, "late": late}


def record(case, rnd, method, mode, client_json, counters, deploy_log, rc):
    try:
        with open(client_json) as f:
            client = json.loads(f.read())
    except (OSError, ValueError):
        client = None
    total = (client or {}).get("total", {})
    line = {
        "case": case, "round": int(rnd), "method": method, "mode": mode,
        "ok": total.get("ok", 0), "failed": total.get("failed", 0),
        "kinds": {k: total[k] for k in KINDS if total.get(k)},
        "details": total.get("details", {}),
        "p99_ms": total.get("p99_ms"), "max_ms": total.get("max_ms"),
        "client_missing": client is None,
        "haproxy": backend_stats(counters), "deploy": deploy_facts(deploy_log),
        "deploy_rc": int(rc),
    }
    print(json.dumps(line))


def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def brief(path, case, rnd):
    rows = [r for r in load(path) if r["case"] == case and r["round"] == int(rnd)]
    parts = [f"{r['method']} {r['mode']} {r['failed']:,} failed of {r['ok'] + r['failed']:,}"
             for r in rows]
    h = rows[0]["haproxy"] if rows else {}
    print("; ".join(parts) + f" (HAProxy: {h.get('wretr', '?')} retries, "
          f"{h.get('wredis', '?')} redispatched)")


def summarize(run_dir):
    rows = load(os.path.join(run_dir, "results.jsonl"))
    out = []
    out.append("Failed requests through HAProxy (requests without a complete 2xx answer; "
               "the four clients ran at once, GET / and POST /echo, with keep-alive and with "
               "a new connection per request):")
    out.append("")
    head = ["case", "client", "ok", "failed", "how they failed", "p99 ms", "max ms"]
    table = []
    order = list(CASES)
    rows.sort(key=lambda r: (order.index(r["case"]) if r["case"] in order else 99, r["round"]))
    for r in rows:
        how = ", ".join(f"{k} {v}" for k, v in sorted(r["details"].items())) or "-"
        table.append([r["case"] + (f" r{r['round']}" if any(x["round"] > 1 for x in rows) else ""),
                      f"{r['method']} {'keep-alive' if r['mode'] == 'keepalive' else 'close'}",
                      f"{r['ok']:,}", f"{r['failed']:,}", how,
                      "-" if r["p99_ms"] is None else f"{r['p99_ms']:.1f}",
                      "-" if r["max_ms"] is None else f"{r['max_ms']:.1f}"])
    out += markdown(head, table)
    out.append("")
    out.append("What HAProxy did meanwhile (show stat, backend hosts) and when each host left "
               "the pool:")
    out.append("")
    head = ["case", "what happened", "lame-duck delay s", "DOWN in HAProxy after s",
            "retries", "redispatched", "5xx sent"]
    table = []
    seen = set()
    for r in rows:
        key = (r["case"], r["round"])
        if key in seen:
            continue
        seen.add(key)
        d, h = r["deploy"], r["haproxy"]
        downs = " ".join(f"{k} {v:.2f}" for k, v in d["down_s"].items()) or "-"
        delay = "-" if d["lame_duck_s"] is None or r["case"] == "kill-host" else f"{d['lame_duck_s']:.2f}"
        table.append([r["case"] + (f" r{r['round']}" if any(x["round"] > 1 for x in rows) else ""),
                      CASES.get(r["case"], r["case"]), delay, downs,
                      str(h.get("wretr", "?")), str(h.get("wredis", "?")),
                      str(h.get("hrsp_5xx", "?"))])
    out += markdown(head, table)
    text = "\n".join(out) + "\n"
    with open(os.path.join(run_dir, "summary.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)


def markdown(head, table):
    w = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    fmt = lambda row: "| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(row)) + " |"
    return [fmt(head), "|" + "|".join("-" * (n + 2) for n in w) + "|"] + [fmt(r) for r in table]


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "record":
        record(*args)
    elif cmd == "brief":
        brief(*args)
    elif cmd == "summarize":
        summarize(*args)
    else:
        sys.exit(f"fleet_helper.py: unknown command {cmd}")
