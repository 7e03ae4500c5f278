//! End to end with the second driver: the single-threaded mio example
//! (runtime-blocking/examples/mio_driver, built by `cargo test --workspace --release` into
//! `target/<profile>/examples/`), driven by the same real clients as the blocking server's
//! tests — curl, lftp, Python's ftplib — on loopback: listings, a 50 MiB round trip checked
//! by SHA-256, resumed downloads and uploads, TYPE A, ABOR in the middle of a large download,
//! 200 sessions at once on one thread, the idle timeout, active mode, and FTPS with the
//! server's TLS session-reuse rule. Each test asserts what a user would notice.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wharf_tests::e2e::{
    assert_same_bytes, example_bin, python_scenario, random_bytes, read_file, require, run_client,
    write_file, ClientOutput, Server, PASSWORD, USER,
};

/// The mio example, started like `wharf serve` with `ARGS` after the common options.
fn mio_server(name: &str, args: &[&str]) -> Server {
    Server::start_program(name, &example_bin("mio_driver"), args)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// `curl -sS --max-time 60 --user alice:secret ARGS...`, which must succeed.
fn curl(args: &[&str]) -> ClientOutput {
    let out = run_client(
        Command::new("curl")
            .args(["-sS", "--max-time", "60", "--user"])
            .arg(format!("{USER}:{PASSWORD}"))
            .args(args),
        Duration::from_secs(90),
    );
    out.assert_success(&format!("curl {}", args.join(" ")));
    out
}

/// One scenario of a Python client script in tests/e2e/ against `server`.
fn python(script: &str, server: &Server, scenario: &str, extra: &[&str], secs: u64) -> String {
    python_scenario(
        script,
        server,
        scenario,
        (USER, PASSWORD),
        extra,
        Duration::from_secs(secs),
    )
}

/// The SHA-256 of a file, by `sha256sum`.
fn sha256(path: &Path) -> String {
    let out = run_client(Command::new("sha256sum").arg(path), Duration::from_secs(60));
    out.assert_success("sha256sum");
    out.stdout
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The threads of a process, from `/proc/PID/status` (`Threads:`) and `/proc/PID/task`.
fn threads(pid: u32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find_map(|l| l.strip_prefix("Threads:"));
    let counted = line
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line");
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task folder");
    (counted, tasks.count())
}

/// `ls -l` lines (LIST) by name: (type letter, size).
fn long_listing(text: &str) -> BTreeMap<String, (char, u64)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            assert!(fields.len() >= 9, "not an ls -l line: {l:?}");
            let kind = fields[0].chars().next().unwrap_or('?');
            let size = fields[4]
                .parse()
                .unwrap_or_else(|_| panic!("size in {l:?}"));
            (fields[8..].join(" "), (kind, size))
        })
        .collect()
}

#[test]
fn curl_and_lftp_list_names_and_sizes() {
    if !require("curl") || !require("lftp") {
        return;
    }
    let server = mio_server("mio-list", &[]);
    write_file(server.root().join("one.txt"), b"1\n");
    write_file(
        server.root().join("two words.bin"),
        &random_bytes(12_345, 1),
    );
    write_file(server.root().join("sub/inner.txt"), b"333\n");
    let want: BTreeMap<String, (char, u64)> = [
        ("one.txt".to_string(), ('-', 2)),
        ("two words.bin".to_string(), ('-', 12_345)),
        ("sub".to_string(), ('d', 0)),
    ]
    .into();
    let without_dir_sizes = |mut m: BTreeMap<String, (char, u64)>| {
        m.entry("sub".into()).and_modify(|e| e.1 = 0);
        m
    };

    let list = curl(&[&format!("{}/", server.url())]);
    let got = without_dir_sizes(long_listing(&list.stdout));
    assert_eq!(got, want, "LIST through curl:\n{}", list.stdout);
    let nlst = curl(&["--list-only", &format!("{}/", server.url())]);
    let names: Vec<&str> = nlst.stdout.lines().collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["one.txt", "sub", "two words.bin"],
        "NLST through curl"
    );
    let inner = curl(&["--list-only", &format!("{}/sub/", server.url())]);
    assert_eq!(inner.stdout.lines().collect::<Vec<_>>(), ["inner.txt"]);

    let home = server.dir().join("lftp-home");
    std::fs::create_dir_all(&home).expect("lftp home");
    let script = format!(
        "set net:max-retries 1; set net:timeout 10; set ftp:ssl-allow false; \
         set cmd:fail-exit true; open -u {USER},{PASSWORD} {}; ls; echo ---; cls -1 sub",
        server.url()
    );
    let lftp = run_client(
        Command::new("lftp")
            .arg("-c")
            .arg(&script)
            .env("HOME", &home)
            .env("LC_ALL", "C.UTF-8"),
        Duration::from_secs(60),
    );
    lftp.assert_success("lftp ls");
    let (ls, cls) = lftp.stdout.split_once("---\n").expect("lftp's echo ---");
    assert_eq!(without_dir_sizes(long_listing(ls)), want, "lftp ls:\n{ls}");
    assert_eq!(
        cls.trim(),
        "sub/inner.txt",
        "lftp cls -1 sub:\n{}",
        lftp.stdout
    );
}

