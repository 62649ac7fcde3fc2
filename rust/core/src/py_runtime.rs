//! Bindings for the execution driver: start a container (or an exec) under its
//! own `dockyard-shim`, wait for processes, Docker's default spec, cgroup
//! cleanup. The container itself is cloned by the shim (single-threaded), never
//! inside the Python process. Every call releases the GIL.

use dockyard_runtime as rt;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::job::Job;
use crate::shim_pool;

pyo3::import_exception!(dockyard.errors, DockyardError);

static START_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `dockyard._core.ContainerStartError(DockyardError)`, with `.exit_code`.
fn start_error_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    START_ERROR
        .get_or_try_init(py, || {
            let base = py.get_type::<DockyardError>();
            PyErr::new_type(
                py,
                c"dockyard._core.ContainerStartError",
                Some(c"The container's process could not be started; `exit_code` is Docker's (127 not found, 126 not executable, 128 other)."),
                Some(&base),
                None,
            )
        })
        .map(|t| t.bind(py))
}

fn start_error(py: Python<'_>, msg: &str, code: i32) -> PyErr {
    match start_error_type(py) {
        Ok(t) => {
            let err = PyErr::from_type(t.clone(), msg.to_string());
            let _ = err.value(py).setattr("exit_code", code);
            err
        }
        Err(e) => e,
    }
}

fn rt_err(e: rt::Error) -> PyErr {
    match e {
        rt::Error::Os { errno, .. } => PyOSError::new_err((errno, e.to_string())),
        rt::Error::Invalid(m) => PyValueError::new_err(m),
        rt::Error::Exec { msg, .. } => PyOSError::new_err(msg),
    }
}

/// Path of the bundled `dockyard-shim`: $DOCKYARD_SHIM, else `<package>/_bin/dockyard-shim`.
#[pyfunction]
fn shim_path(py: Python<'_>) -> PyResult<String> {
    if let Ok(p) = std::env::var("DOCKYARD_SHIM") {
        return Ok(p);
    }
    let file: String = py.import("dockyard._core")?.getattr("__file__")?.extract()?;
    let p = Path::new(&file).parent().unwrap_or(Path::new(".")).join("_bin").join("dockyard-shim");
    Ok(p.to_string_lossy().into_owned())
}

/// The shim's command line (`run` or `exec`) for a start; see the .pyi for
/// the arguments.
struct Launch {
    shim: String,
    state_dir: PathBuf,
    argv: Vec<String>,
    /// Containers (not execs) start on a shim made ahead of need when one
    /// is ready, kept per state-dir parent (the engine's exec root).
    pool_key: Option<String>,
}

impl Launch {
    #[allow(clippy::too_many_arguments)]
    fn new(
        shim: String,
        id: &str,
        state_dir: PathBuf,
        log_path: Option<PathBuf>,
        flags: [bool; 4],
        log_max_size: u64,
        log_max_file: u32,
        exec_pid: Option<i32>,
        log_driver: Option<String>,
        log_opts: Option<Vec<String>>,
    ) -> Launch {
        let mut argv: Vec<String> = vec![if exec_pid.is_some() { "exec" } else { "run" }.into()];
        let mut opt = |k: &str, v: String| {
            argv.push(k.into());
            argv.push(v);
        };
        opt("--id", id.to_string());
        opt("--state-dir", state_dir.to_string_lossy().into_owned());
        opt("--spec", state_dir.join("spec.json").to_string_lossy().into_owned());
        opt("--log-max-size", log_max_size.to_string());
        opt("--log-max-file", log_max_file.to_string());
        if let Some(l) = &log_path {
            opt("--log", l.to_string_lossy().into_owned());
        }
        if let Some(d) = log_driver {
            opt("--log-driver", d);
        }
        for o in log_opts.into_iter().flatten() {
            opt("--log-opt", o);
        }
        if let Some(p) = exec_pid {
            opt("--pid", p.to_string());
        }
        for (flag, on) in ["--tty", "--stdin", "--wait-start", "--debug"].into_iter().zip(flags) {
            if on {
                argv.push(flag.into());
            }
        }
        let pool_key = state_dir.parent().filter(|_| exec_pid.is_none()).map(|p| p.to_string_lossy().into_owned());
        Launch { shim, state_dir, argv, pool_key }
    }

    /// Into the state dir (`begin_shim`'s caller made it already).
    fn write_spec(&self, spec_json: &str) -> std::io::Result<()> {
        std::fs::write(self.state_dir.join("spec.json"), spec_json.as_bytes())
    }

    /// Start it with the spec written: on an idle shim when one is ready,
    /// else the usual exec. Its report line, and its stderr (the usual start only).
    fn run(&self) -> std::io::Result<(String, String)> {
        if let Some(key) = &self.pool_key {
            if let Some(line) = shim_pool::run(&self.shim, key, &self.argv) {
                return Ok((line, String::new()));
            }
        }
        let out = Command::new(&self.shim).args(&self.argv).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).output()?;
        if let Some(key) = &self.pool_key {
            shim_pool::refill(&self.shim, key);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok((text.lines().last().unwrap_or("").to_string(), String::from_utf8_lossy(&out.stderr).into_owned()))
    }

