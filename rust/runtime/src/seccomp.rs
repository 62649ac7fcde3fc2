//! A seccomp BPF program built by hand (no libseccomp): Docker's default
//! profile expressed as a deny-list. Denied syscalls fail with EPERM, as in
//! Docker; clone with namespace flags fails with EPERM; clone3 fails with
//! ENOSYS (so libcs fall back to clone, which we can inspect); personality is
//! limited to Docker's allowed personas. Other architectures (i386 via int
//! 0x80, x32) are refused so the deny-list can't be bypassed.
//!
//! A spec can also carry a custom profile in Docker's JSON format
//! (`--security-opt seccomp=profile.json`), compiled by [`profile`].

use crate::error::{Error, Result};
use crate::spec::Spec;
use serde::{Deserialize, Deserializer, Serialize};

pub mod profile;
mod syscalls_x86_64;

const RET: u16 = 0x06;
const LD_W_ABS: u16 = 0x20;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}
fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// A jump target: a relative offset, or a label bound later.
#[derive(Clone, Copy)]
enum T {
    Off(u8),
    L(usize),
}

/// A tiny BPF assembler with forward labels. Conditional jumps reach at most
/// 255 instructions; `ja` (32-bit offset) is for anything farther.
#[derive(Default)]
struct Asm {
    code: Vec<(u16, u32, T, T)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = Some(self.code.len());
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.code.push((code, k, T::Off(0), T::Off(0)));
    }
    fn jmp(&mut self, code: u16, k: u32, jt: T, jf: T) {
        self.code.push((code, k, jt, jf));
    }
    fn ja(&mut self, l: usize) {
        self.code.push((JA, 0, T::L(l), T::Off(0)));
    }
    fn finish(self) -> Result<Vec<libc::sock_filter>> {
        let mut out = Vec::with_capacity(self.code.len());
        for (i, (code, k, jt, jf)) in self.code.iter().enumerate() {
            let off = |t: &T| -> Result<usize> {
                match t {
                    T::Off(n) => Ok(*n as usize),
                    T::L(l) => match self.labels[*l] {
                        Some(at) if at > i => Ok(at - i - 1),
                        _ => Err(Error::Invalid("seccomp: internal error: unbound or backward BPF label".into())),
                    },
                }
            };
            if *code == JA {
                out.push(stmt(JA, off(jt)? as u32));
                continue;
            }
            let (t, f) = (off(jt)?, off(jf)?);
            if t > 255 || f > 255 {
                return Err(Error::Invalid("seccomp: internal error: BPF jump out of range".into()));
            }
            out.push(jump(*code, *k, t as u8, f as u8));
        }
        Ok(out)
    }
}

/// A spec's `seccomp` value: a profile name ("default", "unconfined") or a
/// custom profile object in Docker's format.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Seccomp {
    Name(String),
    Profile(Box<profile::Profile>),
}

impl From<&str> for Seccomp {
    fn from(s: &str) -> Seccomp {
        Seccomp::Name(s.into())
    }
}

impl<'de> Deserialize<'de> for Seccomp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Seccomp, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Seccomp::Name(s)),
            v @ serde_json::Value::Object(_) => serde_json::from_value(v)
                .map(|p| Seccomp::Profile(Box::new(p)))
                .map_err(|e| serde::de::Error::custom(format!("seccomp profile: {e}"))),
            _ => Err(serde::de::Error::custom("seccomp: expected a profile name or a profile object")),
        }
    }
}

