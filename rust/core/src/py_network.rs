//! Bindings for `dockyard-network`: network namespaces, bridges, veth
//! endpoints over rtnetlink. Arguments are parsed (ValueError when malformed)
//! before the GIL is released; kernel failures raise OSError(errno, "step:
//! reason"), so `FileExistsError`, `FileNotFoundError`... come out as usual.

use crate::job::Job;
use dockyard_network as net;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

fn to_py(e: net::Error) -> PyErr {
    match &e {
        net::Error::Os { errno, .. } => PyOSError::new_err((*errno, e.to_string())),
        net::Error::Invalid(m) => PyValueError::new_err(m.clone()),
        net::Error::Protocol { .. } => PyOSError::new_err(e.to_string()),
    }
}

fn cidrs(addrs: &[String]) -> PyResult<Vec<net::Cidr>> {
    addrs.iter().map(|a| net::parse_cidr(a).map_err(to_py)).collect()
}

/// New network namespace with `lo` up, persisted by a bind mount on `path`.
#[pyfunction]
fn netns_create(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(|| net::netns_create(&path)).map_err(to_py)
}

/// Unmount and remove a namespace file; a missing one is fine.
#[pyfunction]
fn netns_remove(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(|| net::netns_remove(&path)).map_err(to_py)
}

/// New namespace of `kind` ("net", "ipc" or "uts"; a UTS one with
/// `hostname` set inside) pinned by a bind mount on `path`.
#[pyfunction]
#[pyo3(signature = (path, kind, hostname=None))]
fn ns_pin(py: Python<'_>, path: PathBuf, kind: &str, hostname: Option<String>) -> PyResult<()> {
    let kind = net::NsKind::parse(kind).map_err(to_py)?;
    py.detach(|| net::ns_pin(&path, kind, hostname.as_deref())).map_err(to_py)
}

/// `ns_pin` on a thread of its own: a Job, whose `wait` says whether it
/// pinned (call `ns_pin` again for the error otherwise).
#[pyfunction]
#[pyo3(signature = (path, kind, hostname=None))]
fn ns_pin_async(path: PathBuf, kind: &str, hostname: Option<String>) -> PyResult<Job> {
    let kind = net::NsKind::parse(kind).map_err(to_py)?;
    Ok(Job::spawn(move || net::ns_pin(&path, kind, hostname.as_deref())))
}

/// Unmount and remove a pinned namespace file; a missing one is fine.
#[pyfunction]
fn ns_unpin(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(|| net::ns_unpin(&path)).map_err(to_py)
}

/// Create/converge the bridge `name`: MTU, missing addresses, MAC, up,
/// route_localnet=1.
#[pyfunction]
#[pyo3(signature = (name, addrs, mtu, mac=None))]
fn bridge_ensure(py: Python<'_>, name: String, addrs: Vec<String>, mtu: u32, mac: Option<String>) -> PyResult<()> {
    let addrs = cidrs(&addrs)?;
    let mac = mac.map(|m| net::parse_mac(&m)).transpose().map_err(to_py)?;
    py.detach(|| net::bridge_ensure(&name, &addrs, mtu, mac)).map_err(to_py)
}

/// Delete a host link; False if it did not exist.
#[pyfunction]
fn link_delete(py: Python<'_>, name: String) -> PyResult<bool> {
    py.detach(|| net::link_delete(&name)).map_err(to_py)
}

/// Names of host links starting with `prefix`.
#[pyfunction]
fn link_names(py: Python<'_>, prefix: String) -> PyResult<Vec<String>> {
    py.detach(|| net::link_names(&prefix)).map_err(to_py)
}

/// `endpoint_add`'s arguments after the namespace, parsed (ValueError when
/// malformed): what `endpoint_add` and `sandbox_async` hand the kernel.
struct EndpointArgs {
    bridge: String,
    host_ifname: String,
    ifname: String,
    mac: [u8; 6],
    addrs: Vec<net::Cidr>,
    gateways: Vec<IpAddr>,
    mtu: u32,
}

/// Those arguments as Python passes them: (bridge, host_ifname, ifname,
/// mac, addrs, gateways, mtu).
type EndpointTuple = (String, String, String, String, Vec<String>, Vec<String>, u32);

impl EndpointArgs {
    fn parse((bridge, host_ifname, ifname, mac, addrs, gateways, mtu): EndpointTuple) -> PyResult<Self> {
        Ok(EndpointArgs {
            bridge,
            host_ifname,
            ifname,
            mac: net::parse_mac(&mac).map_err(to_py)?,
            addrs: cidrs(&addrs)?,
            gateways: gateways.iter().map(|g| net::parse_ip(g).map_err(to_py)).collect::<PyResult<_>>()?,
            mtu,
        })
    }

    /// The veth pair into the namespace at `netns` (`net::endpoint_add`).
    fn add(&self, netns: &Path) -> net::Result<()> {
        net::endpoint_add(&net::Endpoint {
            netns,
            bridge: &self.bridge,
            host_ifname: &self.host_ifname,
            ifname: &self.ifname,
            mac: self.mac,
            addrs: &self.addrs,
            gateways: &self.gateways,
            mtu: self.mtu,
        })
    }
}

