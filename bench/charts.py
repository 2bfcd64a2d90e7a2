#!/usr/bin/python3
"""The charts of docs/benchmarks.md, drawn from the raw output of real benchmark runs.

    /usr/bin/python3 bench/charts.py [CHART ...] [--drain DIR] [--drain-no-delay DIR]
                                     [--throughput DIR] [--reload DIR] [--bench-out bench/out]
                                     [--out docs/images] [--format svg|png]

CHART is any of these (default: all):

  drain           drain-timeline.svg from a run of bench/drain_timeline.sh (with a lame-duck
                  delay): connections per state and responses per second against time, through
                  one graceful stop, with the failures the clients saw
  drain-no-delay  drain-timeline-no-delay.svg: the same from a run with LAME_DUCK_MS=0, to show
                  what the delay is for
  throughput      throughput.svg from a run of bench/throughput.sh: CPU time per request and
                  requests/s of lameduck and its peers, and memory per idle connection
  reload          reload-failures.svg from a run of bench/reload.sh: failed requests per
                  rolling reload, lameduck's supervisor against PM2

Each chart reads the directory given (--drain ...), else the newest run of its kind in
--bench-out that has the files it needs (drain-timeline-*, throughput-*, reload-*; for the
drain charts, with or without a lame-duck delay in its settings.txt); a chart asked for without a run to draw it from is an error (exit 2), named with
the command that makes one. The date and machine of the run go into the chart's caption.
Needs matplotlib: Debian's python3-matplotlib, hence /usr/bin/python3. The SVGs are written
with text as text and fixed ids and no date, so that drawing the same run twice gives the same
file.
"""
import argparse
import glob
import os
import statistics
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import drain_timeline  # noqa: E402  the runs' own readers: their tables and the charts agree
import reload_helper  # noqa: E402


class Missing(Exception):
    """A run, or a file of a run, that a chart needs."""


def fail(message):
    print(f"charts: {message}", file=sys.stderr)
    sys.exit(2)


try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    fail("needs matplotlib: run with /usr/bin/python3 (Debian's python3-matplotlib)")

matplotlib.rcParams.update({
    "svg.hashsalt": "lameduck",   # ids of clip paths and the like: the same on every run
    "svg.fonttype": "none",       # text stays text: small, searchable
    "font.family": "sans-serif",  # the SVG names these, so that a viewer without DejaVu
    "font.sans-serif": ["DejaVu Sans", "Verdana"],   # falls back on a sans-serif of the same width
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
})

LAMEDUCK = "#d62728"
COLORS = {"lameduck": LAMEDUCK, "baseline": "#ff9896", "nginx": "#2ca02c", "h2o": "#1f77b4",
          "node": "#9467bd", "floor": "#7f7f7f", "lameduck-hello": LAMEDUCK,
          "lameduck-node": "#ff7f0e", "pm2": "#9467bd"}


FORMAT = "svg"


