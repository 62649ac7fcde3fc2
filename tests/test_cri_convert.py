"""The CRI container config → Docker create body mapping (dockyard.cri.convert),
on messages as the server turns them into dicts: no daemon needed."""

from __future__ import annotations

import pytest
from google.protobuf.json_format import MessageToDict

from dockyard.cri import convert, proto

pb, _ = proto.load()


def security_opts(sc: "pb.LinuxContainerSecurityContext | None") -> list[str]:
    cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="c"),
                             image=pb.ImageSpec(image="busybox"))
    if sc is not None:
        cfg.linux.security_context.CopyFrom(sc)
    body = MessageToDict(cfg, preserving_proto_field_name=True)
    _, hc, _, _ = convert.container(body, "", "sha256:" + "0" * 64)
    return hc.get("SecurityOpt") or []


@pytest.mark.parametrize("sc, want", [
    # no profile at all: unconfined, as containerd and CRI-O (critest "nil profile")
    (None, ["seccomp=unconfined"]),
    (pb.LinuxContainerSecurityContext(), ["seccomp=unconfined"]),
    # a profile message with the default type: the runtime's default profile
    (pb.LinuxContainerSecurityContext(seccomp=pb.SecurityProfile()), []),
    (pb.LinuxContainerSecurityContext(seccomp=pb.SecurityProfile(
        profile_type=pb.SecurityProfile.Unconfined)), ["seccomp=unconfined"]),
    # the deprecated path field
    (pb.LinuxContainerSecurityContext(seccomp_profile_path="runtime/default"), []),
    (pb.LinuxContainerSecurityContext(seccomp_profile_path="unconfined"),
     ["seccomp=unconfined"]),
])
def test_seccomp_profile(sc, want):
    assert security_opts(sc) == want
