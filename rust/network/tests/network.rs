//! Namespaces, bridges and veth endpoints against the real kernel, each test
//! inside its own private network and mount namespace (see common/mod.rs).
//! Traffic goes only between namespaces the test made.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{in_ns, isolated};
use dockyard_network as net;
use net::{parse_cidr, parse_mac, Cidr, Endpoint, Error};

const BR: &str = "dy-test0";
const MAC_BR: &str = "02:42:0a:e7:00:01";

fn cidrs(v: &[&str]) -> Vec<Cidr> {
    v.iter().map(|s| parse_cidr(s).unwrap()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn bridge(addrs: &[&str]) {
    net::bridge_ensure(BR, &cidrs(addrs), 1500, Some(parse_mac(MAC_BR).unwrap())).unwrap();
}

fn endpoint(ns: &Path, host: &str, mac: &str, addrs: &[Cidr], gws: &[IpAddr]) -> net::Result<()> {
    net::endpoint_add(&Endpoint {
        netns: ns,
        bridge: BR,
        host_ifname: host,
        ifname: "eth0",
        mac: parse_mac(mac).unwrap(),
        addrs,
        gateways: gws,
        mtu: 1450,
    })
}

/// Default routes of the namespace at `ns`, as (family, gateway) text.
fn default_routes(ns: &Path) -> (Vec<String>, Vec<String>) {
    in_ns(ns, || {
        let v4 = std::fs::read_to_string("/proc/thread-self/net/route").unwrap();
        let v4 = v4
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[1] == "00000000" && f[7] == "00000000").then(|| {
                    let g = u32::from_str_radix(f[2], 16).unwrap();
                    std::net::Ipv4Addr::from(u32::from_be(g)).to_string()
                })
            })
            .collect();
        let v6 = std::fs::read_to_string("/proc/thread-self/net/ipv6_route").unwrap_or_default();
        let v6 = v6
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0] == "0".repeat(32) && f[1] == "00" && f[4] != "0".repeat(32))
                    .then(|| std::net::Ipv6Addr::from(u128::from_str_radix(f[4], 16).unwrap()).to_string())
            })
            .collect();
        (v4, v6)
    })
}

/// A TCP round trip from namespace `from` (None: the test's own) to a
/// listener bound in namespace `to` on `addr`.
fn tcp_roundtrip(from: Option<&Path>, to: &Path, addr: IpAddr) {
    let listener = in_ns(to, || TcpListener::bind(SocketAddr::new(addr, 0)).unwrap());
    let target = listener.local_addr().unwrap();
    let connect = move || -> TcpStream {
        let s = TcpStream::connect_timeout(&target, Duration::from_secs(3)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s
    };
    let mut c = match from {
        Some(ns) => in_ns(ns, connect),
        None => connect(),
    };
    let (mut a, _) = listener.accept().unwrap();
    c.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
}

#[test]
fn netns_create_and_remove() {
    isolated(|dir| {
        let ns = dir.join("ns1");
        net::netns_create(&ns).unwrap();
        let lo = net::link_info(Some(&ns), "lo").unwrap().expect("lo");
        assert!(lo.up);
        assert_eq!(lo.index, 1);
        // The caller's namespace is untouched: it has no such file's links.
        assert!(net::link_info(Some(&ns), "eth0").unwrap().is_none());

        let e = net::netns_create(&ns).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");

        net::netns_remove(&ns).unwrap();
        assert!(!ns.exists());
        net::netns_remove(&ns).unwrap();

        // A leftover plain file is reused.
        std::fs::write(&ns, b"").unwrap();
        net::netns_create(&ns).unwrap();
        assert!(net::link_info(Some(&ns), "lo").unwrap().unwrap().up);
        net::netns_remove(&ns).unwrap();

        let e = net::netns_create(&dir.join("missing/ns")).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT), "{e}");
    });
}

/// The inode of the namespace a pinned file or /proc/<pid>/ns link names.
fn ns_ino(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().ino()
}

#[test]
fn ns_pin_ipc_and_uts() {
    isolated(|dir| {
        let ipc = dir.join("ipc");
        let uts = dir.join("uts");
        net::ns_pin(&ipc, net::NsKind::Ipc, None).unwrap();
        net::ns_pin(&uts, net::NsKind::Uts, Some("pod-a")).unwrap();
        // New namespaces, not the caller's.
        assert_ne!(ns_ino(&ipc), ns_ino(Path::new("/proc/self/ns/ipc")));
        assert_ne!(ns_ino(&uts), ns_ino(Path::new("/proc/self/ns/uts")));
        // The hostname was set inside the pinned UTS namespace only.
        let f = std::fs::File::open(&uts).unwrap();
        let name = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWUTS) }, 0);
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(name.trim(), "pod-a");
        assert_ne!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(), "pod-a");

        let e = net::ns_pin(&ipc, net::NsKind::Ipc, None).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
        assert!(matches!(net::ns_pin(&dir.join("x"), net::NsKind::Ipc, Some("h")), Err(Error::Invalid(_))));
        assert!(net::NsKind::parse("pid").is_err());
        assert_eq!(net::NsKind::parse("network").unwrap(), net::NsKind::Net);

        net::ns_unpin(&ipc).unwrap();
        net::ns_unpin(&uts).unwrap();
        assert!(!ipc.exists() && !uts.exists());
        net::ns_unpin(&ipc).unwrap();
    });
}

