//! The container spec: what the daemon asks the execution driver to run.
//!
//! Serialised as JSON (serde) between the daemon, the bindings and the shim.
//! Names follow the OCI runtime spec where one exists (namespace types, mount
//! options, `RLIMIT_*`, `CAP_*`) so a Docker `HostConfig` maps onto it directly.
//! Every field has a default, so `{"rootfs": "...", "args": ["true"]}` is a
//! valid spec; [`Spec::docker_defaults`] fills in what `docker run` would use.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Spec {
    /// Assembled root filesystem (already mounted by the storage driver).
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    /// argv; `args[0]` is resolved through the container's `PATH` inside the new root.
    pub args: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// Working directory inside the container ("" means "/"); created if missing.
    pub cwd: String,
    pub user: User,
    pub hostname: String,
    pub domainname: String,
    /// Namespaces to create (or, with `path`, join): pid, mount, uts, ipc, network, cgroup.
    pub namespaces: Vec<Namespace>,
    /// Mounts in order, OCI style (destination, type, source, options).
    pub mounts: Vec<Mount>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    /// `None`: Docker's default set. Names like "CAP_CHOWN" (the prefix is optional).
    pub capabilities: Option<Capabilities>,
    pub no_new_privileges: bool,
    pub rlimits: Vec<Rlimit>,
    /// "default" (built-in profile close to Docker's), "unconfined" or absent
    /// (none), or a custom profile object in Docker's JSON format.
    pub seccomp: Option<crate::seccomp::Seccomp>,
    pub cgroup: Option<CgroupSpec>,
    pub oom_score_adj: Option<i32>,
    /// Allocate a pty inside the container (its devpts) for stdio.
    pub terminal: bool,
    /// Initial terminal size (rows, cols).
    pub console_size: Option<(u16, u16)>,
    /// /proc/sys keys ("net.ipv4.ip_forward") to write after mounts.
    pub sysctl: BTreeMap<String, String>,
    /// `docker run --init`: PID 1 is a minimal init that forwards signals to
    /// the command, reaps orphans and exits with the command's status.
    pub init: bool,
    /// The propagation of the container's `/` (OCI linux.rootfsPropagation):
    /// "rslave" when absent; "rshared" when a bind asks for shared propagation,
    /// so that mounts made in it reach the host (as runc and dockerd do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs_propagation: Option<String>,
    /// With a new "user" namespace: its maps (OCI linux.uidMappings and
    /// gidMappings), written by the parent before the child goes on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
    /// Device nodes to make in the container (OCI linux.devices: `--device`,
    /// and the host's devices for `--privileged`), after the mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
}

/// A device node made in the container: mknod, or where that is not allowed
/// (a user namespace) a bind of `host_path`, as runc does.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Device {
    /// Where, inside the container.
    pub path: String,
    /// "c", "b" or "p".
    #[serde(rename = "type")]
    pub kind: String,
    pub major: i64,
    pub minor: i64,
    /// Permission bits (0o666 when absent).
    pub file_mode: Option<u32>,
    pub uid: u32,
    pub gid: u32,
    pub host_path: String,
}

/// One line of /proc/PID/uid_map or gid_map.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct IdMapping {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Namespace {
    /// pid | mount (mnt) | uts | ipc | network (net) | cgroup
    #[serde(rename = "type")]
    pub kind: String,
    /// Join this namespace file (e.g. /proc/123/ns/net) instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Mount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Capabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
    pub inheritable: Vec<String>,
    pub ambient: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Rlimit {
    /// "RLIMIT_NOFILE" or "nofile"
    #[serde(rename = "type")]
    pub kind: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct CgroupSpec {
    /// Path below each hierarchy's root, e.g. "/dockyard/<id>".
    pub path: String,
    pub resources: Resources,
    /// The caller made it already, with these resources (while it prepared
    /// the rest of the start): the runtime opens it instead.
    pub made: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Resources {
    /// Bytes; memory limit.
    pub memory: Option<i64>,
    /// Bytes; memory + swap (-1 = unlimited).
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// <= 0 means unlimited.
    pub pids_limit: Option<i64>,
    /// v1 only (memory.swappiness), 0-100.
    pub memory_swappiness: Option<u64>,
    /// v1 only (memory.oom_control).
    pub oom_kill_disable: Option<bool>,
    /// 10-1000: v1 blkio.weight (or BFQ's), v2 io.weight.
    pub blkio_weight: Option<u64>,
    pub blkio_weight_device: Vec<DeviceRate>,
    pub blkio_read_bps: Vec<DeviceRate>,
    pub blkio_write_bps: Vec<DeviceRate>,
    pub blkio_read_iops: Vec<DeviceRate>,
    pub blkio_write_iops: Vec<DeviceRate>,
    /// v1 only (cpu.rt_period_us, cpu.rt_runtime_us).
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    /// Device cgroup rules in order, later ones winning (OCI
    /// linux.resources.devices); `None`: Docker's default. Applied at creation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<crate::devices::DeviceRule>>,
}

/// A block device's rate or weight (major, minor, value).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct DeviceRate {
    pub major: u64,
    pub minor: u64,
    pub rate: u64,
}

/// Docker's default capability set (14 capabilities, CapEff 0x00000000a80425fb).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub const DEFAULT_MASKED: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const DEFAULT_READONLY: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

fn m(dest: &str, kind: &str, source: &str, opts: &[&str]) -> Mount {
    Mount {
        destination: dest.into(),
        kind: kind.into(),
        source: source.into(),
        options: opts.iter().map(|s| s.to_string()).collect(),
    }
}

impl Capabilities {
    pub fn docker_default() -> Self {
        let v: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
        // Inheritable empty, as Docker since CVE-2022-24769.
        Capabilities { bounding: v.clone(), effective: v.clone(), permitted: v, inheritable: vec![], ambient: vec![] }
    }
}

impl Spec {
    /// What `docker run` uses: all namespaces but user, Docker's mounts,
    /// masked/read-only paths, default caps, seccomp "default", PATH.
    pub fn docker_defaults(rootfs: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Spec {
            rootfs: rootfs.into(),
            args,
            env: vec![format!("PATH={DEFAULT_PATH}")],
            cwd: "/".into(),
            namespaces: ["pid", "mount", "uts", "ipc", "network", "cgroup"]
                .iter()
                .map(|k| Namespace { kind: k.to_string(), path: None })
                .collect(),
            mounts: Self::default_mounts(),
            masked_paths: DEFAULT_MASKED.iter().map(|s| s.to_string()).collect(),
            readonly_paths: DEFAULT_READONLY.iter().map(|s| s.to_string()).collect(),
            capabilities: Some(Capabilities::docker_default()),
            seccomp: Some("default".into()),
            ..Default::default()
        }
    }

    /// Docker's default mount list (moby `oci/defaults.go`).
    pub fn default_mounts() -> Vec<Mount> {
        vec![
            m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
            m("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
            m("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
            m("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
            m("/sys/fs/cgroup", "cgroup", "cgroup", &["ro", "nosuid", "noexec", "nodev"]),
            m("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
            m("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        ]
    }

    pub fn from_json(s: &str) -> Result<Spec, crate::Error> {
        serde_json::from_str(s).map_err(|e| crate::Error::Invalid(format!("invalid container spec: {e}")))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("spec serialises")
    }

    /// `PATH` from env, or Docker's default.
    pub fn path_env(&self) -> &str {
        self.env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH)
    }

    pub fn has_ns(&self, kind: &str) -> bool {
        self.namespaces.iter().any(|n| crate::ns::flag(&n.kind) == crate::ns::flag(kind))
    }
}
