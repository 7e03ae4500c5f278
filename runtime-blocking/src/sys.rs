//! Every system call the runtime makes that the standard library does not offer, and the
//! only place in the runtime with `unsafe` code (the rest of the crate is
//! `#![deny(unsafe_code)]`, as vsftpd keeps its system calls behind sysutil.c):
//!
//! - the data path: `sendfile(2)` (file → socket), `splice(2)` through a pipe (socket → file),
//!   the pipe's size (`fcntl(F_SETPIPE_SZ)`), `O_DIRECT` on and off (`fcntl(F_SETFL)`),
//!   swapping two names (`renameat2(RENAME_EXCHANGE)`, which puts a finished upload in place),
//!   and a receive that does not wait (`recv(MSG_DONTWAIT)`, so that looking at the control
//!   connection between chunks costs one system call and does not toggle the socket's
//!   blocking mode);
//! - the open-file limit (`getrlimit`/`setrlimit(RLIMIT_NOFILE)`, [`open_file_limit`]);
//! - ending an event command's process group (`kill(-pgid, SIGKILL)`, [`kill_group`]).
//!
//! Each call sits in a small commented `unsafe` block: descriptors are borrowed from live
//! objects for the whole call, and the kernel touches no user memory but the pointers given.
//! No `libc` crate: the few declarations and constants below are the same on every Linux
//! architecture (`loff_t` is 64 bits everywhere; `F_SETPIPE_SZ` = `F_LINUX_SPECIFIC_BASE` + 7;
//! the `SPLICE_F_*` and `MSG_DONTWAIT` values are generic). `sendfile` and the rlimit calls
//! keep to 64-bit targets, where `off_t` and `rlim_t` are 64 bits. Elsewhere every function here
//! has a portable fallback or reports [`io::ErrorKind::Unsupported`], and the callers use read
//! and write (or skip raising the limit).
//!
//! This module decides nothing: its callers choose when to use it and what to do on errors
//! ([`unsupported`] tells "this pair of descriptors cannot do that" apart).

use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The capacity asked for a splice pipe (64 pages). Pipe capacity counts against a per-user
/// quota (`/proc/sys/fs/pipe-user-pages-soft`, 64 MiB by default) shared with every other
/// pipe the server's account makes; this size keeps [`MAX_SPARE_PIPES`] idle pipes at a
/// quarter of it, and a chunk is still large enough that the two system calls per chunk cost
/// next to nothing beside the bytes they move.
pub const PIPE_SIZE: usize = 256 * 1024;
/// The smallest pipe worth splicing through: over its quota the system hands out pipes of a
/// page or two, and then read and write with a large buffer are faster.
pub const MIN_PIPE_SIZE: usize = 64 * 1024;
/// The most empty pipes kept for the next upload, over all worker threads.
pub const MAX_SPARE_PIPES: usize = 64;

/// Whether `e` says the kernel cannot do this operation with these descriptors (a file
/// system without splice support, a file opened for appending, an old kernel): the caller
/// goes on with read and write.
pub fn unsupported(e: &io::Error) -> bool {
    // EINVAL, ENOSYS, EOPNOTSUPP (Linux values).
    matches!(e.raw_os_error(), Some(22 | 38 | 95)) || e.kind() == io::ErrorKind::Unsupported
}

#[cfg(target_os = "linux")]
mod ffi {
    extern "C" {
        // ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out,
        //                size_t len, unsigned int flags);
        pub fn splice(
            fd_in: i32,
            off_in: *mut i64,
            fd_out: i32,
            off_out: *mut i64,
            len: usize,
            flags: u32,
        ) -> isize;
        // int fcntl(int fd, int cmd, ...);
        pub fn fcntl(fd: i32, cmd: i32, ...) -> i32;
        // ssize_t recv(int sockfd, void *buf, size_t len, int flags);
        pub fn recv(fd: i32, buf: *mut u8, len: usize, flags: i32) -> isize;
        // int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
        //               unsigned int flags);  (glibc 2.28 and later)
        pub fn renameat2(
            olddirfd: i32,
            oldpath: *const std::ffi::c_char,
            newdirfd: i32,
            newpath: *const std::ffi::c_char,
            flags: u32,
        ) -> i32;
    }
    pub const SPLICE_F_MOVE: u32 = 1;
    pub const SPLICE_F_NONBLOCK: u32 = 2;
    pub const F_GETFL: i32 = 3;
    pub const F_SETFL: i32 = 4;
    pub const F_SETPIPE_SZ: i32 = 1031;
    pub const F_GETPIPE_SZ: i32 = 1032;
    pub const MSG_DONTWAIT: i32 = 0x40;
    pub const AT_FDCWD: i32 = -100;
    pub const RENAME_EXCHANGE: u32 = 2;
}

