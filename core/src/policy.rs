//! Pure policy logic: IP allow/deny lists, the ban of addresses that fail to log in too often,
//! and Unix-style permission checks on the virtual file system.
//!
//! Decisions only. The state these need across connections (the ban table) is held by the
//! runtime behind its own lock; the rules for reading and changing it live here so that every
//! runtime decides the same way and tests can drive them with a fake clock.

pub use crate::listing::Perm;
use crate::listing::{FileInfo, FileKind};
use core::fmt;
use core::net::IpAddr;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or a single
/// address, which means /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR or IP filter entry that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrError(pub String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Cidr {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| CidrError(format!("`{s}` is not an IP address or CIDR network")))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(CidrError(format!(
                        "`{s}`: the prefix length must be 0 to {max}"
                    )))
                }
            },
        };
        Ok(Cidr {
            addr: crate::addr::canonical_ip(addr),
            prefix,
        })
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, crate::addr::canonical_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An allow list and a deny list. An address is let in when it matches no deny entry and,
/// if the allow list is not empty, matches an allow entry. Deny wins over allow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpFilter {
    /// Networks let in (empty: everyone not denied).
    pub allow: Vec<Cidr>,
    /// Networks kept out.
    pub deny: Vec<Cidr>,
}

impl IpFilter {
    /// Builds a filter from textual entries; the error names the first bad entry.
    pub fn parse<'a>(
        allow: impl IntoIterator<Item = &'a str>,
        deny: impl IntoIterator<Item = &'a str>,
    ) -> Result<IpFilter, CidrError> {
        Ok(IpFilter {
            allow: allow
                .into_iter()
                .map(Cidr::parse)
                .collect::<Result<_, _>>()?,
            deny: deny
                .into_iter()
                .map(Cidr::parse)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether `ip` may connect (or log in).
    pub fn permits(&self, ip: IpAddr) -> bool {
        !self.deny.iter().any(|c| c.contains(ip))
            && (self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip)))
    }

    /// Whether the filter lets everyone in.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// Addresses banned for a while after too many failed logins, across connections.
///
/// The runtime owns one (behind a lock), calls [`BanList::record_failure`] for every failed
/// login, [`BanList::record_success`] for every successful one, and refuses a new connection
/// while [`BanList::banned_for`] returns `Some`.
#[derive(Debug)]
pub struct BanList {
    threshold: u32,
    window: Duration,
    duration: Duration,
    max_tracked: usize,
    entries: HashMap<IpAddr, BanEntry>,
}

#[derive(Clone, Copy, Debug)]
struct BanEntry {
    failures: u32,
    first: Instant,
    banned_until: Option<Instant>,
}

impl BanList {
    /// Ban an address for `duration` once it has failed `threshold` logins within `window`.
    /// `threshold == 0` disables banning. At most `max_tracked` addresses are remembered (the
    /// table is bounded; when full, the oldest entries are dropped first).
    pub fn new(threshold: u32, window: Duration, duration: Duration, max_tracked: usize) -> Self {
        BanList {
            threshold,
            window,
            duration,
            max_tracked: max_tracked.max(1),
            entries: HashMap::new(),
        }
    }

    /// A failed login from `ip`. Returns true when this failure starts a ban.
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let ip = crate::addr::canonical_ip(ip);
        if !self.entries.contains_key(&ip) && self.entries.len() >= self.max_tracked {
            self.prune(now);
            if self.entries.len() >= self.max_tracked {
                if let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.first) {
                    let oldest = *oldest.0;
                    self.entries.remove(&oldest);
                }
            }
        }
        let window = self.window;
        let e = self.entries.entry(ip).or_insert(BanEntry {
            failures: 0,
            first: now,
            banned_until: None,
        });
        if now.saturating_duration_since(e.first) > window {
            *e = BanEntry {
                failures: 0,
                first: now,
                banned_until: None,
            };
        }
        e.failures += 1;
        if e.failures >= self.threshold && e.banned_until.is_none_or(|t| t <= now) {
            e.banned_until = Some(now + self.duration);
            return true;
        }
        false
    }

    /// A successful login from `ip`: its failure count starts again.
    pub fn record_success(&mut self, ip: IpAddr) {
        let ip = crate::addr::canonical_ip(ip);
        if self
            .entries
            .get(&ip)
            .is_some_and(|e| e.banned_until.is_none())
        {
            self.entries.remove(&ip);
        }
    }

    /// How much longer `ip` stays banned, if it is.
    pub fn banned_for(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let e = self.entries.get(&crate::addr::canonical_ip(ip))?;
        let until = e.banned_until?;
        (until > now).then(|| until - now)
    }

    /// How many addresses the table remembers now (at most `max_tracked`).
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }

    /// Forgets entries whose window and ban have both passed.
    pub fn prune(&mut self, now: Instant) {
        let window = self.window;
        self.entries.retain(|_, e| {
            e.banned_until.is_some_and(|t| t > now)
                || now.saturating_duration_since(e.first) <= window
        });
    }
}

