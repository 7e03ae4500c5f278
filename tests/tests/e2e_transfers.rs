//! End to end, the data path of uploads: every store mode arrives byte for byte (plain uploads
//! go through splice(2) where the file allows it, and through read and write where it does not:
//! an in-place APPE opens its file for appending, which splice refuses); ABOR, STAT, NOOP and
//! QUIT are answered while an upload waits for its data; a reset data connection is a failed
//! upload; FTPS uploads in every store mode (over a longer file too) arrive byte for byte.
//! The sizes reach past the first 8 MiB chunk, after which binary uploads go with direct I/O
//! (`direct_uploads`), and the same modes run with it off; at most 32 uploads go direct at
//! once, and the rest arrive too.

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;
use wharf_tests::e2e::{
    assert_same_bytes, python_scenario, random_bytes, read_file, require, write_file, Ctrl, Server,
    ServerOptions, IO_TIMEOUT, PASSWORD, USER,
};

const SCRIPT: &str = "transfer_client.py";
fn python(server: &Server, scenario: &str, extra: &[String]) {
    python_scenario(
        SCRIPT,
        server,
        scenario,
        (USER, PASSWORD),
        extra,
        Duration::from_secs(180),
    );
}

/// The names in the root (the server's hidden files included).
fn names(server: &Server) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(server.root())
        .expect("read root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// PASV, `command`, the 150; returns the open data connection.
fn start_upload(c: &mut Ctrl, command: &str) -> TcpStream {
    let addr = c.pasv();
    let data = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to the passive port");
    data.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let r = c.cmd(command);
    assert_eq!(r.code, 150, "{command}: {r}");
    data
}

/// STOR over a large file, STOR over a longer file, APPE, REST + STOR, each checked on disk
/// byte for byte. The sizes take every way an upload can go: past the first 8 MiB chunk with
/// an unaligned tail (direct I/O where it is on), an APPE that goes direct from an aligned
/// end, a REST + STOR at an unaligned offset (never direct), and a replaced file large
/// enough to be released after the reply.
fn store_modes(server: &Server) {
    let mut c = server.login();
    assert_eq!(c.cmd("TYPE I").code, 200);
    let path = server.root().join("f.bin");
    write_file(&path, &random_bytes(40 << 20, 6));
    let a = random_bytes((16 << 20) + 12_345, 1);
    let b = random_bytes(1 << 20, 2);
    let tail = random_bytes((9 << 20) + 7, 3);
    let (first, last) = c.transfer_out("STOR f.bin", &a);
    assert_eq!(
        (first.code, last.code),
        (150, 226),
        "STOR: {first} / {last}"
    );
    assert_same_bytes("STOR", &read_file(&path), &a);
    // The replaced 40 MiB file kept a hidden name only until the reply: it is gone before
    // the session reads its next command.
    assert_eq!(c.cmd("NOOP").code, 200);
    assert_eq!(names(server), ["f.bin"], "the replaced file is released");
    let (_, last) = c.transfer_out("STOR f.bin", &b);
    assert_eq!(last.code, 226, "STOR over a longer file: {last}");
    assert_same_bytes("STOR over a longer file", &read_file(&path), &b);
    let (_, last) = c.transfer_out("APPE f.bin", &tail);
    assert_eq!(last.code, 226, "APPE: {last}");
    let mut want = b.clone();
    want.extend_from_slice(&tail);
    assert_same_bytes("APPE", &read_file(&path), &want);
    // PASV, REST, STOR (REST applies to the command right after it).
    let addr = c.pasv();
    let mut data = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    assert_eq!(c.cmd("REST 1000").code, 350);
    let r = c.cmd("STOR f.bin");
    assert_eq!(r.code, 150, "REST + STOR: {r}");
    data.write_all(&a).expect("send");
    drop(data);
    let last = c.reply();
    assert_eq!(last.code, 226, "REST + STOR: {last}");
    let mut want = b[..1000].to_vec();
    want.extend_from_slice(&a);
    assert_same_bytes("REST + STOR", &read_file(&path), &want);
    // APPE to a new name creates it.
    let (_, last) = c.transfer_out("APPE new.bin", &tail);
    assert_eq!(last.code, 226, "APPE to a new file: {last}");
    assert_same_bytes(
        "APPE to a new file",
        &read_file(server.root().join("new.bin")),
        &tail,
    );
    assert_eq!(c.cmd("QUIT").code, 221);
    assert_eq!(names(server), ["f.bin", "new.bin"], "no partial file left");
}

#[test]
fn plain_uploads_arrive_byte_for_byte_in_every_store_mode_atomic() {
    let server = Server::start("transfers-modes-atomic");
    store_modes(&server);
}

#[test]
fn plain_uploads_arrive_byte_for_byte_in_every_store_mode_in_place() {
    // Without atomic uploads APPE writes in place to a file opened for appending: splice(2)
    // refuses such a file, and the upload goes on with read and write.
    let server = Server::start_with(
        "transfers-modes-in-place",
        ServerOptions::default().config("atomic_uploads = false\n"),
    );
    store_modes(&server);
}

#[test]
fn plain_uploads_arrive_byte_for_byte_in_every_store_mode_through_the_page_cache() {
    let server = Server::start_with(
        "transfers-modes-buffered",
        ServerOptions::default().config("direct_uploads = false\n"),
    );
    store_modes(&server);
}

#[test]
fn stat_and_noop_are_answered_while_an_upload_waits_for_data() {
    let server = Server::start("transfers-stat-mid-upload");
    let mut c = server.login();
    assert_eq!(c.cmd("TYPE I").code, 200);
    let part1 = random_bytes(300_000, 4);
    let part2 = random_bytes(200_000, 5);
    let mut data = start_upload(&mut c, "STOR up.bin");
    data.write_all(&part1).expect("send part 1");
    let r = c.cmd("STAT");
    assert_eq!(r.code, 213, "STAT mid-upload: {r}");
    let text = r.lines.join(" ");
    let so_far: u64 = text
        .split("in progress, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no progress count in {text:?}"));
    assert!(
        so_far <= part1.len() as u64,
        "{so_far} bytes counted of {}",
        part1.len()
    );
    let r = c.cmd("NOOP");
    assert_eq!(r.code, 200, "NOOP mid-upload: {r}");
    data.write_all(&part2).expect("send part 2");
    drop(data);
    let r = c.reply();
    assert_eq!(r.code, 226, "end of the upload: {r}");
    assert!(r.lines[0].contains("500000 bytes"), "{r}");
    let mut want = part1;
    want.extend_from_slice(&part2);
    assert_same_bytes("up.bin", &read_file(server.root().join("up.bin")), &want);
}