#[test]
fn ftplib_lists_with_list_nlst_and_mlsd() {
    if !require("python3") {
        return;
    }
    let server = mio_server("mio-ftplib-list", &[]);
    write_file(server.root().join("hello.txt"), b"hello world\n");
    write_file(server.root().join("docs/a.bin"), &random_bytes(1000, 2));
    write_file(server.root().join("naïve file.txt"), "naïv".as_bytes());
    python("ftp_client.py", &server, "listings", &[], 60);
}

#[test]
fn ftplib_round_trip_of_50_mib_by_sha256() {
    if !require("python3") {
        return;
    }
    let server = mio_server("mio-ftplib-big", &[]);
    let data = random_bytes(50 * 1024 * 1024, 3);
    write_file(server.client_dir().join("big.bin"), &data);
    let t0 = Instant::now();
    // The script stores big.bin, reads it back and compares SHA-256 on its side.
    print!("{}", python("ftp_client.py", &server, "big", &[], 240));
    eprintln!(
        "ftplib 50 MiB up and down: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        sha256(&server.root().join("big.bin")),
        sha256(&server.client_dir().join("big.bin")),
        "SHA-256 of the stored file"
    );
    assert_eq!(
        threads(server.pid()),
        (1, 1),
        "the mio example has one thread"
    );
}

#[test]
fn curl_round_trip_of_50_mib_by_sha256() {
    if !require("curl") {
        return;
    }
    let server = mio_server("mio-curl-big", &[]);
    let local = server.client_dir().join("big.bin");
    write_file(&local, &random_bytes(50 * 1024 * 1024, 4));
    let url = format!("{}/in/big.bin", server.url());
    curl(&["--ftp-create-dirs", "-T", p(&local), &url]);
    let back = server.client_dir().join("back.bin");
    curl(&["-o", p(&back), &url]);
    let want = sha256(&local);
    assert_eq!(sha256(&server.root().join("in/big.bin")), want, "stored");
    assert_eq!(sha256(&back), want, "downloaded");
}

#[test]
fn resumed_downloads_and_uploads_give_the_right_bytes() {
    if !require("python3") || !require("curl") {
        return;
    }
    let server = mio_server("mio-resume", &[]);
    let data = random_bytes(1_000_000, 5);
    write_file(server.root().join("resume.bin"), &data);
    write_file(server.client_dir().join("resume.bin"), &data);
    // ftplib: RETR with REST 300000, and REST kept across NOOP and TYPE.
    python("ftp_client.py", &server, "rest_download", &[], 60);
    // ftplib: half an upload, then REST + STOR of the rest.
    let upload = random_bytes(1_000_000, 6);
    write_file(server.client_dir().join("upload.bin"), &upload);
    python("ftp_client.py", &server, "rest_upload", &[], 60);
    assert_same_bytes("up.bin", &read_file(server.root().join("up.bin")), &upload);
    // curl -C -: a partial local file is completed from where it stops.
    let partial = server.client_dir().join("partial.bin");
    write_file(&partial, &data[..123_457]);
    let url = format!("{}/resume.bin", server.url());
    curl(&["-C", "-", "-o", p(&partial), &url]);
    assert_same_bytes("curl -C - download", &read_file(&partial), &data);
}

