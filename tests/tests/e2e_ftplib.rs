//! End to end with Python's ftplib: each test starts `wharf serve`, prepares files, runs one
//! scenario of `tests/e2e/ftp_client.py`, and checks both what the client saw (exit status and
//! its `PASS` line) and what is on the server's disk afterwards.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wharf_tests::e2e::{
    assert_same_bytes, python_scenario, random_bytes, read_file, require, write_file, Server,
    PASSWORD, USER,
};

/// Runs one scenario against `server`; panics with the client's output unless it passed.
fn scenario(server: &Server, name: &str, timeout: Duration) -> String {
    python_scenario(
        "ftp_client.py",
        server,
        name,
        (USER, PASSWORD),
        &[] as &[&str],
        timeout,
    )
}

#[test]
fn ftplib_login_list_nlst_mlsd() {
    if !require("python3") {
        return;
    }
    let server = Server::start("ftplib-listings");
    write_file(server.root().join("hello.txt"), b"hello world\n");
    write_file(server.root().join("docs/a.bin"), &random_bytes(1000, 1));
    write_file(server.root().join("naïve file.txt"), "naïv".as_bytes());
    scenario(&server, "listings", Duration::from_secs(60));
}

#[test]
fn ftplib_stor_retr_20mb_by_sha256() {
    if !require("python3") {
        return;
    }
    let server = Server::start("ftplib-big");
    let data = random_bytes(20 * 1024 * 1024, 2);
    write_file(server.client_dir().join("big.bin"), &data);
    let out = scenario(&server, "big", Duration::from_secs(180));
    print!("{out}");
    assert_same_bytes(
        "the stored big.bin on the server's disk",
        &read_file(server.root().join("big.bin")),
        &data,
    );
}

#[test]
fn ftplib_appe_appends() {
    if !require("python3") {
        return;
    }
    let server = Server::start("ftplib-appe");
    let (p1, p2) = (random_bytes(300_000, 3), random_bytes(200_000, 4));
    write_file(server.client_dir().join("part1.bin"), &p1);
    write_file(server.client_dir().join("part2.bin"), &p2);
    scenario(&server, "appe", Duration::from_secs(60));
    let mut both = p1.clone();
    both.extend_from_slice(&p2);
    assert_same_bytes(
        "appended.bin on disk",
        &read_file(server.root().join("appended.bin")),
        &both,
    );
    assert_same_bytes(
        "fresh.bin on disk",
        &read_file(server.root().join("fresh.bin")),
        &p2,
    );
}

#[test]
fn ftplib_rest_resumes_a_download() {
    if !require("python3") {
        return;
    }
    let server = Server::start("ftplib-rest-down");
    let data = random_bytes(1_000_000, 5);
    write_file(server.root().join("resume.bin"), &data);
    write_file(server.client_dir().join("resume.bin"), &data);
    scenario(&server, "rest_download", Duration::from_secs(60));
}

#[test]
fn ftplib_rest_stor_resumes_an_upload() {
    if !require("python3") {
        return;
    }
    let server = Server::start("ftplib-rest-up");
    let data = random_bytes(1_000_000, 6);
    write_file(server.client_dir().join("upload.bin"), &data);
    scenario(&server, "rest_upload", Duration::from_secs(60));
    assert_same_bytes(
        "up.bin on disk after the resumed upload",
        &read_file(server.root().join("up.bin")),
        &data,
    );
}

#[test]
fn ftplib_mkd_rmd_rnfr_rnto_dele() {
    if !require("python3") {
        return;
    }
    let server = Server::start("ftplib-fileops");
    write_file(server.root().join("keep.txt"), b"keep me\n");
    scenario(&server, "fileops", Duration::from_secs(60));
    let root = server.root();
    assert!(!root.join("newdir").exists(), "RMD left newdir on disk");
    assert!(
        !root.join("keep.txt").exists(),
        "RNFR/RNTO left the old name"
    );
    assert_eq!(read_file(root.join("kept.txt")), b"keep me\n");
    assert!(root.join("made").is_dir(), "MKD made: no folder on disk");
    assert!(
        root.join("with space").is_dir(),
        "MKD 'with space': no folder"
    );
}

#[test]
fn ftplib_size_and_mdtm() {
    if !require("python3") {
        return;
    }
    let server = Server::start("ftplib-size-mdtm");
    let path = server.root().join("dated.bin");
    write_file(&path, &random_bytes(4321, 7));
    // 2021-03-04 05:06:07 UTC
    let t = UNIX_EPOCH + Duration::from_secs(1_614_834_367);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(t))
        .expect("set mtime");
    assert!(SystemTime::now() > t);
    std::fs::create_dir(server.root().join("folder")).expect("mkdir");
    scenario(&server, "size_mdtm", Duration::from_secs(60));
}

#[test]
fn ftplib_type_a_converts_line_ends() {
    if !require("python3") {
        return;
    }
    let server = Server::start("ftplib-type-a");
    write_file(server.root().join("unix.txt"), b"x\ny\nz\n");
    scenario(&server, "type_a", Duration::from_secs(60));
    assert_eq!(
        read_file(server.root().join("lines.txt")),
        b"alpha\nbeta\ngamma\n",
        "a TYPE A upload with CRLF on the wire must be stored with LF"
    );
    assert_eq!(
        read_file(server.root().join("lf.txt")),
        b"one\ntwo\n",
        "a TYPE A upload with bare LF on the wire must be stored with LF"
    );
    assert_eq!(read_file(server.root().join("unix.txt")), b"x\ny\nz\n");
}

#[test]
fn ftplib_abor_during_large_retr_leaves_session_usable() {
    if !require("python3") {
        return;
    }
    let server = Server::start("ftplib-abort");
    let data = random_bytes(40 * 1024 * 1024, 8);
    write_file(server.root().join("huge.bin"), &data);
    write_file(server.client_dir().join("huge.bin"), &data);
    let out = scenario(&server, "abort", Duration::from_secs(120));
    print!("{out}");
}

#[test]
fn ftplib_active_mode_port() {
    if !require("python3") {
        return;
    }
    let server = Server::start("ftplib-active");
    let data = random_bytes(2_000_000, 9);
    write_file(server.client_dir().join("active.bin"), &data);
    scenario(&server, "active", Duration::from_secs(60));
    assert_same_bytes(
        "active.bin on disk",
        &read_file(server.root().join("active.bin")),
        &data,
    );
}