/// A container's network namespace (`netns_create`) and then its endpoints
/// (`endpoint_add`, in order), on a thread of its own while the caller
/// prepares the rest of its start: a Job whose `join` raises what failed.
/// The caller tears down what was made (after `wait`ing for it) either way.
#[pyfunction]
fn sandbox_async(netns: PathBuf, endpoints: Vec<EndpointTuple>) -> PyResult<Job> {
    let eps = endpoints.into_iter().map(EndpointArgs::parse).collect::<PyResult<Vec<_>>>()?;
    Ok(Job::spawn_py(move || {
        net::netns_create(&netns).map_err(to_py)?;
        eps.iter().try_for_each(|e| e.add(&netns)).map_err(to_py)
    }))
}

/// veth pair: `host_ifname` on `bridge` in the host, `ifname` configured
/// inside the namespace at `netns`. Undone on failure.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn endpoint_add(
    py: Python<'_>,
    netns: PathBuf,
    bridge: String,
    host_ifname: String,
    ifname: String,
    mac: String,
    addrs: Vec<String>,
    gateways: Vec<String>,
    mtu: u32,
) -> PyResult<()> {
    let ep = EndpointArgs::parse((bridge, host_ifname, ifname, mac, addrs, gateways, mtu))?;
    py.detach(|| ep.add(&netns)).map_err(to_py)
}

/// Delete `ifname` inside the namespace at `netns`; False if absent.
#[pyfunction]
fn endpoint_remove(py: Python<'_>, netns: PathBuf, ifname: String) -> PyResult<bool> {
    py.detach(|| net::endpoint_remove(&netns, &ifname)).map_err(to_py)
}

/// {"index", "mtu", "mac", "up", "master", "addrs"} of a link in the
/// namespace at `netns` (None: the host's), or None if there is no such link.
#[pyfunction]
fn link_info<'py>(py: Python<'py>, netns: Option<PathBuf>, name: String) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(info) = py.detach(|| net::link_info(netns.as_deref(), &name)).map_err(to_py)? else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    d.set_item("index", info.index)?;
    d.set_item("mtu", info.mtu)?;
    d.set_item("mac", info.mac)?;
    d.set_item("up", info.up)?;
    d.set_item("master", info.master)?;
    d.set_item("addrs", info.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>())?;
    Ok(Some(d))
}

/// A kernel relay between two connected stream sockets (`relay(a, b)`; the
/// descriptors are the relay's from then on): `stop()` cuts it, `done()` says
/// whether both directions ended.
#[pyclass(module = "dockyard._core", name = "Relay")]
struct PyRelay(net::Relay);

#[pymethods]
impl PyRelay {
    fn stop(&self) {
        self.0.stop()
    }

    fn done(&self) -> bool {
        self.0.done()
    }
}

#[pyfunction]
fn relay(a: i32, b: i32) -> PyResult<PyRelay> {
    use std::os::fd::{FromRawFd, OwnedFd};
    if a < 0 || b < 0 || a == b {
        return Err(PyValueError::new_err("relay needs two distinct descriptors"));
    }
    // SAFETY: the caller hands both descriptors over (socket.detach()).
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(a), OwnedFd::from_raw_fd(b)) };
    net::relay(a, b).map(PyRelay).map_err(to_py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(relay, m)?)?;
    m.add_class::<PyRelay>()?;
    m.add_function(wrap_pyfunction!(netns_create, m)?)?;
    m.add_function(wrap_pyfunction!(sandbox_async, m)?)?;
    m.add_function(wrap_pyfunction!(netns_remove, m)?)?;
    m.add_function(wrap_pyfunction!(ns_pin, m)?)?;
    m.add_function(wrap_pyfunction!(ns_pin_async, m)?)?;
    m.add_function(wrap_pyfunction!(ns_unpin, m)?)?;
    m.add_function(wrap_pyfunction!(bridge_ensure, m)?)?;
    m.add_function(wrap_pyfunction!(link_delete, m)?)?;
    m.add_function(wrap_pyfunction!(link_names, m)?)?;
    m.add_function(wrap_pyfunction!(endpoint_add, m)?)?;
    m.add_function(wrap_pyfunction!(endpoint_remove, m)?)?;
    m.add_function(wrap_pyfunction!(link_info, m)?)?;
    m.add_function(wrap_pyfunction!(netns_socket, m)?)?;
    Ok(())
}

/// `netns_socket(path, family, type) -> fd`: an unbound socket made inside the
/// network namespace at `path`; the caller owns the descriptor.
#[pyfunction]
fn netns_socket(py: Python<'_>, path: PathBuf, family: i32, kind: i32) -> PyResult<i32> {
    use std::os::fd::IntoRawFd;
    py.detach(|| net::netns_socket(&path, family, kind)).map(|fd| fd.into_raw_fd()).map_err(to_py)
}