#[test]
fn type_a_download_has_crlf_on_the_wire() {
    if !require("python3") {
        return;
    }
    let server = mio_server("mio-type-a", &[]);
    write_file(server.root().join("unix.txt"), b"x\ny\nz\n");
    // Asserts `x\r\ny\r\nz\r\n` on the data connection of a TYPE A RETR, and that TYPE A
    // uploads (CRLF or bare LF on the wire) are stored with LF.
    python("ftp_client.py", &server, "type_a", &[], 60);
    let root = server.root();
    assert_eq!(read_file(root.join("lines.txt")), b"alpha\nbeta\ngamma\n");
    assert_eq!(read_file(root.join("lf.txt")), b"one\ntwo\n");
    assert_eq!(read_file(root.join("unix.txt")), b"x\ny\nz\n");
}

#[test]
fn abor_in_the_middle_of_a_large_retr() {
    if !require("python3") {
        return;
    }
    let server = mio_server("mio-abor", &[]);
    let data = random_bytes(64 * 1024 * 1024, 7);
    write_file(server.root().join("huge.bin"), &data);
    write_file(server.client_dir().join("huge.bin"), &data);
    // ABOR as BSD clients send it (Telnet IP, then the Synch with an urgent IAC) and inline:
    // 426 then 226, the data connection ends before the file does, NOOP gets 200.
    for how in ["oob", "inline"] {
        print!(
            "{}",
            python("abor_client.py", &server, how, &["huge.bin"], 60)
        );
    }
    // ftplib's abort(), then the whole file again on the same session.
    print!("{}", python("ftp_client.py", &server, "abort", &[], 120));
}

#[test]
fn two_hundred_sessions_at_once_on_one_thread() {
    const N: usize = 200;
    if !require("python3") {
        return;
    }
    let server = mio_server("mio-sessions", &[]);
    let pid = server.pid();
    let done = AtomicBool::new(false);
    let (out, samples) = std::thread::scope(|s| {
        // Threads of the server, sampled the whole time the sessions are opened and held.
        let sampler = s.spawn(|| {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                samples.push(threads(pid));
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        });
        let out = run_client(
            Command::new("python3")
                .arg(wharf_tests::e2e::client_script("hold_sessions.py"))
                .arg("127.0.0.1")
                .arg(server.port().to_string())
                .arg(USER)
                .arg(PASSWORD)
                .arg(N.to_string())
                .arg(pid.to_string()),
            Duration::from_secs(120),
        );
        done.store(true, Ordering::Relaxed);
        (out, sampler.join().expect("sampler"))
    });
    out.assert_success("hold_sessions.py");
    let line = out.stdout.trim();
    let field = |key: &str| {
        let w = line.split_whitespace().find_map(|w| w.strip_prefix(key));
        w.unwrap_or_else(|| panic!("no {key} in {line:?}"))
            .to_string()
    };
    assert_eq!(
        (field("held="), field("failed=")),
        (N.to_string(), "0".to_string()),
        "every session logged in, held open and answered NOOP: {line}"
    );
    assert!(samples.len() >= 5, "too few samples: {}", samples.len());
    let most = samples.iter().map(|&(a, b)| a.max(b)).max();
    assert_eq!(most, Some(1), "the server's threads, sampled: {samples:?}");
    eprintln!(
        "{N} sessions, {} samples of the thread count, all 1",
        samples.len()
    );
    let mut c = server.login();
    assert_eq!(c.cmd("NOOP").code, 200);
}

#[test]
fn the_idle_timeout_closes_an_idle_session() {
    let server = mio_server("mio-idle", &["--idle-timeout-secs", "2"]);
    let mut idle = server.login();
    let mut busy = server.login();
    let started = Instant::now();
    // A session that sends a command every 0.4 s outlives the timeout.
    let keeper = std::thread::spawn(move || {
        let codes: Vec<u16> = (0..8)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(400));
                busy.cmd("NOOP").code
            })
            .collect();
        (busy, codes)
    });
    assert!(
        !idle.closed_within(Duration::from_millis(1500)),
        "closed before its idle timeout"
    );
    let r = idle.reply();
    let waited = started.elapsed();
    assert_eq!(r.code, 421, "after the idle timeout: {r}");
    assert!(waited < Duration::from_secs(10), "421 after {waited:?}");
    assert!(
        idle.closed_within(Duration::from_secs(5)),
        "still open after 421"
    );
    let (mut busy, codes) = keeper.join().expect("keeper");
    assert_eq!(codes, [200; 8], "the busy session's NOOPs");
    assert_eq!(busy.cmd("NOOP").code, 200, "the busy session goes on");
}

