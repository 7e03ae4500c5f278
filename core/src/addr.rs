//! Address syntax of the data connection: PORT/EPRT/LPRT arguments in, PASV/EPSV/LPSV replies
//! out (RFC 959, RFC 2428, RFC 1639), and the passive port list of the configuration.
//!
//! Pure parsing and formatting; whether an address may be used is the session's decision.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use core::ops::RangeInclusive;

/// A malformed address argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrError;

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed address")
    }
}

/// Parses the PORT argument `h1,h2,h3,h4,p1,p2`.
pub fn parse_port(arg: &str) -> Result<SocketAddrV4, AddrError> {
    let mut n = [0u8; 6];
    let mut parts = arg.trim().split(',');
    for slot in &mut n {
        *slot = parts
            .next()
            .and_then(|p| p.trim().parse::<u8>().ok())
            .ok_or(AddrError)?;
    }
    if parts.next().is_some() {
        return Err(AddrError);
    }
    let ip = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
    Ok(SocketAddrV4::new(
        ip,
        u16::from(n[4]) << 8 | u16::from(n[5]),
    ))
}

/// Formats `h1,h2,h3,h4,p1,p2` for a PORT command or a 227 reply.
pub fn format_port(addr: SocketAddrV4) -> String {
    let o = addr.ip().octets();
    let p = addr.port();
    format!(
        "{},{},{},{},{},{}",
        o[0],
        o[1],
        o[2],
        o[3],
        p >> 8,
        p & 0xff
    )
}

