"""Type stubs for `dockyard._core`, the Rust core. Every call that touches the
disk releases the GIL. Errors are `dockyard.errors` classes (LayerCorrupt,
UnsafePath, MountError) or OSError."""

from typing import Literal, Sequence

# --- digest -----------------------------------------------------------------
def sha256_file(path: str) -> str:
    """`sha256:<hex>` of a file."""

def sha256_bytes(data: bytes) -> str: ...

class Sha256:
    def __init__(self) -> None: ...
    def update(self, data: bytes) -> None: ...
    def digest(self) -> str:
        """Finish; returns `sha256:<hex>`."""

# --- archive ----------------------------------------------------------------
Whiteouts = Literal["overlay", "naive", "plain"]
Compression = Literal["none", "gzip", "zstd"]

class LayerInfo:
    digest: str
    """sha256 of the stream as given (compressed form)."""
    diff_id: str
    """sha256 of the uncompressed tar."""
    size: int
    """bytes of the uncompressed tar."""
    compressed_size: int
    compression: str
    """"none", "gzip" or "zstd" (detected from magic bytes when extracting)."""

def extract_layer_file(
    src: str, target: str, whiteouts: Whiteouts = "overlay", split: str | None = None
) -> LayerInfo:
    """Extract a (maybe compressed) layer tarball into `target` (an existing dir).

    whiteouts="overlay": `.wh.x` becomes a 0/0 char device `x`, `.wh..wh..opq` sets
    `trusted.overlay.opaque=y` on its directory. whiteouts="naive": deletions are
    applied to `target` (which holds a copy of the parent, as vfs/btrfs do).
    whiteouts="plain": not a layer (ADD of an archive): `.wh.*` entries are plain files.

    Compression is detected from magic bytes; digest and diff_id are computed in
    the same pass (the tar stream is drained to its end, padding included).
    Every path stays beneath `target` (openat2 RESOLVE_IN_ROOT). Raises
    UnsafePath for a breakout (`..` above the root, hardlink target outside,
    symlink target climbing above the root), LayerCorrupt for a bad or truncated
    stream, OSError otherwise. On any failure `target` is emptied again, so pass
    a fresh directory (in naive mode: a copy of the parent that you discard)."""

class LayerUnpacker:
    """Streaming extraction: feed chunks as they arrive (HTTP body, pull).

    Decompression and file writes run on two background threads; `write`
    hands `bytes` over without copying (other buffers are copied) and blocks,
    without the GIL, while the extractor is behind. Errors surface from the
    next `write` or from `finish`; the target is then empty (see
    extract_layer_file). Dropping an unfinished unpacker aborts it."""
    def __init__(
        self, target: str, whiteouts: Whiteouts = "overlay", split: str | None = None,
        keep: str | None = None
    ) -> None:
        """With `split`, the layer's tar-split record is written to that path
        when extraction succeeds (see `assemble_layer`). With `keep`, the
        stream as given (compressed) is written to that path by a thread of
        its own, not synced, and removed again unless extraction and every
        write succeeded."""
    def write(self, data: bytes) -> None: ...
    def finish(self) -> LayerInfo:
        """Wait for extraction to end; raises LayerCorrupt on a bad/truncated stream."""
    def abort(self) -> None:
        """Stop and empty the target (no-op after a successful finish)."""

def layer_content_size(split: str) -> int:
    """Bytes of regular-file contents in a layer, from its tar-split record:
    Docker's layer size (the tar's length counts headers and padding too)."""

def assemble_layer(split: str, root: str, dest: str | int,
                   compression: Compression = "none", level: int | None = None) -> LayerInfo:
    """Rebuild a layer's exact original tar from its tar-split record (written
    by extraction with `split=`) and its extracted files under `root`, to a
    path or an fd (not closed), compressed on a second thread if asked (push;
    `level`: gzip 0-9, default 6; zstd 1-22, default 3).
    The tar hashes to the recorded diff ID unless the files changed, which
    raises LayerCorrupt; `digest` is that of the bytes written."""

#: (uid ranges, gid ranges), each (container ID, host ID, size).
IdRanges = tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]

def shift_ids(root: str, id_map: IdRanges) -> None:
    """--userns-remap: give everything under `root` the host IDs of its
    container IDs; entries already owned by host IDs of the map stay (vfs
    layers start as a shifted copy; `root` itself is left alone where host
    and container IDs overlap). Set-ID bits and file capabilities are kept.
    An ID outside the ranges raises LayerCorrupt."""

