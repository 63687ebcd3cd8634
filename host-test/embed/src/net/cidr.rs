//! A destination deny-list of address ranges, like Kapacitor's
//! `-blacklist-cidrs`: checked on the address a name resolves to, so a
//! hostname cannot smuggle a request to a denied network.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an address or CIDR"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix must be 0 to {max}"))?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address it maps.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The ranges `private` stands for: loopback, RFC 1918, carrier-grade NAT,
/// link-local (cloud metadata lives there), unspecified, and their IPv6
/// counterparts.
pub const PRIVATE: [&str; 10] = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "0.0.0.0/8",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

/// The deny-list; empty denies nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenyList(Vec<Cidr>);

impl DenyList {
    /// Parses `private`, or a comma-separated list of CIDRs and addresses
    /// (which may include `private`).
    pub fn parse(spec: &str) -> Result<DenyList, String> {
        let mut ranges = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "private" {
                ranges.extend(
                    PRIVATE
                        .iter()
                        .map(|c| c.parse::<Cidr>().expect("valid constant")),
                );
            } else {
                ranges.push(item.parse()?);
            }
        }
        Ok(DenyList(ranges))
    }

    /// The range that denies `ip`, if any.
    pub fn denies(&self, ip: IpAddr) -> Option<&Cidr> {
        self.0.iter().find(|c| c.contains(ip))
    }

    /// Whether nothing is denied.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_contain_their_addresses() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let one: Cidr = "192.0.2.1".parse().unwrap();
        assert!(
            one.contains("192.0.2.1".parse().unwrap())
                && !one.contains("192.0.2.2".parse().unwrap())
        );
        let v6: Cidr = "fc00::/7".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
    }

    #[test]
    fn private_denies_loopback_and_rfc1918_not_public() {
        let d = DenyList::parse("private").unwrap();
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
        ] {
            assert!(d.denies(ip.parse().unwrap()).is_some(), "{ip}");
        }
        assert!(d.denies("93.184.216.34".parse().unwrap()).is_none());
    }

    #[test]
    fn bad_specs_are_errors() {
        assert!(DenyList::parse("10.0.0.0/33")
            .unwrap_err()
            .contains("prefix"));
        assert!(DenyList::parse("nonsense")
            .unwrap_err()
            .contains("`nonsense`"));
        assert!(DenyList::parse("").unwrap().is_empty());
    }
}
