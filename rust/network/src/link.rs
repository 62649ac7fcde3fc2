//! Host-side links: the network's bridge, listing and deleting links, and a
//! read-back of one link's state (what tests and `network inspect` need).

use std::path::Path;

use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage};

use crate::netns::in_netns;
use crate::nl::{link_name, Netlink};
use crate::parse::{format_mac, Cidr};
use crate::{check_ifname, Error, Result};

/// Write a sysctl of the calling thread's network namespace; `key` is a path
/// under /proc/sys (interface names may hold dots, so no dotted form).
pub(crate) fn sysctl(key: &str, value: &str) -> Result<()> {
    std::fs::write(format!("/proc/sys/{key}"), value).map_err(|e| Error::os(format!("set sysctl {key}={value}"), e))
}

/// Create the bridge `name` if absent (idempotent), give it `mtu`, the
/// addresses of `addrs` it lacks, the MAC `mac` if given (pinned, so the
/// kernel stops re-picking it as ports come and go), bring it up, and set
/// `route_localnet` on it (published ports on 127.0.0.1 are DNATed to it).
pub fn bridge_ensure(name: &str, addrs: &[Cidr], mtu: u32, mac: Option<[u8; 6]>) -> Result<()> {
    check_ifname(name)?;
    let mut nl = Netlink::open()?;
    let link = match nl.link_by_name(name)? {
        Some(l) => l,
        None => {
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName(name.into()));
            m.attributes.push(LinkAttribute::Mtu(mtu));
            if let Some(mac) = mac {
                m.attributes.push(LinkAttribute::Address(mac.to_vec()));
            }
            m.attributes.push(LinkAttribute::LinkInfo(vec![NlLinkInfo::Kind(InfoKind::Bridge)]));
            match nl.new_link(m, &format!("create bridge {name}")) {
                // Another caller made it meanwhile: fine, it is checked below.
                Ok(()) | Err(Error::Os { errno: libc::EEXIST, .. }) => {}
                Err(e) => return Err(e),
            }
            nl.link_by_name(name)?
                .ok_or_else(|| Error::Os { step: format!("create bridge {name}: vanished"), errno: libc::ENODEV })?
        }
    };
    if kind(&link) != Some(&InfoKind::Bridge) {
        return Err(Error::Os { step: format!("bridge {name}: link exists and is not a bridge"), errno: libc::EEXIST });
    }
    let index = link.header.index;
    let mut attrs = Vec::new();
    if attr_mtu(&link) != Some(mtu) {
        attrs.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = mac {
        if attr_mac(&link) != Some(&mac[..]) {
            attrs.push(LinkAttribute::Address(mac.to_vec()));
        }
    }
    if !attrs.is_empty() || !link.header.flags.contains(LinkFlags::Up) {
        nl.set_link(index, true, attrs, &format!("configure bridge {name}"))?;
    }
    let have = nl.addresses(index)?;
    for a in addrs {
        if have.contains(a) {
            continue;
        }
        match nl.add_address(index, a, &format!("add address {a} to {name}")) {
            Ok(()) | Err(Error::Os { errno: libc::EEXIST, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    sysctl(&format!("net/ipv4/conf/{name}/route_localnet"), "1")
}

/// Delete link `name` of the calling thread's namespace; false if absent.
pub fn link_delete(name: &str) -> Result<bool> {
    check_ifname(name)?;
    Netlink::open()?.del_link_by_name(name)
}

/// Names of the calling thread's namespace's links that start with `prefix`.
pub fn link_names(prefix: &str) -> Result<Vec<String>> {
    let links = Netlink::open()?.links()?;
    Ok(links.iter().filter_map(link_name).filter(|n| n.starts_with(prefix)).map(String::from).collect())
}

/// A link's state as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub mtu: u32,
    pub mac: Option<String>,
    pub up: bool,
    /// Name of the bridge (or other master) the link is a port of.
    pub master: Option<String>,
    pub addrs: Vec<Cidr>,
}

/// State of link `name` in the namespace at `netns` (None: the caller's);
/// None if there is no such link.
pub fn link_info(netns: Option<&Path>, name: &str) -> Result<Option<LinkInfo>> {
    check_ifname(name)?;
    let read = || -> Result<Option<LinkInfo>> {
        let mut nl = Netlink::open()?;
        let Some(link) = nl.link_by_name(name)? else { return Ok(None) };
        let master = match link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Controller(i) => Some(*i),
            _ => None,
        }) {
            Some(i) => nl.link_by_index(i)?.as_ref().and_then(link_name).map(String::from),
            None => None,
        };
        Ok(Some(LinkInfo {
            index: link.header.index,
            mtu: attr_mtu(&link).unwrap_or(0),
            mac: attr_mac(&link).map(format_mac),
            up: link.header.flags.contains(LinkFlags::Up),
            master,
            addrs: nl.addresses(link.header.index)?,
        }))
    };
    match netns {
        None => read(),
        Some(p) => in_netns(p, read),
    }
}

fn kind(l: &LinkMessage) -> Option<&InfoKind> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            NlLinkInfo::Kind(k) => Some(k),
            _ => None,
        }),
        _ => None,
    })
}

fn attr_mtu(l: &LinkMessage) -> Option<u32> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

fn attr_mac(l: &LinkMessage) -> Option<&[u8]> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(m) => Some(m.as_slice()),
        _ => None,
    })
}
