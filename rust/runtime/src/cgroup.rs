//! cgroupfs manager: v1 (one hierarchy per controller, plus the unified
//! hierarchy of a hybrid host) and pure v2. Creates the container's cgroup,
//! applies resources, hands out the fds the child writes "0" into (or, on v2,
//! the directory fd for CLONE_INTO_CGROUP), and removes it.

use crate::devices::{self, DeviceRule};
use crate::error::{Error, Result};
use crate::spec::Resources;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq)]
pub struct Hierarchy {
    /// Where it's mounted, e.g. /sys/fs/cgroup/memory.
    pub mountpoint: PathBuf,
    /// v1 controllers ("cpu", "cpuacct", "name=systemd"); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    /// From /proc/self/mountinfo. Pure v2 when the only cgroup mount is cgroup2.
    pub fn detect() -> Result<Layout> {
        let s = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::errno("read /proc/self/mountinfo", e.raw_os_error().unwrap_or(5)))?;
        Ok(Self::parse(&s))
    }

    pub fn parse(mountinfo: &str) -> Layout {
        let mut hs: Vec<Hierarchy> = Vec::new();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else { continue };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let mp = PathBuf::from(crate::mounts::unescape_mountinfo(pre[4]));
            if hs.iter().any(|h| h.mountpoint == mp) {
                continue;
            }
            match post[0] {
                "cgroup" => {
                    let ctrls: Vec<String> = post[2]
                        .split(',')
                        .filter(|o| !matches!(*o, "rw" | "ro" | "relatime" | "nosuid" | "nodev" | "noexec") && !o.starts_with("release_agent") && *o != "clone_children" && *o != "noprefix" && *o != "xattr" && *o != "cpuset_v2_mode")
                        .map(|s| s.to_string())
                        .collect();
                    if ctrls.is_empty() || hs.iter().any(|h| h.controllers == ctrls) {
                        continue;
                    }
                    hs.push(Hierarchy { mountpoint: mp, controllers: ctrls, v2: false });
                }
                "cgroup2" => {
                    if hs.iter().any(|h| h.v2) {
                        continue;
                    }
                    hs.push(Hierarchy { mountpoint: mp, controllers: vec![], v2: true })
                }
                _ => {}
            }
        }
        Layout { hierarchies: hs }
    }

    pub fn is_pure_v2(&self) -> bool {
        !self.hierarchies.is_empty() && self.hierarchies.iter().all(|h| h.v2)
    }

    fn find(&self, ctrl: &str) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.controllers.iter().any(|c| c == ctrl))
    }
}

/// A container's cgroup: one directory per hierarchy.
#[derive(Clone, Debug)]
pub struct Cgroup {
    pub path: String,
    pub layout: Layout,
    pub dirs: Vec<PathBuf>,
}

fn rel(path: &str) -> Result<&str> {
    let r = path.trim_start_matches('/');
    if r.is_empty() || r.split('/').any(|c| c == ".." || c == ".") {
        return Err(Error::Invalid(format!("invalid cgroup path {path:?}")));
    }
    Ok(r)
}

fn write(dir: &Path, file: &str, val: &str) -> Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, val).map_err(|e| Error::errno(format!("write {} to {}", val.trim(), p.display()), e.raw_os_error().unwrap_or(5)))
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok().map(|s| s.trim().to_string())
}

/// Make `r` below `root`, calling `each_new` with the parent of each level it
/// makes. The leaf is tried first: its parents (a pod's, kubelet's) usually
/// exist, and each mkdir refused with EEXIST costs a syscall in every
/// hierarchy (eleven on a hybrid host).
fn mkdir_p(root: &Path, r: &str, mut each_new: impl FnMut(&Path) -> Result<()>) -> Result<PathBuf> {
    let leaf = root.join(r);
    if let Some(parent) = leaf.parent().filter(|p| p.starts_with(root) && *p != root) {
        match std::fs::create_dir(&leaf) {
            Ok(()) => {
                each_new(parent)?;
                return Ok(leaf);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(leaf),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::errno(format!("mkdir {}", leaf.display()), e.raw_os_error().unwrap_or(5))),
        }
    }
    let mut cur = root.to_path_buf();
    for comp in r.split('/').filter(|c| !c.is_empty()) {
        let parent = cur.clone();
        cur.push(comp);
        match std::fs::create_dir(&cur) {
            Ok(()) => each_new(&parent)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::errno(format!("mkdir {}", cur.display()), e.raw_os_error().unwrap_or(5))),
        }
    }
    Ok(cur)
}