#[test]
fn bridge_ensure_is_idempotent() {
    isolated(|_| {
        let addrs = ["10.231.0.1/24", "fd00:1::1/64"];
        bridge(&addrs);
        bridge(&addrs);
        let info = net::link_info(None, BR).unwrap().unwrap();
        assert!(info.up);
        assert_eq!(info.mtu, 1500);
        assert_eq!(info.mac.as_deref(), Some(MAC_BR));
        assert_eq!(info.master, None);
        for a in cidrs(&addrs) {
            assert_eq!(info.addrs.iter().filter(|x| **x == a).count(), 1, "{a} in {:?}", info.addrs);
        }
        let localnet = std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{BR}/route_localnet")).unwrap();
        assert_eq!(localnet.trim(), "1");

        // Changes converge: new MTU, MAC and an added address.
        net::bridge_ensure(BR, &cidrs(&["10.231.0.1/24", "10.232.0.1/16"]), 1400, Some(parse_mac("02:00:00:00:00:09").unwrap())).unwrap();
        let info = net::link_info(None, BR).unwrap().unwrap();
        assert_eq!(info.mtu, 1400);
        assert_eq!(info.mac.as_deref(), Some("02:00:00:00:00:09"));
        assert!(info.addrs.contains(&parse_cidr("10.232.0.1/16").unwrap()));

        assert_eq!(net::link_names("dy-").unwrap(), vec![BR.to_string()]);
        assert!(net::link_delete(BR).unwrap());
        assert!(!net::link_delete(BR).unwrap());
        assert!(net::link_names("dy-").unwrap().is_empty());
        assert!(net::link_info(None, BR).unwrap().is_none());
    });
}

#[test]
fn bridge_ensure_refuses_a_non_bridge() {
    isolated(|dir| {
        bridge(&["10.231.0.1/24"]);
        let ns = dir.join("ns");
        net::netns_create(&ns).unwrap();
        endpoint(&ns, "dy-veth0", "02:42:0a:e7:00:02", &cidrs(&["10.231.0.2/24"]), &[]).unwrap();
        let e = net::bridge_ensure("dy-veth0", &[], 1500, None).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
        let e = net::bridge_ensure("bad/name", &[], 1500, None).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
    });
}

#[test]
fn endpoints_on_a_bridge_talk() {
    isolated(|dir| {
        bridge(&["10.231.0.1/24", "fd00:1::1/64"]);
        let (ns1, ns2) = (dir.join("c1"), dir.join("c2"));
        net::netns_create(&ns1).unwrap();
        net::netns_create(&ns2).unwrap();
        let gws = [ip("10.231.0.1"), ip("fd00:1::1")];
        endpoint(&ns1, "dy-veth1", "02:42:0a:e7:00:02", &cidrs(&["10.231.0.2/24", "fd00:1::2/64"]), &gws).unwrap();
        endpoint(&ns2, "dy-veth2", "02:42:0a:e7:00:03", &cidrs(&["10.231.0.3/24", "fd00:1::3/64"]), &gws).unwrap();

        let eth0 = net::link_info(Some(&ns1), "eth0").unwrap().unwrap();
        assert!(eth0.up);
        assert_eq!(eth0.mtu, 1450);
        assert_eq!(eth0.mac.as_deref(), Some("02:42:0a:e7:00:02"));
        assert_eq!(eth0.master, None);
        for a in cidrs(&["10.231.0.2/24", "fd00:1::2/64"]) {
            assert!(eth0.addrs.contains(&a), "{a} in {:?}", eth0.addrs);
        }
        let host = net::link_info(None, "dy-veth1").unwrap().unwrap();
        assert!(host.up);
        assert_eq!(host.mtu, 1450);
        assert_eq!(host.master.as_deref(), Some(BR));
        assert!(net::link_info(None, "eth0").unwrap().is_none(), "the peer must not appear on the host");

        let (v4, v6) = default_routes(&ns1);
        assert_eq!(v4, vec!["10.231.0.1".to_string()]);
        assert_eq!(v6, vec!["fd00:1::1".to_string()]);
        let sysctl = |ns: &Path, key: &str| in_ns(ns, || std::fs::read_to_string(format!("/proc/sys/{key}")).unwrap().trim().to_string());
        assert_eq!(sysctl(&ns1, "net/ipv4/conf/eth0/arp_notify"), "1");
        assert_eq!(sysctl(&ns1, "net/ipv6/conf/eth0/accept_ra"), "0");
        assert_eq!(sysctl(&ns1, "net/ipv6/conf/eth0/autoconf"), "0");

        // Container to container over the bridge, both families; the host
        // (here: the test's namespace) to a container through the bridge.
        tcp_roundtrip(Some(&ns2), &ns1, ip("10.231.0.2"));
        tcp_roundtrip(Some(&ns1), &ns2, ip("fd00:1::3"));
        tcp_roundtrip(None, &ns1, ip("10.231.0.2"));

        assert!(net::endpoint_remove(&ns1, "eth0").unwrap());
        assert!(!net::endpoint_remove(&ns1, "eth0").unwrap());
        assert!(net::link_info(None, "dy-veth1").unwrap().is_none(), "host end goes with the peer");
        assert!(!net::endpoint_remove(&dir.join("nope"), "eth0").unwrap());
        assert!(net::endpoint_remove(&ns2, "eth0").unwrap());
        assert_eq!(net::link_names("dy-").unwrap(), vec![BR.to_string()]);
        net::netns_remove(&ns1).unwrap();
        net::netns_remove(&ns2).unwrap();
        assert!(!ns1.exists() && !ns2.exists());
    });
}

