#!/usr/bin/python3
"""Tables of bench/slow_clients.sh (standard library only; never run by CI).

  line JSON        one line on the terminal for one result of results.jsonl
  summarize DIR    print the tables of a run's directory (results.jsonl), as Markdown

The alone p99 is floored at FLOOR_MS for the ratio: below a millisecond, timer and scheduling
noise on a two-core machine is as large as the figure.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from throughput_helper import _fmt, _table  # noqa: E402

FLOOR_MS = 1.0


def _ratio(attack, alone):
    if attack is None or alone is None:
        return None
    return attack / max(alone, FLOOR_MS)


def _counts(d, total=None):
    """'a 3, b 2' from a dict of counts, largest first."""
    if not d:
        return "—"
    items = sorted(d.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k}: {v:,}" for k, v in items)


def _dist(d, digits=1):
    if not d:
        return "—"
    return " / ".join(_fmt(d[k], digits) for k in ("min", "p10", "p50", "p90", "max"))


def _errors(*stats):
    total = {}
    for s in stats:
        for k, v in s.get("errors", {}).items():
            total[k] = total.get(k, 0) + v
    return _counts(total) if total else "0"


def _name(rec, rounds):
    return rec["server"] + (f" (round {rec['round']})" if rounds > 1 else "")


def line(rec):
    r, name, part = rec["result"], rec["server"], rec["part"]
    h = r["healthy"]
    if part == "slow":
        alone, attack = h["alone"]["p99_ms"], h["attack"]["p99_ms"]
        s = r["slow"]
        print(f"  {name:9} slow: healthy p99 alone {alone:.2f} ms, ramp-up {h['ramp']['p99_ms']:.2f} ms, "
              f"attack {attack:.2f} ms (×{_ratio(attack, alone):.2f}); cut: headers "
              f"{s['header']['cut']:,} of {s['header']['opened']:,}, bodies {s['body']['cut']:,} of "
              f"{s['body']['opened']:,}; slow connections open: {r['slow_open']['avg']:.0f} on average"
              + ("" if rec["alive"] else "; THE SERVER HAD EXITED"))
    else:
        f = r["flood"]
        pa = r["probes_after"]
        first = pa["first_ok_ms"]
        print(f"  {name:9} {part}: {r['settings']['conns']:,} connections: {_counts(f['outcomes'])}; "
              f"healthy p99 {h['before']['p99_ms']:.2f} / {h['flood']['p99_ms']:.2f} / "
              f"{h['after']['p99_ms']:.2f} ms, errors {_errors(h['flood'], h['after'])}; first 200 "
              f"after the flood: {'none' if first is None else f'{first:.0f} ms'}; log lines "
              f"{r['log']['flood']} + {r['log']['after']}"
              + ("" if rec["alive"] else "; THE SERVER HAD EXITED"))


def _load(d):
    recs = []
    path = f"{d}/results.jsonl"
    if os.path.exists(path):
        with open(path) as f:
            for text in f:
                text = text.strip()
                if text:
                    recs.append(json.loads(text))
    return recs


def slow_tables(recs, rounds):
    if not recs:
        return
    st = recs[0]["result"]["settings"]
    print(f"1. Healthy latency under slow clients: {st['header_conns']:,} connections sending one "
          f"header byte every {st['byte_interval_ms'] / 1000:g} s and {st['body_conns']:,} sending "
          f"one body byte every {st['byte_interval_ms'] / 1000:g} s after a complete head "
          f"(Content-Length {st['body_length']:,}), opened over {st['ramp_s']:g} s and kept "
          f"{st['attack_s']:g} s; {st['healthy']} healthy keep-alive clients, one GET / each "
          f"every {st['healthy_interval_ms']} ms. Alone: the {st['alone_s']:g} s before. "
          f"Ratio: p99 under attack ÷ p99 alone, alone floored at {FLOOR_MS:g} ms. nginx with "
          f"its default client_header_timeout and client_body_timeout (60 s); lameduck with "
          f"its defaults.")
    print()
    rows = []
    for rec in recs:
        h = rec["result"]["healthy"]
        a, r_, k = h["alone"], h["ramp"], h["attack"]
        rows.append([_name(rec, rounds), _fmt(a["p50_ms"], 2), _fmt(a["p99_ms"], 2),
                     _fmt(r_["p99_ms"], 2), _fmt(k["p50_ms"], 2), _fmt(k["p99_ms"], 2),
                     _fmt(k["max_ms"], 1), _fmt(_ratio(k["p99_ms"], a["p99_ms"]), 2),
                     f"{a['n']:,} / {k['n']:,}", _errors(a, r_, k), f"{a['late'] + r_['late'] + k['late']:,}",
                     "yes" if rec["alive"] else "NO"])
    _table(["server", "p50 alone ms", "p99 alone ms", "p99 ramp-up ms", "p50 attack ms",
            "p99 attack ms", "max attack ms", "p99 attack ÷ alone", "requests alone / attack",
            "errors", "late ticks", "alive"], rows)
    print()
    print("2. The slow connections: how many the server cut, how, and when (lifetime: from the "
          "client's connect() to the end it saw; a cut connection is opened again at once)")
    print()
    rows = []
    for rec in recs:
        r = rec["result"]
        for kind in ("header", "body"):
            s = r["slow"][kind]
            age = s["open_age_s"]
            rows.append([_name(rec, rounds), kind, f"{s['opened']:,}", f"{s['cut']:,}",
                         _counts(s["how"]), _dist(s["lifetime_s"]),
                         f"{s['open_at_end']:,}" + (f" ({_fmt(age['min'], 0)}–{_fmt(age['max'], 0)} s old)" if age else ""),
                         f"{r['slow_open']['min']:,} / {r['slow_open']['avg']:,.0f} / {r['slow_open']['max']:,}"
                         if kind == "header" else ""])
    _table(["server", "slow", "opened", "cut", "how they ended", "lifetime s min / p10 / p50 / p90 / max",
            "open at the end", "slow open min / avg / max"], rows)
    print()


def flood_table(number, part, recs, rounds):
    if not recs:
        return
    st = recs[0]["result"]["settings"]
    what = {"fdlimit": "past the process's descriptor limit (lameduck: ulimit -n; nginx: "
                       "worker_rlimit_nofile, worker_connections 4096)",
            "maxconn": "past the connection limit (lameduck: limits::max_connections via "
                       "--max-connections; nginx: worker_connections, which counts its listener "
                       "too)"}[part]
    print(f"{number}. A flood {what}: {st['conns']:,} connections opened at once, each sending one "
          f"keep-alive GET / and holding its connection for {st['flood_s']:g} s, then all closed. "
          f"{st['healthy']} healthy keep-alive clients (connected before), one GET / each every "
          f"{st['healthy_interval_ms']} ms, {st['before_s']:g} s before, during, and "
          f"{st['after_s']:g} s after. Probes: a new connection with GET / every {st['probe_ms']} ms "
          f"during the flood and every {st['after_probe_ms']} ms after it, {st['probe_timeout_ms']} "
          f"ms to answer. Recovery: the start of the first probe after the flood's end that was answered 200 (and "
          f"when its answer came), in ms after the flood's connections were closed.")
    print()
    rows = []
    for rec in recs:
        r = rec["result"]
        h = r["healthy"]
        pf, pa = r["probes_flood"], r["probes_after"]
        answered = pf["outcomes"].get("answered 200", 0)
        ok_after = pa["outcomes"].get("answered 200", 0)
        rows.append([_name(rec, rounds), f"{rec['limit']:,}", _counts(r["flood"]["outcomes"]),
                     " / ".join(_fmt(h[p]["p99_ms"], 2) for p in ("before", "flood", "after")),
                     f"{h['flood']['n']:,}", _errors(h["flood"], h["after"]),
                     f"{answered} of {pf['tried']}" + ("" if answered == pf["tried"] else
                                                      f" ({_counts({k: v for k, v in pf['outcomes'].items() if k != 'answered 200'})})"),
                     "none" if pa["first_ok_ms"] is None else
                     f"{_fmt(pa['first_ok_ms'], 0)} ms (answered at {_fmt(pa['first_ok_answered_ms'], 0)} ms)",
                     f"{ok_after} of {pa['tried']}",
                     f"{r['log']['flood']} / {r['log']['after']}", "yes" if rec["alive"] else "NO"])
    _table(["server", "limit", "what the flood's connections got", "healthy p99 ms before / during / after",
            "healthy requests during", "healthy errors during + after", "probes answered during",
            "recovery: first 200 after", "probes answered after", "log lines during / after", "alive"], rows)
    print()
    for rec in recs:
        lines = rec["result"]["log"]["lines"]
        if lines:
            shown = list(dict.fromkeys(lines))[:4]
            print(f"- {_name(rec, rounds)} logged, from the flood on: " +
                  "; ".join(f"`{t}`" for t in shown) + (" ..." if len(lines) > len(shown) else ""))
    print()


def summarize(d):
    recs = _load(d)
    if not recs:
        print("(no results)")
        return
    rounds = max(r["round"] for r in recs)
    slow_tables([r for r in recs if r["part"] == "slow"], rounds)
    flood_table(3, "fdlimit", [r for r in recs if r["part"] == "fdlimit"], rounds)
    flood_table(4, "maxconn", [r for r in recs if r["part"] == "maxconn"], rounds)


def main(argv):
    if len(argv) == 3 and argv[1] == "summarize":
        summarize(argv[2])
    elif len(argv) == 3 and argv[1] == "line":
        line(json.loads(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
