//! Large uploads written with direct I/O: the pieces that do not need the connection.
//!
//! Why: a buffered write copies each byte into a page-cache page the kernel must first find
//! and clear, then writes it back later, and an atomic upload holds the old file's pages and
//! the new file's at once. Where fresh memory is expensive (virtual machines whose host backs
//! guest memory lazily or takes freed pages back), that copy dominated uploads; direct writes
//! from a buffer that stays in use are several times faster and cheaper there (the figures:
//! docs/transfers.md, "Why direct I/O for large uploads"). Direct writes also leave no
//! gigabyte of dirty pages behind an upload: at the `226`, the bytes are with the device.
//!
//! How (the transfer code's `direct_upload` drives it): the first [`CHUNK`] of a binary upload
//! without a rate limit goes the ordinary way (splice, or read and write), so small files stay
//! in the page cache, where a partner's back end will read them. From there, if the file's
//! position is aligned and the file system takes `O_DIRECT` ([`crate::sys::set_direct`]), the
//! data connection is read into one [`Chunk`] while a writer thread ([`write_chunks`]) writes
//! the other: reading the network and writing the device overlap, and memory per upload stays
//! at two chunks. The last chunk's aligned part goes direct, its tail the ordinary way.

use crate::sys;
use crossbeam_channel::{Receiver, Sender};
use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes in one chunk: large enough that the device sees few, large writes.
pub const CHUNK: usize = 8 * 1024 * 1024;

/// The most uploads that go direct at once, server-wide. Each holds two chunks (16 MiB), so
/// this bounds their buffers at 512 MiB however many sessions upload large files at once (a
/// partner opening hundreds of sessions cannot make the server hold gigabytes); uploads past
/// it go the ordinary way, through the page cache, whose memory the kernel manages.
pub const MAX_AT_ONCE: usize = 32;