/// Reads what `socket` has now into `buf` without waiting: `WouldBlock` when nothing is
/// there, `Ok(0)` at the end of the stream. The socket's blocking mode is left alone.
#[cfg(target_os = "linux")]
pub fn recv_now(socket: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is borrowed from a live socket for the whole call; the kernel
    // writes at most `buf.len()` bytes into `buf`, which is exclusively borrowed.
    let n = unsafe {
        ffi::recv(
            socket.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
            ffi::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Elsewhere: the same contract by switching the socket to non-blocking for the read.
#[cfg(not(target_os = "linux"))]
pub fn recv_now(mut socket: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    socket.set_nonblocking(true)?;
    let r = socket.read(buf);
    socket.set_nonblocking(false)?;
    r
}

/// Sends up to `count` bytes of `file`, starting at `*offset`, to `socket` with `sendfile(2)`,
/// and advances `*offset` by the bytes sent (the file's own position is not used).
///
/// A send timeout on the socket makes it return early (with the bytes sent so far, or a
/// `WouldBlock` error when there were none).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub fn sendfile(
    socket: &TcpStream,
    file: &File,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    extern "C" {
        // off_t is 64 bits on every 64-bit Linux C library.
        fn sendfile(out_fd: i32, in_fd: i32, offset: *mut i64, count: usize) -> isize;
    }
    let mut off = i64::try_from(*offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    // SAFETY: both descriptors are open for the whole call (they are borrowed from live
    // objects), and `off` is a valid, exclusive pointer to an i64 for the whole call.
    let n = unsafe { sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    *offset = u64::try_from(off).unwrap_or(*offset);
    Ok(n as usize)
}

/// Elsewhere: a buffered copy with the same contract as the Linux `sendfile`.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub fn sendfile(
    mut socket: &TcpStream,
    file: &File,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; count.min(256 * 1024)];
    let n = file.read_at(&mut buf, *offset)?;
    let sent = socket.write(&buf[..n])?;
    *offset += sent as u64;
    Ok(sent)
}

/// A pipe for `splice(2)`: bytes go from a socket into it and from it into a file, without
/// passing through user space. It knows how many bytes it holds, so that a pipe that still
/// holds some is never reused ([`Pipe::give_back`]).
#[derive(Debug)]
pub struct Pipe {
    reader: io::PipeReader,
    writer: io::PipeWriter,
    capacity: usize,
    held: usize,
}

/// How many spare pipes exist ([`Spare`]s alive), over all threads.
static SPARES: AtomicUsize = AtomicUsize::new(0);

/// A pipe kept by a thread for its next upload; counted in [`SPARES`] while it lives (also
/// when its thread ends and drops it).
#[derive(Debug)]
struct Spare(Option<Pipe>);

impl Drop for Spare {
    fn drop(&mut self) {
        SPARES.fetch_sub(1, Ordering::Relaxed);
    }
}

thread_local! {
    /// The empty pipe of this thread, kept between transfers (a worker thread runs one
    /// transfer at a time), so that small uploads do not make a pipe each.
    static SPARE: std::cell::RefCell<Option<Spare>> = const { std::cell::RefCell::new(None) };
}

impl Pipe {
    /// This thread's spare pipe, or a new one of [`PIPE_SIZE`]. `Unsupported` when the
    /// system grants less than [`MIN_PIPE_SIZE`] (the account's pipe quota is used up).
    pub fn take() -> io::Result<Pipe> {
        if let Some(p) = SPARE
            .with(|s| s.borrow_mut().take())
            .and_then(|mut s| s.0.take())
        {
            return Ok(p);
        }
        let p = Pipe::new(PIPE_SIZE)?;
        if p.capacity < MIN_PIPE_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("only a {} byte pipe is available", p.capacity),
            ));
        }
        Ok(p)
    }

    /// A new pipe of about `size` bytes (close-on-exec, blocking).
    pub fn new(size: usize) -> io::Result<Pipe> {
        let (reader, writer) = io::pipe()?;
        let capacity = resize(&writer, size);
        Ok(Pipe {
            reader,
            writer,
            capacity,
            held: 0,
        })
    }

    /// Keeps the pipe for this thread's next transfer when it is empty and fewer than
    /// [`MAX_SPARE_PIPES`] are kept; closes it otherwise (what it holds is lost with it).
    pub fn give_back(self) {
        if self.held != 0 || self.capacity < MIN_PIPE_SIZE {
            return;
        }
        let counted = SPARES
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_SPARE_PIPES).then_some(n + 1)
            })
            .is_ok();
        if counted {
            let spare = Spare(Some(self));
            // A spare already there (not expected: take() empties the slot) is dropped.
            SPARE.with(|s| *s.borrow_mut() = Some(spare));
        }
    }

    /// The most bytes it can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The bytes it holds.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Moves up to `len` bytes (at most what fits) from `socket` into the pipe; `Ok(0)` at
    /// the end of the stream. Waits as the socket's receive timeout says (`WouldBlock` when
    /// it passed with nothing received). Call only when the pipe is empty.
    pub fn fill_from(&mut self, socket: &TcpStream, len: usize) -> io::Result<usize> {
        let len = len.min(self.capacity - self.held);
        let n = splice_fds(socket, &self.writer, len, splice_flags_in())?;
        self.held += n;
        Ok(n)
    }

    /// Moves up to `len` of the bytes it holds into `file` at the file's position (which
    /// advances).
    pub fn drain_to(&mut self, file: &File, len: usize) -> io::Result<usize> {
        let len = len.min(self.held);
        if len == 0 {
            return Ok(0);
        }
        let n = splice_fds(&self.reader, file, len, splice_flags_out())?;
        self.held -= n.min(self.held);
        Ok(n)
    }

    /// Reads what it holds into `sink` the ordinary way (when `file` refused `splice`).
    pub fn copy_out(&mut self, mut sink: impl io::Write) -> io::Result<()> {
        use std::io::Read;
        let mut buf = vec![0u8; self.held.clamp(1, 256 * 1024)];
        // Bounded: every round takes at least one byte out of a pipe that holds `held`.
        while self.held > 0 {
            let want = self.held.min(buf.len());
            let n = match self.reader.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the pipe holds fewer bytes than counted",
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.held -= n;
            sink.write_all(&buf[..n])?;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn splice_flags_in() -> u32 {
    // Blocking on the socket side (bounded by its receive timeout); the pipe is empty, so
    // the pipe side never waits.
    ffi::SPLICE_F_MOVE
}

#[cfg(target_os = "linux")]
fn splice_flags_out() -> u32 {
    // Never wait on the pipe: it holds what is asked for; an empty pipe would be a bug, and
    // is an error (EAGAIN) rather than a hang.
    ffi::SPLICE_F_MOVE | ffi::SPLICE_F_NONBLOCK
}

#[cfg(not(target_os = "linux"))]
fn splice_flags_in() -> u32 {
    0
}

#[cfg(not(target_os = "linux"))]
fn splice_flags_out() -> u32 {
    0
}

/// `splice(2)` between two descriptors, each at its own position.
#[cfg(target_os = "linux")]
fn splice_fds(
    from: &impl std::os::fd::AsRawFd,
    to: &impl std::os::fd::AsRawFd,
    len: usize,
    flags: u32,
) -> io::Result<usize> {
    // SAFETY: both descriptors are borrowed from live objects for the whole call; null
    // offsets make the kernel use (and advance) each descriptor's own position, so no user
    // memory is touched.
    let n = unsafe {
        ffi::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(not(target_os = "linux"))]
fn splice_fds(
    _from: &impl std::os::fd::AsRawFd,
    _to: &impl std::os::fd::AsRawFd,
    _len: usize,
    _flags: u32,
) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "splice is Linux only",
    ))
}