#[test]
fn active_mode_with_ftplib_and_curl() {
    if !require("python3") || !require("curl") {
        return;
    }
    let server = mio_server("mio-active", &[]);
    let data = random_bytes(2_000_000, 8);
    write_file(server.client_dir().join("active.bin"), &data);
    python("ftp_client.py", &server, "active", &[], 60);
    assert_same_bytes(
        "PORT upload",
        &read_file(server.root().join("active.bin")),
        &data,
    );
    let back = server.client_dir().join("eprt.bin");
    let url = format!("{}/active.bin", server.url());
    curl(&["-P", "127.0.0.1", "-o", p(&back), &url]);
    assert_same_bytes("EPRT download", &read_file(&back), &data);
}

#[test]
fn ftps_round_trip_with_ftplib_and_curl() {
    if !require("python3") || !require("curl") {
        return;
    }
    let server = mio_server("mio-ftps", &[]);
    let cafile = server.self_signed_cert();
    let data = random_bytes(20 * 1024 * 1024, 9);
    write_file(server.client_dir().join("big.bin"), &data);
    // Protected and resumed data connections: STOR, SIZE, RETR by SHA-256, NLST.
    print!(
        "{}",
        python("ftps_client.py", &server, "roundtrip", &[p(&cafile)], 120)
    );
    assert_same_bytes(
        "ftplib upload",
        &read_file(server.root().join("big.bin")),
        &data,
    );

    let local = server.client_dir().join("up.bin");
    write_file(&local, &random_bytes(3_000_000, 10));
    let url = format!("{}/tls/up.bin", server.url());
    let tls = ["--ssl-reqd", "-k"];
    curl(&[&tls[..], &["--ftp-create-dirs", "-T", p(&local), &url]].concat());
    assert_same_bytes(
        "curl upload",
        &read_file(server.root().join("tls/up.bin")),
        &read_file(&local),
    );
    let back = server.client_dir().join("back.bin");
    curl(&[&tls[..], &["-o", p(&back), &url]].concat());
    assert_same_bytes("curl download", &read_file(&back), &read_file(&local));
    let list = curl(&[&tls[..], &[&format!("{}/tls/", server.url())]].concat());
    assert!(list.stdout.contains("up.bin"), "listing: {}", list.stdout);
    assert_eq!(
        threads(server.pid()),
        (1, 1),
        "the mio example has one thread"
    );
}

#[test]
fn ftps_data_connection_without_session_reuse_is_refused() {
    if !require("python3") {
        return;
    }
    let server = mio_server("mio-ftps-noreuse", &[]);
    let keep = random_bytes(300_000, 11);
    write_file(server.root().join("keep.bin"), &keep);
    write_file(server.client_dir().join("keep.bin"), &keep);
    write_file(
        server.client_dir().join("other.bin"),
        &random_bytes(1000, 12),
    );
    // Plain FTP_TLS does not resume the control connection's session: 522 for RETR, LIST
    // and STOR, the session goes on, and keep.bin is untouched.
    let cafile = server.self_signed_cert();
    python(
        "ftps_client.py",
        &server,
        "no_reuse_refused",
        &[p(&cafile)],
        60,
    );
    assert_same_bytes(
        "keep.bin",
        &read_file(server.root().join("keep.bin")),
        &keep,
    );
}

#[test]
fn file_commands_with_ftplib() {
    if !require("python3") {
        return;
    }
    let server = mio_server("mio-files", &[]);
    let (p1, p2) = (random_bytes(300_000, 13), random_bytes(200_000, 14));
    write_file(server.client_dir().join("part1.bin"), &p1);
    write_file(server.client_dir().join("part2.bin"), &p2);
    // STOR then APPE, and APPE to a new name.
    python("ftp_client.py", &server, "appe", &[], 60);
    let both = [p1.as_slice(), p2.as_slice()].concat();
    assert_same_bytes(
        "APPE",
        &read_file(server.root().join("appended.bin")),
        &both,
    );
    // MKD, RMD, RNFR/RNTO, DELE and their refusals.
    write_file(server.root().join("keep.txt"), b"keep me\n");
    python("ftp_client.py", &server, "fileops", &[], 60);
    assert_eq!(read_file(server.root().join("kept.txt")), b"keep me\n");
    assert!(
        server.root().join("with space").is_dir(),
        "MKD 'with space'"
    );
    assert!(!server.root().join("newdir").exists(), "RMD left newdir");
}

