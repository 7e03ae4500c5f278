//! A small, fast FTP/FTPS client for load generation: control connection, replies, login,
//! explicit TLS (AUTH TLS, PBSZ 0, PROT P), passive data connections (EPSV, falling back to
//! PASV), and bulk transfers that keep the client off the critical path.
//!
//! It is not a general client: it speaks exactly what the workloads need and treats every
//! unexpected reply as an error that names the command and the reply. Every socket has read
//! and write timeouts and every bulk loop a deadline, so nothing here waits forever.
//!
//! The fast paths: receiving reads into a large buffer and throws the bytes away (or, with
//! `--recv splice`, splices them into /dev/null without copying: [`crate::sys::SpliceSink`]);
//! sending a file over plain TCP uses sendfile(2) ([`crate::sys`]; `std::io::copy` from a
//! `File` to a `TcpStream` no longer does with this toolchain). Over TLS the bytes must pass through
//! rustls, in large writes.

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::fs::File;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sys::SpliceSink;

/// Longest reply (all lines) the client accepts before calling the server broken.
const MAX_REPLY: usize = 64 * 1024;

/// Most bytes handed to one sendfile(2) call.
const SENDFILE_CHUNK: usize = 16 << 20;

/// One server reply: its code and its text (lines joined with `\n`).
#[derive(Clone, Debug)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// All lines of the reply, CRLF removed.
    pub text: String,
}

/// TLS settings shared by every connection of a benchmark: one `ClientConfig` (and so one
/// session cache) and one server name, so data connections resume the control session.
#[derive(Clone, Debug)]
pub struct TlsClient {
    /// The configuration (pinned certificate, resumption cache).
    pub config: Arc<ClientConfig>,
    /// The name (or IP address) presented in SNI and used as the cache key.
    pub name: ServerName<'static>,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// Only while switching from plain to TLS.
    Switching,
}

fn switching() -> io::Error {
    io::Error::new(
        ErrorKind::NotConnected,
        "connection lost while starting TLS",
    )
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
            Conn::Switching => Err(switching()),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
            Conn::Switching => Err(switching()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
            Conn::Switching => Err(switching()),
        }
    }
}

/// Reports bytes moved so far; called between chunks of a bulk transfer.
pub type ProgressFn<'a> = &'a mut dyn FnMut(u64);

/// A data connection, plain or protected.
pub enum Data {
    /// PROT C.
    Plain(TcpStream),
    /// PROT P: a TLS client on the data connection, resuming the control session.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Data {
    /// Reads until the server closes, discarding the bytes: over plain TCP spliced into
    /// /dev/null when given a [`SpliceSink`], else read into `buf`. Over TLS a close without
    /// close_notify is an error (the server did not finish the transfer properly).
    pub fn discard_to_end(
        &mut self,
        buf: &mut [u8],
        mut splice: Option<&mut SpliceSink>,
        deadline: Instant,
        progress: ProgressFn,
    ) -> Result<u64> {
        let mut total = 0u64;
        let mut last = 0u64;
        loop {
            let n = match (&mut *self, splice.as_deref_mut()) {
                (Data::Plain(s), Some(sink)) => sink.discard(s),
                (Data::Plain(s), None) => s.read(buf),
                (Data::Tls(s), _) => s.read(buf),
            };
            let n = match n {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(anyhow!(e).context(format!("reading data after {total} bytes")))
                }
            };
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            if total - last >= 64 << 20 {
                last = total;
                progress(total);
                if Instant::now() > deadline {
                    bail!("transfer deadline passed after {total} bytes");
                }
            }
        }
    }

    /// Sends the whole of `file` (from its start), then ends the stream: over TCP with
    /// sendfile(2) and a write shutdown, over TLS in large writes followed by close_notify.
    pub fn send_file(
        &mut self,
        file: &mut File,
        buf: &mut [u8],
        deadline: Instant,
        progress: ProgressFn,
    ) -> Result<u64> {
        let mut total = 0u64;
        match self {
            Data::Plain(sock) => {
                let mut last = 0u64;
                loop {
                    let n =
                        match crate::sys::send_file_chunk(sock, file, &mut total, SENDFILE_CHUNK) {
                            Ok(n) => n,
                            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                            Err(e) => {
                                return Err(
                                    anyhow!(e).context(format!("sendfile after {total} bytes"))
                                )
                            }
                        };
                    if n == 0 {
                        break;
                    }
                    if total - last >= 64 << 20 {
                        last = total;
                        progress(total);
                        if Instant::now() > deadline {
                            bail!("transfer deadline passed after {total} bytes");
                        }
                    }
                }
                sock.shutdown(Shutdown::Write)?;
            }
            Data::Tls(s) => {
                file.seek(SeekFrom::Start(0))?;
                let mut last = 0u64;
                loop {
                    let n = file.read(buf)?;
                    if n == 0 {
                        break;
                    }
                    s.write_all(&buf[..n])
                        .with_context(|| format!("sending data after {total} bytes"))?;
                    total += n as u64;
                    if total - last >= 64 << 20 {
                        last = total;
                        progress(total);
                        if Instant::now() > deadline {
                            bail!("transfer deadline passed after {total} bytes");
                        }
                    }
                }
                finish_tls(s)?;
            }
        }
        Ok(total)
    }

    /// Sends `bytes`, then ends the stream as [`Data::send_file`] does.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Data::Plain(sock) => {
                sock.write_all(bytes)?;
                sock.shutdown(Shutdown::Write)?;
            }
            Data::Tls(s) => {
                s.write_all(bytes)?;
                finish_tls(s)?;
            }
        }
        Ok(())
    }
}