def create_layer(
    root: str,
    dest: str | int,
    compression: Compression = "none",
    overlay_upper: bool = False,
    parent_root: str | None = None,
    id_map: IdRanges | None = None,
) -> LayerInfo:
    """Write a layer tar of `root` to a path or an open fd (not closed).
    id_map (--userns-remap): headers carry the container's IDs of the host's
    owners (IDs outside the ranges are kept).

    Shaped like Docker's (Go archive/tar, PAX): sorted walk order, no root
    entry, PAX records only for long/non-ASCII names, big ids and
    `SCHILY.xattr.*`, mtimes in seconds, hardlinks by (dev, ino), sockets
    skipped; user/group names are left empty. gzip is level 6, zstd level 3.
    overlay_upper: `root` is an overlay upper dir; 0/0 char devices become
    `.wh.<name>` entries (mode 0600, as moby writes them), opaque dirs get
    `.wh..wh..opq`, overlayfs' own trusted.overlay.* xattrs are dropped.
    parent_root: write only the changes from `parent_root` to `root` (vfs/btrfs),
    with whiteouts for deletions (mode 0)."""

# --- union (storage driver primitives) ----------------------------------------
# Errors: MountError (mount/unmount), StorageDriverError (btrfs misuse: not on
# btrfs, not a subvolume), OSError with errno and filename for the rest.
def mount_overlay(
    lowers: Sequence[str],
    upper: str | None,
    work: str | None,
    target: str,
    cwd: str | None = None,
    options: str | None = None,
) -> None:
    """Mount overlayfs. `lowers` are uppermost first. With `cwd`, paths are
    relative to it (short links keep deep images under the page-size limit on
    mount data: whole paths are used when they fit the page, else the chdir
    happens in a helper thread, the process cwd never changes). Without upper/work the mount is read-only. `options`: extra
    overlay options put first, e.g. "index=off". MountError when the data is over
    a page or the kernel refuses."""

def unmount(target: str, detach: bool = False) -> None:
    """umount2(target, UMOUNT_NOFOLLOW [| MNT_DETACH]). MountError("... not a mount
    point") if nothing is mounted there; FileNotFoundError if it doesn't exist."""

def mount_tmpfs(target: str, size: int) -> None:
    """A private tmpfs of at most `size` bytes (nosuid, nodev, mode 0700) on `target`."""

def record_layer_split(src: str, split: str) -> None:
    """The tar-split record of the plain layer tar `src` whose files already
    sit where its names say beneath the layer root (a layer filled in place)."""

def index_build_context(
    src: str, plain_out: str
) -> tuple[list[tuple[bytes, int, int, int, bytes, int, str]], bool]:
    """Index a build context tar (plain, gzip or zstd) in one pass: (key,
    typeflag, mode, size, linkname, data offset, tarsum-v1 sum) per entry,
    and whether a compressed `src` was written out plain to `plain_out`."""

def copy_tree(src: str, dst: str) -> None:
    """Copy a tree exactly (owners, modes incl. setuid, xattrs incl. trusted.*,
    hardlinks, symlinks, devices, fifos, sparse files, times). `dst` is created
    or must be an existing directory. Reflinks (FICLONE) when possible, then
    copy_file_range per data segment."""

def copy_into(src_fd: int, dst_fd: int, src_name: str, dst_name: str,
              owner: tuple[int, int] | None = None, chmod: int | None = None,
              capability: bool = False) -> int:
    """Copy the contents of the directory open at `src_fd` into the one open
    at `dst_fd` as a Dockerfile COPY does: merged into what is there (a
    directory stays, anything else in the way is replaced), every entry
    owned by `owner` (else the source's; setuid, and setgid with group exec,
    dropped from non-directories as a chown does), `chmod` bits if given,
    times in whole seconds, only `security.capability` kept with
    `capability`, sockets passed over; the destination's own metadata
    untouched. Returns the entries made. The names only name the trees in
    errors."""

CopyUpResult = Literal["missing", "file", "copied", "skipped"]

def copy_up(rootfs: str, path: str, dest: str) -> CopyUpResult:
    """Volume copy-up (dockerd's): copy the directory `path` (absolute, inside the
    container) of the mounted container root `rootfs` into the volume's empty data
    directory `dest`, exactly as `copy_tree` does, and give `dest` itself the
    directory's owner, mode, xattrs and times.

    `path` is resolved beneath `rootfs` with openat2(RESOLVE_IN_ROOT): symlinks,
    the last component's too, resolve as if `rootfs` were `/`. The walk then goes
    through directory fds only and never follows a symlink; creates in `dest` too.

    Returns "missing" (no such path: nothing done), "file" (not a directory: the
    caller refuses the mount, "cannot mount volume over existing file"),
    "skipped" (`dest` isn't empty: never copied into) or "copied". Other lookup
    failures raise OSError (e.g. ENOTDIR when a component is a file).

    Crash safety: `dest/../.copyup-incomplete` (in the volume's own directory) is
    created and made durable before the first write and removed only after the
    copy and a syncfs of `dest`'s filesystem. A call that finds it empties `dest`
    and starts over, so a volume with that marker holds no user data and must get
    a copy_up call before a container uses it. On an error `dest` is emptied again.
    Calls on the same volume are serialised (flock on its directory)."""

