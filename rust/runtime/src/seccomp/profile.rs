//! Custom seccomp profiles in Docker's JSON format (moby `profiles/seccomp`),
//! compiled by hand to a classic BPF program.
//!
//! A profile is a default action plus rules: syscall names with an action and
//! optional argument conditions, each rule possibly limited to some
//! architectures, capabilities or kernel versions (`includes`/`excludes`,
//! resolved here against the container's bounding set and the host kernel).
//!
//! The program: check the architecture (anything but native x86_64, including
//! i386 via `int 0x80` and the x32 ABI, fails with EPERM as with the built-in
//! profile, whatever `architectures` lists), then, like runc, syscalls
//! numbered above every syscall the profile names fail with ENOSYS unless the
//! default action allows (so libcs fall back from syscalls newer than the
//! profile), then a binary search on the syscall number to each syscall's
//! rules, and finally the default action. For one syscall, rules with argument
//! conditions are tried in profile order, then the unconditional rule (the
//! first one wins), then the default action. Conditions in one rule are ANDed;
//! several conditions on the same argument make one rule each (ORed), as runc
//! does. Arguments are 64-bit, compared as two 32-bit halves, unsigned.
//!
//! Actions: `SCMP_ACT_KILL` kills the thread (SIGSYS; exit status 159 for a
//! single-threaded process), `SCMP_ACT_KILL_PROCESS` the process, `SCMP_ACT_TRAP`
//! sends SIGSYS, `SCMP_ACT_TRACE` hands the syscall to a ptrace tracer (with
//! none attached, the kernel fails it with ENOSYS, which is what a container
//! sees), `SCMP_ACT_LOG` allows and logs. `SCMP_ACT_NOTIFY` is refused (no
//! listener support).

use super::{Asm, T, AUDIT_ARCH, JEQ_K, JGE_K, JGT_K, LD_W_ABS, RET};
use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

const AND_K: u16 = 0x54;
/// The kernel's BPF_MAXINSNS.
pub const MAX_INSNS: usize = 4096;

/// Deserialize `null` as the type's default (Go encodes nil slices as null).
fn null_default<'de, D: Deserializer<'de>, V: Deserialize<'de> + Default>(d: D) -> std::result::Result<V, D::Error> {
    Ok(Option::<V>::deserialize(d)?.unwrap_or_default())
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_KILL")]
    Kill,
    #[serde(rename = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

/// A Docker seccomp profile (`listenerPath`, `flags` and other fields are ignored).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "null_default")]
    pub architectures: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "null_default")]
    pub syscalls: Vec<Syscall>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default, deserialize_with = "null_default")]
    pub sub_architectures: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Syscall {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub names: Vec<String>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "null_default")]
    pub args: Vec<Arg>,
    #[serde(default, deserialize_with = "null_default")]
    pub includes: Filter,
    #[serde(default, deserialize_with = "null_default")]
    pub excludes: Filter,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: Op,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, deserialize_with = "null_default")]
    pub arches: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

/// libseccomp's architecture names (all accepted; only the native one is let through).
const ARCHES: [&str; 23] = [
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
];

/// Names `includes`/`excludes` use for this machine (Go's GOARCH, as in moby).
const NATIVE_ARCH_NAMES: [&str; 2] = ["amd64", "x86_64"];

/// The syscall number of `name` on this architecture, if it has one.
pub fn syscall_number(name: &str) -> Option<u32> {
    let t = super::syscalls_x86_64::SYSCALLS;
    t.binary_search_by(|(n, _)| (*n).cmp(name)).ok().map(|i| t[i].1)
}

/// What the program returns for an action (`errno` for ERRNO and TRACE).
fn ret(action: Action, errno: Option<u32>) -> Result<u32> {
    let data = errno.unwrap_or(libc::EPERM as u32);
    if matches!(action, Action::Errno | Action::Trace) && data > 0xffff {
        return Err(Error::Invalid(format!("seccomp profile: errnoRet {data} is out of range")));
    }
    Ok(match action {
        Action::Allow => 0x7fff_0000,
        Action::Errno => 0x0005_0000 | data,
        Action::Kill | Action::KillThread => 0x0000_0000,
        Action::KillProcess => 0x8000_0000,
        Action::Trap => 0x0003_0000,
        Action::Trace => 0x7ff0_0000 | data,
        Action::Log => 0x7ffc_0000,
        Action::Notify => return Err(Error::Invalid("seccomp profile: SCMP_ACT_NOTIFY is not supported".into())),
    })
}

