#!/usr/bin/python3
"""Reads a scrape in Prometheus's text format on standard input and parses it with Prometheus's
own Python parser (prometheus_client.parser, Debian's python3-prometheus-client; run it with
/usr/bin/python3, which has Debian's packages). Prints what it read, one line each:

    TYPE <family> <type>
    HELP <family> <help as JSON>
    <sample name>{<label>=<value as JSON>,...} <value>   (labels sorted by name)

and exits 1 with the reason on standard error when the text does not parse, or breaks a rule
the parser lets through: a family without HELP or TYPE, a sample outside its family, or a
histogram whose buckets are not cumulative, lack +Inf, or disagree with _count.
"""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def fail(why):
    print("prometheus_parse: " + why, file=sys.stderr)
    sys.exit(1)


def canonical(sample):
    labels = ",".join(
        "%s=%s" % (k, json.dumps(v, ensure_ascii=False)) for k, v in sorted(sample.labels.items())
    )
    return sample.name + ("{" + labels + "}" if labels else "")


def check_histogram(family):
    series = {}
    for s in family.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        series.setdefault(key, {"buckets": [], "count": None, "sum": None})
        entry = series[key]
        if s.name == family.name + "_bucket":
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name == family.name + "_count":
            entry["count"] = s.value
        elif s.name == family.name + "_sum":
            entry["sum"] = s.value
        else:
            fail("sample %s in histogram %s" % (s.name, family.name))
    for key, entry in series.items():
        buckets = entry["buckets"]
        if not buckets or buckets[-1][0] != math.inf:
            fail("histogram %s%s has no +Inf bucket last" % (family.name, key))
        for (le_a, n_a), (le_b, n_b) in zip(buckets, buckets[1:]):
            if le_b <= le_a or n_b < n_a:
                fail("histogram %s%s buckets not cumulative at le=%s" % (family.name, key, le_b))
        if entry["count"] is None or entry["sum"] is None:
            fail("histogram %s%s lacks _count or _sum" % (family.name, key))
        if entry["count"] != buckets[-1][1]:
            fail("histogram %s%s: _count %s but +Inf bucket %s"
                 % (family.name, key, entry["count"], buckets[-1][1]))


def main():
    text = sys.stdin.read()
    # Every family announces itself: the parser would make an untyped family of a stray line.
    helped, typed = set(), set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split(" ")[2])
        elif line.startswith("# TYPE "):
            typed.add(line.split(" ")[2])
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError and others
        fail("does not parse: %r" % (e,))
    out = []
    for family in families:
        if family.type == "unknown" or family.type == "untyped":
            fail("family %s has no TYPE" % family.name)
        announced = family.name + ("_total" if family.type == "counter" else "")
        if announced not in helped and family.name not in helped:
            fail("family %s has no HELP" % family.name)
        if announced not in typed and family.name not in typed:
            fail("family %s has no TYPE line" % family.name)
        if family.type == "histogram":
            check_histogram(family)
        out.append("TYPE %s %s" % (family.name, family.type))
        out.append("HELP %s %s" % (family.name, json.dumps(family.documentation,
                                                          ensure_ascii=False)))
        for s in family.samples:
            if family.type == "counter" and s.value < 0:
                fail("counter %s is negative" % s.name)
            out.append("%s %r" % (canonical(s), s.value))
    print("\n".join(out))


main()
