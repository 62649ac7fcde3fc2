//! The text forms callers use: CIDR addresses ("10.0.0.2/24", "fd00::2/64"),
//! MAC addresses ("02:42:ac:11:00:02") and plain IPs for gateways.

use std::fmt;
use std::net::IpAddr;

use crate::{Error, Result};

/// An interface address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parse "ADDR/LEN"; the length must fit the family.
pub fn parse_cidr(s: &str) -> Result<Cidr> {
    let bad = || Error::Invalid(format!("invalid CIDR address {s:?}"));
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = a.parse().map_err(|_| bad())?;
    let prefix: u8 = p.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok(Cidr { addr, prefix })
}

pub fn parse_ip(s: &str) -> Result<IpAddr> {
    s.parse().map_err(|_| Error::Invalid(format!("invalid IP address {s:?}")))
}

/// Parse a 48-bit MAC written as six hex pairs separated by ':' (or '-').
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || Error::Invalid(format!("invalid MAC address {s:?}"));
    let mut out = [0u8; 6];
    let mut n = 0;
    for part in s.split([':', '-']) {
        if n == 6 || part.len() != 2 {
            return Err(bad());
        }
        out[n] = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        n += 1;
    }
    if n != 6 {
        return Err(bad());
    }
    Ok(out)
}

pub(crate) fn format_mac(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.231.0.1/24").unwrap().to_string(), "10.231.0.1/24");
        assert_eq!(parse_cidr("fd00:1::1/64").unwrap().prefix, 64);
        for bad in ["10.0.0.1", "10.0.0.1/33", "fd00::1/129", "x/8", "10.0.0.1/-1", ""] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs() {
        let m = parse_mac("02:42:AC:11:00:02").unwrap();
        assert_eq!(format_mac(&m), "02:42:ac:11:00:02");
        for bad in ["02:42:ac:11:00", "02:42:ac:11:00:02:03", "0242ac110002", "02:42:ac:11:00:zz", "2:42:ac:11:00:02"] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