#[test]
fn endpoint_add_failure_leaves_nothing() {
    isolated(|dir| {
        bridge(&["10.231.0.1/24"]);
        let ns = dir.join("c");
        net::netns_create(&ns).unwrap();
        let addrs = cidrs(&["10.231.0.5/24"]);

        // Gateway not on the interface's subnet: fails inside the namespace,
        // after the veth was made.
        let e = endpoint(&ns, "dy-vethf", "02:42:0a:e7:00:05", &addrs, &[ip("192.0.2.1")]).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENETUNREACH), "{e}");
        assert!(e.to_string().contains("default route via 192.0.2.1"), "{e}");
        assert!(net::link_names("dy-veth").unwrap().is_empty());
        assert!(net::link_info(Some(&ns), "eth0").unwrap().is_none());

        // No bridge: nothing is made at all.
        let e = net::endpoint_add(&Endpoint {
            netns: &ns,
            bridge: "dy-nobridge",
            host_ifname: "dy-vethf",
            ifname: "eth0",
            mac: parse_mac("02:42:0a:e7:00:05").unwrap(),
            addrs: &addrs,
            gateways: &[],
            mtu: 1500,
        })
        .unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");

        // Host name taken: EEXIST, and the existing link is left alone.
        endpoint(&ns, "dy-vethf", "02:42:0a:e7:00:05", &addrs, &[]).unwrap();
        let ns2 = dir.join("c2");
        net::netns_create(&ns2).unwrap();
        let e = endpoint(&ns2, "dy-vethf", "02:42:0a:e7:00:06", &cidrs(&["10.231.0.6/24"]), &[]).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
        assert!(net::link_info(None, "dy-vethf").unwrap().is_some());
        assert!(net::link_info(Some(&ns2), "eth0").unwrap().is_none());

        // Two gateways of one family: refused before anything is made.
        let e = endpoint(&ns2, "dy-vethg", "02:42:0a:e7:00:06", &addrs, &[ip("10.231.0.1"), ip("10.231.0.9")]).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
        // A missing namespace file.
        let e = endpoint(&dir.join("nope"), "dy-vethg", "02:42:0a:e7:00:06", &addrs, &[]).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT), "{e}");
        assert_eq!(net::link_names("dy-veth").unwrap(), vec!["dy-vethf".to_string()]);
    });
}

/// `cargo test -p dockyard-network --release -- --ignored --nocapture`:
/// median of netns_create + endpoint_add (one IPv4 address) over 40 runs.
#[test]
#[ignore]
fn bench_netns_and_endpoint() {
    isolated(|dir| {
        bridge(&["10.231.0.1/24"]);
        let gws = [ip("10.231.0.1")];
        let (mut create, mut add, mut total) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..40 {
            let ns = dir.join(format!("b{i}"));
            let addrs = cidrs(&[&format!("10.231.0.{}/24", i + 10)]);
            let host = format!("dy-b{i}");
            let t0 = Instant::now();
            net::netns_create(&ns).unwrap();
            let t1 = Instant::now();
            endpoint(&ns, &host, &format!("02:42:0a:e7:00:{:02x}", i + 10), &addrs, &gws).unwrap();
            let t2 = Instant::now();
            create.push(t1 - t0);
            add.push(t2 - t1);
            total.push(t2 - t0);
        }
        let stats = |v: &mut Vec<Duration>| {
            v.sort();
            format!("median {:?} (min {:?}, p90 {:?})", v[v.len() / 2], v[0], v[v.len() * 9 / 10])
        };
        println!("netns_create {}", stats(&mut create));
        println!("endpoint_add {}", stats(&mut add));
        println!("together     {}", stats(&mut total));
    });
}
