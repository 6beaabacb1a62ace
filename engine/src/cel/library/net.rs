//! Kubernetes' IP and CIDR libraries (kubernetes/apiserver
//! `pkg/cel/library/ip.go`, `cidr.go`; Kubernetes 1.30+): `ip`, `isIP`,
//! `ip.isCanonical`, `cidr`, `isCIDR`, `string()`, and the members
//! `family`, `isUnspecified`, `isLoopback`, `isLinkLocalMulticast`,
//! `isLinkLocalUnicast`, `isGlobalUnicast`, `containsIP`, `containsCIDR`,
//! `ip()`, `masked()` and `prefixLength()`.
//!
//! Parsing follows Go's `netip` with Kubernetes' extra rejections: zones
//! (`fe80::1%eth0`) and IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`).
//! A prefix with host bits set is accepted, as the Go code does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cel::common::types::{STRING_TYPE, Type};
use cel::common::value::CowVal;
use cel::{DeclarationError, Env, ExecutionError};

use super::{Returned, boolean, fail, int, opaque_type, string, take, text};

/// A `net.IP` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ip(pub IpAddr);
opaque_type!(Ip, IP_TYPE, "net.IP");

/// A `net.CIDR` value: the address as written and the prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}
opaque_type!(Cidr, CIDR_TYPE, "net.CIDR");

impl std::fmt::Display for Ip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    if s.contains('%') {
        return Err(format!("IP address {s:?} with zone value is not allowed"));
    }
    let addr: IpAddr = s.parse().map_err(|_| {
        format!("IP Address {s:?} parse error during conversion from string: invalid IP address")
    })?;
    if let IpAddr::V6(v6) = addr
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(format!("IPv4-mapped IPv6 address {s:?} is not allowed"));
    }
    Ok(addr)
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let invalid = || {
        format!("network address {s:?} parse error during conversion from string: invalid prefix")
    };
    let (addr, prefix) = s.split_once('/').ok_or_else(invalid)?;
    let addr = parse_ip(addr).map_err(|_| invalid())?;
    if prefix.is_empty()
        || prefix.len() > 3
        || !prefix.bytes().all(|b| b.is_ascii_digit())
        || (prefix.len() > 1 && prefix.starts_with('0'))
    {
        return Err(invalid());
    }
    let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(invalid());
    }
    Ok(Cidr { addr, prefix })
}

fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Cidr {
    fn width(&self) -> u32 {
        if self.addr.is_ipv4() { 32 } else { 128 }
    }

    fn mask(&self) -> u128 {
        let width = self.width();
        let all = if width == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        if self.prefix == 0 {
            0
        } else {
            all & !((1u128 << (width - u32::from(self.prefix))).wrapping_sub(1)) & all
        }
    }

    fn masked(&self) -> Cidr {
        let network = bits(self.addr) & self.mask();
        let addr = if self.addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::from(network as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(network))
        };
        Cidr {
            addr,
            prefix: self.prefix,
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && bits(ip) & self.mask() == bits(self.addr) & self.mask()
    }

    fn contains_cidr(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }
}

pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(Type::to_owned(&IP_TYPE))?;
    env.add_type(Type::to_owned(&CIDR_TYPE))?;
    let ip = || Type::to_owned(&IP_TYPE);
    let cidr = || Type::to_owned(&CIDR_TYPE);
    env.add_overload("ip", "string_to_ip", vec![STRING_TYPE], ip_of)?;
    env.add_overload("isIP", "is_ip", vec![STRING_TYPE], is_ip)?;
    env.add_overload(
        "ip.isCanonical",
        "ip_is_canonical",
        vec![STRING_TYPE],
        is_canonical,
    )?;
    env.add_overload("string", "ip_to_string", vec![ip()], to_string)?;
    env.add_overload("string", "cidr_to_string", vec![cidr()], to_string)?;
    env.add_overload("cidr", "string_to_cidr", vec![STRING_TYPE], cidr_of)?;
    env.add_overload("isCIDR", "is_cidr", vec![STRING_TYPE], is_cidr)?;
    for (name, f) in [
        ("family", family as cel::common::functions::Function),
        ("isUnspecified", is_unspecified),
        ("isLoopback", is_loopback),
        ("isLinkLocalMulticast", is_link_local_multicast),
        ("isLinkLocalUnicast", is_link_local_unicast),
        ("isGlobalUnicast", is_global_unicast),
    ] {
        env.add_member_overload(name, &format!("ip_{name}"), ip(), vec![], f)?;
    }
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_ip",
        cidr(),
        vec![ip()],
        contains_ip,
    )?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_string",
        cidr(),
        vec![STRING_TYPE],
        contains_ip,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr_cidr",
        cidr(),
        vec![cidr()],
        contains_cidr,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr_string",
        cidr(),
        vec![STRING_TYPE],
        contains_cidr,
    )?;
    env.add_member_overload("ip", "cidr_ip", cidr(), vec![], cidr_ip)?;
    env.add_member_overload("masked", "cidr_masked", cidr(), vec![], masked)?;
    env.add_member_overload(
        "prefixLength",
        "cidr_prefix_length",
        cidr(),
        vec![],
        prefix_length,
    )?;
    Ok(())
}

