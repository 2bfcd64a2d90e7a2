#!/usr/bin/python3
"""The Kubernetes example agrees with itself and with lameduck-hello.

Reads examples/kubernetes/lameduck-hello.yaml (or --manifest FILE), checks that its numbers
agree with the flags it passes (the grace period covers the stop, the readiness probe notices
the drain within the lame-duck delay, the probes and the Service reach the ports the server
listens on, no preStop sleep), then runs lameduck-hello with the manifest's very arguments, on
127.0.0.1 ports from the kernel, and probes it as the kubelet would, through a SIGTERM.

Run by ctest with Debian's python3-yaml (/usr/bin/python3):
  kubernetes_manifest_test.py --manifest FILE --hello PATH/lameduck-hello
"""

import argparse
import http.client
import math
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import unittest

import yaml

ARGS = None  # the command line: --manifest and --hello

# What a probe and a kubelet answer in: probes succeed on 200-399 (Kubernetes' httpGet rule).
PROBE_OK = range(200, 400)


def flag_values(args, name):
    """Every value of --name in an argument list, given as "--name VALUE" or "--name=VALUE"."""
    values = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == name and i + 1 < len(args):
            values.append(args[i + 1])
            i += 2
            continue
        if arg.startswith(name + "="):
            values.append(arg[len(name) + 1:])
        i += 1
    return values


def flag_value(args, name, default=None):
    values = flag_values(args, name)
    return values[-1] if values else default


def cpu_cores(quantity):
    """A Kubernetes CPU quantity ("500m", "2", 1.5) in cores."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def port_of(address):
    """The port of "[NAME=]HOST:PORT"."""
    return int(address.rsplit(":", 1)[1])


class Manifest:
    """The Deployment's server container and the Service in front of it."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            documents = [d for d in yaml.safe_load_all(f) if d]
        kinds = {}
        for d in documents:
            kinds.setdefault(d["kind"], []).append(d)
        if len(kinds.get("Deployment", [])) != 1 or len(kinds.get("Service", [])) != 1:
            raise AssertionError(f"{path}: expected one Deployment and one Service, found "
                                 f"{ {k: len(v) for k, v in kinds.items()} }")
        self.deployment = kinds["Deployment"][0]
        self.service = kinds["Service"][0]
        self.pod = self.deployment["spec"]["template"]["spec"]
        servers = [c for c in self.pod["containers"]
                   if os.path.basename((c.get("command") or [""])[0]) == "lameduck-hello"]
        if len(servers) != 1:
            raise AssertionError(f"{path}: no container whose command is lameduck-hello itself "
                                 "(exec form, no shell: the kubelet's SIGTERM must reach it)")
        self.container = servers[0]
        self.args = list(self.container["command"][1:]) + list(self.container.get("args", []))

    def seconds(self, flag, default):
        return float(flag_value(self.args, flag, default))

    def container_port(self, port):
        """A probe's or Service's port (a number, or a containerPort's name) as a number."""
        if isinstance(port, int):
            return port
        for p in self.container.get("ports", []):
            if p.get("name") == port:
                return p["containerPort"]
        raise AssertionError(f"no containerPort is named {port!r}")


