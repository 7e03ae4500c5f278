//! Data connections: passive listeners on the configured port list, the wait for the client to
//! connect (refusing anyone but the control connection's peer), and active connections out to
//! the client.
//!
//! Every wait here lasts at most the slice its caller gives, so that a transfer waiting for
//! its data connection returns to the driver's loop, which answers the control connection
//! (ABOR, QUIT) between waits and enforces the data-connection timeout. Nothing here moves
//! file data: see [`super::transfer`].

use log::{info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};
use wharf_core::addr::{canonical_ip, PassivePorts};
use wharf_core::policy::Cidr;

use crate::rng::fast_u64;

/// Random picks from the port list before scanning it in order.
pub const RANDOM_PICKS: u32 = 16;

/// Whom a passive listener accepts a data connection from: the client, and the servers of
/// its account's third-party transfer policy (`fxp_peers`; usually none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admits {
    /// The client's address.
    pub client: IpAddr,
    /// The servers the account may use in a third-party transfer.
    pub fxp_peers: Vec<Cidr>,
}

impl Admits {
    /// The client only.
    pub fn client(ip: IpAddr) -> Admits {
        Admits {
            client: canonical_ip(ip),
            fxp_peers: Vec::new(),
        }
    }

    /// Whether a connection from `ip` is the client's (`Some(false)`), a listed server's
    /// (`Some(true)`), or someone else's (`None`).
    pub fn third_party(&self, ip: IpAddr) -> Option<bool> {
        let ip = canonical_ip(ip);
        if ip == self.client {
            Some(false)
        } else if self.fxp_peers.iter().any(|c| c.contains(ip)) {
            Some(true)
        } else {
            None
        }
    }
}

/// A passive listener of a session, and whom it accepts.
#[derive(Debug)]
pub struct PassiveListener {
    listener: TcpListener,
    admits: Admits,
    port: u16,
    /// Made on the first wait that finds no connection yet (usually the client has connected
    /// by the time the transfer command comes, and no poll is needed at all).
    waiter: Option<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    poll: Poll,
    events: Events,
}

impl Waiter {
    /// A poll on `fd` for `interest`.
    fn on(fd: RawFd, interest: Interest) -> io::Result<Waiter> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut SourceFd(&fd), Token(0), interest)?;
        Ok(Waiter {
            poll,
            events: Events::with_capacity(2),
        })
    }

    /// Waits at most `slice` for the registered readiness.
    fn wait(&mut self, slice: Duration) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(slice)) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }
}