/// Sets the pipe's capacity to about `size`; returns the capacity it has.
#[cfg(target_os = "linux")]
fn resize(pipe: &io::PipeWriter, size: usize) -> usize {
    use std::os::fd::AsRawFd;
    let fd = pipe.as_raw_fd();
    let want = i32::try_from(size).unwrap_or(i32::MAX);
    // SAFETY: the descriptor is borrowed from a live pipe; F_SETPIPE_SZ and F_GETPIPE_SZ
    // take an int argument (or none) and touch no user memory.
    let got = unsafe { ffi::fcntl(fd, ffi::F_SETPIPE_SZ, want) };
    if got > 0 {
        return got as usize;
    }
    // Refused (the user's pipe quota): the pipe keeps its default size.
    // SAFETY: as above.
    let got = unsafe { ffi::fcntl(fd, ffi::F_GETPIPE_SZ) };
    usize::try_from(got).unwrap_or(0).max(4096)
}

#[cfg(not(target_os = "linux"))]
fn resize(_pipe: &io::PipeWriter, _size: usize) -> usize {
    4096
}

/// The `O_DIRECT` file status flag of this architecture (`asm-generic` value unless the
/// architecture overrides it), or `None` where this module does not know it.
#[cfg(target_os = "linux")]
const O_DIRECT: Option<i32> = if cfg!(any(target_arch = "x86", target_arch = "x86_64")) {
    Some(0o40000)
} else if cfg!(any(target_arch = "aarch64", target_arch = "arm")) {
    Some(0o200000)
} else if cfg!(any(target_arch = "powerpc", target_arch = "powerpc64")) {
    Some(0o400000)
} else if cfg!(any(
    target_arch = "riscv64",
    target_arch = "s390x",
    target_arch = "loongarch64"
)) {
    Some(0o40000)
} else {
    None
};