class ManifestNumbers(unittest.TestCase):
    """What can be checked by reading the manifest."""

    @classmethod
    def setUpClass(cls):
        cls.m = Manifest(ARGS.manifest)

    def test_the_grace_period_outlasts_the_lame_duck_delay_and_the_drain(self):
        lame_duck = self.m.seconds("--lame-duck", 0)
        drain = self.m.seconds("--drain-timeout", 30)  # lameduck-hello's default
        grace = self.m.pod.get("terminationGracePeriodSeconds", 30)  # Kubernetes' default
        # The stop ends within --drain-timeout, which the delay counts against; the grace
        # keeps a delay's worth on top for a margin.
        self.assertGreater(grace, lame_duck + drain,
                           f"terminationGracePeriodSeconds {grace} must exceed --lame-duck "
                           f"{lame_duck} + --drain-timeout {drain}: the kubelet's SIGKILL "
                           "would cut the drain")
        self.assertGreater(drain, lame_duck,
                           f"--drain-timeout {drain} must exceed --lame-duck {lame_duck}: the "
                           "deadline counts from the SIGTERM, and would pass inside the delay")

    def test_the_readiness_probe_notices_the_drain_within_the_lame_duck_delay(self):
        lame_duck = self.m.seconds("--lame-duck", 0)
        probe = self.m.container.get("readinessProbe")
        self.assertIsNotNone(probe, "no readinessProbe")
        detection = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
        self.assertLess(detection, lame_duck,
                        f"the readiness probe takes up to {detection} s (periodSeconds x "
                        f"failureThreshold) to see the 503, longer than --lame-duck "
                        f"{lame_duck}: the port would close while still counted as serving")

    def test_there_is_no_pre_stop_sleep(self):
        for c in self.m.pod["containers"]:
            pre_stop = (c.get("lifecycle") or {}).get("preStop")
            self.assertIsNone(pre_stop, f"container {c['name']} has a preStop hook: the "
                                        "lame-duck delay replaces it (docs/kubernetes.md)")

    def test_every_probe_asks_the_health_port(self):
        health = flag_values(self.m.args, "--health-listen")
        self.assertEqual(len(health), 1, "one --health-listen address expected")
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = self.m.container.get(kind)
            self.assertIsNotNone(probe, f"no {kind}")
            port = self.m.container_port(probe["httpGet"]["port"])
            self.assertEqual(port, port_of(health[0]),
                             f"{kind} asks port {port}, the server answers probes on "
                             f"{health[0]} (--health-listen)")

    def test_the_service_reaches_the_listen_port_and_not_the_health_port(self):
        listen = [port_of(a) for a in flag_values(self.m.args, "--listen")]
        health = [port_of(a) for a in flag_values(self.m.args, "--health-listen")]
        self.assertTrue(listen, "no --listen")
        for p in self.m.service["spec"]["ports"]:
            target = self.m.container_port(p.get("targetPort", p["port"]))
            self.assertIn(target, listen, f"the Service's port {p['port']} goes to {target}, "
                                          f"where the server does not listen ({listen})")
            self.assertNotIn(target, health, "the Service exposes the probes' port")
        selector = self.m.service["spec"]["selector"]
        labels = self.m.deployment["spec"]["template"]["metadata"]["labels"]
        self.assertLessEqual(selector.items(), labels.items(),
                             "the Service's selector does not select the Deployment's pods")

    def test_one_event_loop_per_cpu_requested(self):
        threads = flag_value(self.m.args, "--threads")
        self.assertIsNotNone(threads, "without --threads the server runs one loop per core of "
                                      "the node, whatever the pod may use")
        resources = self.m.container.get("resources", {})
        cpu = (resources.get("limits", {}).get("cpu") or resources.get("requests", {}).get("cpu"))
        self.assertIsNotNone(cpu, "no CPU request")
        self.assertEqual(int(threads), max(1, math.ceil(cpu_cores(cpu))),
                         f"--threads {threads} for {cpu} CPU")

    def test_a_rolling_update_starts_a_new_pod_before_stopping_one(self):
        rolling = self.m.deployment["spec"]["strategy"]["rollingUpdate"]
        self.assertEqual(rolling.get("maxUnavailable"), 0)
        self.assertGreaterEqual(rolling.get("maxSurge", 0), 1)


