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
    rt::Spec::from_json(&spec_json).map_err(rt_err)?;
    let shim = match shim {
        Some(s) => s,
        None => shim_path(py)?,
    };
    // The shim's report line, and its stderr (the usual start only).
    let report = py.detach(|| -> std::io::Result<(String, String)> {
        std::fs::create_dir_all(&state_dir)?;
        let spec_file = state_dir.join("spec.json");
        std::fs::write(&spec_file, spec_json.as_bytes())?;
        let mut argv: Vec<String> = vec![if exec_pid.is_some() { "exec" } else { "run" }.into()];
        let mut opt = |k: &str, v: String| {
            argv.push(k.into());
            argv.push(v);
        };
        opt("--id", id.clone());
        opt("--state-dir", state_dir.to_string_lossy().into_owned());
        opt("--spec", spec_file.to_string_lossy().into_owned());
        opt("--log-max-size", log_max_size.to_string());
        opt("--log-max-file", log_max_file.to_string());
        if let Some(l) = &log_path {
            opt("--log", l.to_string_lossy().into_owned());
        }
        if let Some(d) = &log_driver {
            opt("--log-driver", d.clone());
        }
        for o in log_opts.iter().flatten() {
            opt("--log-opt", o.clone());
        }
        if let Some(p) = exec_pid {
            opt("--pid", p.to_string());
        }
        for (flag, on) in [("--tty", tty), ("--stdin", open_stdin), ("--wait-start", wait_start), ("--debug", debug)] {
            if on {
                argv.push(flag.into());
            }
        }
        // Containers (not execs) start on a shim made ahead of need when one
        // is ready, kept per state-dir parent (the engine's exec root).
        let pool_key = state_dir.parent().filter(|_| exec_pid.is_none()).map(|p| p.to_string_lossy().into_owned());
        if let Some(key) = &pool_key {
            if let Some(line) = shim_pool::run(&shim, key, &argv) {
                return Ok((line, String::new()));
            }
        }
        let out = Command::new(&shim).args(&argv).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).output()?;
        if let Some(key) = &pool_key {
            shim_pool::refill(&shim, key);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok((text.lines().last().unwrap_or("").to_string(), String::from_utf8_lossy(&out.stderr).into_owned()))
    });
    let (line, stderr) = report.map_err(|e| PyOSError::new_err(format!("start dockyard-shim ({shim}): {e}")))?;
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
    d.set_item("attach_socket", state_dir.join("attach.sock").to_string_lossy().into_owned())?;
    d.set_item("exit_file", state_dir.join("exit.json").to_string_lossy().into_owned())?;
    Ok(d)
}

/// A cgroup being made on a thread of its own (`make_cgroup`).
#[pyclass(frozen, module = "dockyard._core")]
struct CgroupMaking(std::sync::Mutex<Option<std::thread::JoinHandle<rt::Result<()>>>>);

#[pymethods]
impl CgroupMaking {
    /// Wait until it is made; False if that failed (nothing of it is left
    /// then but what a plain create leaves: the start makes it again and
    /// reports why).
    fn wait(&self, py: Python<'_>) -> bool {
        let h = self.0.lock().ok().and_then(|mut g| g.take());
        py.detach(|| h.is_some_and(|h| matches!(h.join(), Ok(Ok(())))))
    }
}

/// Make cgroup `path` with `resources` (the runtime spec's JSON of them) on a
/// thread of its own, while the caller prepares the rest of a start (a
/// millisecond of directories and device rules on a cgroup v1 host); its
/// spec then says `made`. The caller removes it should the start not happen.
#[pyfunction]
fn make_cgroup(path: String, resources: &str) -> PyResult<CgroupMaking> {
    let res: rt::spec::Resources = serde_json::from_str(resources).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let h = std::thread::spawn(move || {
        let layout = rt::cgroup::Layout::detect()?;
        rt::cgroup::Cgroup::create(&path, &res, &layout).map(|_| ())
    });
    Ok(CgroupMaking(std::sync::Mutex::new(Some(h))))
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
    m.add_function(wrap_pyfunction!(wait_pid, m)?)?;
    m.add_function(wrap_pyfunction!(drop_idle_shims, m)?)?;
    m.add_function(wrap_pyfunction!(default_spec, m)?)?;
    m.add_function(wrap_pyfunction!(remove_cgroup, m)?)?;
    m.add_function(wrap_pyfunction!(make_cgroup, m)?)?;
    m.add_class::<CgroupMaking>()?;
    m.add_function(wrap_pyfunction!(cgroup_dirs, m)?)?;
    if let Ok(t) = start_error_type(m.py()) {
        m.add("ContainerStartError", t)?;
    }
    Ok(())
}