/// Turns direct I/O (`O_DIRECT`: writes go to the device, not through the page cache) on or
/// off for `file`. Refused (`EINVAL`) by file systems that cannot do it; while it is on,
/// every write must start at a file offset and a memory address that are multiples of the
/// device's block size, and be a multiple of it long ([`DIRECT_ALIGN`] satisfies every
/// common device).
#[cfg(target_os = "linux")]
pub fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let Some(flag) = O_DIRECT else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "O_DIRECT is not known on this architecture",
        ));
    };
    let fd = file.as_raw_fd();
    // SAFETY: the descriptor is borrowed from a live file; F_GETFL takes no argument and
    // F_SETFL an int, and neither touches user memory.
    let flags = unsafe { ffi::fcntl(fd, ffi::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = if on { flags | flag } else { flags & !flag };
    if wanted == flags {
        return Ok(());
    }
    // SAFETY: as above.
    if unsafe { ffi::fcntl(fd, ffi::F_SETFL, wanted) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn set_direct(_file: &File, _on: bool) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "direct I/O is used on Linux only",
    ))
}

/// Swaps the entries at `a` and `b` in one step (`renameat2(RENAME_EXCHANGE)`): both must
/// exist. Nobody looking at either name ever finds it missing. `Unsupported` (or an errno that
/// [`unsupported`] recognises) where the kernel or file system cannot do it.
#[cfg(target_os = "linux")]
pub fn exchange(a: &std::path::Path, b: &std::path::Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &std::path::Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both pointers are to NUL-terminated strings that live for the whole call; the
    // kernel only reads them.
    let r = unsafe {
        ffi::renameat2(
            ffi::AT_FDCWD,
            a.as_ptr(),
            ffi::AT_FDCWD,
            b.as_ptr(),
            ffi::RENAME_EXCHANGE,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn exchange(_a: &std::path::Path, _b: &std::path::Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "renameat2 is used on Linux only",
    ))
}

/// The alignment of offsets, addresses and lengths for direct I/O: 4 KiB, the largest
/// logical block size of common devices and the page size.
pub const DIRECT_ALIGN: usize = 4096;

/// The open-file limit as (soft, hard); `RLIM_INFINITY` reads as `u64::MAX`. Read and set
/// only where the layout below is known to be right (64-bit Linux but MIPS and SPARC, whose
/// `RLIMIT_NOFILE` differs); elsewhere the limit is left as it is.
pub mod open_file_limit {
    use std::os::raw::c_int;

    /// Where `RLIMIT_NOFILE` is 7 and `rlim_t` is 64 bits.
    const KNOWN: bool = cfg!(all(
        target_os = "linux",
        target_pointer_width = "64",
        not(any(
            target_arch = "mips",
            target_arch = "mips64",
            target_arch = "sparc",
            target_arch = "sparc64"
        ))
    ));

    /// `RLIMIT_NOFILE` on Linux (but for the architectures excluded above).
    const RLIMIT_NOFILE: c_int = 7;

    /// `struct rlimit`: `rlim_t` is `unsigned long`, 64 bits on 64-bit Linux.
    #[repr(C)]
    struct RLimit {
        cur: u64,
        max: u64,
    }

    extern "C" {
        fn getrlimit(resource: c_int, rlim: *mut RLimit) -> c_int;
        fn setrlimit(resource: c_int, rlim: *const RLimit) -> c_int;
    }

    /// (soft, hard); `None` where it cannot be read.
    pub fn get() -> Option<(u64, u64)> {
        if !KNOWN {
            return None;
        }
        let mut r = RLimit { cur: 0, max: 0 };
        // SAFETY: getrlimit writes one `struct rlimit` (laid out as RLimit where KNOWN) to a
        // valid, exclusively borrowed location.
        let rc = unsafe { getrlimit(RLIMIT_NOFILE, &mut r) };
        (rc == 0).then_some((r.cur, r.max))
    }

    /// Sets (soft, hard); true on success (false where it cannot be set).
    pub fn set(soft: u64, hard: u64) -> bool {
        if !KNOWN {
            return false;
        }
        let r = RLimit {
            cur: soft,
            max: hard,
        };
        // SAFETY: setrlimit reads one `struct rlimit` from a valid location.
        unsafe { setrlimit(RLIMIT_NOFILE, &r) == 0 }
    }
}

/// SIGKILL to the process group `pgid` (a command started as its leader, with
/// `process_group(0)`). Does nothing for group ids 0 and 1 or ones that do not fit.
#[cfg(unix)]
pub fn kill_group(pgid: u32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    const SIGKILL: i32 = 9;
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours; a negative pid names
    // the process group the command leads.
    unsafe {
        kill(-pgid, SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("wharf-sys-{name}-{}", std::process::id()))
    }

    #[test]
    fn sendfile_sends_from_the_offset() {
        let path = temp("sendfile");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        let (tx, mut rx) = pair();
        let mut off = 3;
        assert_eq!(sendfile(&tx, &file, &mut off, 4).unwrap(), 4);
        assert_eq!(off, 7);
        assert_eq!(sendfile(&tx, &file, &mut off, 100).unwrap(), 3);
        assert_eq!(sendfile(&tx, &file, &mut off, 100).unwrap(), 0);
        drop(tx);
        let mut got = String::new();
        rx.read_to_string(&mut got).unwrap();
        assert_eq!(got, "3456789");
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn splice_moves_socket_bytes_into_a_file_at_its_position() {
        use std::io::Seek;
        let path = temp("splice");
        std::fs::write(&path, b"head:").unwrap();
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(std::io::SeekFrom::End(0)).unwrap();
        let (mut tx, rx) = pair();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let sender = {
            let data = data.clone();
            std::thread::spawn(move || {
                tx.write_all(&data).unwrap();
            })
        };
        let mut pipe = Pipe::new(64 * 1024).unwrap();
        assert!(pipe.capacity() >= 4096);
        let mut total = 0;
        for _ in 0..100_000 {
            let n = pipe.fill_from(&rx, usize::MAX).unwrap();
            if n == 0 {
                break;
            }
            assert_eq!(pipe.held(), n);
            let mut left = n;
            while left > 0 {
                left -= pipe.drain_to(&file, left).unwrap();
            }
            assert_eq!(pipe.held(), 0);
            total += n;
        }
        sender.join().unwrap();
        assert_eq!(total, data.len());
        let mut want = b"head:".to_vec();
        want.extend_from_slice(&data);
        assert!(
            std::fs::read(&path).unwrap() == want,
            "file content differs"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_append_only_file_refuses_splice_and_copy_out_empties_the_pipe() {
        let path = temp("append");
        std::fs::write(&path, b"a").unwrap();
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let (mut tx, rx) = pair();
        tx.write_all(b"bcd").unwrap();
        drop(tx);
        let mut pipe = Pipe::new(64 * 1024).unwrap();
        let mut n = 0;
        while n < 3 {
            n += pipe.fill_from(&rx, 3 - n).unwrap();
        }
        let e = pipe.drain_to(&file, 3).unwrap_err();
        assert!(unsupported(&e), "{e}");
        assert_eq!(pipe.held(), 3);
        pipe.copy_out(&file).unwrap();
        assert_eq!(pipe.held(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), b"abcd");
        assert_eq!(pipe.fill_from(&rx, 10).unwrap(), 0, "end of stream");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn only_empty_pipes_are_kept_and_they_are_counted() {
        let mut p = Pipe::new(MIN_PIPE_SIZE).unwrap();
        p.held = 1;
        p.give_back();
        // Nothing kept: take() makes a new, empty pipe of the full size.
        let fresh = Pipe::take().unwrap();
        assert_eq!((fresh.held(), fresh.capacity()), (0, PIPE_SIZE));
        drop(fresh);
        // An empty pipe is kept (told apart by its size) and counted while it is.
        let q = Pipe::new(2 * MIN_PIPE_SIZE).unwrap();
        assert_eq!(q.capacity(), 2 * MIN_PIPE_SIZE);
        q.give_back();
        assert!(SPARES.load(Ordering::Relaxed) >= 1);
        assert_eq!(Pipe::take().unwrap().capacity(), 2 * MIN_PIPE_SIZE);
        // Pipes too small to be worth it are not kept.
        Pipe::new(4096).unwrap().give_back();
        assert_eq!(Pipe::take().unwrap().capacity(), PIPE_SIZE);
    }

    #[test]
    fn spares_stop_at_the_limit() {
        use std::sync::{Arc, Barrier};
        let n = MAX_SPARE_PIPES + 8;
        let counted = Arc::new(Barrier::new(n + 1));
        let release = Arc::new(Barrier::new(n + 1));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let (counted, release) = (counted.clone(), release.clone());
                std::thread::spawn(move || {
                    Pipe::new(MIN_PIPE_SIZE).unwrap().give_back();
                    let kept = SPARE.with(|s| s.borrow().is_some());
                    counted.wait();
                    // Hold the spare until every thread has tried.
                    release.wait();
                    kept
                })
            })
            .collect();
        counted.wait();
        assert!(SPARES.load(Ordering::Relaxed) <= MAX_SPARE_PIPES);
        release.wait();
        let kept = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&k| k)
            .count();
        // Other tests may hold a spare or two at the same moment.
        assert!(
            (MAX_SPARE_PIPES - 4..=MAX_SPARE_PIPES).contains(&kept),
            "{kept} spares kept"
        );
        // Their threads ended: their spares are gone and uncounted.
        assert!(SPARES.load(Ordering::Relaxed) <= 4);
    }

    #[test]
    fn recv_now_does_not_wait() {
        let (mut a, b) = pair();
        let mut buf = [0u8; 16];
        let e = recv_now(&b, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        a.write_all(b"NOOP\r\n").unwrap();
        // Loopback delivers at once, but allow the kernel a moment.
        let mut got = 0;
        for _ in 0..1000 {
            match recv_now(&b, &mut buf) {
                Ok(n) => {
                    got = n;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(&buf[..got], b"NOOP\r\n");
        // Still a blocking socket for ordinary reads.
        drop(a);
        assert_eq!((&b).read(&mut buf).unwrap(), 0);
    }
}