impl PassiveListener {
    /// Listens on `ip`, on a port of `ports` (any port when it is empty), for a connection
    /// from whom `admits` names.
    ///
    /// With a list: tries [`RANDOM_PICKS`] random ports of the list, then every port of the
    /// list from a random start, and fails when none can be bound. Without one: see
    /// [`bind_ephemeral`].
    pub fn bind(ip: IpAddr, admits: Admits, ports: &PassivePorts) -> io::Result<Self> {
        let (listener, port) = if ports.is_any() {
            bind_ephemeral(ip)?
        } else {
            bind_from_list(ip, ports)?
        };
        listener.set_nonblocking(true)?;
        Ok(PassiveListener {
            listener,
            admits,
            port,
            waiter: None,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits at most `slice` for the client's data connection: `Ok(Some)` once it came,
    /// `Ok(None)` when the slice passed without it.
    ///
    /// A connection from an address it does not admit is closed at once, logged as a passive
    /// port theft attempt, and the wait goes on.
    pub fn accept_within(&mut self, slice: Duration) -> io::Result<Option<TcpStream>> {
        // Usually the client has connected already, right after the PASV reply.
        if let Some(s) = self.try_accept()? {
            return Ok(Some(s));
        }
        let waiter = match &mut self.waiter {
            Some(w) => w,
            None => {
                // Registration is edge-triggered: look again after registering so that
                // nothing that arrived in between is missed.
                let w = Waiter::on(self.listener.as_raw_fd(), Interest::READABLE)?;
                let w = self.waiter.insert(w);
                if let Some(s) = Self::accept_from(&self.listener, &self.admits, self.port)? {
                    return Ok(Some(s));
                }
                w
            }
        };
        waiter.wait(slice)?;
        self.try_accept()
    }

    /// Accepts every pending connection: returns the first from the right peer; closes others.
    fn try_accept(&self) -> io::Result<Option<TcpStream>> {
        Self::accept_from(&self.listener, &self.admits, self.port)
    }

    fn accept_from(
        listener: &TcpListener,
        admits: &Admits,
        port: u16,
    ) -> io::Result<Option<TcpStream>> {
        // Bounded: a flood of thieves cannot keep this loop going forever.
        for _ in 0..64 {
            match listener.accept() {
                Ok((stream, from)) => {
                    match admits.third_party(from.ip()) {
                        None => {
                            warn!(
                                "passive port theft attempt: data connection from {from} on port {port}, expected {}; closed",
                                admits.client
                            );
                            drop(stream);
                        }
                        Some(third_party) => {
                            if third_party {
                                info!(
                                    "third-party data connection from {from} on port {port} (fxp_peers)"
                                );
                            }
                            // Linux: an accepted socket does not inherit O_NONBLOCK from
                            // the listener (accept(2)); elsewhere it may.
                            #[cfg(not(target_os = "linux"))]
                            stream.set_nonblocking(false)?;
                            return Ok(Some(stream));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// Binds a listener to any port: [`RANDOM_PICKS`] random ports of the system's ephemeral
/// range first, then whatever port the system gives (`bind` to port 0).
///
/// Why not port 0 at once: Linux looks for a port no socket uses at all before it settles
/// for one that only TIME_WAIT connections hold, so once the range is full of them (every
/// passive download leaves one behind on the server for a minute, as the server closes
/// first) each `bind` to port 0 walks the whole range. With 26,000 held, that made a
/// 10 KB download cost 2.7 ms of server CPU instead of 0.14 ms. A named port is one lookup,
/// and `SO_REUSEADDR` (which std sets on listeners) lets it reuse a TIME_WAIT port.
fn bind_ephemeral(ip: IpAddr) -> io::Result<(TcpListener, u16)> {
    bind_in_range_or_any(ip, ephemeral_ports())
}

/// [`bind_ephemeral`] with the range given: random picks from `range`, then port 0.
fn bind_in_range_or_any(
    ip: IpAddr,
    range: Option<&PassivePorts>,
) -> io::Result<(TcpListener, u16)> {
    if let Some(Ok(l)) = range.map(|range| bind_random(ip, range)) {
        return Ok(l);
    }
    let l = TcpListener::bind(SocketAddr::new(ip, 0))?;
    let port = l.local_addr()?.port();
    Ok((l, port))
}

/// The system's ephemeral port range (`net.ipv4.ip_local_port_range`, which covers IPv6
/// too), read once; `None` where it cannot be read.
fn ephemeral_ports() -> Option<&'static PassivePorts> {
    static RANGE: std::sync::OnceLock<Option<PassivePorts>> = std::sync::OnceLock::new();
    RANGE
        .get_or_init(|| {
            let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
            parse_port_range(&text)
        })
        .as_ref()
}

/// `ip_local_port_range`'s two numbers ("32768\t60999\n") as a port list.
fn parse_port_range(text: &str) -> Option<PassivePorts> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let (Some(Ok(lo)), Some(Ok(hi)), None) = (it.next(), it.next(), it.next()) else {
        return None;
    };
    PassivePorts::parse(&format!("{lo}-{hi}"))
        .ok()
        .filter(|p| !p.is_any())
}

/// Binds a listener to one of [`RANDOM_PICKS`] random ports of `ports`; else the last error.
fn bind_random(ip: IpAddr, ports: &PassivePorts) -> Result<(TcpListener, u16), Option<io::Error>> {
    let mut last_err = None;
    for _ in 0..RANDOM_PICKS {
        if let Some(port) = ports.nth(fast_u64()) {
            match TcpListener::bind(SocketAddr::new(ip, port)) {
                Ok(l) => return Ok((l, port)),
                Err(e) => last_err = Some(e),
            }
        }
    }
    Err(last_err)
}

/// Binds a listener to a port of the list; returns it with its port.
fn bind_from_list(ip: IpAddr, ports: &PassivePorts) -> io::Result<(TcpListener, u16)> {
    let mut last_err = match bind_random(ip, ports) {
        Ok(l) => return Ok(l),
        Err(e) => e,
    };
    let start = fast_u64() % u64::from(ports.len().max(1));
    for i in 0..u64::from(ports.len()) {
        if let Some(port) = ports.nth(start + i) {
            match TcpListener::bind(SocketAddr::new(ip, port)) {
                Ok(l) => return Ok((l, port)),
                Err(e) => last_err = Some(e),
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        match last_err {
            Some(e) => format!("no free port in the passive port list ({ports}): {e}"),
            None => format!("no free port in the passive port list ({ports})"),
        },
    ))
}

/// An active-mode data connection on its way to the client (PORT, EPRT, LPRT): a
/// non-blocking connect that [`ActiveConnect::connected_within`] waits for a slice at a time.
#[derive(Debug)]
pub struct ActiveConnect {
    /// `None` once handed out.
    socket: Option<socket2::Socket>,
    waiter: Waiter,
}

impl ActiveConnect {
    /// Starts connecting to `to`, from `local_ip` and, when given, from `local_port` (port 20
    /// by tradition; ports below 1024 need privileges). Binding before connecting needs
    /// `socket2` (std cannot).
    pub fn start(to: SocketAddr, local_ip: IpAddr, local_port: Option<u16>) -> io::Result<Self> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
        if let Some(port) = local_port {
            socket.set_reuse_address(true)?;
            socket.bind(&SocketAddr::new(local_ip, port).into())?;
        }
        socket.set_nonblocking(true)?;
        match socket.connect(&to.into()) {
            Ok(()) => {}
            // EINPROGRESS: the connection is on its way.
            Err(e) if e.raw_os_error() == Some(115) || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let waiter = Waiter::on(socket.as_raw_fd(), Interest::WRITABLE)?;
        Ok(ActiveConnect {
            socket: Some(socket),
            waiter,
        })
    }

    /// Waits at most `slice` for the connection: `Ok(Some)` (a blocking socket) once it is
    /// made, `Ok(None)` while it is on its way, an error when it was refused.
    pub fn connected_within(&mut self, slice: Duration) -> io::Result<Option<TcpStream>> {
        if !self.is_connected()? {
            self.waiter.wait(slice)?;
            if !self.is_connected()? {
                return Ok(None);
            }
        }
        let Some(socket) = self.socket.take() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection was handed out already",
            ));
        };
        socket.set_nonblocking(false)?;
        Ok(Some(socket.into()))
    }

    fn is_connected(&self) -> io::Result<bool> {
        let Some(socket) = &self.socket else {
            return Ok(false);
        };
        if let Some(e) = socket.take_error()? {
            return Err(e);
        }
        match socket.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Connects to the client for an active-mode transfer (see [`ActiveConnect`]), waiting at
/// most `timeout`.
pub fn connect_active(
    to: SocketAddr,
    local_ip: IpAddr,
    local_port: Option<u16>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    let mut connect = ActiveConnect::start(to, local_ip, local_port)?;
    // Bounded by the deadline; the count is a second guard.
    for _ in 0..1_000_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if let Some(s) = connect.connected_within(left)? {
            return Ok(s);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "the client did not accept the connection in time",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::Ipv4Addr;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn binds_inside_the_port_list() {
        // Find a free port, then ask for a list holding just it and a taken one.
        let taken = TcpListener::bind((LO, 0)).unwrap();
        let free = TcpListener::bind((LO, 0)).unwrap();
        let free_port = free.local_addr().unwrap().port();
        drop(free);
        let spec = format!("{}, {free_port}", taken.local_addr().unwrap().port());
        let ports = PassivePorts::parse(&spec).unwrap();
        let l = PassiveListener::bind(LO, Admits::client(LO), &ports).unwrap();
        assert_eq!(l.port(), free_port);
        // Every port of the list taken: a clear error.
        let ports = PassivePorts::parse(&taken.local_addr().unwrap().port().to_string()).unwrap();
        let err = PassiveListener::bind(LO, Admits::client(LO), &ports).unwrap_err();
        assert!(err.to_string().contains("no free port"), "{err}");
    }

    #[test]
    fn any_port_is_picked_from_the_ephemeral_range() {
        let range = ephemeral_ports().expect("ip_local_port_range is readable on Linux");
        for _ in 0..8 {
            let l =
                PassiveListener::bind(LO, Admits::client(LO), &PassivePorts::default()).unwrap();
            assert!(range.contains(l.port()), "{} not in {range}", l.port());
        }
        // The pick is ours, not the system's: a range of one free port gives that port...
        let free = TcpListener::bind((LO, 0)).unwrap();
        let free_port = free.local_addr().unwrap().port();
        drop(free);
        let one = PassivePorts::parse(&free_port.to_string()).unwrap();
        let (_l, port) = bind_in_range_or_any(LO, Some(&one)).unwrap();
        assert_eq!(port, free_port);
        // ...and a range with no free port falls back to any port the system gives.
        let (_again, other) = bind_in_range_or_any(LO, Some(&one)).unwrap();
        assert_ne!(other, free_port);
        let r = parse_port_range("32768\t60999\n").unwrap();
        assert_eq!(
            (r.len(), r.nth(0), r.nth(28231)),
            (28232, Some(32768), Some(60999))
        );
        for bad in ["", "32768", "32768 60999 1", "0 100", "60999 32768", "a b"] {
            assert!(parse_port_range(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_port_held_in_time_wait_can_be_listened_on_again() {
        // What bind_ephemeral relies on: the server closes first, so its end of the data
        // connection stays in TIME_WAIT on the port, and a new listener may still take it.
        let l = TcpListener::bind((LO, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let mut c = TcpStream::connect((LO, port)).unwrap();
        let (s, _) = l.accept().unwrap();
        drop(l);
        s.shutdown(std::net::Shutdown::Both).unwrap();
        drop(s);
        let mut b = [0u8; 1];
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(c.read(&mut b).unwrap(), 0);
        drop(c);
        TcpListener::bind((LO, port)).expect("a TIME_WAIT port can be bound by a listener");
    }

    /// Waits for the data connection until `deadline`, a slice at a time, as a transfer does.
    fn accept_until(l: &mut PassiveListener, deadline: Instant) -> io::Result<Option<TcpStream>> {
        while Instant::now() < deadline {
            if let Some(s) = l.accept_within(Duration::from_millis(50))? {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    #[test]
    fn accepts_the_peer_and_refuses_a_thief() {
        let mut l =
            PassiveListener::bind(LO, Admits::client(LO), &PassivePorts::default()).unwrap();
        let thief_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let thief =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        thief.bind(&SocketAddr::new(thief_ip, 0).into()).unwrap();
        thief
            .connect(&SocketAddr::new(LO, l.port()).into())
            .unwrap();
        let mut thief: TcpStream = thief.into();
        let mut good = TcpStream::connect((LO, l.port())).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut s = accept_until(&mut l, deadline).unwrap().unwrap();
        assert_eq!(s.peer_addr().unwrap(), good.local_addr().unwrap());
        // The thief's connection was closed: it reads end of file (or a reset).
        thief
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut b = [0u8; 1];
        assert!(matches!(thief.read(&mut b), Ok(0) | Err(_)));
        s.write_all(b"x").unwrap();
        good.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    }

    /// A wait lasts its slice and no more, so that the driver looks at the control connection
    /// (ABOR, QUIT) between waits; a connection that comes during a later wait is taken.
    #[test]
    fn accept_waits_a_slice_at_a_time() {
        let mut l =
            PassiveListener::bind(LO, Admits::client(LO), &PassivePorts::default()).unwrap();
        let t0 = Instant::now();
        assert!(l
            .accept_within(Duration::from_millis(200))
            .unwrap()
            .is_none());
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(190) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        let port = l.port();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            TcpStream::connect((LO, port)).unwrap()
        });
        let s = accept_until(&mut l, Instant::now() + Duration::from_secs(5)).unwrap();
        let client = late.join().unwrap();
        assert_eq!(
            s.expect("the late connection").peer_addr().unwrap(),
            client.local_addr().unwrap()
        );
    }

    #[test]
    fn active_connect() {
        let l = TcpListener::bind((LO, 0)).unwrap();
        let s = connect_active(l.local_addr().unwrap(), LO, None, Duration::from_secs(5)).unwrap();
        let (_peer, from) = l.accept().unwrap();
        assert_eq!(from, s.local_addr().unwrap());
        // From a chosen local port.
        let port = {
            let t = TcpListener::bind((LO, 0)).unwrap();
            t.local_addr().unwrap().port()
        };
        let s = connect_active(
            l.local_addr().unwrap(),
            LO,
            Some(port),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(s.local_addr().unwrap().port(), port);
        // Refused: an error, not a hang.
        drop(l);
        let closed = {
            let t = TcpListener::bind((LO, 0)).unwrap();
            t.local_addr().unwrap()
        };
        assert!(connect_active(closed, LO, None, Duration::from_secs(5)).is_err());
    }
}
