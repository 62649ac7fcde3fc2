"""testcontainers-python (from PyPI) against Dockyard: containers started
with its wait strategies (logs, HTTP, port, healthcheck, composite), reached on their published ports, on a network of
its own, and cleaned up. Its reaper (Ryuk) is an image from Docker Hub, out
of reach here, so the run uses its documented reaper-off mode
(TESTCONTAINERS_RYUK_DISABLED) and stops what it started itself.

The client runs in the daemon's network namespace (published ports are on
that namespace's loopback and bridge)."""

from __future__ import annotations

import subprocess
import sys

from test_network import own_daemon

SCRIPT = r'''
import os, urllib.request
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import (CompositeWaitStrategy, HealthcheckWaitStrategy,
    HttpWaitStrategy, LogMessageWaitStrategy, PortWaitStrategy)

serve = "mkdir -p /www && echo hello > /www/index.html && echo ready && exec httpd -f -p 80 -h /www"
with Network() as net:
    web = (DockerContainer("busybox").with_command(["sh", "-c", serve]).with_exposed_ports(80)
           .with_network(net).with_network_aliases("web").with_env("APP", "1")
           .waiting_for(CompositeWaitStrategy(LogMessageWaitStrategy("ready"),
                                              HttpWaitStrategy(80).for_status_code(200),
                                              PortWaitStrategy(80))))
    with web:
        host, port = web.get_container_host_ip(), web.get_exposed_port(80)
        body = urllib.request.urlopen(f"http://{host}:{port}/", timeout=5).read()
        print("BODY", body.decode().strip())
        code, out = web.exec(["sh", "-c", "echo $APP"])
        print("EXEC", code, out.decode().strip())
        stdout, _ = web.get_logs()
        print("LOGS", stdout.decode().splitlines()[0])
        client = DockerContainer("busybox").with_network(net).with_command(
            ["sh", "-c", "printf 'GET / HTTP/1.0\r\n\r\n' | nc web 80 | tail -1; sleep 30"])
        with client:
            client.waiting_for(LogMessageWaitStrategy("hello"))
            LogMessageWaitStrategy("hello").wait_until_ready(client)
            print("PEER", client.get_logs()[0].decode().strip())
healthy = DockerContainer("busybox", healthcheck={
    "test": ["CMD-SHELL", "test -f /tmp/ready"], "interval": 200_000_000, "retries": 50}).with_command(
    ["sh", "-c", "sleep 1; touch /tmp/ready; exec sleep 60"]).waiting_for(HealthcheckWaitStrategy())
with healthy:
    print("HEALTH", healthy.get_wrapped_container().attrs["State"]["Health"]["Status"])
print("DONE")
'''


def test_testcontainers_without_reaper(tmp_path_factory, tmp_path, busybox_tar):
    script = tmp_path / "tc.py"
    script.write_text(SCRIPT)
    with own_daemon(tmp_path_factory, busybox_tar, []) as d:
        env = dict(d.env(), TESTCONTAINERS_RYUK_DISABLED="true")
        r = subprocess.run(["nsenter", f"--net=/run/netns/{d.netns}", sys.executable, str(script)],
                           env=env, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        lines = r.stdout.splitlines()
        assert "BODY hello" in lines and "EXEC 0 1" in lines and "LOGS ready" in lines
        assert "PEER hello" in lines and "HEALTH healthy" in lines and lines[-1] == "DONE"
        # what it started, it removed: containers and its network
        assert d.docker("ps", "-aq").stdout == ""
        nets = d.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert nets == ["bridge", "host", "none"]
