//! Device access control. Cgroup v1 has a `devices` controller taking
//! `devices.allow`/`devices.deny` lines; cgroup v2 has none: the kernel asks
//! a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup instead,
//! once per mknod or open of a device node. Both are fed the same ordered
//! rule list (OCI `linux.resources.devices`: later rules win), and this
//! module also turns it into that program: one comparison block per rule.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// One device cgroup rule (OCI `LinuxDeviceCgroup`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DeviceRule {
    pub allow: bool,
    /// "a" (all, also when absent), "c" or "b".
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `None`: any (`*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    /// Any of "r", "w", "m"; empty means all.
    #[serde(default)]
    pub access: String,
}

impl DeviceRule {
    /// From a v1 line such as "c 1:3 rwm", "b *:* m" or "a".
    pub fn parse(allow: bool, line: &str) -> Result<DeviceRule> {
        let bad = || Error::Invalid(format!("invalid device cgroup rule {line:?}"));
        let mut it = line.split_whitespace();
        let kind = it.next().ok_or_else(bad)?;
        if !matches!(kind, "a" | "c" | "b") {
            return Err(bad());
        }
        let num = |s: &str| if s == "*" { Ok(None) } else { s.parse().map(Some).map_err(|_| bad()) };
        let (major, minor) = match it.next() {
            Some(mm) => {
                let (a, b) = mm.split_once(':').ok_or_else(bad)?;
                (num(a)?, num(b)?)
            }
            None => (None, None),
        };
        let access = it.next().unwrap_or("rwm").to_string();
        if it.next().is_some() || access.is_empty() || access.chars().any(|c| !"rwm".contains(c)) {
            return Err(bad());
        }
        Ok(DeviceRule { allow, kind: Some(kind.into()).filter(|k| k != "a"), major, minor, access })
    }

    fn is_all_kinds(&self) -> bool {
        matches!(self.kind.as_deref(), None | Some("a"))
    }

    /// Access bits as the kernel's BPF_DEVCG_ACC_* (mknod 1, read 2, write 4).
    fn access_bits(&self) -> i32 {
        if self.access.is_empty() {
            return 7;
        }
        self.access.chars().map(|c| match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        }).fold(0, |a, b| a | b)
    }

    /// The v1 `devices.allow`/`devices.deny` line.
    pub fn v1_line(&self) -> String {
        if self.is_all_kinds() {
            return "a".into();
        }
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        let access = if self.access.is_empty() { "rwm" } else { &self.access };
        format!("{} {}:{} {access}", self.kind.as_deref().unwrap_or("a"), n(self.major), n(self.minor))
    }

    fn matches_everything(&self) -> bool {
        self.is_all_kinds() && self.major.is_none() && self.minor.is_none() && self.access_bits() == 7
    }
}

/// Docker's default rules (moby's default spec): deny everything, then allow
/// mknod of any node and the use of the standard character devices.
pub fn docker_default() -> Vec<DeviceRule> {
    let mut v = vec![DeviceRule { allow: false, kind: None, major: None, minor: None, access: "rwm".into() }];
    v.extend(crate::cgroup::DEFAULT_DEVICE_RULES.iter().map(|l| DeviceRule::parse(true, l).expect("valid default rule")));
    v
}

/// Whether `rules` leave every device open (`--privileged`): then no program is needed.
pub fn allows_all(rules: &[DeviceRule]) -> bool {
    rules.iter().rev().find(|r| r.matches_everything()).is_some_and(|r| r.allow)
        && rules.iter().rev().take_while(|r| !r.matches_everything()).all(|r| r.allow)
}

/// One eBPF instruction (`struct bpf_insn`), little-endian register nibbles.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | dst, off, imm }
}

// Opcodes (linux/bpf.h, bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const ALU64_AND_K: u8 = 0x57;
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95;

// Registers: r1 holds the context (struct bpf_cgroup_dev_ctx {u32
// access_type; u32 major; u32 minor}), loaded into r2 (device type: 1
// block, 2 char), r3 (access bits), r4 (major), r5 (minor).
const R0: u8 = 0;
const R1: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;

/// The program for `rules`. The kernel's question is answered by the last
/// rule that matches it, so the blocks go in reverse order, each returning
/// its verdict on a match and falling through to the next otherwise; the
/// end denies.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, TYPE, R1, 0, 0),
        insn(ALU32_AND_K, TYPE, 0, 0, 0xffff),
        insn(LDX_MEM_W, ACCESS, R1, 0, 0),
        insn(ALU32_RSH_K, ACCESS, 0, 0, 16),
        insn(LDX_MEM_W, MAJOR, R1, 4, 0),
        insn(LDX_MEM_W, MINOR, R1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut checks: Vec<Insn> = Vec::new();
        match r.kind.as_deref() {
            Some("c") => checks.push(insn(JNE_K, TYPE, 0, 0, 2)),
            Some("b") => checks.push(insn(JNE_K, TYPE, 0, 0, 1)),
            _ => {}
        }
        let bits = r.access_bits();
        if bits != 7 {
            // Match only when every requested access is among the rule's.
            checks.push(insn(ALU64_MOV_X, R0, ACCESS, 0, 0));
            checks.push(insn(ALU64_AND_K, R0, 0, 0, !bits & 7));
            checks.push(insn(JNE_K, R0, 0, 0, 0));
        }
        if let Some(m) = r.major {
            checks.push(insn(JNE_K, MAJOR, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            checks.push(insn(JNE_K, MINOR, 0, 0, m as i32));
        }
        let unconditional = checks.is_empty();
        // Each jump leaves the block: skip what follows it, and the verdict.
        let n = checks.len();
        for (i, mut c) in checks.into_iter().enumerate() {
            if c.code == JNE_K {
                c.off = (n - i - 1 + 2) as i16;
            }
            p.push(c);
        }
        p.push(insn(ALU64_MOV_K, R0, 0, 0, r.allow as i32));
        p.push(insn(EXIT, 0, 0, 0, 0));
        if unconditional {
            return p; // nothing after it can be reached
        }
    }
    p.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The head of `union bpf_attr` for BPF_PROG_LOAD (the kernel takes a
/// shorter attr than its own and zero-fills the rest).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> libc::c_long {
    // SAFETY: attr is a live, properly laid out bpf_attr prefix of size_of::<T>() bytes.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) }
}

/// Load the program for `rules` into the kernel; on refusal the error carries the verifier's log.
pub fn load(rules: &[DeviceRule]) -> Result<OwnedFd> {
    let insns = program(rules);
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 0];
    for level in [0u32, 1] {
        if level == 1 {
            log = vec![0u8; 64 << 10];
        }
        let mut name = [0u8; 16];
        name[..14].copy_from_slice(b"dockyard_devic");
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: level,
            log_size: log.len() as u32,
            log_buf: if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 },
            prog_name: name,
            ..Default::default()
        };
        let fd = bpf(BPF_PROG_LOAD, &mut attr);
        if fd >= 0 {
            // SAFETY: a new fd the kernel just gave us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let e = crate::sys::errno();
        if e != libc::EINVAL && e != libc::EACCES || level == 1 {
            let msg = String::from_utf8_lossy(&log[..log.iter().position(|b| *b == 0).unwrap_or(0)]).trim().to_string();
            let what = if msg.is_empty() { "load the device cgroup program".to_string() } else { format!("load the device cgroup program ({msg})") };
            return Err(Error::errno(what, e));
        }
    }
    unreachable!()
}

/// Load the program for `rules` and attach it to the cgroup v2 directory
/// `cgroup_dir` (beside any its ancestors have: all must allow). Nothing is
/// attached when the rules allow everything. The program goes with the cgroup.
pub fn attach(cgroup_dir: RawFd, rules: &[DeviceRule]) -> Result<()> {
    if allows_all(rules) {
        return Ok(());
    }
    let prog = load(rules)?;
    let mut attr = ProgAttachAttr {
        target_fd: cgroup_dir as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    if bpf(BPF_PROG_ATTACH, &mut attr) < 0 {
        return Err(Error::errno("attach the device cgroup program", crate::sys::errno()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(allow: bool, line: &str) -> DeviceRule {
        DeviceRule::parse(allow, line).unwrap()
    }

    #[test]
    fn parse_and_v1_lines() {
        assert_eq!(r(true, "c 1:3 rwm").v1_line(), "c 1:3 rwm");
        assert_eq!(r(true, "b *:* m").v1_line(), "b *:* m");
        assert_eq!(r(false, "a").v1_line(), "a");
        assert_eq!(r(true, "c 136:* rw"), DeviceRule { allow: true, kind: Some("c".into()), major: Some(136), minor: None, access: "rw".into() });
        for bad in ["x 1:2 rwm", "c 1 rwm", "c 1:2 rwx", "c a:2 r", ""] {
            assert!(DeviceRule::parse(true, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn privileged_needs_no_program() {
        assert!(allows_all(&[r(true, "a")]));
        assert!(allows_all(&[r(false, "a"), r(true, "c 1:3 rwm"), r(true, "a")]));
        assert!(!allows_all(&docker_default()));
        assert!(!allows_all(&[r(true, "a"), r(false, "c 1:3 w")]));
    }

    #[test]
    fn one_block_per_rule_in_reverse() {
        let p = program(&[r(false, "a"), r(true, "c 1:3 rwm"), r(true, "b *:* m")]);
        let prologue = 6;
        // "b *:* m": type check, access check (3), verdict (2)
        assert_eq!(p[prologue], insn(JNE_K, TYPE, 0, 5, 1));
        assert_eq!(p[prologue + 1], insn(ALU64_MOV_X, R0, ACCESS, 0, 0));
        assert_eq!(p[prologue + 2], insn(ALU64_AND_K, R0, 0, 0, 6)); // anything but mknod
        assert_eq!(p[prologue + 3], insn(JNE_K, R0, 0, 2, 0));
        assert_eq!(p[prologue + 4], insn(ALU64_MOV_K, R0, 0, 0, 1));
        assert_eq!(p[prologue + 5], insn(EXIT, 0, 0, 0, 0));
        // "c 1:3 rwm": type, major, minor, verdict
        let b = prologue + 6;
        assert_eq!(&p[b..b + 5], &[insn(JNE_K, TYPE, 0, 4, 2), insn(JNE_K, MAJOR, 0, 3, 1), insn(JNE_K, MINOR, 0, 2, 3), insn(ALU64_MOV_K, R0, 0, 0, 1), insn(EXIT, 0, 0, 0, 0)]);
        // "a" deny: unconditional, and the end of the program
        assert_eq!(&p[b + 5..], &[insn(ALU64_MOV_K, R0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)]);
    }

    #[test]
    fn without_a_catch_all_the_end_denies() {
        let p = program(&[r(true, "c 10:229 rw")]);
        assert_eq!(p.len(), 6 + 6 + 2 + 2);
        assert_eq!(&p[p.len() - 2..], &[insn(ALU64_MOV_K, R0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)]);
    }

    /// The kernel's verifier accepts the default program (needs root; skipped otherwise).
    #[test]
    fn the_kernel_loads_the_default_program() {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let mut rules = docker_default();
        rules.push(r(true, "c 10:229 r"));
        load(&rules).unwrap();
    }
}