    /// The report as `spawn_shim` returns it.
    fn report<'py>(&self, py: Python<'py>, report: std::io::Result<(String, String)>) -> PyResult<Bound<'py, PyDict>> {
        let (line, stderr) = report.map_err(|e| PyOSError::new_err(format!("start dockyard-shim ({}): {e}", self.shim)))?;
        let v: serde_json::Value = serde_json::from_str(line.trim()).map_err(|_| {
            start_error(py, &format!("dockyard-shim failed: {}{}", line.trim(), stderr.trim()), 128)
        })?;
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            let code = v.get("exit_code").and_then(|c| c.as_i64()).unwrap_or(128) as i32;
            return Err(start_error(py, e, code));
        }
        let d = PyDict::new(py);
        d.set_item("shim_pid", v.get("shim_pid").and_then(|x| x.as_i64()).unwrap_or(0))?;
        d.set_item("pid", v.get("pid").and_then(|x| x.as_i64()).unwrap_or(0))?;
        d.set_item("created", v.get("created").and_then(|x| x.as_bool()).unwrap_or(false))?;
        d.set_item("attach_socket", self.state_dir.join("attach.sock").to_string_lossy().into_owned())?;
        d.set_item("exit_file", self.state_dir.join("exit.json").to_string_lossy().into_owned())?;
        Ok(d)
    }
}

/// The next idle shim prepares a network namespace if this container wants
/// a new one (see `shim_pool::expect_new_network`).
fn expect_network(spec: &rt::Spec) {
    shim_pool::expect_new_network(spec.namespaces.iter().any(|n| n.kind == "network" && n.path.is_none()));
}

/// Start a container (or, with `exec_pid`, a process inside a running one)
/// under a new shim. See the .pyi for the arguments and the shim's files.
#[pyfunction]
#[pyo3(signature = (id, state_dir, spec_json, log_path=None, tty=false, open_stdin=false, log_max_size=0, log_max_file=1, wait_start=false, exec_pid=None, shim=None, debug=false, log_driver=None, log_opts=None))]
#[allow(clippy::too_many_arguments)]
fn spawn_shim<'py>(
    py: Python<'py>,
    id: String,
    state_dir: PathBuf,
    spec_json: String,
    log_path: Option<PathBuf>,
    tty: bool,
    open_stdin: bool,
    log_max_size: u64,
    log_max_file: u32,
    wait_start: bool,
    exec_pid: Option<i32>,
    shim: Option<String>,
    debug: bool,
    log_driver: Option<String>,
    log_opts: Option<Vec<String>>,
) -> PyResult<Bound<'py, PyDict>> {
    // Validate here so a bad spec is a ValueError, not a shim start-up failure.
    let spec = rt::Spec::from_json(&spec_json).map_err(rt_err)?;
    if exec_pid.is_none() {
        expect_network(&spec);
    }
    let shim = match shim {
        Some(s) => s,
        None => shim_path(py)?,
    };
    let flags = [tty, open_stdin, wait_start, debug];
    let l = Launch::new(shim, &id, state_dir, log_path, flags, log_max_size, log_max_file, exec_pid, log_driver, log_opts);
    let report = py.detach(|| std::fs::create_dir_all(&l.state_dir).and_then(|_| l.write_spec(&spec_json)).and_then(|_| l.run()));
    l.report(py, report)
}

/// A container's start begun on an idle shim before its spec exists
/// (`begin_shim`): `run` it with the spec, or `abort` it.
#[pyclass(frozen, module = "dockyard._core")]
struct ShimStart {
    launch: Launch,
    taken: std::sync::Mutex<Option<shim_pool::Taken>>,
}

#[pymethods]
impl ShimStart {
    /// Start the container on `spec_json`; as `spawn_shim`.
    fn run<'py>(&self, py: Python<'py>, spec_json: &str) -> PyResult<Bound<'py, PyDict>> {
        let taken = self.taken.lock().ok().and_then(|mut t| t.take());
        match rt::Spec::from_json(spec_json) {
            Ok(spec) => expect_network(&spec),
            Err(e) => {
                if let Some(t) = taken {
                    t.abort();
                }
                return Err(rt_err(e));
            }
        }
        let report = py.detach(|| match taken {
            Some(t) => match self.launch.write_spec(spec_json) {
                Ok(()) => Ok((t.go(), String::new())),
                Err(e) => {
                    t.abort();
                    Err(e)
                }
            },
            None => self.launch.write_spec(spec_json).and_then(|_| self.launch.run()),
        });
        self.launch.report(py, report)
    }

    /// The start is given up: the idle shim leaves without a trace.
    fn abort(&self) {
        if let Some(t) = self.taken.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}