#[test]
fn abor_stops_an_upload_and_the_session_goes_on() {
    let server = Server::start("transfers-abor-upload");
    write_file(server.root().join("keep.bin"), b"old content");
    let mut c = server.login();
    assert_eq!(c.cmd("TYPE I").code, 200);
    // Aborted early, and past the first 8 MiB (while a direct-I/O writer runs).
    for (size, seed) in [(400_000, 6), ((20 << 20) + 3, 8)] {
        let mut data = start_upload(&mut c, "STOR keep.bin");
        data.write_all(&random_bytes(size, seed)).expect("send");
        let r = c.cmd("ABOR");
        assert_eq!(r.code, 426, "first reply to ABOR after {size} bytes: {r}");
        let r = c.reply();
        assert_eq!(r.code, 226, "second reply to ABOR after {size} bytes: {r}");
        drop(data);
        // The aborted upload never replaced the file, and left nothing behind.
        assert_eq!(read_file(server.root().join("keep.bin")), b"old content");
        assert_eq!(names(&server), ["keep.bin"]);
    }
    // The next upload on the same session is complete.
    let next = random_bytes(700_000, 7);
    let (_, last) = c.transfer_out("STOR keep.bin", &next);
    assert_eq!(last.code, 226, "upload after ABOR: {last}");
    assert_same_bytes(
        "keep.bin",
        &read_file(server.root().join("keep.bin")),
        &next,
    );
}