#[test]
fn checksums_run_like_transfers_and_stop_at_abor() {
    if !require("python3") {
        return;
    }
    let server = mio_server("mio-checksums", &[]);
    let data = random_bytes(3 * 1024 * 1024 + 17, 15);
    write_file(server.root().join("data.bin"), &data);
    let local = server.client_dir().join("data.bin");
    write_file(&local, &data);
    // HASH in every algorithm, RANG, XCRC/XMD5/XSHA*: the runtime's checksum task, stepped
    // by the loop, against hashlib and zlib.
    python(
        "checksum_client.py",
        &server,
        "algorithms",
        &[p(&local)],
        60,
    );
    // ABOR while a HASH of 64 GiB (sparse: zeros) runs: 426 then 226 at once.
    std::fs::File::create(server.root().join("huge.bin"))
        .and_then(|f| f.set_len(64 << 30))
        .expect("a sparse file");
    python("checksum_client.py", &server, "abort", &["huge.bin"], 60);
}

#[test]
fn commands_sent_during_a_download_are_all_answered_after_it() {
    let server = mio_server("mio-held", &[]);
    let data = random_bytes(8 * 1024 * 1024, 16);
    write_file(server.root().join("big.bin"), &data);
    let mut c = server.login();
    assert_eq!(c.cmd("TYPE I").code, 200);
    let addr = c.pasv();
    let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .expect("connect to the passive port");
    assert_eq!(c.cmd("RETR big.bin").code, 150);
    // Held by the session until the transfer ends, then answered at once, in order.
    const HELD: usize = 5000;
    c.send_raw("PWD\r\n".repeat(HELD).as_bytes());
    let got = wharf_tests::e2e::read_to_end_timeout(stream, Duration::from_secs(20))
        .expect("the download");
    assert_same_bytes("the download", &got, &data);
    assert_eq!(c.reply().code, 226);
    for i in 0..HELD {
        let r = c.reply();
        assert_eq!(r.code, 257, "reply {i} to the held PWDs: {r}");
    }
    assert_eq!(c.cmd("NOOP").code, 200);
}

/// The formats go through the core's codecs in this driver too: a 5 MiB round trip in MODE C
/// (RFC 959's compressed mode) and a MODE Z download read by Python's zlib, both by the
/// reference client of tests/e2e/rfc959_client.py.
#[test]
fn mode_c_round_trip_and_mode_z_download_through_the_codecs() {
    if !require("python3") {
        return;
    }
    let server = mio_server("mio-modes", &[]);
    let big = random_bytes(5 << 20, 31);
    write_file(server.client_dir().join("big.bin"), &big);
    write_file(server.root().join("down.bin"), &big);
    print!(
        "{}",
        python(
            "representations_client.py",
            &server,
            "mode_round_trip",
            // The example sends no restart markers (README: what it leaves out).
            &["C", "no-markers"],
            180
        )
    );
    assert_same_bytes(
        "stored from MODE C",
        &read_file(server.root().join("up.bin")),
        &big,
    );
    assert_same_bytes(
        "retrieved in MODE C",
        &read_file(server.client_dir().join("got.bin")),
        &big,
    );
    // Words in a random order: text a higher deflate level makes smaller.
    const WORDS: [&str; 8] = [
        "ship", "cargo", "wharf", "crane", "pallet", "tide", "quay", "bill",
    ];
    let text: Vec<u8> = random_bytes(200_000, 32)
        .iter()
        .flat_map(|&b| {
            let end = if b % 11 == 0 { "\n" } else { " " };
            format!("{}{end}", WORDS[usize::from(b) % WORDS.len()]).into_bytes()
        })
        .collect();
    write_file(server.root().join("text.txt"), &text);
    write_file(server.client_dir().join("text.txt"), &text);
    print!(
        "{}",
        python(
            "representations_client.py",
            &server,
            "mode_z_download",
            &[],
            120
        )
    );
}