/// close_notify, flushed, then a write shutdown: the server sees a clean end of the upload.
///
/// Then the connection is read until the server closes it (bounded by the socket's read
/// timeout and by a byte budget). The server may have sent TLS 1.3 session tickets that were
/// never read; closing a socket with unread bytes makes the kernel send a reset, which can
/// reach the server before it has read the end of the upload (vsftpd then answers 426).
fn finish_tls(s: &mut StreamOwned<ClientConnection, TcpStream>) -> Result<()> {
    s.conn.send_close_notify();
    s.flush()?;
    while s.conn.wants_write() {
        s.conn.write_tls(&mut s.sock)?;
    }
    s.sock.shutdown(Shutdown::Write)?;
    let mut scratch = [0u8; 4096];
    let mut budget = 1usize << 20;
    while budget > 0 {
        match s.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => budget = budget.saturating_sub(n),
        }
    }
    Ok(())
}

/// A control connection.
pub struct Control {
    conn: Conn,
    peer: SocketAddr,
    inbuf: Vec<u8>,
    tls: Option<TlsClient>,
    protect_data: bool,
    timeout: Duration,
    epsv: bool,
}

impl Control {
    /// Connects and reads the greeting, which must be 220. `timeout` bounds the connect and
    /// every later read and write.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Control> {
        let sock = TcpStream::connect_timeout(&addr, timeout)
            .with_context(|| format!("connecting to {addr}"))?;
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_write_timeout(Some(timeout))?;
        let mut c = Control {
            conn: Conn::Plain(sock),
            peer: addr,
            inbuf: Vec::with_capacity(512),
            tls: None,
            protect_data: false,
            timeout,
            epsv: true,
        };
        let r = c.read_reply().context("reading the greeting")?;
        if r.code != 220 {
            bail!("greeting: {} {}", r.code, r.text);
        }
        Ok(c)
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Reads one reply, single- or multi-line (RFC 959 §4.2).
    pub fn read_reply(&mut self) -> Result<Reply> {
        let mut text = String::new();
        let mut code: Option<u16> = None;
        loop {
            let line = self.read_line()?;
            let line_code = line
                .get(..3)
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<u16>().ok());
            let last = line.as_bytes().get(3) != Some(&b'-');
            match code {
                None => {
                    let Some(c) = line_code else {
                        bail!("malformed reply line: {line:?}");
                    };
                    code = Some(c);
                    text.push_str(&line);
                    if last {
                        return Ok(Reply { code: c, text });
                    }
                }
                Some(c) => {
                    text.push('\n');
                    text.push_str(&line);
                    if line_code == Some(c) && last {
                        return Ok(Reply { code: c, text });
                    }
                }
            }
            if text.len() > MAX_REPLY {
                bail!("reply longer than {MAX_REPLY} bytes");
            }
        }
    }

    fn read_line(&mut self) -> Result<String> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.inbuf[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + i;
                let mut line: Vec<u8> = self.inbuf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            searched = self.inbuf.len();
            if searched > MAX_REPLY {
                bail!("reply line longer than {MAX_REPLY} bytes");
            }
            let mut chunk = [0u8; 4096];
            let n = match self.conn.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    bail!("no reply within {:?}", self.timeout)
                }
                Err(e) => return Err(anyhow!(e).context("reading a reply")),
            };
            if n == 0 {
                bail!("the server closed the control connection");
            }
            self.inbuf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends one command line (CRLF added) without reading the reply.
    pub fn send(&mut self, line: &str) -> Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.conn
            .write_all(&bytes)
            .and_then(|_| self.conn.flush())
            .with_context(|| format!("sending {}", shown(line)))
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Result<Reply> {
        self.send(line)?;
        self.read_reply()
            .with_context(|| format!("reply to {}", shown(line)))
    }

    /// Sends a command; its reply code must be one of `ok`.
    pub fn expect(&mut self, line: &str, ok: &[u16]) -> Result<Reply> {
        let r = self.cmd(line)?;
        if !ok.contains(&r.code) {
            bail!("{} -> {} {}", shown(line), r.code, r.text);
        }
        Ok(r)
    }

    /// USER and PASS (a 230 right after USER is accepted too).
    pub fn login(&mut self, user: &str, pass: &str) -> Result<()> {
        let r = self.expect(&format!("USER {user}"), &[230, 331])?;
        if r.code == 331 {
            self.expect(&format!("PASS {pass}"), &[230])?;
        }
        Ok(())
    }

    /// AUTH TLS, the handshake, PBSZ 0 and PROT P: from here on the control connection is
    /// encrypted and every data connection is a TLS client resuming this session.
    pub fn secure(&mut self, tls: &TlsClient) -> Result<()> {
        if !matches!(self.conn, Conn::Plain(_)) {
            bail!("AUTH TLS on a connection that is already protected");
        }
        self.expect("AUTH TLS", &[234])?;
        if !self.inbuf.is_empty() {
            bail!("the server sent bytes after 234, before the handshake");
        }
        let Conn::Plain(sock) = std::mem::replace(&mut self.conn, Conn::Switching) else {
            bail!("the control connection was lost before the handshake");
        };
        let conn = ClientConnection::new(tls.config.clone(), tls.name.clone())?;
        let mut stream = StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .context("TLS handshake on the control connection")?;
        }
        self.conn = Conn::Tls(Box::new(stream));
        self.tls = Some(tls.clone());
        self.expect("PBSZ 0", &[200])?;
        self.expect("PROT P", &[200])?;
        self.protect_data = true;
        Ok(())
    }

    /// Asks for a passive data address: EPSV, or PASV if the server does not know EPSV.
    /// The data connection goes to the control connection's address in either case.
    pub fn passive(&mut self) -> Result<SocketAddr> {
        if self.epsv {
            let r = self.cmd("EPSV")?;
            if r.code == 229 {
                let port = r
                    .text
                    .split("|||")
                    .nth(1)
                    .and_then(|s| s.split('|').next())
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| anyhow!("cannot parse the EPSV reply {:?}", r.text))?;
                return Ok(SocketAddr::new(self.peer.ip(), port));
            }
            if !matches!(r.code, 500 | 501 | 502 | 504) {
                bail!("EPSV -> {} {}", r.code, r.text);
            }
            self.epsv = false;
        }
        let r = self.expect("PASV", &[227])?;
        let nums: Vec<u16> = r
            .text
            .get(4..)
            .unwrap_or("")
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect();
        if nums.len() < 6 || nums[4] > 255 || nums[5] > 255 {
            bail!("cannot parse the PASV reply {:?}", r.text);
        }
        Ok(SocketAddr::new(self.peer.ip(), nums[4] * 256 + nums[5]))
    }

    /// Connects to a passive address; under PROT P starts the TLS handshake at once (the
    /// ClientHello goes out now, so it does not matter whether the server sends its 150
    /// before or after the handshake).
    pub fn open_data(&mut self, addr: SocketAddr) -> Result<Data> {
        let mut sock = TcpStream::connect_timeout(&addr, self.timeout)
            .with_context(|| format!("connecting the data connection to {addr}"))?;
        sock.set_read_timeout(Some(self.timeout))?;
        sock.set_write_timeout(Some(self.timeout))?;
        match (&self.tls, self.protect_data) {
            (Some(tls), true) => {
                let mut conn = ClientConnection::new(tls.config.clone(), tls.name.clone())?;
                while conn.wants_write() {
                    conn.write_tls(&mut sock)?;
                }
                Ok(Data::Tls(Box::new(StreamOwned::new(conn, sock))))
            }
            _ => Ok(Data::Plain(sock)),
        }
    }

    /// Opens a passive data connection and sends `command` (RETR, STOR, ...): returns the data
    /// connection once the server has answered 150 or 125.
    pub fn start_transfer(&mut self, command: &str) -> Result<Data> {
        let addr = self.passive()?;
        let data = self.open_data(addr)?;
        let r = self.cmd(command)?;
        if r.code != 150 && r.code != 125 {
            bail!("{command} -> {} {}", r.code, r.text);
        }
        Ok(data)
    }

    /// Reads the reply that ends a transfer; it must be 226 or 250.
    pub fn end_transfer(&mut self, command: &str) -> Result<()> {
        let r = self
            .read_reply()
            .with_context(|| format!("end of {command}"))?;
        if r.code != 226 && r.code != 250 {
            bail!("end of {command}: {} {}", r.code, r.text);
        }
        Ok(())
    }

    /// RETR `name` into the void (see [`Data::discard_to_end`]); returns the number of bytes
    /// received.
    pub fn retr_discard(
        &mut self,
        name: &str,
        buf: &mut [u8],
        splice: Option<&mut SpliceSink>,
        deadline: Instant,
        progress: ProgressFn,
    ) -> Result<u64> {
        let command = format!("RETR {name}");
        let mut data = self.start_transfer(&command)?;
        let n = data.discard_to_end(buf, splice, deadline, progress)?;
        drop(data);
        self.end_transfer(&command)?;
        Ok(n)
    }

    /// STOR `name` from a local file (sendfile over plain TCP); returns the bytes sent.
    pub fn stor_file(
        &mut self,
        name: &str,
        file: &mut File,
        buf: &mut [u8],
        deadline: Instant,
        progress: ProgressFn,
    ) -> Result<u64> {
        let command = format!("STOR {name}");
        let mut data = self.start_transfer(&command)?;
        let n = data.send_file(file, buf, deadline, progress)?;
        drop(data);
        self.end_transfer(&command)?;
        Ok(n)
    }

    /// STOR `name` with `bytes` as its content.
    pub fn stor_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let command = format!("STOR {name}");
        let mut data = self.start_transfer(&command)?;
        data.send_bytes(bytes)?;
        drop(data);
        self.end_transfer(&command)
    }

    /// SIZE of a remote file, or `None` if the server does not give it.
    pub fn size(&mut self, name: &str) -> Result<Option<u64>> {
        let r = self.cmd(&format!("SIZE {name}"))?;
        if r.code != 213 {
            return Ok(None);
        }
        Ok(r.text.get(4..).and_then(|s| s.trim().parse().ok()))
    }

    /// QUIT, waiting (bounded by the timeout) for the 221.
    pub fn quit(mut self) -> Result<()> {
        self.expect("QUIT", &[221])?;
        Ok(())
    }
}