fn the_ip(val: &CowVal<'_, '_>) -> Result<IpAddr, ExecutionError> {
    if let Some(ip) = val.downcast_ref::<Ip>() {
        return Ok(ip.0);
    }
    parse_ip(text(val.as_ref())?).map_err(|e| fail("ip", e))
}

fn the_cidr(val: &CowVal<'_, '_>) -> Result<Cidr, ExecutionError> {
    if let Some(c) = val.downcast_ref::<Cidr>() {
        return Ok(c.clone());
    }
    parse_cidr(text(val.as_ref())?).map_err(|e| fail("cidr", e))
}

fn ip_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s] = take(args)?;
    Ok(CowVal::owned(Ip(the_ip(&s)?)))
}

fn is_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s] = take(args)?;
    boolean(parse_ip(text(s.as_ref())?).is_ok())
}

fn is_canonical<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s] = take(args)?;
    let written = text(s.as_ref())?;
    let ip = parse_ip(written).map_err(|e| fail("ip.isCanonical", e))?;
    boolean(ip.to_string() == written)
}

fn to_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [v] = take(args)?;
    if let Some(ip) = v.downcast_ref::<Ip>() {
        return string(ip.to_string());
    }
    string(the_cidr(&v)?.to_string())
}

fn cidr_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s] = take(args)?;
    Ok(CowVal::owned(the_cidr(&s)?))
}

fn is_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s] = take(args)?;
    boolean(parse_cidr(text(s.as_ref())?).is_ok())
}

fn family<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [ip] = take(args)?;
    int(if the_ip(&ip)?.is_ipv4() { 4 } else { 6 })
}

fn is_unspecified<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [ip] = take(args)?;
    boolean(the_ip(&ip)?.is_unspecified())
}

fn is_loopback<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [ip] = take(args)?;
    boolean(the_ip(&ip)?.is_loopback())
}

fn is_link_local_multicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [ip] = take(args)?;
    boolean(match the_ip(&ip)? {
        IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        IpAddr::V6(a) => a.segments()[0] & 0xff0f == 0xff02,
    })
}

fn is_link_local_unicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [ip] = take(args)?;
    boolean(match the_ip(&ip)? {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    })
}

/// Go's `IsGlobalUnicast`: not unspecified, loopback, multicast, link-local
/// or the IPv4 broadcast address.
fn is_global_unicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [ip] = take(args)?;
    boolean(match the_ip(&ip)? {
        IpAddr::V4(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_link_local()
                || a.is_broadcast())
        }
        IpAddr::V6(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.segments()[0] & 0xffc0 == 0xfe80)
        }
    })
}

fn contains_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [c, ip] = take(args)?;
    boolean(the_cidr(&c)?.contains(the_ip(&ip)?))
}

fn contains_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [c, other] = take(args)?;
    boolean(the_cidr(&c)?.contains_cidr(&the_cidr(&other)?))
}

fn cidr_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [c] = take(args)?;
    Ok(CowVal::owned(Ip(the_cidr(&c)?.addr)))
}

fn masked<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [c] = take(args)?;
    Ok(CowVal::owned(the_cidr(&c)?.masked()))
}

fn prefix_length<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [c] = take(args)?;
    int(i64::from(the_cidr(&c)?.prefix))
}