/// One of at most so many places (the [`MAX_AT_ONCE`] direct uploads, the checksums running
/// at once), given back when dropped.
#[derive(Debug)]
pub struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    /// A place counted in `taken` (a server-wide count), or `None` when `max` are taken.
    pub fn take(taken: &'a AtomicUsize, max: usize) -> Option<Slot<'a>> {
        taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(taken))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A buffer of [`CHUNK`] bytes whose start is aligned for direct I/O, and how much of it
/// holds data.
#[derive(Debug)]
pub struct Chunk {
    store: Vec<u8>,
    start: usize,
    len: usize,
}

impl Chunk {
    /// An empty chunk (the memory is not touched until it is filled).
    pub fn new() -> Chunk {
        let store = vec![0u8; CHUNK + sys::DIRECT_ALIGN];
        let start = store.as_ptr().align_offset(sys::DIRECT_ALIGN);
        Chunk {
            store,
            start,
            len: 0,
        }
    }

    /// The free part, to read into.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.store[self.start + self.len..self.start + CHUNK]
    }

    /// Counts `n` more bytes read into [`Chunk::space`].
    pub fn add(&mut self, n: usize) {
        self.len = (self.len + n).min(CHUNK);
    }

    /// The bytes it holds.
    pub fn data(&self) -> &[u8] {
        &self.store[self.start..self.start + self.len]
    }

    pub fn is_full(&self) -> bool {
        self.len == CHUNK
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl Default for Chunk {
    fn default() -> Chunk {
        Chunk::new()
    }
}

/// A chunk for the writer, and whether it is the last of the upload.
pub type Full = (Chunk, bool);

/// The writer thread's loop: writes each chunk it receives at the file's position, direct
/// while `file` has `O_DIRECT` on (see `write_chunk`), and sends the chunk back empty (or
/// the error, after which it stops). Ends when the sending side is dropped or after the last
/// chunk.
pub fn write_chunks(file: &File, full: Receiver<Full>, empty: Sender<io::Result<Chunk>>) {
    let mut direct = true;
    for (mut chunk, last) in full {
        let r = write_chunk(file, chunk.data(), &mut direct);
        chunk.clear();
        let failed = r.is_err();
        if empty.send(r.map(|()| chunk)).is_err() || failed || last {
            return;
        }
    }
}

/// Writes all of `data` at the file's position: whole blocks direct while `direct` holds,
/// the rest (a tail shorter than a block, or everything after a short or refused direct
/// write) the ordinary way, with direct I/O turned off for good. Never writes a byte twice.
fn write_chunk(mut file: &File, data: &[u8], direct: &mut bool) -> io::Result<()> {
    let mut done = 0;
    // Bounded: each round writes at least one byte, turns direct I/O off, or returns.
    while done < data.len() {
        let rest = &data[done..];
        let whole = rest.len() / sys::DIRECT_ALIGN * sys::DIRECT_ALIGN;
        if *direct && (whole == 0 || done % sys::DIRECT_ALIGN != 0) {
            sys::set_direct(file, false)?;
            *direct = false;
        }
        let len = if *direct { whole } else { rest.len() };
        match file.write(&rest[..len]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The device wants another alignment (the kernel checks before writing).
            Err(e) if *direct && sys::unsupported(&e) => {
                sys::set_direct(file, false)?;
                *direct = false;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("wharf-direct-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn at_most_max_at_once_uploads_go_direct() {
        let taken = AtomicUsize::new(0);
        let mut slots: Vec<Slot> = (0..MAX_AT_ONCE)
            .map(|_| Slot::take(&taken, MAX_AT_ONCE).expect("a free place"))
            .collect();
        assert!(
            Slot::take(&taken, MAX_AT_ONCE).is_none(),
            "one more than MAX_AT_ONCE"
        );
        assert_eq!(taken.load(Ordering::Acquire), MAX_AT_ONCE);
        drop(slots.pop());
        let again = Slot::take(&taken, MAX_AT_ONCE).expect("a place given back is free again");
        assert!(Slot::take(&taken, MAX_AT_ONCE).is_none());
        drop(again);
        assert_eq!(taken.load(Ordering::Acquire), MAX_AT_ONCE - 1);
        drop(slots);
        assert_eq!(taken.load(Ordering::Acquire), 0);
    }

    #[test]
    fn chunks_are_aligned_and_fill_up() {
        let mut c = Chunk::new();
        assert_eq!(c.space().as_ptr() as usize % sys::DIRECT_ALIGN, 0);
        assert_eq!(c.space().len(), CHUNK);
        c.space()[..3].copy_from_slice(b"abc");
        c.add(3);
        assert_eq!(c.data(), b"abc");
        assert_eq!(c.space().len(), CHUNK - 3);
        c.add(CHUNK);
        assert!(c.is_full());
        c.clear();
        assert!(c.data().is_empty());
    }

    /// Whole blocks go direct, the tail the ordinary way, each byte once; direct I/O is off
    /// afterwards.
    #[test]
    fn a_chunk_with_a_tail_is_written_once_and_direct_ends() {
        let dir = scratch("tail");
        let path = dir.join("f");
        let file = File::create(&path).unwrap();
        let mut direct = sys::set_direct(&file, true).is_ok();
        let mut c = Chunk::new();
        let n = 3 * sys::DIRECT_ALIGN + 5;
        let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        c.space()[..n].copy_from_slice(&bytes);
        c.add(n);
        write_chunk(&file, c.data(), &mut direct).unwrap();
        assert!(!direct, "direct I/O is off after an unaligned tail");
        drop(file);
        let mut got = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut got).unwrap();
        assert!(got == bytes, "{} bytes in the file, {n} sent", got.len());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Whole chunks and an unaligned last one arrive in the file intact, in order, whether
    /// or not the file system takes direct I/O.
    #[test]
    fn the_writer_writes_every_byte_in_order() {
        let dir = scratch("order");
        let path = dir.join("f");
        let file = File::create(&path).unwrap();
        let direct = sys::set_direct(&file, true).is_ok();
        let (full_tx, full_rx) = crossbeam_channel::bounded(1);
        let (empty_tx, empty_rx) = crossbeam_channel::bounded(2);
        let mut expected = Vec::new();
        std::thread::scope(|s| {
            s.spawn(|| write_chunks(&file, full_rx, empty_tx));
            let mut spare = vec![Chunk::new(), Chunk::new()];
            for round in 0..3u8 {
                let mut c = spare
                    .pop()
                    .unwrap_or_else(|| empty_rx.recv().unwrap().unwrap());
                let last = round == 2;
                let n = if last { 12_345 } else { CHUNK };
                let bytes: Vec<u8> = (0..n).map(|i| (i as u8) ^ round).collect();
                c.space()[..n].copy_from_slice(&bytes);
                c.add(n);
                expected.extend_from_slice(&bytes);
                full_tx.send((c, last)).unwrap();
            }
            drop(full_tx);
            // Every chunk comes back: nothing failed.
            let mut back = 0;
            for r in empty_rx.iter() {
                r.unwrap_or_else(|e| panic!("the writer failed (direct: {direct}): {e}"));
                back += 1;
            }
            assert!(back >= 1, "{back} chunks back (direct: {direct})");
        });
        drop(file);
        let mut got = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the file differs from what was sent");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