#[test]
fn quit_during_an_upload_lets_it_finish_then_says_goodbye() {
    let server = Server::start("transfers-quit-upload");
    let mut c = server.login();
    assert_eq!(c.cmd("TYPE I").code, 200);
    let bytes = random_bytes(600_000, 8);
    let mut data = start_upload(&mut c, "STOR q.bin");
    data.write_all(&bytes[..200_000]).expect("send");
    c.send("QUIT");
    // Give the server a moment to read QUIT mid-upload (not needed for correctness: either
    // way the replies below must come in this order).
    thread::sleep(Duration::from_millis(100));
    data.write_all(&bytes[200_000..]).expect("send the rest");
    drop(data);
    let r = c.reply();
    assert_eq!(r.code, 226, "end of the upload: {r}");
    let r = c.reply();
    assert_eq!(r.code, 221, "QUIT: {r}");
    assert!(c.closed_within(Duration::from_secs(10)));
    assert_same_bytes("q.bin", &read_file(server.root().join("q.bin")), &bytes);
}

/// The server's threads named `wharf-write` (one per upload going direct).
fn direct_writers(pid: u32) -> usize {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "wharf-write")
        .count()
}

/// Whether files in `dir` can be opened with O_DIRECT (tmpfs before Linux 6.6 refuses it;
/// the server then writes every upload the ordinary way).
fn direct_io_works(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    #[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
    const O_DIRECT: i32 = 0o200000;
    #[cfg(not(any(target_arch = "aarch64", target_arch = "arm")))]
    const O_DIRECT: i32 = 0o40000;
    let probe = dir.join(".direct-probe");
    let ok = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = fs::remove_file(&probe);
    ok
}