def fs_type(path: str) -> str:
    """Backing filesystem name of `path` (Docker's names: extfs, xfs, btrfs, tmpfs,
    overlayfs, zfs, nfs, ...; "<unknown>" otherwise)."""

def fs_magic(path: str) -> int:
    """The raw statfs f_type of `path`'s filesystem."""

def supports_d_type(path: str) -> bool:
    """Whether the filesystem of directory `path` fills in d_type (overlay needs
    it; xfs with ftype=0 doesn't). Creates and removes a scratch dir in `path`."""

def btrfs_subvolume_create(path: str) -> None: ...
def btrfs_subvolume_snapshot(src: str, dst: str, readonly: bool = False) -> None: ...
def btrfs_subvolume_delete(path: str) -> None:
    """Delete a subvolume and every subvolume nested in it."""

def is_btrfs_subvolume(path: str) -> bool:
    """True for the root directory of a btrfs subvolume (inode 256 on btrfs)."""

# --- runtime (execution driver, native) --------------------------------------
# The container is cloned by a per-container `dockyard-shim` (bundled at
# `shim_path()`), never inside the Python process. The shim double-forks into
# its own session, so it outlives the daemon. Files in its state dir:
#   spec.json (written by spawn_shim), shim.pid, pid (container process, host
#   pid ns), exit.json (atomic; {"exit_code", "signal", "oom_killed", "pid",
#   "started_at", "finished_at"[, "error"]}), attach.sock (removed at exit),
#   shim.log (debug only).
# Spec JSON (all keys optional but rootfs/args; see `default_spec`):
#   rootfs, readonly_rootfs, args, env ["K=v"], cwd, user {uid, gid,
#   additional_gids, umask}, hostname, domainname, namespaces [{type, path?}]
#   (pid mount uts ipc network cgroup; `path` joins e.g. /proc/N/ns/net),
#   mounts [{destination, type, source, options}] (OCI options: ro, nosuid,
#   bind/rbind, rprivate/rslave/rshared..., others become fs data; type
#   "cgroup" mounts the container's cgroup view), masked_paths,
#   readonly_paths, capabilities {bounding, effective, permitted, inheritable,
#   ambient} (null = Docker's 14), no_new_privileges, rlimits [{type:
#   "RLIMIT_NOFILE", soft, hard}], seccomp ("default" | null | a Docker/OCI
#   profile object, already resolved against the caps by containers/spec.py),
#   cgroup {path: "/dockyard/<id>", resources {memory, memory_swap,
#   memory_reservation, cpu_shares, cpu_quota, cpu_period, cpuset_cpus,
#   cpuset_mems, pids_limit}}, oom_score_adj, terminal, console_size [rows,
#   cols], sysctl {"net.ipv4.ip_forward": "1"}.
# Attach socket protocol (SOCK_STREAM, frames `>BI` type + length, payload):
#   to shim:   0 stdin data | 1 close stdin | 2 resize (>HH rows, cols) |
#              3 signal (>i) | 4 start (wait_start) | 5 hello (mask byte:
#              1 stdin, 2 stdout, 4 stderr; default all)
#   from shim: 1 stdout | 2 stderr | 3 exit (exit.json payload, then close) |
#              5 start result (JSON {} or {"error", "exit_code"})
# runc mode (`dockyard-shim run ... --runtime runc --bundle DIR --runc-root DIR
#   [--runc PATH]`, started by `dockyard.containers.oci.spawn_shim`, not by
#   spawn_shim below): runc makes the container from the OCI bundle
#   (`runc create`, then `runc start` at once or on the start frame); the
#   shim, a child subreaper, adopts and reaps its init, so the files and the
#   attach protocol are the same. Extra files: bundle/config.json, runc.log,
#   runc.pid. At exit the shim runs `runc delete --force` before exit.json.

class ContainerStartError(DockyardError):  # noqa: F821 (dockyard.errors.DockyardError)
    """The process could not be started. `exit_code`: Docker's (127 command not
    found, 126 not executable, 128/125 other). Message as Docker's, e.g.
    'exec: "nosuchcmd": executable file not found in $PATH'."""
    exit_code: int

