"""Legacy links (`--link name:alias`, HostConfig.Links) as dockerd 20.10 makes
them (behaviour and messages asked of one): on the default bridge the linking
container gets the target's variables and an /etc/hosts line; the link's name
`/<parent>/<alias>` resolves to the target and `rm --link` removes it; on a
user-defined network a link is an alias the embedded DNS answers.

The daemon runs with its default bridge in a network namespace of its own
(test_network.own_daemon)."""

from __future__ import annotations

import re

import pytest

from test_network import own_daemon


@pytest.fixture(scope="module")
def ld(tmp_path_factory, busybox_tar):
    with own_daemon(tmp_path_factory, busybox_tar, ["--iptables=false"]) as d:
        yield d


@pytest.fixture
def clean(ld):
    yield
    for c in ld.client().get_json("/containers/json", {"all": 1}):
        ld.client().request("DELETE", f"/containers/{c['Id']}", {"force": 1},
                            check=False).close()
    for n in ld.client().get_json("/networks"):
        if n["Name"] not in ("bridge", "host", "none"):
            ld.client().request("DELETE", f"/networks/{n['Id']}", check=False).close()


def _ip(d, name: str) -> str:
    return d.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).stdout.strip()


def _target(d, name: str = "tgt", *args: str) -> tuple[str, str]:
    cid = d.docker("run", "-d", "--name", name, *args, "busybox", "sleep", "1000"
                   ).stdout.strip()
    return cid, _ip(d, name)


def test_link_env_and_hosts(ld, clean):
    cid, ip = _target(ld, "tgt", "-e", "FOO=bar", "-e", "X=a b", "-e", "HOME=/h",
                      "--expose", "80")
    out = ld.docker("run", "--rm", "--name", "linker", "--link", "tgt:al", "busybox", "sh",
                    "-c", "env; echo ---; cat /etc/hosts").stdout
    env, hosts = out.split("---\n")
    env_lines = set(env.splitlines())
    assert {f"AL_PORT=tcp://{ip}:80", f"AL_PORT_80_TCP=tcp://{ip}:80",
            f"AL_PORT_80_TCP_ADDR={ip}", "AL_PORT_80_TCP_PORT=80", "AL_PORT_80_TCP_PROTO=tcp",
            "AL_NAME=/linker/al", "AL_ENV_FOO=bar", "AL_ENV_X=a b"} <= env_lines, env
    assert not any(e.startswith(("AL_ENV_HOME", "AL_ENV_PATH")) for e in env_lines)
    # after --add-host's lines, before its own: alias, the target's hostname, its name
    lines = hosts.splitlines()
    assert f"{ip}\tal {cid[:12]} tgt" in lines, hosts
    assert lines.index(f"{ip}\tal {cid[:12]} tgt") == len(lines) - 2
    # a link by name alone: the alias is the name (given once); dashes become _
    out = ld.docker("run", "--rm", "--add-host", "foo:1.2.3.4", "--link", "tgt",
                    "--link", "tgt:My-Al", "-e", "TGT_NAME=own", "busybox", "sh", "-c",
                    "env; cat /etc/hosts").stdout
    assert "TGT_NAME=own" in out.splitlines()  # its own Env wins
    assert re.search(r"^MY_AL_NAME=/\w+/My-Al$", out, re.M), out
    assert f"1.2.3.4\tfoo\n{ip}\ttgt {cid[:12]}\n{ip}\tMy-Al {cid[:12]} tgt\n" in out \
        or f"1.2.3.4\tfoo\n{ip}\tMy-Al {cid[:12]} tgt\n{ip}\ttgt {cid[:12]}\n" in out, out


def test_link_inspect_names_exec(ld, clean):
    cid, ip = _target(ld, "tgt", "-e", "FOO=bar")
    ld.docker("run", "-d", "--name", "linker", "--link", "tgt:al", "busybox", "sleep", "1000")
    assert ld.docker("inspect", "-f", "{{json .HostConfig.Links}}", "linker").stdout == \
        '["/tgt:/linker/al"]\n'
    assert ld.docker("inspect", "-f", "{{json .HostConfig.Links}}", "tgt").stdout == "null\n"
    # the link's name resolves to the target
    assert ld.api("GET", "/containers/linker/al/json")[1]["Id"] == cid
    assert ld.docker("inspect", "-f", "{{.Id}}", "linker/al").stdout.strip() == cid
    names = {c["Id"]: c["Names"] for c in ld.api("GET", "/containers/json")[1]}
    assert names[cid] == ["/linker/al", "/tgt"]
    ps = ld.docker("ps", "--format", "{{.Names}}").stdout.split()
    assert sorted(ps) == ["linker", "tgt"]
    assert "linker/al,tgt" in ld.docker("ps", "--no-trunc").stdout
    # an exec gets the links' variables too
    out = ld.docker("exec", "linker", "env").stdout.splitlines()
    assert "AL_NAME=/linker/al" in out and "AL_ENV_FOO=bar" in out
    # a renamed target shows under its new name
    ld.docker("rename", "tgt", "tgt2")
    assert ld.docker("inspect", "-f", "{{json .HostConfig.Links}}", "linker").stdout == \
        '["/tgt2:/linker/al"]\n'


