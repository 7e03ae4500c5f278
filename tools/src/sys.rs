//! The one system call the benchmark needs that the standard library does not expose:
//! sendfile(2), for sending a file over TCP without copying it through user space.
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
}