class _ShimInfo(dict):  # the dict returned by spawn_shim
    shim_pid: int
    pid: int
    created: bool
    attach_socket: str
    exit_file: str

def shim_path() -> str:
    """$DOCKYARD_SHIM, else `<dockyard package>/_bin/dockyard-shim`."""

def spawn_shim(
    id: str,
    state_dir: str,
    spec_json: str,
    log_path: str | None = None,
    tty: bool = False,
    open_stdin: bool = False,
    log_max_size: int = 0,
    log_max_file: int = 1,
    wait_start: bool = False,
    exec_pid: int | None = None,
    shim: str | None = None,
    debug: bool = False,
    log_driver: str | None = None,
    log_opts: list[str] | None = None,
) -> dict:
    """Start a shim that creates the container (or, with `exec_pid`, runs the
    spec's process inside the running container whose init is `exec_pid`:
    joins its cgroup and namespaces; uses args/env/cwd/user/caps/rlimits/
    terminal/seccomp of the spec). Returns once the process has exec'd (or,
    with `wait_start`, is parked just before execve until a start frame):
    {"shim_pid", "pid", "created", "attach_socket", "exit_file"}.
    `log_path`: json-file log (`{"log","stream","time"}` lines), rotated at
    `log_max_size` bytes keeping `log_max_file` files (0 = no limit).
    `log_driver` (json-file by default, local, none, journald, syslog) and
    `log_opts` (`key=value` as containers/logdrivers.py resolves them) pick
    Docker's other log drivers; a driver that fails to start raises
    ContainerStartError("failed to initialize logging driver: ..."). `tty`:
    pty allocated in the container's devpts, output logged as stdout.
    `open_stdin`: stdin fed from attach clients, else /dev/null.
    Raises ContainerStartError (with exit_code) when setup or exec fails,
    ValueError for an invalid spec. The container's cgroup is removed by the
    shim when the container exits. Releases the GIL."""

class ShimStart:
    """A container's start begun before its spec exists (`begin_shim`)."""
    def run(self, spec_json: str) -> dict:
        """Start the container on `spec_json` (written to the state dir);
        returns and raises as `spawn_shim`. Releases the GIL."""
    def abort(self) -> None:
        """Give the start up: the idle shim, if one took it, leaves without
        writing anything (its attach socket and pid file go)."""

def begin_shim(
    id: str,
    state_dir: str,
    log_path: str | None = None,
    tty: bool = False,
    open_stdin: bool = False,
    log_max_size: int = 0,
    log_max_file: int = 1,
    wait_start: bool = False,
    shim: str | None = None,
    debug: bool = False,
    log_driver: str | None = None,
    log_opts: list[str] | None = None,
) -> ShimStart:
    """`spawn_shim` for a container, in two steps: when an idle shim is ready
    it is given the command line now and readies the attach socket and the
    log (in the existing `state_dir`) while the caller mounts the rootfs and
    builds the spec; `run(spec_json)` then lets it go on. Without an idle
    shim, `run` is `spawn_shim`."""

def drop_idle_shims(exec_root: str) -> None:
    """Let go of the idle shims `spawn_shim` keeps ready (one per state-dir
    parent) for state dirs under `exec_root`; they exit."""

def wait_pid(pid: int, timeout: float | None = None) -> bool:
    """Wait (pidfd + poll) until any process `pid` has exited; False on
    timeout. Doesn't reap. Use on shim_pid, then read exit.json."""

def default_spec(rootfs: str, args: Sequence[str]) -> str:
    """Spec JSON with what `docker run` uses: namespaces pid, mount, uts, ipc,
    network, cgroup; Docker's mounts (/proc, /dev tmpfs + devices, /dev/pts
    newinstance, /sys ro, /sys/fs/cgroup ro, /dev/mqueue, /dev/shm); masked
    and read-only /proc and /sys paths; the 14 default capabilities; seccomp
    "default"; PATH."""

def remove_cgroup(path: str) -> None:
    """Kill what's left in cgroup `path` and rmdir it in every hierarchy
    (no error if absent). Not recursive."""

class Job:
    """Kernel work on a thread of its own (`make_cgroup`, `sandbox_async`),
    done while the caller does the rest."""
    def wait(self) -> bool:
        """Wait until it is done; whether it succeeded (if not, the caller
        does the work itself and reports why). Later calls answer False.
        Releases the GIL."""
    def join(self) -> None:
        """Wait until it is done and raise its error (`sandbox_async`'s:
        OSError, ValueError). Once only (RuntimeError after). Releases the
        GIL."""