const CPUSET_FILES: [&str; 2] = ["cpuset.cpus", "cpuset.mems"];

/// v1 cpuset: a new cgroup starts with empty cpus and mems and refuses tasks
/// (ENOSPC on joining). Each level of `r` gets its parent's where it has
/// none: every level, not only the ones this call made, since a concurrent
/// create may have made a parent and not filled it yet.
fn fill_cpuset(root: &Path, r: &str) -> Result<()> {
    // The usual case first: the parent filled, the leaf (just made) not.
    let leaf = root.join(r);
    if let Some(parent) = leaf.parent() {
        let above: Vec<Option<String>> = CPUSET_FILES.iter().map(|f| read(parent, f).filter(|v| !v.is_empty())).collect();
        if above.iter().all(Option::is_some) {
            for (f, v) in CPUSET_FILES.iter().zip(above.iter().flatten()) {
                if read(&leaf, f).is_some_and(|v| v.is_empty()) {
                    write(&leaf, f, v)?;
                }
            }
            return Ok(());
        }
    }
    let mut parent = root.to_path_buf();
    for comp in r.split('/').filter(|c| !c.is_empty()) {
        let cur = parent.join(comp);
        for f in CPUSET_FILES {
            if read(&cur, f).is_some_and(|v| v.is_empty()) {
                if let Some(v) = read(&parent, f).filter(|v| !v.is_empty()) {
                    write(&cur, f, &v)?;
                }
            }
        }
        parent = cur;
    }
    Ok(())
}

impl Cgroup {
    /// Open (without creating) the cgroup `path` in every hierarchy.
    pub fn open(path: &str, layout: &Layout) -> Result<Cgroup> {
        let r = rel(path)?;
        Ok(Cgroup { path: path.into(), layout: layout.clone(), dirs: layout.hierarchies.iter().map(|h| h.mountpoint.join(r)).collect() })
    }

