//! The system calls the benchmark needs that the standard library does not expose:
//! sendfile(2), for sending a file over TCP without copying it through user space, and
//! splice(2) through a pipe into /dev/null ([`SpliceSink`]), for receiving without copying.
//!
//! Why not `std::io::copy(&mut File, &mut TcpStream)`: the toolchain in use (rustc 1.95) no
//! longer takes its sendfile path from a regular file to a socket — its `safe_kernel_copy`
//! check refuses that pair (pages queued in a socket could change if the file changed), so the
//! copy falls back to a read/write loop with an 8 KiB buffer (strace shows 8,192-byte `read` +
//! `sendto` pairs). A load generator must not pay that, so it calls sendfile itself.
//!
//! Linux on 64-bit targets only (where `off_t` is 64 bits); elsewhere [`send_file_chunk`]
//! falls back to a large-buffer read/write loop.

use std::fs::File;
use std::io;
use std::net::TcpStream;

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    use std::fs::File;
    use std::io;
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;

    extern "C" {
        // glibc: ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
        // off_t is i64 on 64-bit Linux.
        fn sendfile(out_fd: i32, in_fd: i32, offset: *mut i64, count: usize) -> isize;
    }

    pub fn send(
        sock: &TcpStream,
        file: &File,
        offset: &mut u64,
        count: usize,
    ) -> io::Result<usize> {
        let mut off = i64::try_from(*offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
        // SAFETY: both descriptors are borrowed, hence open, for the whole call; `off` is a
        // live i64 that the kernel reads and updates; sendfile touches no other user memory.
        let n = unsafe { sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        *offset = off as u64;
        Ok(n as usize)
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod imp {
    use std::fs::File;
    use std::io::{self, Read, Seek, SeekFrom, Write};
    use std::net::TcpStream;

    pub fn send(
        sock: &TcpStream,
        file: &File,
        offset: &mut u64,
        count: usize,
    ) -> io::Result<usize> {
        let mut f = file;
        f.seek(SeekFrom::Start(*offset))?;
        let mut buf = vec![0u8; count.min(1 << 20)];
        let n = f.read(&mut buf)?;
        let mut s = sock;
        s.write_all(&buf[..n])?;
        *offset += n as u64;
        Ok(n)
    }
}

/// Sends up to `count` bytes of `file`, starting at `*offset`, to `sock` (sendfile(2) on Linux);
/// advances `*offset` and returns the bytes sent, 0 at the end of the file. The file's own
/// position is not used or changed. A socket write timeout surfaces as `WouldBlock`.
pub fn send_file_chunk(
    sock: &TcpStream,
    file: &File,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    imp::send(sock, file, offset, count)
}

/// Receives from a socket without copying the bytes to user space: splice(2) from the socket
/// into a pipe, then from the pipe into /dev/null (`wharf-bench --recv splice`). Linux only.
///
/// Why offer it beside large reads: on loopback the receiver's copy shares the machine with
/// the sender, and how it reads changes the sender's own CPU time (docs/transfers.md has the
/// figures); a receiver that copies nothing shows the sender's cost with the least of that.
#[derive(Debug)]
pub struct SpliceSink {
    #[cfg(target_os = "linux")]
    pipe: (std::os::fd::OwnedFd, std::os::fd::OwnedFd),
    #[cfg(target_os = "linux")]
    null: File,
}

#[cfg(target_os = "linux")]
mod splice_imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    extern "C" {
        fn pipe2(fds: *mut i32, flags: i32) -> i32;
        fn fcntl(fd: i32, cmd: i32, arg: i32) -> i32;
        fn splice(
            fd_in: i32,
            off_in: *mut i64,
            fd_out: i32,
            off_out: *mut i64,
            len: usize,
            flags: u32,
        ) -> isize;
    }

    const O_CLOEXEC: i32 = 0o2_000_000;
    const F_SETPIPE_SZ: i32 = 1031;
    const SPLICE_F_MOVE: u32 = 1;

    /// Bytes the pipe holds (asked for; the kernel may give less, the loop does not care).
    pub const PIPE_BYTES: usize = 1 << 20;

    pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
        let mut fds = [-1i32; 2];
        // SAFETY: `fds` is a live array of two ints for the kernel to fill.
        if unsafe { pipe2(fds.as_mut_ptr(), O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A larger pipe moves more per call; failing that (a quota), the default will do.
        // SAFETY: `w` is an open pipe descriptor; F_SETPIPE_SZ takes an int.
        let _ = unsafe { fcntl(w.as_raw_fd(), F_SETPIPE_SZ, PIPE_BYTES as i32) };
        Ok((r, w))
    }

    /// One splice(2) call between two descriptors, at their own positions.
    pub fn splice_once(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
        // SAFETY: both descriptors are borrowed by the caller for the call; null offsets
        // mean "the descriptors' own positions"; no user memory is touched.
        let n = unsafe {
            splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                SPLICE_F_MOVE,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl SpliceSink {
    /// A pipe and /dev/null to splice into.
    #[cfg(target_os = "linux")]
    pub fn new() -> io::Result<SpliceSink> {
        Ok(SpliceSink {
            pipe: splice_imp::pipe()?,
            null: std::fs::OpenOptions::new().write(true).open("/dev/null")?,
        })
    }

    /// Not available: splice(2) is Linux only.
    #[cfg(not(target_os = "linux"))]
    pub fn new() -> io::Result<SpliceSink> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "--recv splice needs Linux",
        ))
    }

    /// Moves up to a pipe's worth of bytes from `sock` to /dev/null; 0 at the end of the
    /// stream. The socket's read timeout applies (as `WouldBlock`/`TimedOut`). The pipe is
    /// empty again when this returns `Ok`.
    #[cfg(target_os = "linux")]
    pub fn discard(&mut self, sock: &TcpStream) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let (r, w) = (self.pipe.0.as_raw_fd(), self.pipe.1.as_raw_fd());
        let n = splice_imp::splice_once(sock.as_raw_fd(), w, splice_imp::PIPE_BYTES)?;
        let mut left = n;
        // Bounded: each call empties part of what is in the pipe; 0 would mean it is empty.
        while left > 0 {
            match splice_imp::splice_once(r, self.null.as_raw_fd(), left) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => left -= k.min(left),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Not available: splice(2) is Linux only.
    #[cfg(not(target_os = "linux"))]
    pub fn discard(&mut self, _sock: &TcpStream) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn sends_the_file_from_an_offset() {
        let path = std::env::temp_dir().join(format!("wharf-tools-sys-{}", std::process::id()));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        File::create(&path)
            .and_then(|mut f| f.write_all(&data))
            .expect("write temp file");
        let file = File::open(&path).expect("open temp file");
        let _ = std::fs::remove_file(&path);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("read");
            got
        });
        let sock = TcpStream::connect(addr).expect("connect");
        let mut offset = 1000u64;
        let mut sent = 0usize;
        for _ in 0..1000 {
            let n = send_file_chunk(&sock, &file, &mut offset, 65_536).expect("sendfile");
            if n == 0 {
                break;
            }
            sent += n;
        }
        drop(sock);
        let got = reader.join().expect("reader thread");
        assert_eq!(sent, data.len() - 1000);
        assert_eq!(offset, data.len() as u64);
        assert!(
            got == data[1000..],
            "the bytes received differ from the file's"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_splice_sink_counts_every_byte_to_the_end() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let total = 3 * (1 << 20) + 12_345;
        let writer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let chunk = vec![7u8; 65_536];
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk.len());
                s.write_all(&chunk[..n]).expect("write");
                left -= n;
            }
        });
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut sink = SpliceSink::new().expect("pipe");
        let mut got = 0;
        for _ in 0..100_000 {
            let n = sink.discard(&sock).expect("splice");
            if n == 0 {
                break;
            }
            got += n;
        }
        writer.join().expect("writer thread");
        assert_eq!(got, total);
    }
}