@pytest.mark.parametrize("hc,status,message", [
    ({"Links": ["nope:x"]}, 400, "could not get container for nope: No such container: nope"),
    ({"Links": [":x"]}, 400, 'could not get container for : invalid name or ID supplied: ""'),
    ({"Links": ["tgt:x:y"]}, 500, "bad format for links: tgt:x:y"),
    ({"Links": [""]}, 500, "empty string specified for links"),
    ({"Links": ["nope:x"], "NetworkMode": "host"}, 400,
     "conflicting options: host type networking can't be used with links. This would "
     "result in undefined behavior"),
    ({"Links": ["hostc:x"]}, 400,
     "conflicting options: host type networking can't be used with links. This would "
     "result in undefined behavior"),
    ({"Links": ["nope:x"], "NetworkMode": "container:tgt"}, 400,
     "conflicting options: container type network can't be used with links. This would "
     "result in undefined behavior"),
])
def test_link_create_errors(ld, clean, hc, status, message):
    _target(ld, "tgt")
    ld.docker("run", "-d", "--name", "hostc", "--net", "host", "busybox", "sleep", "1000")
    assert ld.api("POST", "/containers/create", {"Image": "busybox", "HostConfig": hc}) == \
        (status, {"message": message})


def test_link_start_errors(ld, clean):
    ld.docker("create", "--name", "stopped", "busybox", "true")
    ld.docker("create", "--name", "l2", "--link", "stopped:s", "busybox", "true")
    assert ld.api("POST", "/containers/l2/start") == (
        500, {"message": "Cannot link to a non running container: /stopped AS /l2/s"})
    st = ld.api("GET", "/containers/l2/json")[1]["State"]
    assert (st["ExitCode"], st["Error"], st["Status"]) == (
        128, "Cannot link to a non running container: /stopped AS /l2/s", "created")
    r = ld.docker("run", "--rm", "--link", "stopped:s", "busybox", "true", check=False)
    assert r.returncode == 125 and "Cannot link to a non running container: /stopped AS" in \
        r.stderr
    # a target on a user-defined network only
    ld.docker("network", "create", "un")
    _target(ld, "t2", "--net", "un")
    ld.docker("create", "--name", "l5", "--link", "t2:x", "busybox", "true")
    assert ld.api("POST", "/containers/l5/start") == (
        500, {"message": "Cannot link to /t2, as it does not belong to the default network"})
    # --net none (the API's: docker's CLI refuses it): registered, nothing to give
    _target(ld, "tgt")
    st, r = ld.api("POST", "/containers/create", {
        "Image": "busybox", "Cmd": ["sh", "-c", "env; cat /etc/hosts"],
        "HostConfig": {"Links": ["tgt:x"], "NetworkMode": "none"}})
    assert st == 201
    assert ld.docker("start", "-a", r["Id"]).stdout.count("X_") == 0
    name = ld.api("GET", f"/containers/{r['Id']}/json")[1]["Name"]
    assert ld.docker("inspect", "-f", "{{json .HostConfig.Links}}", r["Id"]).stdout == \
        f'["/tgt:{name}/x"]\n'
    # a removed target stays linked: the parent can't start, as with dockerd
    ld.docker("create", "--name", "l4", "--link", "tgt:x", "busybox", "true")
    ld.docker("rm", "-f", "tgt")
    assert ld.docker("inspect", "-f", "{{json .HostConfig.Links}}", "l4").stdout == \
        '["/tgt:/l4/x"]\n'
    assert ld.api("POST", "/containers/l4/start") == (
        500, {"message": "Cannot link to a non running container: /tgt AS /l4/x"})
    assert ld.api("GET", "/containers/l4/x/json") == (
        404, {"message": "No such container: l4/x"})


def test_rm_link(ld, clean):
    cid, ip = _target(ld, "tgt")
    ld.docker("run", "-d", "--name", "linker", "--link", "tgt:al", "busybox", "sleep", "1000")
    assert f"{ip}\tal " in ld.docker("exec", "linker", "cat", "/etc/hosts").stdout
    assert ld.api("DELETE", "/containers/tgt", query={"link": 1}) == (
        500, {"message": "Conflict, cannot remove the default link name of the container"})
    assert ld.api("DELETE", "/containers/nope/x", query={"link": 1}) == (
        404, {"message": "No such container: nope/x"})
    assert ld.api("DELETE", "/containers/linker/nope", query={"link": 1}) == (
        404, {"message": "No such container: linker/nope"})
    r = ld.docker("rm", "--link", "linker/al")
    assert r.stdout == "linker/al\n"
    assert ld.docker("inspect", "-f", "{{json .HostConfig.Links}}", "linker").stdout == "null\n"
    # the running parent's /etc/hosts loses the line; the target stays
    assert "\tal " not in ld.docker("exec", "linker", "cat", "/etc/hosts").stdout
    assert ld.docker("inspect", "-f", "{{.State.Running}}", "tgt").stdout == "true\n"
    assert ld.api("GET", "/containers/linker/al/json")[0] == 404
    # and through our CLI, on a stopped parent
    ld.docker("create", "--name", "l3", "--link", "tgt:al3", "busybox")
    assert ld.cli("rm", "--link", "/l3/al3").stdout == b"/l3/al3\n"
    assert ld.docker("inspect", "-f", "{{json .HostConfig.Links}}", "l3").stdout == "null\n"


