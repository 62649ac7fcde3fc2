//! A container's interface on a bridge network: a veth pair whose host end is
//! a port of the bridge and whose other end is created directly inside the
//! container's namespace (IFLA_NET_NS_FD), then configured from a netlink
//! socket opened in there.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};

use crate::link::sysctl;
use crate::netns::{in_netns_fd, open_netns};
use crate::nl::Netlink;
use crate::parse::Cidr;
use crate::{check_ifname, Error, Result};

/// What `endpoint_add` builds.
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    /// The persisted namespace file of the container.
    pub netns: &'a Path,
    /// The bridge the host end joins.
    pub bridge: &'a str,
    /// Name of the host end (stays in the caller's namespace).
    pub host_ifname: &'a str,
    /// Name inside the container, e.g. "eth0".
    pub ifname: &'a str,
    pub mac: [u8; 6],
    pub addrs: &'a [Cidr],
    /// Default gateways: at most one per family.
    pub gateways: &'a [IpAddr],
    pub mtu: u32,
}

/// Create and configure the endpoint. On failure whatever was made is
/// removed again before the error is returned.
pub fn endpoint_add(ep: &Endpoint<'_>) -> Result<()> {
    check_ifname(ep.bridge)?;
    check_ifname(ep.host_ifname)?;
    check_ifname(ep.ifname)?;
    if ep.gateways.iter().filter(|g| g.is_ipv4()).count() > 1 || ep.gateways.iter().filter(|g| g.is_ipv6()).count() > 1 {
        return Err(Error::Invalid("at most one gateway per address family".into()));
    }
    let ns = open_netns(ep.netns)?;
    let mut nl = Netlink::open()?;
    let bridge = nl.link_by_name(ep.bridge)?.ok_or_else(|| Error::Os {
        step: format!("endpoint {}: bridge {} not found", ep.host_ifname, ep.bridge),
        errno: libc::ENODEV,
    })?;

    // The container end gets its name, MAC and MTU as it is created in the
    // container's namespace; it comes up once it has its addresses.
    let mut peer = LinkMessage::default();
    peer.attributes = vec![
        LinkAttribute::IfName(ep.ifname.into()),
        LinkAttribute::NetNsFd(ns.as_raw_fd()),
        LinkAttribute::Mtu(ep.mtu),
        LinkAttribute::Address(ep.mac.to_vec()),
    ];
    let mut host = LinkMessage::default();
    host.header.flags = LinkFlags::Up;
    host.header.change_mask = LinkFlags::Up;
    host.attributes = vec![
        LinkAttribute::IfName(ep.host_ifname.into()),
        LinkAttribute::Mtu(ep.mtu),
        LinkAttribute::Controller(bridge.header.index),
        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth), LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer)))]),
    ];
    nl.new_link(host, &format!("create veth {} (peer {} in {})", ep.host_ifname, ep.ifname, ep.netns.display()))?;

    let r = in_netns_fd(ns, ep.netns, || configure_inside(ep));
    if r.is_err() {
        // Deleting one end of a veth deletes both.
        let _ = nl.del_link_by_name(ep.host_ifname);
    }
    r
}

/// Runs inside the container's namespace.
fn configure_inside(ep: &Endpoint<'_>) -> Result<()> {
    let name = ep.ifname;
    let mut nl = Netlink::open()?;
    let index = nl
        .link_by_name(name)?
        .ok_or_else(|| Error::Os { step: format!("endpoint {name}: not found in netns"), errno: libc::ENODEV })?
        .header
        .index;
    // Gratuitous ARP when the link comes up or its address changes, so peers
    // that cached a previous container's MAC for this IP relearn it.
    sysctl(&format!("net/ipv4/conf/{name}/arp_notify"), "1")?;
    if ep.addrs.iter().any(|a| a.addr.is_ipv6()) {
        // Addresses come from the network's IPAM only, and are usable at once.
        sysctl(&format!("net/ipv6/conf/{name}/accept_ra"), "0")?;
        sysctl(&format!("net/ipv6/conf/{name}/autoconf"), "0")?;
        sysctl(&format!("net/ipv6/conf/{name}/accept_dad"), "0")?;
    }
    for a in ep.addrs {
        nl.add_address(index, a, &format!("add address {a} to {name}"))?;
    }
    nl.set_link(index, true, Vec::new(), &format!("set {name} up"))?;
    for gw in ep.gateways {
        nl.add_default_route(index, *gw, &format!("add default route via {gw} dev {name}"))?;
    }
    Ok(())
}

/// Delete interface `ifname` inside the namespace at `netns` (its veth peer
/// goes with it). False if there is no such interface, or no such namespace
/// file.
pub fn endpoint_remove(netns: &Path, ifname: &str) -> Result<bool> {
    check_ifname(ifname)?;
    let ns = match open_netns(netns) {
        Ok(fd) => fd,
        Err(Error::Os { errno: libc::ENOENT, .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    in_netns_fd(ns, netns, || Netlink::open()?.del_link_by_name(ifname))
}