def save(fig, path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if FORMAT == "png":
        path = path[:-len(".svg")] + ".png"
        fig.savefig(path, format="png", dpi=110, metadata={"Software": None}, bbox_inches="tight")
    else:
        fig.savefig(path, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    plt.close(fig)
    print(f"charts: wrote {os.path.relpath(path)}")


def missing_files(run_dir, needs):
    """The files of needs that run_dir lacks or has empty."""
    return [n for n in needs if not os.path.isfile(os.path.join(run_dir, n))
            or os.path.getsize(os.path.join(run_dir, n)) == 0]


def newest(bench_out, prefix, needs, fits, made_by):
    """The newest run directory PREFIX-* of bench_out that has the files in needs (a run that
    was cut short has no summary.md) and fits."""
    runs = sorted(d for d in glob.glob(os.path.join(bench_out, prefix + "-*")) if os.path.isdir(d))
    for d in reversed(runs):
        if not missing_files(d, needs) and fits(d):
            return d
    raise Missing(f"no fitting {prefix}-* run with {', '.join(needs)} in {bench_out}: run "
                  f"{made_by} (or name a run directory)")


def check_run(run_dir, needs):
    if not os.path.isdir(run_dir):
        raise Missing(f"{run_dir} is not a directory")
    missing = missing_files(run_dir, needs)
    if missing:
        raise Missing(f"{run_dir} has no {', '.join(missing)} (or it is empty)")


def lines_of(path):
    """The lines of a file; none when it does not exist."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().splitlines()


def settings(run_dir):
    """key=value words of a run's settings.txt (empty when it has none)."""
    out = {}
    for line in lines_of(os.path.join(run_dir, "settings.txt")):
        if line.startswith("machine="):   # the rest of the line, spaces included
            out.setdefault("machine", line.strip().split("=", 1)[1])
            continue
        for word in line.split():
            if "=" in word:
                k, v = word.split("=", 1)
                out.setdefault(k, v)
    return out


def run_date(run_dir, s):
    """The run's date: its settings' date=, else the one in its directory's name."""
    if "date" in s:   # date -Is: 2026-12-02T02:12:59+00:00
        zone = s["date"][19:]
        return s["date"][:16].replace("T", " ") + (" UTC" if zone in ("+00:00", "Z") else f" ({zone})")
    stamp = os.path.basename(run_dir.rstrip("/")).rsplit("-", 2)[-2:]
    if len(stamp) == 2 and len(stamp[0]) == 8:
        d, t = stamp
        return f"{d[:4]}-{d[4:6]}-{d[6:]} {t[:2]}:{t[2:4]}"
    return "date unknown"


def caption(run_dir, extra=""):
    s = settings(run_dir)
    machine = s.get("machine") or "a machine not recorded"
    bits = [f"Run of {run_date(run_dir, s)} on {machine}"]
    if "kernel" in s:
        bits.append(f"Linux {s['kernel']}")
    if "lameduck" in s:
        bits.append(f"lameduck {s['lameduck']}")
    return "; ".join(bits) + f" ({os.path.basename(run_dir.rstrip('/'))})." + (" " + extra if extra else "")


def footnote(fig, *paragraphs, y=0.0):
    """Grey small print under the chart, wrapped to its width."""
    width = int(fig.get_figwidth() * 17)
    text = "\n".join(textwrap.fill(p, width) for p in paragraphs)
    fig.text(0.0, y, text, fontsize=7.5, color="#555555", va="top", ha="left")


# ---------------------------------------------------------------------------- drain timeline

STATES = [("idle", "#9ecae1"), ("active", "#e6550d"), ("upgraded", "#756bb1"),
          ("fresh", "#fdae6b"), ("closing", "#969696")]


def drain_chart(run_dir, path):
    check_run(run_dir, ["samples.csv", "server-events.jsonl", "client-events.jsonl"])
    samples, server, client = drain_timeline.load_run(run_dir)
    p = drain_timeline.phases(server, client)
    if not samples or "signal" not in p or "stopped" not in p:
        raise Missing(f"{run_dir} holds no complete stop (no samples, signal or stopped line)")
    t0 = p["signal"]
    t = [(x["t_ms"] - t0) / 1000 for x in samples]
    s = settings(run_dir)

    # The x axis begins shortly before every client was up.
    up = next((e["t_ms"] for e in client if e.get("event") == "all_up"), samples[0]["t_ms"])
    first = next(i for i, x in enumerate(samples) if x["t_ms"] >= up - 500 or i == len(samples) - 1)
    samples, t = samples[first:], t[first:]

    # Responses per second over a sliding window of WINDOW ms, at each sample.
    window_ms = 200
    rps, j = [], 0
    for i, x in enumerate(samples):
        while samples[j]["t_ms"] < x["t_ms"] - window_ms:
            j += 1
        span = x["t_ms"] - samples[j]["t_ms"]
        rps.append((x["answered"] - samples[j]["answered"]) * 1000 / span if span > 0 else 0)

    fig, (strip, ax, ax2) = plt.subplots(3, 1, figsize=(9, 6), sharex=True,
                                         gridspec_kw={"height_ratios": [0.32, 3, 1.8], "hspace": 0.06})
    end = (p["stopped"] - t0) / 1000
    drain = (p.get("drain_began", p["stopped"]) - t0) / 1000
    x0, x1 = t[0], t[-1]
    for left, right, color, text in ((x0, 0, "#eeeeee", "serving"),
                                     (0, drain, "#ffe680", "lame-duck delay (/readyz: 503)"),
                                     (drain, end, "#9ecae1", "drain (listeners closed)"),
                                     (end, x1, "#ffffff", "stopped")):
        if right - left < 0.01 * (x1 - x0):   # no lame-duck delay: no such phase
            continue
        strip.axvspan(left, right, color=color, linewidth=0)
        strip.text((left + right) / 2, 0.5, text, ha="center", va="center", fontsize=8)
    strip.set_yticks([])
    strip.grid(False)
    for side in ("left", "bottom"):
        strip.spines[side].set_visible(False)
    strip.tick_params(axis="x", length=0)

    # Only the samples where a count changes, and the one before each: the same picture in a
    # fraction of the SVG.
    key = [tuple(x[n] for n, _ in STATES) for x in samples]
    keep = [i for i in range(len(samples))
            if i in (0, len(samples) - 1) or key[i] != key[i - 1] or key[i] != key[i + 1]]
    ax.stackplot([t[i] for i in keep], *[[samples[i][name] for i in keep] for name, _ in STATES],
                 labels=[name for name, _ in STATES], colors=[c for _, c in STATES], linewidth=0)
    ax.set_ylabel("open connections, by state")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title="server::counts()",
              title_fontsize=8)
    ax.set_ylim(0, max(sum(x[n] for n, _ in STATES) for x in samples) * 1.08)
    step = max(1, round(20 / float(s.get("SAMPLE_MS", 10) or 10)))   # a point every 20 ms
    ax2.plot(t[::step], rps[::step], color="#333333", linewidth=1)
    ax2.set_ylabel(f"responses / s\n({window_ms} ms window)")
    ax2.set_ylim(bottom=0)
    ax2.set_xlabel("seconds after SIGTERM")
    ax2.set_xlim(x0, x1)
    for a in (ax, ax2):
        for x in (0, drain, end):
            a.axvline(x, color="#555555", linewidth=0.7, linestyle="--")
    if "out_of_pool" in p:
        lb = (p["out_of_pool"] - t0) / 1000
        for a in (ax, ax2):
            a.axvline(lb, color="#2ca02c", linewidth=1)
        ax2.annotate("the balancer stops routing here\n(health check failed twice)",
                     xy=(lb, ax2.get_ylim()[1] * 0.6), xytext=(6, 0), textcoords="offset points",
                     fontsize=8, color="#2ca02c", va="center")

    failures = [e for e in client if e.get("event") == "failed"]
    if failures:
        # Failed requests per second, in bins of 100 ms, drawn as steps.
        bins = {}
        for e in failures:
            b = int((e["t_ms"] - t0) // 100)
            bins[b] = bins.get(b, 0) + 1
        xs, ys = [], []
        for b in range(min(bins) - 1, max(bins) + 2):
            xs += [b / 10, (b + 1) / 10]
            ys += [bins.get(b, 0) * 10] * 2
        ax2.plot(xs, ys, color=LAMEDUCK, linewidth=1.2, label="failed requests / s (clients)")
        ax2.lines[0].set_label("responses / s (server)")
        ax2.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    report = p.get("report", {})
    counts = next((e for e in reversed(client) if e.get("event") == "summary"), {}).get("counts", {})
    answered = sum(v for k, v in counts.items() if k.endswith(":ok"))
    title = (f"SIGTERM to a lameduck server: stopped {'gracefully' if report.get('graceful') else 'by force'} "
             f"in {report.get('took_ms', 0) / 1000:.2f} s, {report.get('requests_completed', 0):,} requests "
             f"completed during the stop and {report.get('requests_aborted', 0)} aborted;\nthe clients "
             f"saw {len(failures)} failed request{'' if len(failures) == 1 else 's'} of "
             f"{answered + len(failures):,}" + (" (red)" if failures else ""))
    strip.set_title(title, fontsize=10, loc="left")
    setup = (f"{s.get('IDLE', '?')} idle keep-alive, {s.get('UPGRADED', '?')} upgraded (echo, closing "
             f"handshake after 'bye'), {s.get('SLOW', '?')} slow ({s.get('SLOW_MIN_MS', '?')}–"
             f"{s.get('SLOW_MAX_MS', '?')} ms) and {s.get('LOAD', '?')} back-to-back connections; "
             f"lame-duck delay {int(s.get('LAME_DUCK_MS', 0)) / 1000:g} s, health check every "
             f"{int(s.get('CHECK_MS', 0)) / 1000:g} s, out after {s.get('FALL', '?')} failures; "
             f"sampled every {s.get('SAMPLE_MS', '?')} ms.")
    footnote(fig, setup, caption(run_dir, "bench/drain_timeline.sh, then bench/charts.py drain."), y=0.02)
    save(fig, path)


# ---------------------------------------------------------------------------- throughput

SERVER_ORDER = ["lameduck", "baseline", "nginx", "h2o", "node", "floor"]
SERVER_LABEL = {"lameduck": "lameduck", "baseline": "lameduck (baseline)", "nginx": "nginx",
                "h2o": "h2o", "node": "Node.js http", "floor": "epoll floor"}


def throughput_chart(run_dir, path):
    check_run(run_dir, ["results.txt"])
    runs, busies = {}, []
    for line in lines_of(os.path.join(run_dir, "results.txt")):
        parts = line.split()
        if len(parts) != 9:
            continue
        _, server, conns, _req, rps, _p99, cpu, busy, _err = parts
        if float(rps) != float(rps) or cpu == "nan":
            continue
        runs.setdefault((server, int(conns)), []).append((float(rps), float(cpu)))
        busies.append(float(busy))
    if not runs:
        raise Missing(f"{run_dir}/results.txt holds no measurement")
    memory = {}
    for line in lines_of(os.path.join(run_dir, "memory.txt")):
        parts = line.split()
        if len(parts) == 5 and int(parts[1]) > 0:
            memory[parts[0]] = (float(parts[4]), int(parts[1]))
    servers = [x for x in SERVER_ORDER if any(k[0] == x for k in runs)] + \
              sorted({k[0] for k in runs} - set(SERVER_ORDER))
    levels = sorted({k[1] for k in runs})
    rounds = max(len(v) for v in runs.values())

    panels = 3 if memory else 2
    fig, axes = plt.subplots(1, panels, figsize=(3.3 * panels + 1, 0.42 * len(servers) * len(levels) + 1.4),
                             sharey=True, gridspec_kw={"wspace": 0.1})
    height = 0.8 / len(levels)
    medians = {k: (statistics.median(v[0] for v in vs), statistics.median(v[1] for v in vs))
               for k, vs in runs.items()}
    for col, (index, label, scale) in enumerate([(1, "CPU µs per request (lower is better)", 1),
                                                 (0, "thousand requests/s", 1e-3)]):
        a = axes[col]
        for li, c in enumerate(levels):
            nginx = medians.get(("nginx", c))
            for si, server in enumerate(servers):
                values = [v[index] * scale for v in runs.get((server, c), [])]
                if not values:
                    continue
                y = si + (li - (len(levels) - 1) / 2) * height
                med = statistics.median(values)
                a.barh(y, med, height * 0.92, color=COLORS.get(server, "#aaaaaa"),
                       alpha=1.0 if li == 0 else 0.55, linewidth=0)
                if len(values) > 1:
                    a.plot([min(values), max(values)], [y, y], color="#222222", linewidth=0.8)
                text = f" {med:.2f}" if index == 1 else f" {med:.0f}"
                if nginx and server != "nginx":
                    text += f" ({med / (nginx[index] * scale):.2f}×)"
                a.text(max(values), y, text, va="center", fontsize=7)
        a.set_title(label, fontsize=9, loc="left")
        a.grid(axis="y", visible=False)
        a.set_xlim(0, a.get_xlim()[1] * 1.25)
    axes[0].set_yticks(range(len(servers)))
    axes[0].set_yticklabels([SERVER_LABEL.get(x, x) for x in servers])
    axes[0].invert_yaxis()
    axes[0].tick_params(axis="y", length=0)
    if memory:
        a = axes[2]
        mem = [i for i, x in enumerate(servers) if x in memory]
        a.barh(mem, [memory[servers[i]][0] for i in mem], height=0.4,
               color=[COLORS.get(servers[i], "#aaaaaa") for i in mem], linewidth=0)
        nginx = memory.get("nginx")
        for i in mem:
            v = memory[servers[i]][0]
            a.text(v, i, f" {v:.0f}" + (f" ({v / nginx[0]:.2f}×)" if nginx and servers[i] != "nginx" else ""),
                   va="center", fontsize=7)
        a.grid(axis="y", visible=False)
        a.set_title(f"bytes of RSS per idle connection ({max(v[1] for v in memory.values()):,} held)",
                    fontsize=9, loc="left")
        a.set_xlim(0, a.get_xlim()[1] * 1.4)
    levels_note = (" Two bars per server: " + " and ".join(f"{c}" for c in levels) +
                   " connections (lighter)." if len(levels) > 1 else f" {levels[0]} connections.")
    fig.suptitle(textwrap.fill("lameduck and its peers answering keep-alive GET / (14-byte body), one server "
                               "thread on one CPU, wrk -t1 on the other; medians of "
                               f"{rounds} round{'s' if rounds > 1 else ''}, lines from min to max." +
                               levels_note, 120),
                 fontsize=9.5, x=0.0, ha="left", y=0.99)
    fig.subplots_adjust(top=0.84, bottom=0.1)
    busy = statistics.median(busies)
    loaded = (f" The servers were busy only {min(busies):.0f}–{max(busies):.0f} % of their CPU "
              f"(median {busy:.0f} %): other work held the machine and wrk was the limit, so the "
              "requests/s say little here; CPU time per request still compares the servers."
              if busy < 70 else "")
    footnote(fig, "One wrk thread saturates before the fastest servers do, so CPU time per "
             "request is the figure that separates them; absolute figures drift by up to 20 % "
             "between runs on a shared machine." + loaded + " (N×): the ratio to nginx's median in the same run. "
             "The epoll floor parses nothing and answers with a fixed response: the kernel's share of a request.",
             caption(run_dir, "bench/throughput.sh, then bench/charts.py throughput."))
    save(fig, path)


# ---------------------------------------------------------------------------- reloads

CASE_LABEL = {"lameduck-hello": "lameduck supervisor, lameduck-hello workers",
              "lameduck-node": "lameduck supervisor, Node.js workers", "pm2": "PM2 cluster mode, Node.js"}
MODE_LABEL = {"keepalive": "keep-alive connections", "close": "a new connection per request"}


def failures_per_reload(run_dir, row):
    """Failed requests of one run, each given to the reload in progress or last begun when the
    request started (before the first: not drawn, counted apart)."""
    starts = [r["start"] for r in row["reloads"]]
    per, before = [0] * len(starts), 0
    for t, _kind, _detail in reload_helper.failure_starts(run_dir, row):
        i = sum(1 for s in starts if s <= t) - 1
        if i < 0:
            before += 1
        else:
            per[i] += 1
    return per, before


def reload_chart(run_dir, path):
    check_run(run_dir, ["results.jsonl"])
    rows = drain_timeline.read_jsonl(os.path.join(run_dir, "results.jsonl"))
    if not rows:
        raise Missing(f"{run_dir}/results.jsonl holds no run")
    modes = [m for m in ("keepalive", "close") if any(r["mode"] == m for r in rows)]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    s = settings(run_dir)
    fig, axes = plt.subplots(len(modes), 1, figsize=(9, 2.7 * len(modes) + 0.9), squeeze=False,
                             gridspec_kw={"hspace": 0.35})
    for mi, mode in enumerate(modes):
        a = axes[mi][0]
        width = 0.8 / len(cases)
        n_reloads, top = 0, 0
        for ci, case in enumerate(cases):
            runs = [r for r in rows if r["case"] == case and r["mode"] == mode]
            if not runs:
                continue
            per = None
            ok = failed = reloads = 0
            for r in runs:
                counts, _ = failures_per_reload(run_dir, r)
                per = counts if per is None else [x + y for x, y in zip(per, counts)]
                total = (r.get("client") or {}).get("total", {})
                ok += total.get("ok", 0)
                failed += total.get("failed", 0)
                reloads += len(r["reloads"])
            n_reloads = max(n_reloads, len(per))
            top = max([top] + per)
            xs = [i + 1 + (ci - (len(cases) - 1) / 2) * width for i in range(len(per))]
            color = COLORS.get(case, "#aaaaaa")
            a.bar(xs, per, width * 0.95, color=color, linewidth=0,
                  label=f"{CASE_LABEL.get(case, case)}: {failed:,} failed of {ok + failed:,} "
                        f"requests in {reloads} reloads")
            # A zero has no bar: a dot on the axis shows it was measured.
            zeros = [x for x, v in zip(xs, per) if v == 0]
            a.plot(zeros, [0] * len(zeros), linestyle="none", marker="o", markersize=4,
                   color=color, clip_on=False, zorder=3)
        a.set_title(MODE_LABEL.get(mode, mode), fontsize=9.5, loc="left")
        a.set_ylabel("failed requests")
        a.set_xticks(range(1, n_reloads + 1))
        a.set_xlim(0.4, n_reloads + 0.6)
        a.set_ylim(0, max(top, 4) * 1.7)
        a.grid(axis="x", visible=False)
        a.legend(loc="upper left", fontsize=7.5, ncol=1)
    axes[-1][0].set_xlabel("reload: every worker replaced, one after the other", labelpad=2)
    fig.suptitle(f"Failed requests per rolling reload of {s.get('INSTANCES', '?')} workers under "
                 f"{s.get('CONNECTIONS', '?')} concurrent requests (a dot: none failed)",
                 fontsize=10, x=0.0, ha="left", y=0.995)
    footnote(fig, "A failure is a request that got no complete 2xx answer (refused, reset, cut off, "
             "timed out); it counts for the reload begun last when the request started. Each "
             f"reload is lameduck reload or pm2 reload, run when the one before has returned; "
             f"workers drain with an idle grace of {s.get('IDLE_GRACE', '?')} s under lameduck; "
             "PM2's app stops as its documentation recommends.",
             caption(run_dir, "bench/reload.sh, then bench/charts.py reload."), y=0.03)
    save(fig, path)


# ---------------------------------------------------------------------------- main

DRAIN_FILES = ["samples.csv", "server-events.jsonl", "client-events.jsonl", "summary.md"]


def lame_duck_ms(run_dir):
    return int(settings(run_dir).get("LAME_DUCK_MS", "0") or 0)


# name: (run prefix, files needed, which runs fit, the benchmark that makes one, draw, file)
CHARTS = {
    "drain": ("drain-timeline", DRAIN_FILES, lambda d: lame_duck_ms(d) > 0,
              "bench/drain_timeline.sh", drain_chart, "drain-timeline.svg"),
    "drain-no-delay": ("drain-timeline", DRAIN_FILES, lambda d: lame_duck_ms(d) == 0,
                       "LAME_DUCK_MS=0 bench/drain_timeline.sh", drain_chart,
                       "drain-timeline-no-delay.svg"),
    "throughput": ("throughput", ["results.txt", "summary.md"], lambda d: True,
                   "bench/throughput.sh", throughput_chart, "throughput.svg"),
    "reload": ("reload", ["results.jsonl", "summary.md"], lambda d: True, "bench/reload.sh",
               reload_chart, "reload-failures.svg"),
}


def main(argv):
    ap = argparse.ArgumentParser(prog="charts.py", description=__doc__.split("\n\n")[0].strip())
    ap.add_argument("charts", nargs="*", metavar="CHART",
                    help=", ".join(CHARTS) + " (default: all)")
    for name, (prefix, *_rest) in CHARTS.items():
        ap.add_argument(f"--{name}", metavar="DIR", help=f"a {prefix}-* run directory")
    ap.add_argument("--bench-out", default=os.path.join(HERE, "out"), metavar="DIR",
                    help="where to look for the newest runs (default: bench/out)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "images"), metavar="DIR",
                    help="where the SVGs go (default: docs/images)")
    ap.add_argument("--format", choices=("svg", "png"), default="svg",
                    help="png: a bitmap instead, to look at where SVG is not shown")
    a = ap.parse_args(argv[1:])
    global FORMAT
    FORMAT = a.format
    wanted = a.charts or list(CHARTS)
    for name in wanted:
        if name not in CHARTS:
            fail(f"unknown chart {name!r} ({', '.join(CHARTS)})")
    for name in wanted:
        prefix, needs, fits, made_by, draw, file = CHARTS[name]
        try:
            run_dir = getattr(a, name.replace("-", "_")) or newest(a.bench_out, prefix, needs, fits, made_by)
            print(f"charts: {name} from {os.path.relpath(run_dir)}")
            draw(run_dir, os.path.join(a.out, file))
        except Missing as e:
            fail(f"{name}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