/// Parses the EPRT argument `<d><proto><d><addr><d><port><d>` (RFC 2428 §2), where `<d>` is any
/// printable ASCII character, proto `1` is IPv4 and `2` is IPv6.
pub fn parse_eprt(arg: &str) -> Result<SocketAddr, AddrError> {
    let arg = arg.trim();
    let delim = arg.chars().next().ok_or(AddrError)?;
    if !(delim.is_ascii_graphic()) {
        return Err(AddrError);
    }
    let mut parts = arg[delim.len_utf8()..].split(delim);
    let proto = parts.next().ok_or(AddrError)?;
    let host = parts.next().ok_or(AddrError)?;
    let port = parts.next().ok_or(AddrError)?;
    match (parts.next(), parts.next()) {
        (Some(""), None) => {}
        _ => return Err(AddrError),
    }
    let port: u16 = port.parse().map_err(|_| AddrError)?;
    if port == 0 {
        return Err(AddrError);
    }
    let ip = match proto {
        "1" => IpAddr::V4(host.parse::<Ipv4Addr>().map_err(|_| AddrError)?),
        "2" => IpAddr::V6(host.parse::<Ipv6Addr>().map_err(|_| AddrError)?),
        _ => return Err(AddrError),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Formats an EPRT argument, `|1|1.2.3.4|5282|` or `|2|::1|5282|`.
pub fn format_eprt(addr: SocketAddr) -> String {
    let proto = if addr.is_ipv4() { 1 } else { 2 };
    format!("|{}|{}|{}|", proto, addr.ip(), addr.port())
}

/// The text of a 229 reply: `Entering Extended Passive Mode (|||port|)`.
pub fn format_epsv(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

/// Parses the port out of a 229 reply text (the client's side of [`format_epsv`]).
pub fn parse_epsv_reply(text: &str) -> Result<u16, AddrError> {
    let open = text.find('(').ok_or(AddrError)?;
    let close = text[open..].find(')').ok_or(AddrError)? + open;
    let inner = &text[open + 1..close];
    let d = inner.chars().next().ok_or(AddrError)?;
    let parts: Vec<&str> = inner.split(d).collect();
    if parts.len() != 5 || !parts[1].is_empty() || !parts[2].is_empty() || !parts[4].is_empty() {
        return Err(AddrError);
    }
    parts[3].parse().map_err(|_| AddrError)
}

/// The text of a 227 reply: `Entering Passive Mode (h1,h2,h3,h4,p1,p2).`
pub fn format_pasv(addr: SocketAddrV4) -> String {
    format!("Entering Passive Mode ({}).", format_port(addr))
}

/// Parses the address out of a 227 reply text (the client's side of [`format_pasv`]): the first
/// run of six comma-separated numbers, with or without parentheses.
pub fn parse_pasv_reply(text: &str) -> Result<SocketAddrV4, AddrError> {
    let start = text.find(|c: char| c.is_ascii_digit()).ok_or(AddrError)?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ','))
        .unwrap_or(rest.len());
    parse_port(&rest[..end])
}

/// Parses the LPRT argument (RFC 1639): `af,hal,h1,...,hn,pal,p1,...,pn` where af is 4 or 6.
pub fn parse_lprt(arg: &str) -> Result<SocketAddr, AddrError> {
    let nums: Vec<u8> = arg
        .trim()
        .split(',')
        .map(|p| p.trim().parse::<u8>().map_err(|_| AddrError))
        .collect::<Result<_, _>>()?;
    let (&af, rest) = nums.split_first().ok_or(AddrError)?;
    let (&hal, rest) = rest.split_first().ok_or(AddrError)?;
    let hal = usize::from(hal);
    if rest.len() < hal + 1 {
        return Err(AddrError);
    }
    let (host, rest) = rest.split_at(hal);
    let (&pal, port) = rest.split_first().ok_or(AddrError)?;
    if usize::from(pal) != port.len() || pal != 2 {
        return Err(AddrError);
    }
    let port = u16::from(port[0]) << 8 | u16::from(port[1]);
    let ip = match (af, hal) {
        (4, 4) => IpAddr::V4(Ipv4Addr::new(host[0], host[1], host[2], host[3])),
        (6, 16) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(host);
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return Err(AddrError),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Formats the LPRT/LPSV address form of RFC 1639.
pub fn format_lprt(addr: SocketAddr) -> String {
    let (af, octets): (u8, Vec<u8>) = match addr.ip() {
        IpAddr::V4(ip) => (4, ip.octets().to_vec()),
        IpAddr::V6(ip) => (6, ip.octets().to_vec()),
    };
    let mut s = format!("{},{}", af, octets.len());
    for o in octets {
        s.push_str(&format!(",{o}"));
    }
    let p = addr.port();
    s.push_str(&format!(",2,{},{}", p >> 8, p & 0xff));
    s
}

/// The set of ports passive data connections may use, parsed from a list such as
/// `2121, 30000-30100, 40000-` (`40000-` means 40000–65535 and `-1023` means 1–1023).
///
/// An empty list means "any port" (the runtime picks one of the system's ephemeral range).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassivePorts {
    ranges: Vec<RangeInclusive<u16>>,
    total: u32,
}

/// A passive port list that does not parse; the message says which element and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpecError(pub String);

impl fmt::Display for PortSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PassivePorts {
    /// Parses a comma-separated list of ports and ranges.
    pub fn parse(spec: &str) -> Result<PassivePorts, PortSpecError> {
        let mut ranges = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let port = |s: &str| -> Result<u16, PortSpecError> {
                match s.trim().parse::<u16>() {
                    Ok(0) | Err(_) => Err(PortSpecError(format!(
                        "`{item}`: `{}` is not a port number (1-65535)",
                        s.trim()
                    ))),
                    Ok(p) => Ok(p),
                }
            };
            let range = match item.split_once('-') {
                None => {
                    let p = port(item)?;
                    p..=p
                }
                Some((lo, hi)) => {
                    let lo = if lo.trim().is_empty() { 1 } else { port(lo)? };
                    let hi = if hi.trim().is_empty() {
                        65535
                    } else {
                        port(hi)?
                    };
                    if lo > hi {
                        return Err(PortSpecError(format!(
                            "`{item}`: the range runs backwards ({lo} > {hi})"
                        )));
                    }
                    lo..=hi
                }
            };
            ranges.push(range);
        }
        ranges.sort_by_key(|r| *r.start());
        // Merge overlapping and adjacent ranges so that every port counts once.
        let mut merged: Vec<RangeInclusive<u16>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(*r.start()) <= u32::from(*last.end()) + 1 => {
                    if r.end() > last.end() {
                        *last = *last.start()..=*r.end();
                    }
                }
                _ => merged.push(r),
            }
        }
        let total = merged
            .iter()
            .map(|r| u32::from(*r.end()) - u32::from(*r.start()) + 1)
            .sum();
        Ok(PassivePorts {
            ranges: merged,
            total,
        })
    }

    /// Whether the list is empty (any port will do).
    pub fn is_any(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many ports the list holds.
    pub fn len(&self) -> u32 {
        self.total
    }

    /// Whether the list holds no port (same as [`PassivePorts::is_any`]).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Whether `port` is in the list.
    pub fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|r| r.contains(&port))
    }

    /// The `n`-th port of the list (modulo its length): with `n` random, a uniformly random port.
    /// `None` when the list is empty.
    pub fn nth(&self, n: u64) -> Option<u16> {
        if self.total == 0 {
            return None;
        }
        let mut i = (n % u64::from(self.total)) as u32;
        for r in &self.ranges {
            let len = u32::from(*r.end()) - u32::from(*r.start()) + 1;
            if i < len {
                return Some(*r.start() + i as u16);
            }
            i -= len;
        }
        None
    }
}