/// Syscalls Docker's default profile refuses to a container with the default
/// capabilities (docs.docker.com "Significant syscalls blocked by the default
/// profile"), plus the new mount API and io_uring, which newer profiles also block.
pub fn denied() -> Vec<(&'static str, libc::c_long)> {
    let mut v: Vec<(&'static str, libc::c_long)> = vec![
        ("acct", libc::SYS_acct),
        ("add_key", libc::SYS_add_key),
        ("bpf", libc::SYS_bpf),
        ("clock_adjtime", libc::SYS_clock_adjtime),
        ("clock_settime", libc::SYS_clock_settime),
        ("delete_module", libc::SYS_delete_module),
        ("finit_module", libc::SYS_finit_module),
        ("init_module", libc::SYS_init_module),
        ("get_mempolicy", libc::SYS_get_mempolicy),
        ("mbind", libc::SYS_mbind),
        ("set_mempolicy", libc::SYS_set_mempolicy),
        ("move_pages", libc::SYS_move_pages),
        ("kcmp", libc::SYS_kcmp),
        ("kexec_load", libc::SYS_kexec_load),
        ("keyctl", libc::SYS_keyctl),
        ("request_key", libc::SYS_request_key),
        ("lookup_dcookie", libc::SYS_lookup_dcookie),
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("pivot_root", libc::SYS_pivot_root),
        ("fsopen", libc::SYS_fsopen),
        ("fsconfig", libc::SYS_fsconfig),
        ("fsmount", libc::SYS_fsmount),
        ("fspick", libc::SYS_fspick),
        ("move_mount", libc::SYS_move_mount),
        ("open_tree", libc::SYS_open_tree),
        ("mount_setattr", libc::SYS_mount_setattr),
        ("name_to_handle_at", libc::SYS_name_to_handle_at),
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("quotactl", libc::SYS_quotactl),
        ("reboot", libc::SYS_reboot),
        ("setns", libc::SYS_setns),
        ("unshare", libc::SYS_unshare),
        ("settimeofday", libc::SYS_settimeofday),
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
        ("syslog", libc::SYS_syslog),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
        ("sethostname", libc::SYS_sethostname),
        ("setdomainname", libc::SYS_setdomainname),
        ("vhangup", libc::SYS_vhangup),
        ("fanotify_init", libc::SYS_fanotify_init),
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend_from_slice(&[
        ("create_module", 174),
        ("get_kernel_syms", 177),
        ("query_module", 178),
        ("ioperm", libc::SYS_ioperm),
        ("iopl", libc::SYS_iopl),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("nfsservctl", libc::SYS_nfsservctl),
        ("sysfs", libc::SYS_sysfs),
        ("_sysctl", libc::SYS__sysctl),
        ("uselib", libc::SYS_uselib),
        ("ustat", libc::SYS_ustat),
    ]);
    v
}

const NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

/// Docker's allowed `personality(2)` arguments.
const PERSONAS: [u32; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Docker's default profile as a BPF program.
pub fn default_program() -> Vec<libc::sock_filter> {
    let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let mut p = vec![
        stmt(LD_W_ABS, 4), // arch
        jump(JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(RET, eperm),
        stmt(LD_W_ABS, 0), // nr
    ];
    #[cfg(target_arch = "x86_64")]
    {
        p.push(jump(JGE_K, 0x4000_0000, 0, 1)); // x32 ABI
        p.push(stmt(RET, eperm));
    }
    for (_, nr) in denied() {
        p.push(jump(JEQ_K, nr as u32, 0, 1));
        p.push(stmt(RET, eperm));
    }
    p.push(jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    p.push(stmt(RET, SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
    // clone(flags, ...): flags is args[0] on x86_64 and aarch64.
    p.push(jump(JEQ_K, libc::SYS_clone as u32, 0, 4));
    p.push(stmt(LD_W_ABS, 16));
    p.push(jump(JSET_K, NS_FLAGS, 0, 1));
    p.push(stmt(RET, eperm));
    p.push(stmt(RET, SECCOMP_RET_ALLOW));
    // personality(persona)
    let n = PERSONAS.len() as u8;
    p.push(jump(JEQ_K, libc::SYS_personality as u32, 0, n + 3));
    p.push(stmt(LD_W_ABS, 16));
    for (i, v) in PERSONAS.iter().enumerate() {
        p.push(jump(JEQ_K, *v, n - i as u8, 0));
    }
    p.push(stmt(RET, eperm));
    p.push(stmt(RET, SECCOMP_RET_ALLOW));
    p.push(stmt(RET, SECCOMP_RET_ALLOW)); // everything else
    p
}

/// Compiled program for a spec's `seccomp` value (None: no filter). A custom
/// profile's `includes`/`excludes` are resolved against the spec's bounding
/// capabilities (Docker's default set when the spec has none).
pub fn program_for(spec: &Spec) -> Result<Option<Vec<libc::sock_filter>>> {
    match &spec.seccomp {
        None => Ok(None),
        Some(Seccomp::Name(n)) => match n.as_str() {
            "" | "unconfined" => Ok(None),
            "default" => Ok(Some(default_program())),
            other => Err(Error::Invalid(format!("unknown seccomp profile {other:?} (use \"default\", \"unconfined\" or a profile object)"))),
        },
        Some(Seccomp::Profile(p)) => {
            let caps = match &spec.capabilities {
                Some(c) => c.bounding.clone(),
                None => crate::spec::DEFAULT_CAPS.iter().map(|s| s.to_string()).collect(),
            };
            profile::compile(p, &profile::Context::new(&caps, profile::host_kernel())).map(Some)
        }
    }
}

/// Install a filter on the calling thread (needs no_new_privs or CAP_SYS_ADMIN).
pub fn install(prog: &[libc::sock_filter]) -> Result<()> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    let r = unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER as libc::c_ulong, &fprog as *const _ as libc::c_ulong, 0, 0) };
    crate::sys::check(r, || "install seccomp filter".into()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn program_shape() {
        let p = default_program();
        assert!(p.len() < 4096);
        assert_eq!(p.last().unwrap().k, SECCOMP_RET_ALLOW);
        // Every jump lands inside the program.
        for (i, ins) in p.iter().enumerate() {
            if ins.code & 0x07 == 0x05 {
                assert!(i + 1 + (ins.jt.max(ins.jf) as usize) < p.len());
            }
        }
    }

    #[test]
    fn filter_denies_in_a_child() {
        // Fork, install, try unshare(CLONE_NEWUTS) and getpid; report via exit code.
        let prog = default_program();
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if install(&prog).is_err() {
                    libc::_exit(10);
                }
                let r = libc::unshare(libc::CLONE_NEWUTS);
                let e = *libc::__errno_location();
                if r == 0 || e != libc::EPERM {
                    libc::_exit(11);
                }
                if libc::syscall(libc::SYS_clone3, 0usize, 0usize) != -1 || *libc::__errno_location() != libc::ENOSYS {
                    libc::_exit(12);
                }
                if libc::personality(0x0040000) != -1 {
                    libc::_exit(13);
                }
                if libc::getpid() <= 0 {
                    libc::_exit(14);
                }
                libc::_exit(0);
            }
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
            assert!(libc::WIFEXITED(st));
            assert_eq!(libc::WEXITSTATUS(st), 0);
        }
    }
}
