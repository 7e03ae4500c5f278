//! A non-blocking TCP stream, in the clear or through rustls (server side): the control
//! connection and every data connection. rustls' `ServerConnection` does no I/O of its own
//! (`read_tls`, `process_new_packets` and `write_tls` move records between the socket and
//! its buffers), so each call here does what the socket allows now and answers `WouldBlock`
//! for the rest, as a plain socket does.

use mio::net::TcpStream;
use rustls::ServerConnection;
use std::io::{self, ErrorKind, Read, Write};

/// Socket reads one TLS call makes at most; then it answers `Interrupted`: call again.
const TLS_ROUNDS: usize = 64;

/// A socket, with TLS once it has been started on it.
pub struct Wire {
    pub tcp: TcpStream,
    pub tls: Option<Box<ServerConnection>>,
}

impl Wire {
    pub fn plain(tcp: TcpStream) -> Wire {
        Wire { tcp, tls: None }
    }

    /// Writes what rustls has queued (records, alerts, close_notify) as far as the socket
    /// takes it: `Ok(true)` once nothing waits.
    pub fn flush_tls(&mut self) -> io::Result<bool> {
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                match tls.write_tls(&mut self.tcp) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(true)
    }

    /// Reads the socket once into rustls and processes the records: `Ok(false)` at the end of
    /// the TCP stream, `WouldBlock` when nothing came.
    fn pull(&mut self) -> io::Result<bool> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(false);
        };
        let n = tls.read_tls(&mut self.tcp)?;
        let processed = tls.process_new_packets();
        // Handshake messages, alerts (on an error: why, if the socket takes it).
        let flushed = self.flush_tls();
        processed.map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
        flushed.map(|_| n > 0)
    }

    /// Runs the TLS handshake as far as it goes now: `Ok(true)` once it is done and all it
    /// had to send is sent.
    pub fn handshake(&mut self) -> io::Result<bool> {
        for _ in 0..TLS_ROUNDS {
            let flushed = self.flush_tls()?;
            if !self.tls.as_ref().is_some_and(|t| t.is_handshaking()) {
                return Ok(flushed);
            }
            match self.pull() {
                Ok(true) => {}
                Ok(false) => return Err(ErrorKind::UnexpectedEof.into()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Err(ErrorKind::Interrupted.into())
    }

    /// Reads plaintext. `Ok(0)` at the end — through TLS only after the peer's close_notify
    /// (a bare end of the TCP stream is `UnexpectedEof`, as rustls reports it).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        for _ in 0..TLS_ROUNDS {
            let Some(tls) = self.tls.as_mut() else {
                return self.tcp.read(buf);
            };
            match tls.reader().read(buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                done => return done,
            }
            // At the end of the stream, rustls answers the next read (close_notify or not).
            self.pull()?;
        }
        Err(ErrorKind::Interrupted.into())
    }

    /// Writes plaintext: what the socket (or rustls' buffer, emptied first) takes now.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return self.tcp.write(buf);
        }
        if !self.flush_tls()? {
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = self
            .tls
            .as_mut()
            .map_or(Ok(0), |tls| tls.writer().write(buf))?;
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