impl fmt::Display for PassivePorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

/// Maps an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) to IPv4; other addresses unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    #[test]
    fn port_examples() {
        let a = parse_port("127,0,0,1,4,1").unwrap();
        assert_eq!(a, "127.0.0.1:1025".parse().unwrap());
        assert!(parse_port("127,0,0,1,4").is_err());
        assert!(parse_port("127,0,0,1,4,1,1").is_err());
        assert!(parse_port("256,0,0,1,4,1").is_err());
        assert!(parse_port("").is_err());
    }

    #[test]
    fn eprt_examples() {
        assert_eq!(
            parse_eprt("|1|132.235.1.2|6275|").unwrap(),
            "132.235.1.2:6275".parse().unwrap()
        );
        assert_eq!(
            parse_eprt("|2|1080::8:800:200C:417A|5282|").unwrap(),
            "[1080::8:800:200C:417A]:5282".parse().unwrap()
        );
        assert_eq!(
            parse_eprt("!1!10.0.0.1!80!").unwrap(),
            "10.0.0.1:80".parse().unwrap()
        );
        assert!(parse_eprt("|3|1.2.3.4|5|").is_err());
        assert!(parse_eprt("|1|::1|5|").is_err());
        assert!(parse_eprt("|1|1.2.3.4|5").is_err());
        assert!(parse_eprt("|1|1.2.3.4|0|").is_err());
    }

    #[test]
    fn lprt_examples() {
        let a = parse_lprt("4,4,127,0,0,1,2,4,1").unwrap();
        assert_eq!(a, "127.0.0.1:1025".parse().unwrap());
        assert!(parse_lprt("4,4,127,0,0,1,2,4").is_err());
    }

    #[test]
    fn passive_port_lists() {
        let p = PassivePorts::parse("2121, 30000-30100, 40000-").unwrap();
        assert!(p.contains(2121) && p.contains(30050) && p.contains(65535));
        assert!(!p.contains(2122) && !p.contains(39999));
        assert_eq!(p.len(), 1 + 101 + 25536);
        let low = PassivePorts::parse("-1023").unwrap();
        assert_eq!(low.len(), 1023);
        assert_eq!(low.nth(0), Some(1));
        assert!(PassivePorts::parse("5-3").is_err());
        assert!(PassivePorts::parse("70000").is_err());
        assert!(PassivePorts::parse("0").is_err());
        assert!(PassivePorts::parse("").unwrap().is_any());
        let merged = PassivePorts::parse("10-20, 15-25, 26").unwrap();
        assert_eq!(merged.to_string(), "10-26");
    }

    quickcheck! {
        fn port_round_trip(ip: u32, port: u16) -> bool {
            let a = SocketAddrV4::new(Ipv4Addr::from(ip), port);
            parse_port(&format_port(a)) == Ok(a)
                && parse_pasv_reply(&format_pasv(a)) == Ok(a)
        }

        fn eprt_round_trip(v4: u32, v6: u128, port: u16, six: bool) -> bool {
            let port = port.max(1);
            let ip = if six { IpAddr::V6(Ipv6Addr::from(v6)) } else { IpAddr::V4(Ipv4Addr::from(v4)) };
            let a = SocketAddr::new(ip, port);
            parse_eprt(&format_eprt(a)) == Ok(a) && parse_lprt(&format_lprt(a)) == Ok(a)
        }

        fn epsv_round_trip(port: u16) -> bool {
            parse_epsv_reply(&format_epsv(port)) == Ok(port)
        }

        fn nth_stays_in_list(lo: u16, len: u16, n: u64) -> bool {
            let lo = lo.max(1);
            let hi = lo.saturating_add(len % 1000);
            let p = PassivePorts::parse(&format!("{lo}-{hi}")).unwrap();
            p.nth(n).is_some_and(|x| p.contains(x))
        }
    }
}
