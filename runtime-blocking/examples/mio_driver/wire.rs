//! A non-blocking TCP stream, in the clear or through rustls (server side): what the control
//! connection and every data connection of the example are. rustls' `ServerConnection` does
//! no I/O of its own; `read_tls`/`process_new_packets`/`write_tls` move its records between
//! the socket and its buffers, so each call here does what the socket allows now and returns
//! `WouldBlock` for the rest, like the plain socket would.

use mio::net::TcpStream;
use rustls::ServerConnection;
use std::io::{self, Read, Write};

/// Rounds of socket reads a TLS read makes before it lets the loop go on (the caller treats
/// `Interrupted` as "call me again").
const TLS_ROUNDS: usize = 64;

/// A socket, with TLS once it has been started on it.
pub struct Wire {
    pub tcp: TcpStream,
    pub tls: Option<Box<ServerConnection>>,
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl Wire {
    pub fn plain(tcp: TcpStream) -> Wire {
        Wire { tcp, tls: None }
    }

    /// Writes what rustls has queued (records, alerts, close_notify) as far as the socket
    /// takes it: `Ok(true)` once nothing waits.
    pub fn flush_tls(&mut self) -> io::Result<bool> {
        let Wire {
            tcp,
            tls: Some(tls),
        } = self
        else {
            return Ok(true);
        };
        while tls.wants_write() {
            match tls.write_tls(tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads the socket once into rustls and processes what came: `Ok(false)` at the end of
    /// the TCP stream. `WouldBlock` when nothing is there.
    fn pull(&mut self) -> io::Result<bool> {
        let Wire {
            tcp,
            tls: Some(tls),
        } = self
        else {
            return Ok(false);
        };
        let n = tls.read_tls(tcp)?;
        if let Err(e) = tls.process_new_packets() {
            // rustls queued an alert saying why: send it if the socket takes it.
            let _ = self.flush_tls();
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        // Handshake messages, key updates, alerts.
        self.flush_tls()?;
        Ok(n > 0)
    }

    /// Runs the TLS handshake as far as it goes now: `Ok(true)` once it is done and what it
    /// had to send has been sent.
    pub fn handshake(&mut self) -> io::Result<bool> {
        for _ in 0..TLS_ROUNDS {
            let flushed = self.flush_tls()?;
            match &self.tls {
                Some(tls) if tls.is_handshaking() => {}
                _ => return Ok(flushed),
            }
            match self.pull() {
                Ok(true) => {}
                Ok(false) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection during the TLS handshake",
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Err(io::ErrorKind::Interrupted.into())
    }

    /// Reads plaintext. `Ok(0)` at the end: for TLS only after the peer's close_notify (a
    /// bare end of the TCP stream is `UnexpectedEof`, as rustls reports it).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return self.tcp.read(buf);
        }
        for _ in 0..TLS_ROUNDS {
            if let Some(tls) = self.tls.as_mut() {
                match tls.reader().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    done => return done,
                }
            }
            // At the end of the stream rustls answers the next read (close_notify or not).
            self.pull()?;
        }
        Err(io::ErrorKind::Interrupted.into())
    }

    /// Writes plaintext: what the socket (or rustls' buffer, flushed first) takes now.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return self.tcp.write(buf);
        }
        if !self.flush_tls()? {
            return Err(would_block());
        }
        let n = match self.tls.as_mut() {
            Some(tls) => tls.writer().write(buf)?,
            None => 0,
        };
        self.flush_tls()?;
        Ok(n)
    }

    /// TLS: queues close_notify (sent by [`Wire::flush_tls`]).
    pub fn close_notify(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
        }
    }
}