/// 36 large uploads at once: 32 go direct (each with its writer thread and two 8 MiB buffers),
/// the other 4 the ordinary way, and every file arrives byte for byte.
#[test]
fn at_most_32_uploads_go_direct_at_once_and_the_rest_arrive_too() {
    const UPLOADS: usize = 36;
    const BEFORE: usize = 17 << 20; // past the first chunk and one direct chunk
    const AFTER: usize = 1 << 20;
    let server = Server::start("transfers-direct-bound");
    let base = std::sync::Arc::new(random_bytes(BEFORE + AFTER, 36));
    let content = |i: usize| {
        let mut v = base.to_vec();
        v[..8].copy_from_slice(&(i as u64).to_be_bytes());
        v
    };
    let paused = std::sync::Arc::new(std::sync::Barrier::new(UPLOADS + 1));
    let resume = std::sync::Arc::new(std::sync::Barrier::new(UPLOADS + 1));
    let uploads: Vec<_> = (0..UPLOADS)
        .map(|i| {
            let mut c = server.login();
            let bytes = content(i);
            let (paused, resume) = (paused.clone(), resume.clone());
            thread::spawn(move || {
                assert_eq!(c.cmd("TYPE I").code, 200);
                let mut data = start_upload(&mut c, &format!("STOR up{i}.bin"));
                data.write_all(&bytes[..BEFORE]).expect("first part");
                paused.wait();
                resume.wait();
                data.write_all(&bytes[BEFORE..]).expect("the rest");
                drop(data);
                let r = c.reply();
                assert_eq!(r.code, 226, "up{i}.bin: {r}");
            })
        })
        .collect();
    paused.wait();
    // Every upload is past its first direct chunk once the server has read what was sent:
    // wait (bounded) for the writers to appear, then watch that no more than 32 do.
    let mut most = 0;
    for _ in 0..300 {
        most = most.max(direct_writers(server.pid()));
        if most >= 32 {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..10 {
        thread::sleep(Duration::from_millis(100));
        most = most.max(direct_writers(server.pid()));
    }
    resume.wait();
    for u in uploads {
        u.join().expect("upload thread");
    }
    if direct_io_works(server.root()) {
        assert_eq!(most, 32, "uploads going direct at once");
    } else {
        eprintln!("O_DIRECT is refused under the test folder: no upload can go direct");
        assert_eq!(most, 0, "uploads going direct where O_DIRECT is refused");
    }
    for i in 0..UPLOADS {
        let name = format!("up{i}.bin");
        assert_same_bytes(&name, &read_file(server.root().join(&name)), &content(i));
    }
}

#[test]
fn a_reset_data_connection_is_a_failed_upload() {
    if !require("python3") {
        return;
    }
    let server = Server::start("transfers-reset");
    python(&server, "reset_upload", &[]);
    // Nothing under the final name (atomic uploads), no partial file left.
    assert_eq!(names(&server), ["after.bin"]);
}

#[test]
fn ftps_uploads_arrive_byte_for_byte_in_every_store_mode() {
    if !require("python3") {
        return;
    }
    for (name, config) in [
        ("transfers-ftps-atomic", ""),
        ("transfers-ftps-in-place", "atomic_uploads = false\n"),
    ] {
        let server = Server::start_with(name, ServerOptions::default().config(config));
        let cdir = server.client_dir();
        // Past the first 8 MiB (direct I/O), an unaligned tail; an APPE from an unaligned
        // end (never direct).
        let a = random_bytes((17 << 20) + 12_345, 9);
        let b = random_bytes(700_000, 10);
        let c = random_bytes((9 << 20) + 8, 11);
        write_file(cdir.join("a.bin"), &a);
        write_file(cdir.join("b.bin"), &b);
        write_file(cdir.join("c.bin"), &c);
        // Longer than anything uploaded over it.
        write_file(
            server.root().join("replace.bin"),
            &random_bytes(40 << 20, 12),
        );
        let cafile = server.self_signed_cert().to_string_lossy().into_owned();
        python(&server, "tls_store_modes", &[cafile]);
        let mut want = b[..1000].to_vec();
        want.extend_from_slice(&a);
        assert_same_bytes(
            &format!("{name}: replace.bin"),
            &read_file(server.root().join("replace.bin")),
            &want,
        );
        assert_eq!(
            names(&server),
            ["replace.bin"],
            "{name}: no partial file left"
        );
    }
}

/// An upload whose every byte arrived but whose file cannot be put in place is a failure the
/// client hears about before anything else: STOU chose a free name, another program took that
/// name while the data came, and the atomic upload must not replace what is there now. The
/// reply is 451, never 226; the file that took the name is untouched; the event is
/// upload_failed.
#[test]
fn an_upload_that_cannot_be_put_in_place_is_451_and_leaves_the_name_alone() {
    let server = Server::start_with(
        "not-placed",
        ServerOptions::default().config("events_file = \"events.jsonl\"\n"),
    );
    let mut c = server.login();
    assert_eq!(c.cmd("TYPE I").code, 200);
    let addr = c.pasv();
    let mut data =
        TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to the passive port");
    data.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let r = c.cmd("STOU report.csv");
    assert_eq!(r.code, 150, "STOU: {r}");
    let name = r.lines[0]
        .split("FILE: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no FILE: in {r}"))
        .trim()
        .to_owned();
    data.write_all(&random_bytes(100_000, 7)).expect("send");
    // Someone else puts a file under that name meanwhile.
    let taken = server.root().join(&name);
    write_file(&taken, b"written by another program");
    data.write_all(&random_bytes(100_000, 8)).expect("send");
    drop(data);
    let r = c.reply();
    assert_eq!(r.code, 451, "an upload that could not be put in place: {r}");
    assert!(
        r.text().contains("could not be put in place"),
        "the reply says why: {r}"
    );
    assert_same_bytes(
        "the file that took the name",
        &read_file(&taken),
        b"written by another program",
    );
    assert_eq!(c.cmd("NOOP").code, 200, "the session goes on");
    drop(c);
    let events = fs::read_to_string(server.dir().join("events.jsonl")).expect("events file");
    let line = events
        .lines()
        .find(|l| l.contains("\"event\":\"upload_"))
        .unwrap_or_else(|| panic!("no upload event in {events}"));
    assert!(
        line.contains("\"event\":\"upload_failed\"") && line.contains("could not be put in place"),
        "{line}"
    );
}