fn cap_name(c: &str) -> String {
    let u = c.to_ascii_uppercase();
    if u.starts_with("CAP_") {
        u
    } else {
        format!("CAP_{u}")
    }
}

/// "5.10.0-28-amd64" -> (5, 10).
fn major_minor(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The host kernel's (major, minor).
pub fn host_kernel() -> (u32, u32) {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let rel = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy().into_owned();
    major_minor(&rel).unwrap_or((0, 0))
}

/// Where the rules apply: the container's bounding capabilities and the kernel version.
pub struct Context {
    pub caps: Vec<String>,
    pub kernel: (u32, u32),
}

impl Context {
    pub fn new(caps: &[String], kernel: (u32, u32)) -> Context {
        Context { caps: caps.iter().map(|c| cap_name(c)).collect(), kernel }
    }
    fn has_cap(&self, c: &str) -> bool {
        self.caps.contains(&cap_name(c))
    }
    fn kernel_at_least(&self, v: &str) -> Result<bool> {
        let want = major_minor(v).ok_or_else(|| Error::Invalid(format!("seccomp profile: invalid minKernel {v:?}")))?;
        Ok(self.kernel >= want)
    }
    /// moby's `includes`/`excludes` logic: does this rule apply here?
    fn applies(&self, s: &Syscall) -> Result<bool> {
        let native = |a: &String| NATIVE_ARCH_NAMES.contains(&a.as_str());
        if s.excludes.arches.iter().any(native) || s.excludes.caps.iter().any(|c| self.has_cap(c)) {
            return Ok(false);
        }
        if let Some(k) = &s.excludes.min_kernel {
            if self.kernel_at_least(k)? {
                return Ok(false);
            }
        }
        if !s.includes.arches.is_empty() && !s.includes.arches.iter().any(native) {
            return Ok(false);
        }
        if !s.includes.caps.iter().all(|c| self.has_cap(c)) {
            return Ok(false);
        }
        if let Some(k) = &s.includes.min_kernel {
            if !self.kernel_at_least(k)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// One syscall's resolved rules.
#[derive(Default)]
struct Rules {
    /// (return value, ANDed conditions), in profile order.
    conditional: Vec<(u32, Vec<Arg>)>,
    unconditional: Option<u32>,
}

fn check_shape(p: &Profile) -> Result<()> {
    let bad = |m: String| Err(Error::Invalid(format!("seccomp profile: {m}")));
    if !p.architectures.is_empty() && !p.arch_map.is_empty() {
        return bad("both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'".into());
    }
    let arches = p.architectures.iter().chain(p.arch_map.iter().flat_map(|m| std::iter::once(&m.architecture).chain(&m.sub_architectures)));
    for a in arches {
        if !ARCHES.contains(&a.as_str()) {
            return bad(format!("unknown architecture {a:?}"));
        }
    }
    for s in &p.syscalls {
        if !s.name.is_empty() && !s.names.is_empty() {
            return bad("'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'".into());
        }
        if s.name.is_empty() && s.names.is_empty() {
            return bad("a syscall rule has no 'names'".into());
        }
        for a in &s.args {
            if a.index > 5 {
                return bad(format!("argument index {} is out of range (0-5)", a.index));
            }
        }
        ret(s.action, s.errno_ret)?;
    }
    Ok(())
}

/// Compile `p` for a container in `cx` to a BPF program (at most 4096 instructions).
pub fn compile(p: &Profile, cx: &Context) -> Result<Vec<libc::sock_filter>> {
    if !cfg!(target_arch = "x86_64") {
        return Err(Error::Invalid("custom seccomp profiles are only supported on x86_64".into()));
    }
    check_shape(p)?;
    let default = ret(p.default_action, Some(p.default_errno_ret.unwrap_or(libc::EPERM as u32)))?;
    let mut by_nr: BTreeMap<u32, Rules> = BTreeMap::new();
    let mut highest: Option<u32> = None;
    for s in &p.syscalls {
        if !cx.applies(s)? {
            continue;
        }
        let r = ret(s.action, s.errno_ret)?;
        let names = if s.name.is_empty() { &s.names[..] } else { std::slice::from_ref(&s.name) };
        // Several conditions on one argument: one rule per condition (runc).
        let mut per_index = [0; 6];
        for a in &s.args {
            per_index[a.index as usize] += 1;
        }
        let condition_sets: Vec<Vec<Arg>> = if per_index.iter().any(|n| *n > 1) {
            s.args.iter().map(|a| vec![a.clone()]).collect()
        } else {
            vec![s.args.clone()]
        };
        for name in names {
            let Some(nr) = syscall_number(name) else { continue };
            highest = highest.max(Some(nr));
            let rules = by_nr.entry(nr).or_default();
            if s.args.is_empty() {
                rules.unconditional.get_or_insert(r);
            } else {
                rules.conditional.extend(condition_sets.iter().map(|c| (r, c.clone())));
            }
        }
    }
    // Drop what the default action already does.
    by_nr.retain(|_, r| {
        let fallback = r.unconditional.unwrap_or(default);
        r.conditional.retain(|(ret, _)| *ret != fallback);
        !r.conditional.is_empty() || fallback != default
    });

    let mut a = Asm::default();
    let eperm = 0x0005_0000 | libc::EPERM as u32;
    a.stmt(LD_W_ABS, 4); // arch
    a.jmp(JEQ_K, AUDIT_ARCH, T::Off(1), T::Off(0));
    a.stmt(RET, eperm);
    a.stmt(LD_W_ABS, 0); // nr
    a.jmp(JGE_K, 0x4000_0000, T::Off(0), T::Off(1)); // x32 ABI
    a.stmt(RET, eperm);
    let permissive = matches!(p.default_action, Action::Allow | Action::Log);
    if let (Some(h), false) = (highest, permissive || p.default_errno_ret == Some(libc::ENOSYS as u32)) {
        a.jmp(JGT_K, h, T::Off(0), T::Off(1));
        a.stmt(RET, 0x0005_0000 | libc::ENOSYS as u32);
    }
    let nrs: Vec<u32> = by_nr.keys().copied().collect();
    let blocks: Vec<(u32, usize)> = by_nr.iter().filter(|(_, r)| !r.conditional.is_empty()).map(|(nr, _)| (*nr, a.label())).collect();
    search(&mut a, &nrs, &by_nr, &blocks, default);
    for (nr, label) in &blocks {
        a.bind(*label);
        let r = &by_nr[nr];
        for (ret, conds) in &r.conditional {
            let fail = a.label();
            for c in conds {
                condition(&mut a, c, fail);
            }
            a.stmt(RET, *ret);
            a.bind(fail);
        }
        a.stmt(RET, r.unconditional.unwrap_or(default));
    }
    let prog = a.finish()?;
    if prog.len() > MAX_INSNS {
        return Err(Error::Invalid(format!(
            "seccomp profile compiles to {} BPF instructions, more than the kernel's limit of {MAX_INSNS}",
            prog.len()
        )));
    }
    Ok(prog)
}

/// Binary search on the syscall number (in the accumulator) over `nrs`.
fn search(a: &mut Asm, nrs: &[u32], by_nr: &BTreeMap<u32, Rules>, blocks: &[(u32, usize)], default: u32) {
    if nrs.len() <= 4 {
        for nr in nrs {
            a.jmp(JEQ_K, *nr, T::Off(0), T::Off(1));
            match blocks.iter().find(|(n, _)| n == nr) {
                Some((_, l)) => a.ja(*l),
                None => a.stmt(RET, by_nr[nr].unconditional.unwrap_or(default)),
            }
        }
        a.stmt(RET, default);
        return;
    }
    let mid = nrs.len() / 2;
    let right = a.label();
    a.jmp(JGE_K, nrs[mid], T::Off(0), T::Off(1));
    a.ja(right);
    search(a, &nrs[..mid], by_nr, blocks, default);
    a.bind(right);
    search(a, &nrs[mid..], by_nr, blocks, default);
}

/// Fall through if argument condition `c` holds, else jump to `fail`.
fn condition(a: &mut Asm, c: &Arg, fail: usize) {
    let lo_off = 16 + 8 * c.index;
    let hi_off = lo_off + 4; // little endian
    let (hi, lo) = ((c.value >> 32) as u32, c.value as u32);
    let pass = a.label();
    let (f, p, next) = (T::L(fail), T::L(pass), T::Off(0));
    match c.op {
        Op::Eq => {
            a.stmt(LD_W_ABS, hi_off);
            a.jmp(JEQ_K, hi, next, f);
            a.stmt(LD_W_ABS, lo_off);
            a.jmp(JEQ_K, lo, next, f);
        }
        Op::Ne => {
            a.stmt(LD_W_ABS, hi_off);
            a.jmp(JEQ_K, hi, next, p);
            a.stmt(LD_W_ABS, lo_off);
            a.jmp(JEQ_K, lo, f, next);
        }
        Op::MaskedEq => {
            let (vhi, vlo) = ((c.value_two >> 32) as u32, c.value_two as u32);
            a.stmt(LD_W_ABS, hi_off);
            a.stmt(AND_K, hi);
            a.jmp(JEQ_K, vhi, next, f);
            a.stmt(LD_W_ABS, lo_off);
            a.stmt(AND_K, lo);
            a.jmp(JEQ_K, vlo, next, f);
        }
        Op::Gt | Op::Ge => {
            a.stmt(LD_W_ABS, hi_off);
            a.jmp(JGT_K, hi, p, next);
            a.jmp(JEQ_K, hi, next, f);
            a.stmt(LD_W_ABS, lo_off);
            a.jmp(if c.op == Op::Gt { JGT_K } else { JGE_K }, lo, next, f);
        }
        Op::Lt | Op::Le => {
            a.stmt(LD_W_ABS, hi_off);
            a.jmp(JGT_K, hi, f, next);
            a.jmp(JEQ_K, hi, next, p);
            a.stmt(LD_W_ABS, lo_off);
            a.jmp(if c.op == Op::Lt { JGE_K } else { JGT_K }, lo, f, next);
        }
    }
    a.bind(pass);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::JA;

    fn prof(v: serde_json::Value) -> Profile {
        serde_json::from_value(v).unwrap()
    }
    fn cx() -> Context {
        Context::new(&crate::spec::DEFAULT_CAPS.iter().map(|s| s.to_string()).collect::<Vec<_>>(), (6, 1))
    }

    /// Run the classic BPF program on (nr, args) like the kernel would.
    fn run(p: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = vec![0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, v) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = p[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => acc = u32::from_le_bytes(data[i.k as usize..i.k as usize + 4].try_into().unwrap()),
                AND_K => acc &= i.k,
                RET => return i.k,
                JA => pc += i.k as usize,
                c => {
                    let t = match c {
                        JEQ_K => acc == i.k,
                        JGT_K => acc > i.k,
                        JGE_K => acc >= i.k,
                        _ => panic!("unexpected opcode {c:#x}"),
                    };
                    pc += if t { i.jt } else { i.jf } as usize;
                }
            }
        }
    }
    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = 0x0005_0001;
    fn nr(n: &str) -> u32 {
        syscall_number(n).unwrap()
    }

    #[test]
    fn table_is_sorted_and_known() {
        let t = crate::seccomp::syscalls_x86_64::SYSCALLS;
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("mkdir"), Some(libc::SYS_mkdir as u32));
        assert_eq!(syscall_number("clone3"), Some(libc::SYS_clone3 as u32));
        assert_eq!(syscall_number("socketcall"), None);
    }

    #[test]
    fn allow_list_with_default_errno() {
        let names: Vec<&str> = crate::seccomp::syscalls_x86_64::SYSCALLS.iter().map(|(n, _)| *n).filter(|n| *n != "mkdir").collect();
        let p = prof(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW", "args": null},
                         {"name": "nonexistent_call", "action": "SCMP_ACT_ALLOW"}]
        }));
        let prog = compile(&p, &cx()).unwrap();
        assert!(prog.len() < 1500, "{}", prog.len());
        for (n, _) in crate::seccomp::syscalls_x86_64::SYSCALLS {
            let want = if *n == "mkdir" { 0x0005_0026 } else { ALLOW };
            assert_eq!(run(&prog, AUDIT_ARCH, nr(n), [0; 6]), want, "{n}");
        }
        // Foreign arches and x32 are refused.
        assert_eq!(run(&prog, 0x4000_0003, 0, [0; 6]), EPERM);
        assert_eq!(run(&prog, AUDIT_ARCH, 0x4000_0000, [0; 6]), EPERM);
    }

    #[test]
    fn enosys_above_the_profile_and_errno_ret() {
        let p = prof(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "write", "mkdir"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }));
        let prog = compile(&p, &cx()).unwrap();
        assert_eq!(run(&prog, AUDIT_ARCH, nr("write"), [0; 6]), ALLOW);
        assert_eq!(run(&prog, AUDIT_ARCH, nr("getpid"), [0; 6]), 0x0005_000d);
        assert_eq!(run(&prog, AUDIT_ARCH, nr("open"), [0; 6]), EPERM);
        assert_eq!(run(&prog, AUDIT_ARCH, nr("clone3"), [0; 6]), 0x0005_0026);
    }

    #[test]
    fn actions() {
        let p = prof(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL"},
                         {"names": ["rmdir"], "action": "SCMP_ACT_KILL_PROCESS"},
                         {"names": ["unlink"], "action": "SCMP_ACT_TRAP"},
                         {"names": ["chmod"], "action": "SCMP_ACT_TRACE"},
                         {"names": ["chown"], "action": "SCMP_ACT_LOG"},
                         {"names": ["link"], "action": "SCMP_ACT_ERRNO"}]
        }));
        let prog = compile(&p, &cx()).unwrap();
        let r = |n| run(&prog, AUDIT_ARCH, nr(n), [0; 6]);
        assert_eq!((r("mkdir"), r("rmdir"), r("unlink"), r("chmod"), r("chown"), r("link"), r("read")),
                   (0, 0x8000_0000, 0x0003_0000, 0x7ff0_0001, 0x7ffc_0000, EPERM, ALLOW));
    }

    #[test]
    fn argument_conditions() {
        let big = 0x1_0000_0005u64;
        let p = prof(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}, {"index": 1, "value": big, "op": "SCMP_CMP_LT"}]},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 0x7E020000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 2, "value": big, "op": "SCMP_CMP_GE"}]},
                {"names": ["write"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 2, "value": big, "op": "SCMP_CMP_GT"}]},
                {"names": ["pread64"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 2, "value": big, "op": "SCMP_CMP_LE"}]}
            ]
        }));
        let prog = compile(&p, &cx()).unwrap();
        let r = |n: &str, args: [u64; 6]| run(&prog, AUDIT_ARCH, nr(n), args);
        assert_eq!(r("socket", [2, 1, 0, 0, 0, 0]), EPERM);
        assert_eq!(r("socket", [1, 1, 0, 0, 0, 0]), ALLOW);
        assert_eq!(r("socket", [0x1_0000_0002, 1, 0, 0, 0, 0]), ALLOW);
        // AND across arguments.
        assert_eq!(r("personality", [8, 5, 0, 0, 0, 0]), EPERM);
        assert_eq!(r("personality", [8, big, 0, 0, 0, 0]), ALLOW);
        assert_eq!(r("personality", [0, 5, 0, 0, 0, 0]), ALLOW);
        assert_eq!(r("personality", [0x1_0000_0000, 0xffff_ffff, 0, 0, 0, 0]), EPERM);
        // OR on the same argument.
        assert_eq!(r("kill", [1, 9, 0, 0, 0, 0]), EPERM);
        assert_eq!(r("kill", [1, 15, 0, 0, 0, 0]), EPERM);
        assert_eq!(r("kill", [1, 2, 0, 0, 0, 0]), ALLOW);
        assert_eq!(r("clone", [0x11, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(r("clone", [0x2000_0000, 0, 0, 0, 0, 0]), ALLOW);
        for (v, ge, gt, le) in [(big, true, false, true), (big + 1, true, true, false), (big - 1, false, false, true),
                                (5, false, false, true), (0x2_0000_0000, true, true, false)] {
            let want = |b: bool| if b { EPERM } else { ALLOW };
            assert_eq!(r("read", [0, 0, v, 0, 0, 0]), want(ge), "ge {v:#x}");
            assert_eq!(r("write", [0, 0, v, 0, 0, 0]), want(gt), "gt {v:#x}");
            assert_eq!(r("pread64", [0, 0, v, 0, 0, 0]), want(le), "le {v:#x}");
        }
    }

    #[test]
    fn conditional_then_unconditional_then_default() {
        let p = prof(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "exit"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [{"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}]},
                {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW"}
            ]
        }));
        let prog = compile(&p, &cx()).unwrap();
        let r = |n: &str, a0: u64, a1: u64| run(&prog, AUDIT_ARCH, nr(n), [a0, a1, 0, 0, 0, 0]);
        assert_eq!(r("personality", 0, 0), ALLOW);
        assert_eq!(r("personality", 8, 0), EPERM);
        assert_eq!(r("ioctl", 1, 7), 0x0005_0016);
        assert_eq!(r("ioctl", 1, 8), ALLOW);
    }

    #[test]
    fn includes_and_excludes() {
        let p = prof(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["chown"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}},
                {"names": ["write"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
                {"names": ["open"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
                {"names": ["close"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"names": ["stat"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.1"}},
                {"names": ["fstat"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "6.0"}}
            ]
        }));
        let check = |caps: &[&str], want: &[(&str, bool)]| {
            let cx = Context::new(&caps.iter().map(|s| s.to_string()).collect::<Vec<_>>(), (6, 1));
            let prog = compile(&p, &cx).unwrap();
            for (n, allowed) in want {
                assert_eq!(run(&prog, AUDIT_ARCH, nr(n), [0; 6]) == ALLOW, *allowed, "{n} with {caps:?}");
            }
        };
        check(&["CHOWN"], &[("mount", false), ("chown", false), ("write", false), ("open", true), ("close", true),
                            ("stat", false), ("fstat", false), ("read", true)]);
        check(&["CAP_SYS_ADMIN"], &[("mount", true), ("chown", true)]);
    }

    #[test]
    fn errors() {
        let bad = |v: serde_json::Value| compile(&prof(v), &cx()).map(|p| p.len()).unwrap_err();
        let e = bad(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                        "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}));
        assert!(format!("{e:?}").contains("use either 'architectures' or 'archMap'"));
        let e = bad(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}));
        assert!(format!("{e:?}").contains("unknown architecture"));
        let e = bad(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                                        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}));
        assert!(format!("{e:?}").contains("index 6"));
        let e = bad(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
        assert!(format!("{e:?}").contains("NOTIFY"));
        assert!(serde_json::from_value::<Profile>(serde_json::json!({"defaultAction": "SCMP_ACT_NOPE"})).is_err());
        // Too big: 900 conditional rules (5 instructions each) on one syscall.
        let rules: Vec<_> = (0..900).map(|i| serde_json::json!({"names": ["read"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}]})).collect();
        let e = bad(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}));
        assert!(format!("{e:?}").contains("limit of 4096"), "{e:?}");
    }

    #[test]
    fn installs_in_a_child() {
        // Default ALLOW; mkdir fails with ENOSYS; socket(AF_INET) with EACCES; AF_UNIX works.
        let p = prof(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                         {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                          "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]
        }));
        let prog = compile(&p, &cx()).unwrap();
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if crate::seccomp::install(&prog).is_err() {
                    libc::_exit(10);
                }
                if libc::mkdir(c"/tmp/dockyard-seccomp-test".as_ptr(), 0o700) != -1 || *libc::__errno_location() != libc::ENOSYS {
                    libc::_exit(11);
                }
                if libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) != -1 || *libc::__errno_location() != libc::EACCES {
                    libc::_exit(12);
                }
                if libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) < 0 {
                    libc::_exit(13);
                }
                libc::_exit(0);
            }
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0, "status {st:#x}");
        }
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(major_minor("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(major_minor("5.15"), Some((5, 15)));
        assert!(host_kernel() >= (3, 0));
    }
}