/// What an operation needs from an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read a file or list a directory (`r`).
    Read,
    /// Change a file, or create, delete and rename entries in a directory (`w`).
    Write,
    /// Enter a directory (`x`).
    Enter,
}

/// Who is asking: a user name and the group (partner) they belong to.
#[derive(Clone, Copy, Debug)]
pub struct Principal<'a> {
    /// The user's name as owners are recorded (for partner users, the name without the
    /// partner prefix).
    pub user: &'a str,
    /// The user's group: their partner, if any.
    pub group: Option<&'a str>,
}

/// Whether `who` has `access` to `info` by its owner, group and mode bits, as Unix decides:
/// the owner class if the user owns it, otherwise the group class if the group matches,
/// otherwise "other" — exactly one class applies.
pub fn allowed(who: Principal<'_>, info: &FileInfo, access: Access) -> bool {
    let bit = match access {
        Access::Read => 4,
        Access::Write => 2,
        Access::Enter => 1,
    };
    let shift = if info.owner == who.user {
        6
    } else if who.group.is_some_and(|g| g == info.group) {
        3
    } else {
        0
    };
    (info.mode >> shift) & bit != 0
}

/// Whether `who` may delete or rename `entry` out of `dir`: write access to the directory,
/// and, if the directory is sticky (`+t`), ownership of the entry or of the directory.
pub fn may_unlink(who: Principal<'_>, dir: &FileInfo, entry: &FileInfo) -> bool {
    allowed(who, dir, Access::Write)
        && (dir.mode & 0o1000 == 0 || entry.owner == who.user || dir.owner == who.user)
}

/// The MLSD/MLST `perm` fact for `entry` in a directory `dir`. `fixed` marks a virtual
/// folder that cannot be deleted or renamed.
pub fn perm_fact(
    who: Principal<'_>,
    dir: Option<&FileInfo>,
    entry: &FileInfo,
    fixed: bool,
) -> Perm {
    let unlink = dir.is_some_and(|d| may_unlink(who, d, entry)) && !fixed;
    let r = allowed(who, entry, Access::Read);
    let w = allowed(who, entry, Access::Write);
    match entry.kind {
        FileKind::Dir => {
            let x = allowed(who, entry, Access::Enter);
            Perm::default()
                .with(b'c', w && x)
                .with(b'm', w && x)
                .with(b'p', w && x)
                .with(b'd', unlink)
                .with(b'f', unlink)
                .with(b'e', x)
                .with(b'l', r)
        }
        _ => Perm::default()
            .with(b'a', w)
            .with(b'w', w)
            .with(b'd', unlink)
            .with(b'f', unlink)
            .with(b'r', r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nonsense").is_err());
        assert_eq!(
            Cidr::parse("127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
    }

    #[test]
    fn filter_deny_wins() {
        let f = IpFilter::parse(["127.0.0.0/8"], ["127.0.0.2"]).unwrap();
        assert!(f.permits("127.0.0.1".parse().unwrap()));
        assert!(!f.permits("127.0.0.2".parse().unwrap()));
        assert!(!f.permits("192.168.1.1".parse().unwrap()));
        assert!(IpFilter::default().permits("192.168.1.1".parse().unwrap()));
    }

    fn entry(kind: FileKind, owner: &str, group: &str, mode: u32) -> FileInfo {
        let mut f = FileInfo::new("x", kind);
        f.owner = owner.into();
        f.group = group.into();
        f.mode = mode;
        f
    }

    #[test]
    fn unix_classes() {
        let alice = Principal {
            user: "alice",
            group: Some("acme"),
        };
        let inbox = entry(FileKind::Dir, "root", "root", 0o755);
        let outbox = entry(FileKind::Dir, "root", "root", 0o777);
        let upload = entry(FileKind::File, "alice", "acme", 0o444);
        assert!(allowed(alice, &inbox, Access::Read));
        assert!(!allowed(alice, &inbox, Access::Write));
        assert!(allowed(alice, &outbox, Access::Write));
        assert!(allowed(alice, &upload, Access::Read));
        assert!(!allowed(alice, &upload, Access::Write));
        // The owner class applies alone: an owner without r cannot read even if others can.
        let odd = entry(FileKind::File, "alice", "acme", 0o044);
        assert!(!allowed(alice, &odd, Access::Read));
        assert_eq!(
            perm_fact(alice, Some(&outbox), &upload, false).to_string(),
            "dfr"
        );
        let own_dir = entry(FileKind::Dir, "alice", "acme", 0o755);
        assert_eq!(
            perm_fact(alice, Some(&outbox), &own_dir, false).to_string(),
            "cdeflmp"
        );
        assert_eq!(perm_fact(alice, None, &inbox, true).to_string(), "el");
        assert_eq!(
            perm_fact(alice, Some(&outbox), &own_dir, false)
                .read_only()
                .to_string(),
            "el"
        );
        let sticky = entry(FileKind::Dir, "root", "root", 0o1777);
        let bobs = entry(FileKind::File, "bob", "acme", 0o644);
        assert!(!may_unlink(alice, &sticky, &bobs));
        assert!(may_unlink(alice, &sticky, &upload));
    }
}