    /// Create `path` in every hierarchy and apply `res`.
    pub fn create(path: &str, res: &Resources, layout: &Layout) -> Result<Cgroup> {
        let r = rel(path)?;
        let mut dirs = Vec::new();
        for h in &layout.hierarchies {
            let is_cpuset = h.controllers.iter().any(|c| c == "cpuset");
            let dir = mkdir_p(&h.mountpoint, r, |parent| {
                if h.v2 && layout.is_pure_v2() {
                    enable_controllers(parent);
                }
                Ok(())
            })?;
            if is_cpuset {
                fill_cpuset(&h.mountpoint, r)?;
            }
            if h.v2 && layout.is_pure_v2() {
                // A leaf created earlier may still need its parent's controllers on.
                if let Some(parent) = dir.parent() {
                    enable_controllers(parent);
                }
            }
            dirs.push(dir);
        }
        let cg = Cgroup { path: path.into(), layout: layout.clone(), dirs };
        if let Err(e) = cg.apply(res).and_then(|_| cg.apply_devices(res.devices.as_deref())) {
            let _ = cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    fn dir_for(&self, ctrl: &str) -> Option<&PathBuf> {
        if self.layout.is_pure_v2() {
            return self.dirs.first();
        }
        let h = self.layout.find(ctrl)?;
        let i = self.layout.hierarchies.iter().position(|x| x == h)?;
        self.dirs.get(i)
    }

    pub fn apply(&self, res: &Resources) -> Result<()> {
        if self.layout.is_pure_v2() {
            let d = &self.dirs[0];
            if let Some(m) = res.memory {
                write(d, "memory.max", &limit(m))?;
                if let Some(sw) = res.memory_swap {
                    let v = if sw < 0 { "max".to_string() } else { (sw - m).max(0).to_string() };
                    let _ = write(d, "memory.swap.max", &v);
                }
            }
            if let Some(r) = res.memory_reservation {
                write(d, "memory.low", &limit(r))?;
            }
            if let Some(s) = res.cpu_shares {
                if s > 0 {
                    let w = 1 + ((s.clamp(2, 262144) - 2) * 9999) / 262142;
                    write(d, "cpu.weight", &w.to_string())?;
                }
            }
            if res.cpu_quota.is_some() || res.cpu_period.is_some() {
                let q = match res.cpu_quota {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".to_string(),
                };
                write(d, "cpu.max", &format!("{q} {}", res.cpu_period.unwrap_or(100000)))?;
            }
            if let Some(c) = &res.cpuset_cpus {
                write(d, "cpuset.cpus", c)?;
            }
            if let Some(m) = &res.cpuset_mems {
                write(d, "cpuset.mems", m)?;
            }
            if let Some(p) = res.pids_limit {
                write(d, "pids.max", &if p <= 0 { "max".into() } else { p.to_string() })?;
            }
            if let Some(w) = res.blkio_weight {
                // runc's conversion of a blkio weight (10-1000) to io.weight (1-10000)
                let v = 1 + (w.clamp(10, 1000) - 10) * 9999 / 990;
                let f = if d.join("io.bfq.weight").exists() { "io.bfq.weight" } else { "io.weight" };
                write(d, f, &if f == "io.weight" { format!("default {v}") } else { v.to_string() })?;
            }
            for r in &res.blkio_weight_device {
                let v = 1 + (r.rate.clamp(10, 1000) - 10) * 9999 / 990;
                write(d, "io.weight", &format!("{}:{} {v}", r.major, r.minor))?;
            }
            for (key, rates) in [("rbps", &res.blkio_read_bps), ("wbps", &res.blkio_write_bps), ("riops", &res.blkio_read_iops), ("wiops", &res.blkio_write_iops)] {
                for r in rates {
                    write(d, "io.max", &format!("{}:{} {key}={}", r.major, r.minor, r.rate))?;
                }
            }
            return Ok(());
        }
        if let Some(d) = self.dir_for("memory") {
            if let Some(m) = res.memory_reservation {
                write(d, "memory.soft_limit_in_bytes", &m.to_string())?;
            }
            let sw_file = d.join("memory.memsw.limit_in_bytes").exists();
            match (res.memory, res.memory_swap) {
                (Some(m), sw) => {
                    let sw = sw.filter(|_| sw_file);
                    // memsw must stay >= memory at every step: raise memsw first when growing.
                    let set_m = || write(d, "memory.limit_in_bytes", &m.to_string());
                    let set_sw = |v: i64| write(d, "memory.memsw.limit_in_bytes", &v.to_string());
                    match sw {
                        Some(s) => {
                            if set_sw(s).is_err() {
                                set_m()?;
                                set_sw(s)?;
                            } else {
                                set_m()?;
                            }
                        }
                        None => set_m()?,
                    }
                }
                (None, Some(s)) if sw_file => write(d, "memory.memsw.limit_in_bytes", &s.to_string())?,
                _ => {}
            }
            if let Some(s) = res.memory_swappiness {
                write(d, "memory.swappiness", &s.to_string())?;
            }
            if res.oom_kill_disable == Some(true) {
                write(d, "memory.oom_control", "1")?;
            }
        }
        if let Some(d) = self.dir_for("blkio") {
            if let Some(w) = res.blkio_weight {
                let f = if d.join("blkio.weight").exists() { "blkio.weight" } else { "blkio.bfq.weight" };
                write(d, f, &w.to_string())?;
            }
            for r in &res.blkio_weight_device {
                let f = if d.join("blkio.weight_device").exists() { "blkio.weight_device" } else { "blkio.bfq.weight_device" };
                write(d, f, &format!("{}:{} {}", r.major, r.minor, r.rate))?;
            }
            for (f, rates) in [("read_bps", &res.blkio_read_bps), ("write_bps", &res.blkio_write_bps), ("read_iops", &res.blkio_read_iops), ("write_iops", &res.blkio_write_iops)] {
                for r in rates {
                    write(d, &format!("blkio.throttle.{f}_device"), &format!("{}:{} {}", r.major, r.minor, r.rate))?;
                }
            }
        }
        if let Some(d) = self.dir_for("cpu") {
            if let Some(s) = res.cpu_shares {
                if s > 0 {
                    write(d, "cpu.shares", &s.to_string())?;
                }
            }
            if let Some(p) = res.cpu_period {
                write(d, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = res.cpu_quota {
                write(d, "cpu.cfs_quota_us", &if q > 0 { q.to_string() } else { "-1".into() })?;
            }
            if let Some(p) = res.cpu_rt_period {
                write(d, "cpu.rt_period_us", &p.to_string())?;
            }
            if let Some(r) = res.cpu_rt_runtime {
                write(d, "cpu.rt_runtime_us", &r.to_string())?;
            }
        }
        if let Some(d) = self.dir_for("cpuset") {
            if let Some(c) = &res.cpuset_cpus {
                write(d, "cpuset.cpus", c)?;
            }
            if let Some(m) = &res.cpuset_mems {
                write(d, "cpuset.mems", m)?;
            }
        }
        if let Some(d) = self.dir_for("pids") {
            if let Some(p) = res.pids_limit {
                write(d, "pids.max", &if p <= 0 { "max".into() } else { p.to_string() })?;
            }
        }
        Ok(())
    }

    /// The device policy (`None`: Docker's default, nothing but the standard
    /// character devices), set once at creation: through the v1 `devices`
    /// controller where there is one, else by an eBPF program attached to the
    /// v2 cgroup (pure v2 has no devices controller). Before the container's
    /// first process joins, so it never runs without it.
    fn apply_devices(&self, rules: Option<&[DeviceRule]>) -> Result<()> {
        let default;
        let rules = match rules {
            Some(r) => r,
            None => {
                default = devices::docker_default();
                &default
            }
        };
        if !self.layout.is_pure_v2() {
            if let Some(d) = self.dir_for("devices") {
                for r in rules {
                    match write(d, if r.allow { "devices.allow" } else { "devices.deny" }, &r.v1_line()) {
                        // An allow the parent lacks (an engine inside a container): that device stays denied.
                        Err(Error::Os { errno: libc::EPERM, .. }) if r.allow => {}
                        w => w?,
                    }
                }
                return Ok(());
            }
        }
        let Some(fd) = self.v2_dir_fd() else { return Ok(()) };
        match devices::attach(fd.as_raw_fd(), rules) {
            // A rootless engine may not load BPF programs; its user namespace
            // already keeps the host's devices out of reach.
            Err(Error::Os { errno: libc::EPERM, .. }) if crate::sys::in_user_ns() => Ok(()),
            r => r,
        }
    }

    /// The files the child writes "0" into to join, one per hierarchy, each
    /// with whether it is the v2 one. On v1 that is `tasks`: "0" there moves
    /// only the calling thread (the child has no other) and so skips the
    /// kernel's global threadgroup rwsem, whose first writer after an idle
    /// spell waits out an RCU grace period (10-15 ms here); `cgroup.procs`
    /// would take it. v2 has no such file, and is joined by CLONE_INTO_CGROUP.
    pub fn join_fds(&self) -> Result<Vec<(OwnedFd, bool)>> {
        join_fds(self.layout.hierarchies.iter().zip(&self.dirs).map(|(h, d)| (d.as_path(), h.v2)))
    }

    /// Directory fd of the v2 cgroup, for clone3(CLONE_INTO_CGROUP): the whole
    /// of a pure v2 host, the unified hierarchy of a hybrid one.
    pub fn v2_dir_fd(&self) -> Option<OwnedFd> {
        let d = self.layout.hierarchies.iter().zip(&self.dirs).find(|(h, _)| h.v2)?.1;
        v2_dir_fd(d)
    }

    pub fn add_pid(&self, pid: i32) -> Result<()> {
        for d in &self.dirs {
            write(d, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    pub fn pids(&self) -> Vec<i32> {
        self.dirs
            .first()
            .and_then(|d| read(d, "cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// How many times the OOM killer fired in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (d, file) = if self.layout.is_pure_v2() {
            (self.dirs.first(), "memory.events")
        } else {
            (self.dir_for("memory"), "memory.oom_control")
        };
        d.and_then(|d| read(d, file))
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse().ok())))
            .unwrap_or(0)
    }

    /// Kill everything left (v2 cgroup.kill, else SIGKILL each pid) and rmdir
    /// the leaf in every hierarchy, retrying while the kernel still has it busy.
    pub fn remove(&self) -> Result<()> {
        if self.layout.is_pure_v2() {
            let _ = write(&self.dirs[0], "cgroup.kill", "1");
        }
        let mut last = None;
        for d in &self.dirs {
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                        if let Some(s) = read(d, "cgroup.procs") {
                            for pid in s.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                                unsafe { libc::kill(pid, libc::SIGKILL) };
                            }
                        }
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(e) => {
                        last = Some(Error::errno(format!("rmdir {}", d.display()), e.raw_os_error().unwrap_or(5)));
                        break;
                    }
                }
            }
        }
        match last {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

fn enable_controllers(dir: &Path) {
    if let Some(avail) = read(dir, "cgroup.controllers") {
        for c in avail.split_whitespace() {
            if matches!(c, "cpu" | "cpuset" | "memory" | "pids" | "io" | "hugetlb") {
                let _ = write(dir, "cgroup.subtree_control", &format!("+{c}"));
            }
        }
    }
}

/// Docker's default device cgroup rules (v1 `devices.allow`).
pub const DEFAULT_DEVICE_RULES: [&str; 12] = [
    "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm",
    "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm",
];

/// The cgroup of `pid` per hierarchy, from /proc/<pid>/cgroup.
/// See `Cgroup::join_fds`: (dir, is v2) to the files a child joins through.
pub fn join_fds<'a>(dirs: impl Iterator<Item = (&'a Path, bool)>) -> Result<Vec<(OwnedFd, bool)>> {
    let mut v = Vec::new();
    for (d, v2) in dirs {
        let p = d.join(if v2 { "cgroup.procs" } else { "tasks" });
        v.push((crate::sys::open(&crate::sys::cpath(&p)?, libc::O_WRONLY, 0)?, v2));
    }
    Ok(v)
}

pub fn v2_dir_fd(dir: &Path) -> Option<OwnedFd> {
    crate::sys::open(&crate::sys::cpath(dir).ok()?, libc::O_RDONLY | libc::O_DIRECTORY, 0).ok()
}

/// The cgroup directories of `pid`, one per hierarchy of `layout`, each with whether it is v2.
pub fn of_pid(pid: i32, layout: &Layout) -> Result<Vec<(PathBuf, bool)>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| Error::errno(format!("read /proc/{pid}/cgroup"), e.raw_os_error().unwrap_or(5)))?;
    let mut out = Vec::new();
    for line in s.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or("/"));
        let path = path.trim_start_matches('/');
        let h = if ctrls.is_empty() {
            layout.hierarchies.iter().find(|h| h.v2)
        } else {
            let cs: Vec<&str> = ctrls.split(',').collect();
            layout.hierarchies.iter().find(|h| !h.v2 && h.controllers.iter().all(|c| cs.contains(&c.as_str())))
        };
        if let Some(h) = h {
            out.push((h.mountpoint.join(path), h.v2));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    #[test]
    fn parse_hybrid() {
        let l = Layout::parse(HYBRID);
        assert_eq!(l.hierarchies.len(), 4);
        assert!(!l.is_pure_v2());
        assert_eq!(l.find("memory").unwrap().mountpoint, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(l.hierarchies[2].controllers, vec!["name=systemd".to_string()]);
    }
    #[test]
    fn v2_resources_on_a_fake_tree() {
        // A plain directory standing in for a cgroup2 mount: files are created by the writes.
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        let layout = Layout { hierarchies: vec![Hierarchy { mountpoint: d.path().into(), controllers: vec![], v2: true }] };
        let res = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(96 << 20),
            cpu_shares: Some(512),
            cpu_quota: Some(50000),
            cpu_period: Some(100000),
            pids_limit: Some(0),
            // A plain directory takes no device program: every device allowed.
            devices: Some(vec![DeviceRule::parse(true, "a").unwrap()]),
            ..Default::default()
        };
        let cg = Cgroup::create("/dockyard/c1", &res, &layout).unwrap();
        let leaf = d.path().join("dockyard/c1");
        let r = |f: &str| std::fs::read_to_string(leaf.join(f)).unwrap();
        assert_eq!(r("memory.max"), (64 << 20).to_string());
        assert_eq!(r("memory.swap.max"), (32 << 20).to_string());
        assert_eq!(r("cpu.weight"), "20"); // 1 + (510 * 9999) / 262142
        assert_eq!(r("cpu.max"), "50000 100000");
        assert_eq!(r("pids.max"), "max");
        // Controllers were enabled for the children of the root.
        assert!(std::fs::read_to_string(d.path().join("cgroup.subtree_control")).unwrap().starts_with('+'));
        assert_eq!(cg.dirs, vec![leaf]);
    }

    /// v1 cpuset: a parent made by a concurrent create, its cpus and mems not
    /// filled yet (a new cpuset cgroup starts empty), must not leave the new
    /// leaf empty (joining it would fail with ENOSPC).
    #[test]
    fn leaf_first_then_missing_parents() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let mut made = Vec::new();
        // No parent yet: every level is made, each reported with its parent.
        let leaf = mkdir_p(root, "pods/p1/c1", |p| {
            made.push(p.strip_prefix(root).unwrap().to_path_buf());
            Ok(())
        })
        .unwrap();
        assert_eq!(leaf, root.join("pods/p1/c1"));
        assert_eq!(made, vec![PathBuf::from(""), PathBuf::from("pods"), PathBuf::from("pods/p1")]);
        // The parent there (the usual case): the leaf alone, in one mkdir.
        made.clear();
        mkdir_p(root, "pods/p1/c2", |p| {
            made.push(p.strip_prefix(root).unwrap().to_path_buf());
            Ok(())
        })
        .unwrap();
        assert_eq!(made, vec![PathBuf::from("pods/p1")]);
        // Already there: nothing made.
        made.clear();
        mkdir_p(root, "pods/p1/c2", |p| {
            made.push(p.to_path_buf());
            Ok(())
        })
        .unwrap();
        assert!(made.is_empty() && root.join("pods/p1/c2").is_dir());
    }