class Server:
    """lameduck-hello started with the manifest's arguments, each address on 127.0.0.1 with a
    port from the kernel; `ports` maps the manifest's ports to the ones it got."""

    def __init__(self, args):
        self.ports = {}
        listens = []  # the manifest's ports in the order the server reports its addresses
        argv = [ARGS.hello]
        i = 0
        while i < len(args):
            arg, value = args[i], None
            if arg in ("--listen", "--health-listen", "--tls-listen") and i + 1 < len(args):
                value, i = args[i + 1], i + 2
            elif arg.split("=", 1)[0] in ("--listen", "--health-listen", "--tls-listen"):
                arg, value = arg.split("=", 1)
                i += 1
            else:
                argv.append(arg)
                i += 1
                continue
            listens.append((arg, port_of(value)))
            name = value.split("=", 1)[0] + "=" if re.match(r"^[A-Za-z_-]+=", value) else ""
            argv += [arg, name + "127.0.0.1:0"]
        # hello prints its plain addresses, then HTTPS, then health: sort the same way.
        order = {"--listen": 0, "--tls-listen": 1, "--health-listen": 2}
        listens.sort(key=lambda l: order[l[0]])
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        stdin=subprocess.DEVNULL)
        text = self._read_until(lambda t: "try:" in t, 10)
        reported = [int(p) for p in re.findall(r"listening on https?://[^\s]*:(\d+)", text)]
        if len(reported) != len(listens):
            self.process.kill()
            raise AssertionError(f"lameduck-hello {' '.join(argv[1:])} did not report its "
                                 f"addresses: {text!r}, {self.process.stderr.read()!r}")
        for (_, wanted), got in zip(listens, reported):
            self.ports[wanted] = got

    def _read_until(self, done, within):
        text = ""
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + within
        while not done(text) and time.monotonic() < deadline:
            if selector.select(deadline - time.monotonic()):
                chunk = os.read(self.process.stdout.fileno(), 4096)
                if not chunk:
                    break
                text += chunk.decode()
        selector.close()
        return text

    def get(self, manifest_port, path):
        """The status and body of GET path on the server's port for the manifest's port."""
        c = http.client.HTTPConnection("127.0.0.1", self.ports[manifest_port], timeout=5)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


class ManifestFlagsAreReal(unittest.TestCase):
    """lameduck-hello started with the manifest's arguments answers the probes as the
    manifest expects, through a SIGTERM."""

    def test_the_probes_answer_as_the_manifest_expects_through_a_stop(self):
        m = Manifest(ARGS.manifest)
        server = Server(m.args)
        try:
            probes = {k: m.container[k]["httpGet"]
                      for k in ("readinessProbe", "livenessProbe", "startupProbe")}
            for kind, probe in probes.items():
                status, body = server.get(m.container_port(probe["port"]), probe["path"])
                self.assertIn(status, PROBE_OK, f"{kind} {probe['path']}: {status} {body!r}")
            service_port = m.container_port(m.service["spec"]["ports"][0]["targetPort"])
            self.assertEqual(server.get(service_port, "/")[0], 200)

            lame_duck = m.seconds("--lame-duck", 0)
            grace = m.pod.get("terminationGracePeriodSeconds", 30)
            sent = time.monotonic()
            server.process.send_signal(signal.SIGTERM)  # what the kubelet sends
            ready = probes["readinessProbe"]
            # The readiness probe fails from the signal on (the signal is handled on its own
            # thread: asked until it does, a few milliseconds).
            while server.get(m.container_port(ready["port"]), ready["path"])[0] in PROBE_OK:
                self.assertLess(time.monotonic() - sent, 2, "readiness still passes")
                time.sleep(0.01)
            # ...while the server still serves and liveness passes: the lame-duck delay.
            self.assertEqual(server.get(service_port, "/")[0], 200)
            live = probes["livenessProbe"]
            self.assertIn(server.get(m.container_port(live["port"]), live["path"])[0], PROBE_OK)
            self.assertLess(time.monotonic() - sent, lame_duck)
            # And it exits 0 within the grace period, not before the delay is over.
            status = server.process.wait(timeout=grace)
            took = time.monotonic() - sent
            self.assertEqual(status, 0, server.process.stderr.read().decode())
            self.assertGreaterEqual(took, lame_duck * 0.95)
            self.assertLess(took, grace)
        finally:
            server.stop()


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--manifest",
                        default=os.path.join(root, "examples/kubernetes/lameduck-hello.yaml"))
    parser.add_argument("--hello", required=True, help="the lameduck-hello binary to run")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
