//! Capabilities by name, and applying bounding/effective/permitted/inheritable/ambient sets.

use crate::error::{Error, Result};
use crate::spec::Capabilities;

const NAMES: [&str; 41] = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
];

pub fn number(name: &str) -> Result<u32> {
    let n = name.to_ascii_uppercase();
    let n = n.strip_prefix("CAP_").unwrap_or(&n);
    NAMES.iter().position(|x| *x == n).map(|i| i as u32).ok_or_else(|| Error::Invalid(format!("unknown capability {name:?}")))
}

pub fn mask(names: &[String]) -> Result<u64> {
    let mut m = 0u64;
    for n in names {
        if n.eq_ignore_ascii_case("ALL") {
            m |= (1u64 << NAMES.len()) - 1;
        } else {
            m |= 1 << number(n)?;
        }
    }
    Ok(m)
}

/// Numeric masks, computed before the clone.
#[derive(Clone, Copy, Debug, Default)]
pub struct Masks {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl Masks {
    pub fn from_spec(c: &Capabilities) -> Result<Masks> {
        Ok(Masks {
            bounding: mask(&c.bounding)?,
            effective: mask(&c.effective)?,
            permitted: mask(&c.permitted)?,
            inheritable: mask(&c.inheritable)?,
            ambient: mask(&c.ambient)?,
        })
    }
}

pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drop everything outside `bounding` from the bounding set (needs CAP_SETPCAP).
pub fn drop_bounding(m: &Masks, last: u32) -> Result<()> {
    for c in 0..=last {
        if m.bounding & (1 << c) == 0 {
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) };
            if r < 0 {
                let e = crate::sys::errno();
                if e != libc::EINVAL {
                    return Err(Error::errno(format!("drop capability {}", c), e));
                }
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capset(effective, permitted, inheritable), then the ambient set.
pub fn apply(m: &Masks) -> Result<()> {
    let hdr = CapHeader { version: 0x20080522, pid: 0 };
    let data = [
        CapData { effective: m.effective as u32, permitted: m.permitted as u32, inheritable: m.inheritable as u32 },
        CapData {
            effective: (m.effective >> 32) as u32,
            permitted: (m.permitted >> 32) as u32,
            inheritable: (m.inheritable >> 32) as u32,
        },
    ];
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) };
    crate::sys::check(r as i32, || "capset".into())?;
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) };
    for c in 0..64u32 {
        if m.ambient & (1 << c) != 0 {
            let r = unsafe {
                libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong, c as libc::c_ulong, 0, 0)
            };
            crate::sys::check(r, || format!("raise ambient capability {c}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn docker_default_mask() {
        let c = crate::spec::Capabilities::docker_default();
        assert_eq!(mask(&c.effective).unwrap(), 0xa80425fb);
        assert_eq!(number("sys_admin").unwrap(), 21);
        assert!(number("CAP_NOPE").is_err());
    }
}