    #[test]
    fn cpuset_levels_filled_from_above_even_if_made_by_another() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &Path, f: &str, v: &str| std::fs::write(p.join(f), v).unwrap();
        w(d.path(), "cpuset.cpus", "0-1\n");
        w(d.path(), "cpuset.mems", "0\n");
        // What the kernel makes on mkdir, played by hand: empty files.
        for lvl in ["dockyard", "dockyard/c1"] {
            let p = d.path().join(lvl);
            std::fs::create_dir(&p).unwrap();
            w(&p, "cpuset.cpus", "");
            w(&p, "cpuset.mems", "");
        }
        let layout = Layout {
            hierarchies: vec![Hierarchy { mountpoint: d.path().into(), controllers: vec!["cpuset".into()], v2: false }],
        };
        Cgroup::create("/dockyard/c1", &Resources::default(), &layout).unwrap();
        for lvl in ["dockyard", "dockyard/c1"] {
            let p = d.path().join(lvl);
            assert_eq!(read(&p, "cpuset.cpus").as_deref(), Some("0-1"), "{lvl}");
            assert_eq!(read(&p, "cpuset.mems").as_deref(), Some("0"), "{lvl}");
        }
    }

    #[test]
    fn parse_v2() {
        let l = Layout::parse("30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n");
        assert!(l.is_pure_v2());
        let cg = Cgroup::open("/dockyard/x", &l).unwrap();
        assert_eq!(cg.dirs, vec![PathBuf::from("/sys/fs/cgroup/dockyard/x")]);
        assert!(Cgroup::open("/../x", &l).is_err());
    }
}
