//! The command line of `run` and `exec` (also what an idle shim receives as
//! its request): parsed by hand, a usage error exits 2.

use std::path::PathBuf;

#[derive(Default)]
pub struct Args {
    pub mode: String,
    pub id: String,
    pub state_dir: PathBuf,
    pub spec: PathBuf,
    pub log: Option<PathBuf>,
    pub log_max_size: u64,
    pub log_max_file: u32,
    /// json-file (default), local, none, journald, syslog or cri.
    pub log_driver: String,
    /// The driver's options as the daemon resolved them (see log/mod.rs).
    pub log_opts: Vec<(String, String)>,
    pub tty: bool,
    pub stdin: bool,
    pub wait_start: bool,
    /// An idle shim's request sent ahead of the spec (`idle`): the spec file
    /// is written later, and a line on stdin says so (EOF: the start was given up).
    pub await_spec: bool,
    pub debug: bool,
    pub pid: i32,
    /// "native" (default) or "runc".
    pub runtime: String,
    pub bundle: PathBuf,
    pub runc: PathBuf,
    pub runc_root: PathBuf,
}

fn usage(msg: &str) -> ! {
    eprintln!("dockyard-shim: {msg}\nusage: dockyard-shim run|exec --id ID --state-dir DIR --spec FILE [--log FILE] [--log-max-size N] [--log-max-file N] [--log-driver NAME] [--log-opt K=V]... [--tty] [--stdin] [--wait-start] [--pid PID]");
    std::process::exit(2)
}

pub fn parse_args(argv: Vec<String>) -> Args {
    let mut a = Args { log_max_file: 1, log_driver: "json-file".into(), runtime: "native".into(), runc: "runc".into(), ..Default::default() };
    let mut it = argv.into_iter();
    a.mode = it.next().unwrap_or_default();
    if a.mode != "run" && a.mode != "exec" {
        usage("first argument must be run or exec");
    }
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage(&format!("{k} needs a value")));
        match k.as_str() {
            "--id" => a.id = val(),
            "--state-dir" => a.state_dir = val().into(),
            "--spec" => a.spec = val().into(),
            "--log" => a.log = Some(val().into()),
            "--log-max-size" => a.log_max_size = val().parse().unwrap_or_else(|_| usage("bad --log-max-size")),
            "--log-max-file" => a.log_max_file = val().parse().unwrap_or_else(|_| usage("bad --log-max-file")),
            "--log-driver" => a.log_driver = val(),
            "--log-opt" => {
                let v = val();
                let (k, v) = v.split_once('=').unwrap_or_else(|| usage("--log-opt needs key=value"));
                a.log_opts.push((k.to_string(), v.to_string()));
            }
            "--pid" => a.pid = val().parse().unwrap_or_else(|_| usage("bad --pid")),
            "--tty" => a.tty = true,
            "--stdin" => a.stdin = true,
            "--wait-start" => a.wait_start = true,
            "--await-spec" => a.await_spec = true,
            "--debug" => a.debug = true,
            "--runtime" => a.runtime = val(),
            "--bundle" => a.bundle = val().into(),
            "--runc" => a.runc = val().into(),
            "--runc-root" => a.runc_root = val().into(),
            _ => usage(&format!("unknown option {k}")),
        }
    }
    if a.state_dir.as_os_str().is_empty() || a.spec.as_os_str().is_empty() {
        usage("--state-dir and --spec are required");
    }
    if a.mode == "exec" && a.pid <= 0 {
        usage("exec needs --pid");
    }
    match a.runtime.as_str() {
        "native" => {}
        "runc" if a.mode == "run" && !a.bundle.as_os_str().is_empty() && !a.runc_root.as_os_str().is_empty() => {}
        "runc" => usage("--runtime runc needs run, --bundle and --runc-root"),
        _ => usage("--runtime must be native or runc"),
    }
    a
}
