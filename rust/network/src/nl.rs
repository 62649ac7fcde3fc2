//! A synchronous rtnetlink socket (one request in flight, as netavark does)
//! and the handful of requests the rest of the crate is made of. A socket
//! talks to the network namespace of the thread that opened it.

use std::net::IpAddr;

use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::parse::Cidr;
use crate::{Error, Result};

/// Netlink dumps come in datagrams of at most 32 KiB; single replies are small.
const RECV_BUF: usize = 64 * 1024;

pub(crate) struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let sock = Socket::new(NETLINK_ROUTE).map_err(|e| Error::os("open rtnetlink socket", e))?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(|e| Error::os("connect rtnetlink socket", e))?;
        // Lets the kernel filter address dumps by interface index.
        let _ = sock.set_netlink_get_strict_chk(true);
        Ok(Self { sock, seq: 0, buf: Vec::with_capacity(RECV_BUF) })
    }

    /// Send one request (NLM_F_REQUEST plus `flags`) and collect its replies:
    /// up to the ACK, or up to NLMSG_DONE for a dump.
    pub fn request(&mut self, msg: RouteNetlinkMessage, flags: u16, step: &str) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut nlm = NetlinkMessage::from(msg);
        nlm.header.flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
        nlm.header.sequence_number = seq;
        nlm.finalize();
        let mut out = vec![0u8; nlm.buffer_len()];
        nlm.serialize(&mut out);
        loop {
            match self.sock.send(&out, 0) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::os(format!("{step}: send"), e)),
            }
        }

        let mut replies = Vec::new();
        loop {
            self.buf.clear();
            let n = match self.sock.recv(&mut self.buf, 0) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::os(format!("{step}: receive"), e)),
            };
            let data = &self.buf[..n.min(self.buf.len())];
            let mut off = 0;
            while off + 16 <= data.len() {
                let len = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap()) as usize;
                if len < 16 || off + len > data.len() {
                    return Err(Error::Protocol { step: step.into(), msg: "truncated message".into() });
                }
                let chunk = &data[off..off + len];
                off += (len + 3) & !3;
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(chunk)
                    .map_err(|e| Error::Protocol { step: step.into(), msg: e.to_string() })?;
                if m.header.sequence_number != seq {
                    continue; // a late reply to an earlier request
                }
                match m.payload {
                    NetlinkPayload::InnerMessage(r) => replies.push(r),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(replies),
                        Some(code) => return Err(Error::Os { step: step.into(), errno: -code.get() }),
                    },
                    NetlinkPayload::Done(d) => {
                        if d.code < 0 {
                            return Err(Error::Os { step: step.into(), errno: -d.code });
                        }
                        return Ok(replies);
                    }
                    NetlinkPayload::Overrun(_) => {
                        return Err(Error::Protocol { step: step.into(), msg: "overrun".into() });
                    }
                    _ => {}
                }
            }
        }
    }

    /// The link called `name`, None if there is none.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<LinkMessage>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.into()));
        self.get_link(m, &format!("look up link {name}"))
    }

    pub fn link_by_index(&mut self, index: u32) -> Result<Option<LinkMessage>> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.get_link(m, &format!("look up link #{index}"))
    }

    fn get_link(&mut self, m: LinkMessage, step: &str) -> Result<Option<LinkMessage>> {
        match self.request(RouteNetlinkMessage::GetLink(m), 0, step) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(Error::Os { errno: libc::ENODEV, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<LinkMessage>> {
        let replies = self.request(RouteNetlinkMessage::GetLink(LinkMessage::default()), NLM_F_DUMP, "list links")?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .collect())
    }

    /// RTM_NEWLINK on an existing link (by index): only what `attrs` and
    /// `up` say changes.
    pub fn set_link(&mut self, index: u32, up: bool, attrs: Vec<LinkAttribute>, step: &str) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        if up {
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
        }
        m.attributes = attrs;
        self.request(RouteNetlinkMessage::SetLink(m), 0, step).map(drop)
    }

    /// Create a link described by `m`; EEXIST if the name is taken.
    pub fn new_link(&mut self, m: LinkMessage, step: &str) -> Result<()> {
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL, step).map(drop)
    }

    /// Delete the link called `name`; false if there was none.
    pub fn del_link_by_name(&mut self, name: &str) -> Result<bool> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.into()));
        match self.request(RouteNetlinkMessage::DelLink(m), 0, &format!("delete link {name}")) {
            Ok(_) => Ok(true),
            Err(Error::Os { errno: libc::ENODEV, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The addresses on link `index` (both families).
    pub fn addresses(&mut self, index: u32) -> Result<Vec<Cidr>> {
        let mut m = AddressMessage::default();
        m.header.index = index;
        let replies = self.request(RouteNetlinkMessage::GetAddress(m), NLM_F_DUMP, "list addresses")?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewAddress(a) = r else { continue };
            if a.header.index != index {
                continue; // kernels without strict checking dump everything
            }
            // IFA_ADDRESS is the peer on point-to-point links; IFA_LOCAL is ours.
            let mut addr = None;
            for attr in &a.attributes {
                match attr {
                    AddressAttribute::Local(ip) => addr = Some(*ip),
                    AddressAttribute::Address(ip) if addr.is_none() => addr = Some(*ip),
                    _ => {}
                }
            }
            if let Some(addr) = addr {
                out.push(Cidr { addr, prefix: a.header.prefix_len });
            }
        }
        Ok(out)
    }

    /// Add `cidr` to link `index`. IPv6 addresses skip duplicate address
    /// detection so they are usable at once (the network's IPAM owns them).
    pub fn add_address(&mut self, index: u32, cidr: &Cidr, step: &str) -> Result<()> {
        let mut m = AddressMessage::default();
        m.header.index = index;
        m.header.prefix_len = cidr.prefix;
        m.header.family = family(&cidr.addr);
        m.attributes.push(AddressAttribute::Local(cidr.addr));
        m.attributes.push(AddressAttribute::Address(cidr.addr));
        match cidr.addr {
            IpAddr::V4(v4) => {
                if cidr.prefix < 31 {
                    let host_bits = u32::MAX.checked_shr(cidr.prefix as u32).unwrap_or(0);
                    let bcast = u32::from(v4) | host_bits;
                    m.attributes.push(AddressAttribute::Broadcast(bcast.into()));
                }
            }
            IpAddr::V6(_) => m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad)),
        }
        self.request(RouteNetlinkMessage::NewAddress(m), NLM_F_CREATE | NLM_F_EXCL, step).map(drop)
    }

    /// A default route via `gw` out of link `index`, in the main table.
    pub fn add_default_route(&mut self, index: u32, gw: IpAddr, step: &str) -> Result<()> {
        let mut m = RouteMessage::default();
        m.header = RouteHeader {
            address_family: family(&gw),
            table: RouteHeader::RT_TABLE_MAIN,
            protocol: RouteProtocol::Boot,
            scope: RouteScope::Universe,
            kind: RouteType::Unicast,
            ..Default::default()
        };
        m.attributes.push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        m.attributes.push(RouteAttribute::Oif(index));
        self.request(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL, step).map(drop)
    }
}

fn family(ip: &IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// Helpers to read a link message.
pub(crate) fn link_name(l: &LinkMessage) -> Option<&str> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}
