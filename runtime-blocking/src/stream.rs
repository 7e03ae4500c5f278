//! The byte streams of a session: the control connection and data connections.
//!
//! Both are enums over the transports Wharf speaks, so that the driver and the transfer code
//! never hard-wire a `TcpStream`. Today there is only plain TCP; FTPS adds a variant holding a
//! rustls `StreamOwned<ServerConnection, TcpStream>` to each. Every variant exposes its TCP
//! socket ([`ControlStream::tcp`], [`DataStream::tcp`]) for timeouts, blocking mode and
//! addresses, and only the plain variant offers the zero-copy path
//! ([`DataStream::plain_tcp_mut`]).

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// The control connection of a session.
#[derive(Debug)]
#[non_exhaustive]
pub enum ControlStream {
    /// Plain FTP.
    Plain(TcpStream),
}

impl ControlStream {
    /// The underlying TCP socket.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ControlStream::Plain(s) => s,
        }
    }

    /// Reads whatever is available now without waiting: `Ok(None)` when nothing is.
    pub fn read_now(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.tcp().set_nonblocking(true)?;
        let r = self.read(buf);
        self.tcp().set_nonblocking(false)?;
        match r {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Read for ControlStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ControlStream::Plain(s) => s.read(buf),
        }
    }
}

impl Write for ControlStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ControlStream::Plain(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            ControlStream::Plain(s) => s.flush(),
        }
    }
}

/// A data connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum DataStream {
    /// Plain TCP.
    Plain(TcpStream),
}

impl DataStream {
    /// The underlying TCP socket.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            DataStream::Plain(s) => s,
        }
    }

    /// The socket itself when nothing sits between it and the bytes (no TLS), for the
    /// `sendfile` path.
    pub fn plain_tcp_mut(&mut self) -> Option<&mut TcpStream> {
        match self {
            DataStream::Plain(s) => Some(s),
        }
    }

    /// Ends the stream cleanly (for TLS: close_notify) and shuts the socket for writing, so
    /// the client sees end of file before the transfer's final reply.
    pub fn finish(&mut self) -> io::Result<()> {
        match self {
            DataStream::Plain(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }
}

impl Read for DataStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            DataStream::Plain(s) => s.read(buf),
        }
    }
}

impl Write for DataStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            DataStream::Plain(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            DataStream::Plain(s) => s.flush(),
        }
    }
}
