//! Real-kernel tests (run as root): spawn containers from a busybox rootfs.

use dockyard_runtime::{spawn, Options, Spec, Stdio};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let out = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for a in String::from_utf8(out.stdout).unwrap().lines() {
        if a != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(a));
        }
    }
    for d in ["proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/notexec"), "x").unwrap();
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Spawn, collect stdout+stderr, wait; returns (exit code, output).
fn run(spec: &Spec) -> Result<(i32, String), dockyard_runtime::Error> {
    let (r, w) = dockyard_runtime::sys::pipe().unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let p = spawn(
        spec,
        Options { stdio: Stdio { stdin: null.as_raw_fd(), stdout: w.as_raw_fd(), stderr: w.as_raw_fd() }, wait_start: false, net_ready: false },
    )?;
    drop(w);
    let out = dockyard_runtime::sys::read_to_end(r.as_raw_fd()).unwrap();
    let mut st = 0;
    unsafe { libc::waitpid(p.pid, &mut st, 0) };
    if let Some(cg) = &p.cgroup {
        cg.remove().unwrap();
    }
    let code = if libc::WIFEXITED(st) { libc::WEXITSTATUS(st) } else { 128 + libc::WTERMSIG(st) };
    Ok((code, String::from_utf8_lossy(&out).into_owned()))
}

fn spec(root: &Path, args: &[&str]) -> Spec {
    Spec::docker_defaults(root, args.iter().map(|s| s.to_string()).collect())
}

#[test]
fn spawn_basics() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    busybox_rootfs(d.path());
    let mut s = spec(d.path(), &["sh", "-c", "echo hi $$; hostname; grep CapEff /proc/self/status; exit 3"]);
    s.hostname = "box".into();
    let (code, out) = run(&s).unwrap();
    assert_eq!(code, 3, "{out}");
    assert_eq!(out, "hi 1\nbox\nCapEff:\t00000000a80425fb\n");

    let e = run(&spec(d.path(), &["nosuchcmd"])).unwrap_err();
    assert_eq!(e.to_string(), "exec: \"nosuchcmd\": executable file not found in $PATH");
    assert_eq!(e.exit_code(), 127);
    let e = run(&spec(d.path(), &["/etc/notexec"])).unwrap_err();
    assert_eq!(e.exit_code(), 126, "{e}");

    // Timing: /bin/true, best of 20.
    let s = spec(d.path(), &["/bin/true"]);
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = std::time::Instant::now();
        run(&s).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    eprintln!("spawn+wait /bin/true: best {:.2} ms", best * 1e3);
    let mut s = spec(d.path(), &["/bin/true"]);
    s.seccomp = None;
    s.namespaces.retain(|n| n.kind != "network");
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = std::time::Instant::now();
        run(&s).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    eprintln!("spawn+wait /bin/true without netns: best {:.2} ms", best * 1e3);
}