def test_target_restart_updates_parent(ld, clean):
    cid, ip = _target(ld, "tgt", "--expose", "80")
    ld.docker("run", "-d", "--name", "linker", "--link", "tgt:al", "busybox", "sleep", "1000")
    ld.docker("stop", "-t", "0", "tgt")
    # dockerd builds an exec's link variables at create: a stopped target fails it
    assert ld.api("POST", "/containers/linker/exec", {"Cmd": ["env"]}) == (
        500, {"message": "Cannot link to a non running container: /tgt AS /linker/al"})
    _target(ld, "filler")  # takes the target's address
    ld.docker("start", "tgt")
    new_ip = _ip(ld, "tgt")
    assert new_ip != ip
    hosts = ld.docker("exec", "linker", "cat", "/etc/hosts").stdout
    assert f"{new_ip}\tal {cid[:12]} tgt\n" in hosts, hosts
    assert f"AL_PORT=tcp://{new_ip}:80" in ld.docker("exec", "linker", "env").stdout


def test_links_survive_daemon_restart(ld, clean):
    cid, ip = _target(ld, "tgt")
    ld.docker("create", "--name", "linker", "--link", "tgt:al", "busybox", "sleep", "1000")
    ld.stop()
    ld.start()
    assert ld.docker("inspect", "-f", "{{json .HostConfig.Links}}", "linker").stdout == \
        '["/tgt:/linker/al"]\n'
    assert ld.api("GET", "/containers/linker/al/json")[1]["Id"] == cid
    ld.docker("start", "linker")
    assert "AL_NAME=/linker/al" in ld.docker("exec", "linker", "env").stdout


def test_links_on_user_network_are_dns_aliases(ld, clean):
    ld.docker("network", "create", "un")
    _, ip = _target(ld, "t2", "--net", "un", "-e", "FOO=1")
    ip = ld.docker("inspect", "-f", "{{.NetworkSettings.Networks.un.IPAddress}}", "t2"
                   ).stdout.strip()
    for cli in (ld.docker, ld.cli):
        r = cli("run", "--rm", "--net", "un", "--link", "t2:al2", "busybox", "sh", "-c",
                "env; nslookup al2")
        out = r.stdout if isinstance(r.stdout, str) else r.stdout.decode()
        assert f"Address: {ip}" in out and "AL2_" not in out, out
    cid = ld.docker("create", "--net", "un", "--link", "t2:al3", "busybox").stdout.strip()
    # HostConfig.Links shows what is registered: nothing, on a user network
    assert ld.docker("inspect", "-f", "{{json .HostConfig.Links}} "
                     "{{json .NetworkSettings.Networks.un.Links}}", cid).stdout == \
        'null ["t2:al3"]\n'


def test_link_env_port_ranges():
    """Consecutive ports of one protocol are named as a range too; tcp first
    (dockerd 20.10's order varied between starts; this is moby's later one)."""
    from dockyard.containers.links import link_env, parse_link

    env = link_env("/web/db-1", "10.0.0.2", ["A=1", "PATH=/x", "B=c=d", "junk"],
                   {"82/tcp": {}, "53/udp": {}, "80/tcp": {}, "81/tcp": {}})
    assert env == [
        "DB_1_PORT=tcp://10.0.0.2:80",
        *[v for p in (80, 81, 82) for v in (
            f"DB_1_PORT_{p}_TCP=tcp://10.0.0.2:{p}", f"DB_1_PORT_{p}_TCP_ADDR=10.0.0.2",
            f"DB_1_PORT_{p}_TCP_PORT={p}", "DB_1_PORT_%d_TCP_PROTO=tcp" % p)],
        # a run is named when the next port breaks it
        "DB_1_PORT_53_UDP=udp://10.0.0.2:53", "DB_1_PORT_53_UDP_ADDR=10.0.0.2",
        "DB_1_PORT_53_UDP_PORT=53", "DB_1_PORT_53_UDP_PROTO=udp",
        "DB_1_PORT_80_TCP_START=tcp://10.0.0.2:80", "DB_1_PORT_80_TCP_PORT_START=80",
        "DB_1_PORT_80_TCP_END=tcp://10.0.0.2:82", "DB_1_PORT_80_TCP_PORT_END=82",
        "DB_1_NAME=/web/db-1", "DB_1_ENV_A=1", "DB_1_ENV_B=c=d"]
    assert link_env("/web/x", "10.0.0.2", [], None) == ["X_NAME=/web/x"]
    assert [parse_link(s) for s in ("db", "db:x", "/db:/web/x", "db:a/b", "db:")] == [
        ("db", "db"), ("db", "x"), ("db", "x"), ("db", "a/b"), ("db", "")]
