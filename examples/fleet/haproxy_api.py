#!/usr/bin/env python3
"""HAProxy's runtime API on its Unix socket, for the fleet scripts (standard library only: no
socat needed).

    haproxy_api.py SOCKET run COMMAND...        one command ("show servers state hosts"), its
                                                answer on standard output
    haproxy_api.py SOCKET wait SERVER STATE SECONDS SINCE
                                                polls `show servers state hosts` every 10 ms
                                                until SERVER is DOWN or UP (STATE), then prints
                                                the seconds since SINCE (epoch seconds, when the
                                                caller acted); exit status 1 after SECONDS
    haproxy_api.py SOCKET status                `show stat` of backend hosts, as a table
    haproxy_api.py SOCKET counters              the backend's retries, redispatches, 5xx sent,
                                                connection and response errors: wretr=N ...
"""
import csv
import socket
import sys
import time

BACKEND = "hosts"
# srv_op_state of `show servers state` (HAProxy's enum srv_state).
STATES = {"DOWN": "0", "UP": "2"}


def run(path, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode()


def op_state(path, server):
    """The server's srv_op_state, or None when HAProxy does not answer."""
    try:
        lines = run(path, f"show servers state {BACKEND}").splitlines()
    except OSError:
        return None
    # Line 1 is the format version, line 2 the header ("# be_id be_name srv_id srv_name
    # srv_addr srv_op_state ..."): fields by name, not by position.
    head = next((l[2:].split() for l in lines if l.startswith("# ")), [])
    for line in lines:
        fields = line.split()
        if len(fields) == len(head) and not line.startswith("#"):
            row = dict(zip(head, fields))
            if row.get("be_name") == BACKEND and row.get("srv_name") == server:
                return row.get("srv_op_state")
    return None


def show_stat(path):
    lines = [l[2:] if l.startswith("# ") else l for l in run(path, "show stat").splitlines()]
    return [r for r in csv.DictReader(l for l in lines if l.strip()) if r["pxname"] == BACKEND]


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    path, cmd, args = argv[1], argv[2], argv[3:]
    if cmd == "run" and args:
        sys.stdout.write(run(path, " ".join(args)))
    elif cmd == "wait" and len(args) == 4 and args[1] in STATES:
        server, want, bound, since = args[0], STATES[args[1]], float(args[2]), float(args[3])
        deadline = time.monotonic() + bound
        while op_state(path, server) != want:
            if time.monotonic() > deadline:
                return 1
            time.sleep(0.01)
        print(f"{time.time() - since:.2f}")
    elif cmd == "status" and not args:
        cols = [("svname", "server"), ("status", "status"), ("check_status", "check"),
                ("check_duration", "check ms"), ("lastchg", "since s"), ("scur", "sessions"),
                ("stot", "total"), ("hrsp_5xx", "5xx"), ("wretr", "retries"),
                ("wredis", "redispatched")]
        table = [[h for _, h in cols]] + [[r.get(k, "") for k, _ in cols] for r in show_stat(path)]
        width = [max(len(row[i]) for row in table) for i in range(len(cols))]
        for row in table:
            print("  ".join(c.ljust(width[i]) for i, c in enumerate(row)).rstrip())
    elif cmd == "counters" and not args:
        b = next(r for r in show_stat(path) if r["svname"] == "BACKEND")
        print(" ".join(f"{k}={b[k] or 0}" for k in ("wretr", "wredis", "hrsp_5xx", "econ", "eresp")))
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
