"""The `rootless` command group: what running Dockyard as an ordinary user
needs from this host (`check`), and a `systemd --user` service for it
(`install`)."""

from __future__ import annotations

import os
import sys

import typer

app = typer.Typer(help="Check this host for rootless use, install its user service",
                  no_args_is_help=True,
                  add_completion=False)


@app.command("check")
def check() -> None:
    """Check each prerequisite of rootless use, with what to do about it
    (exit status 1 when rootless cannot run at all)"""
    from ..rootless import check_host

    if os.geteuid() == 0:
        print("running as root: run this as the user who will run Dockyard", file=sys.stderr)
    results = check_host()
    width = max(len(c.name) for c in results)
    for c in results:
        print(f"{c.name:<{width}}  {c.status:<4}  {c.detail}")
        if c.fix and c.status != "ok":
            print(f"{'':<{width}}        fix: {c.fix}")
    if any(c.status == "fail" for c in results):
        raise SystemExit(1)


@app.command("install")
def install() -> None:
    """Write a systemd user service that runs the rootless daemon
    (~/.config/systemd/user/dockyard.service) and say how to start it"""
    import pwd

    from ..rootless import install_unit

    uid = os.geteuid()
    if uid == 0:
        print("rootless install is for an ordinary user: root runs `dockyard daemon` itself",
              file=sys.stderr)
        raise SystemExit(1)
    path = install_unit(uid, sys.executable)
    user = pwd.getpwuid(uid).pw_name
    print(f"wrote {path}\n"
          "start it now and at each login:\n"
          "  systemctl --user daemon-reload && systemctl --user enable --now dockyard\n"
          "keep it running after you log out (as root):\n"
          f"  loginctl enable-linger {user}")