/// Begin a container's start: an idle shim, when one is ready, gets its
/// command line now and readies its attach socket and log while the caller
/// mounts the rootfs and builds the spec. See the .pyi.
#[pyfunction]
#[pyo3(signature = (id, state_dir, log_path=None, tty=false, open_stdin=false, log_max_size=0, log_max_file=1, wait_start=false, shim=None, debug=false, log_driver=None, log_opts=None))]
#[allow(clippy::too_many_arguments)]
fn begin_shim(
    py: Python<'_>,
    id: String,
    state_dir: PathBuf,
    log_path: Option<PathBuf>,
    tty: bool,
    open_stdin: bool,
    log_max_size: u64,
    log_max_file: u32,
    wait_start: bool,
    shim: Option<String>,
    debug: bool,
    log_driver: Option<String>,
    log_opts: Option<Vec<String>>,
) -> PyResult<ShimStart> {
    let shim = match shim {
        Some(s) => s,
        None => shim_path(py)?,
    };
    let flags = [tty, open_stdin, wait_start, debug];
    let launch = Launch::new(shim, &id, state_dir, log_path, flags, log_max_size, log_max_file, None, log_driver, log_opts);
    let taken = py.detach(|| {
        let key = launch.pool_key.as_ref()?;
        let mut argv = launch.argv.clone();
        argv.push("--await-spec".into());
        shim_pool::take(&launch.shim, key, &argv)
    });
    Ok(ShimStart { launch, taken: std::sync::Mutex::new(taken) })
}

/// Make cgroup `path` with `resources` (the runtime spec's JSON of them) on a
/// thread of its own, while the caller prepares the rest of a start (a
/// millisecond of directories and device rules on a cgroup v1 host); its
/// spec then says `made`. The caller removes it should the start not happen.
#[pyfunction]
fn make_cgroup(path: String, resources: &str) -> PyResult<Job> {
    let res: rt::spec::Resources = serde_json::from_str(resources).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(Job::spawn(move || {
        let layout = rt::cgroup::Layout::detect()?;
        rt::cgroup::Cgroup::create(&path, &res, &layout).map(|_| ())
    }))
}

/// Let go of the idle shims kept ready for state dirs under `exec_root`
/// (an engine closing); they exit.
#[pyfunction]
fn drop_idle_shims(exec_root: String) {
    shim_pool::clear(&exec_root);
}

/// Wait until process `pid` (any process, not only a child) has exited.
/// True if it has, False on timeout. Uses a pidfd, so it doesn't reap.
#[pyfunction]
#[pyo3(signature = (pid, timeout=None))]
fn wait_pid(py: Python<'_>, pid: i32, timeout: Option<f64>) -> PyResult<bool> {
    py.detach(|| {
        let fd = match rt::sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(rt::Error::Os { errno: libc::ESRCH, .. }) => return Ok(true),
            Err(e) => return Err(e),
        };
        let ms = timeout.map_or(-1, |t| (t * 1000.0).clamp(0.0, i32::MAX as f64) as i32);
        rt::sys::poll_in(fd.as_raw_fd(), ms)
    })
    .map_err(rt_err)
}

/// JSON of the spec `docker run` would use for `args` in `rootfs` (all
/// namespaces but user, Docker's mounts, masked/read-only paths, 14 caps,
/// seccomp "default"). Fill in env, user, hostname, cgroup... and pass it to spawn_shim.
#[pyfunction]
fn default_spec(rootfs: PathBuf, args: Vec<String>) -> String {
    rt::Spec::docker_defaults(rootfs, args).to_json()
}

/// Kill what's left in cgroup `path` (e.g. "/dockyard/<id>") and remove it in
/// every hierarchy. No error if it doesn't exist.
#[pyfunction]
fn remove_cgroup(py: Python<'_>, path: String) -> PyResult<()> {
    py.detach(|| {
        let layout = rt::cgroup::Layout::detect()?;
        rt::cgroup::Cgroup::open(&path, &layout)?.remove()
    })
    .map_err(rt_err)
}

/// Resolved cgroup directories of `path` in every mounted hierarchy.
#[pyfunction]
fn cgroup_dirs(py: Python<'_>, path: String) -> PyResult<Vec<String>> {
    py.detach(|| {
        let layout = rt::cgroup::Layout::detect()?;
        Ok(rt::cgroup::Cgroup::open(&path, &layout)?.dirs.iter().map(|d| d.to_string_lossy().into_owned()).collect())
    })
    .map_err(rt_err)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(shim_path, m)?)?;
    m.add_function(wrap_pyfunction!(spawn_shim, m)?)?;
    m.add_function(wrap_pyfunction!(begin_shim, m)?)?;
    m.add_class::<ShimStart>()?;
    m.add_function(wrap_pyfunction!(wait_pid, m)?)?;
    m.add_function(wrap_pyfunction!(drop_idle_shims, m)?)?;
    m.add_function(wrap_pyfunction!(default_spec, m)?)?;
    m.add_function(wrap_pyfunction!(remove_cgroup, m)?)?;
    m.add_function(wrap_pyfunction!(make_cgroup, m)?)?;
    m.add_function(wrap_pyfunction!(cgroup_dirs, m)?)?;
    if let Ok(t) = start_error_type(m.py()) {
        m.add("ContainerStartError", t)?;
    }
    Ok(())
}