def make_cgroup(path: str, resources: str) -> Job:
    """Make cgroup `path` with `resources` (the spec's `cgroup.resources`
    JSON) on a thread of its own while the caller prepares the rest of a
    start; the spec then says `made: true`. The caller removes it should
    the start not happen. ValueError for invalid resources."""

def cgroup_dirs(path: str) -> list[str]:
    """Directories of cgroup `path` in every mounted hierarchy (v1
    controllers + unified, or the single v2 tree)."""

# Container networking over rtnetlink (dockyard-network). "Host" is the
# caller's network namespace. Kernel failures raise OSError(errno, "step:
# reason"); malformed CIDR/MAC/names raise ValueError. All release the GIL.

def netns_create(path: str) -> None:
    """New network namespace with `lo` up, persisted by bind-mounting it on
    `path` (created; its directory must exist). Made on a short-lived thread:
    the caller's namespace never changes. FileExistsError if `path` already
    holds a namespace."""

def netns_remove(path: str) -> None:
    """Unmount (MNT_DETACH) and unlink a namespace file; missing is fine."""

def ns_pin(path: str, kind: str, hostname: str | None = None) -> None:
    """New namespace of `kind` ("net" with `lo` up, "ipc", or "uts" with
    `hostname` set inside, if given) pinned by bind-mounting it on `path`
    (created; its directory must exist), as `ip netns add` and CRI-O's pinns
    do: a pod's namespaces without a process. Containers join one with
    HostConfig `NetworkMode`/`IpcMode`/`UTSMode` = "ns:<path>". Made on a
    short-lived thread. FileExistsError if `path` already holds a namespace;
    ValueError for another kind, or a hostname for a kind but uts."""

def sandbox_async(netns: str, endpoints: list[tuple[str, str, str, str, list[str], list[str],
                                                  int]]) -> Job:
    """`netns_create(netns)`, then `endpoint_add(netns, *e)` for each of
    `endpoints` in order, on a thread of its own: `Job.join()` raises what
    failed. Malformed arguments raise ValueError here. The caller tears down
    what was made (namespace file, veths) once the job is done."""

def ns_pin_async(path: str, kind: str, hostname: str | None = None) -> Job:
    """`ns_pin` on a thread of its own; `Job.wait()` says whether it pinned
    (call `ns_pin` again for its error otherwise)."""

def ns_unpin(path: str) -> None:
    """Unmount (MNT_DETACH) and unlink a pinned namespace file; missing is
    fine (the namespace lives on while a process is in it)."""

def bridge_ensure(name: str, addrs: Sequence[str], mtu: int, mac: str | None = None) -> None:
    """Create the Linux bridge `name` if absent (idempotent), set its MTU,
    add the CIDR addresses of `addrs` it lacks ("10.231.0.1/24",
    "fd00:1::1/64"), set `mac` if given (pinned, so the kernel does not re-pick
    it as ports join), bring it up and set its route_localnet=1.
    FileExistsError if `name` is a link of another kind."""

def link_delete(name: str) -> bool:
    """Delete host link `name`; False if it did not exist."""

def link_names(prefix: str) -> list[str]:
    """Names of the host links that start with `prefix`."""

def endpoint_add(
    netns: str,
    bridge: str,
    host_ifname: str,
    ifname: str,
    mac: str,
    addrs: Sequence[str],
    gateways: Sequence[str],
    mtu: int,
) -> None:
    """veth pair: `host_ifname` stays in the host, port of `bridge`, up; its
    peer is created inside the namespace at `netns` as `ifname` with `mac`,
    `mtu`, the CIDR `addrs`, up, a default route via each of `gateways` (at
    most one per family), arp_notify=1 and, with IPv6, accept_ra=0,
    autoconf=0, accept_dad=0. On failure what was made is removed."""

def endpoint_remove(netns: str, ifname: str) -> bool:
    """Delete `ifname` inside the namespace at `netns` (its host end goes with
    it); False if there is no such link or namespace file."""

def link_info(netns: str | None, name: str) -> dict | None:
    """{"index", "mtu", "mac", "up", "master" (name or None), "addrs": [cidr]}
    of link `name` in the namespace at `netns` (None: the host's); None if
    there is no such link."""
def netns_socket(path: str, family: int, kind: int) -> int:
    """An unbound socket made inside the network namespace at `path` (an fd the caller owns)."""
    ...


class Relay:
    """A kernel (splice) relay between two connected stream sockets."""
    def stop(self) -> None: ...
    def done(self) -> bool: ...

def relay(a: int, b: int) -> Relay:
    """Relay the blocking stream sockets `a` <-> `b` (descriptors handed over),
    each direction spliced on a thread of its own."""