/// A command as it may appear in an error message: PASS arguments hidden.
fn shown(line: &str) -> String {
    if line
        .get(..5)
        .is_some_and(|v| v.eq_ignore_ascii_case("PASS "))
    {
        "PASS ***".into()
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    /// A scripted server: sends `greeting`, then answers each command line with the reply
    /// the script gives for its first word; ends after QUIT or at the end of the input.
    fn scripted(
        greeting: &'static str,
        script: &'static [(&'static str, &'static str)],
    ) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            let (sock, _) = listener.accept().expect("accept");
            sock.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut w = sock.try_clone().expect("clone");
            w.write_all(greeting.as_bytes()).ok();
            for line in BufReader::new(sock).lines() {
                let Ok(line) = line else { return };
                let verb = line.split(' ').next().unwrap_or("").to_string();
                let reply = script
                    .iter()
                    .find(|(v, _)| *v == verb)
                    .map_or("502 not scripted\r\n", |(_, r)| r);
                w.write_all(reply.as_bytes()).ok();
                if verb == "QUIT" {
                    return;
                }
            }
        });
        addr
    }

    #[test]
    fn multi_line_replies_login_and_pasv_fallback() {
        let addr = scripted(
            "220-Welcome\r\n 220 indented: not the end\r\n220-nor this\r\n220 ready\r\n",
            &[
                ("USER", "331 password please\r\n"),
                ("PASS", "230-Logged in\r\n  with a note\r\n230 done\r\n"),
                ("EPSV", "500 unknown command\r\n"),
                ("PASV", "227 Entering Passive Mode (127,0,0,1,156,65).\r\n"),
                ("SIZE", "213 1073741824\r\n"),
                ("QUIT", "221 bye\r\n"),
            ],
        );
        let mut c = Control::connect(addr, Duration::from_secs(5)).expect("connect");
        c.login("u", "p").expect("login");
        assert_eq!(c.passive().expect("pasv").port(), 156 * 256 + 65);
        // EPSV is not tried again once refused.
        assert_eq!(c.passive().expect("pasv again").port(), 156 * 256 + 65);
        assert_eq!(c.size("f").expect("size"), Some(1 << 30));
        c.quit().expect("quit");
    }

    #[test]
    fn epsv_reply_is_parsed_and_errors_name_the_command() {
        let addr = scripted(
            "220 hi\r\n",
            &[
                ("USER", "331 ok\r\n"),
                ("PASS", "530 Login incorrect.\r\n"),
                ("EPSV", "229 Entering Extended Passive Mode (|||40123|)\r\n"),
            ],
        );
        let mut c = Control::connect(addr, Duration::from_secs(5)).expect("connect");
        let err = format!("{:#}", c.login("u", "secret").expect_err("530"));
        assert!(err.contains("PASS ***") && err.contains("530"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert_eq!(c.passive().expect("epsv").port(), 40123);
    }

    #[test]
    fn a_greeting_other_than_220_is_an_error() {
        let addr = scripted("421 Too many connections\r\n", &[]);
        let err = Control::connect(addr, Duration::from_secs(5))
            .err()
            .expect("refused");
        assert!(format!("{err:#}").contains("421"), "{err:#}");
    }
}
