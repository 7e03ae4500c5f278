//! End to end, checksums of stored files, checked with Python's hashlib and zlib against the
//! real server: HASH in every algorithm (SHA-256, SHA-512, SHA-1, MD5, CRC32) with OPTS HASH
//! and RANG, the older XCRC/XMD5/XSHA1/XSHA256/XSHA512; ABOR while a HASH of a large file
//! runs (426, then 226, at once); and the server-wide bound on checksums running at once
//! (one more is 450, busy).

use std::fs::File;
use std::time::Duration;
use wharf_tests::e2e::{
    python_scenario, random_bytes, require, write_file, Server, PASSWORD, USER,
};

const SCRIPT: &str = "checksum_client.py";

/// A sparse file of `size` bytes in the server's root (reads as zeros; costs no disk).
fn sparse(server: &Server, name: &str, size: u64) {
    File::create(server.root().join(name))
        .and_then(|f| f.set_len(size))
        .expect("make a sparse file");
}

#[test]
fn hash_and_the_x_commands_agree_with_hashlib_in_every_algorithm() {
    if !require("python3") {
        return;
    }
    let server = Server::start("checksums");
    let data = random_bytes(3 * 1024 * 1024 + 17, 42);
    write_file(server.root().join("data.bin"), &data);
    let local = server.client_dir().join("data.bin");
    write_file(&local, &data);
    python_scenario(
        SCRIPT,
        &server,
        "algorithms",
        (USER, PASSWORD),
        &[local],
        Duration::from_secs(60),
    );
}

#[test]
fn abor_stops_a_hash_at_once() {
    if !require("python3") {
        return;
    }
    let server = Server::start("checksum-abort");
    // 64 GiB of SHA-512 takes far longer than the test: the ABOR must cut it short.
    sparse(&server, "huge.bin", 64 << 30);
    python_scenario(
        SCRIPT,
        &server,
        "abort",
        (USER, PASSWORD),
        &["huge.bin"],
        Duration::from_secs(60),
    );
}

#[test]
fn checksums_beyond_the_servers_bound_are_refused_as_busy() {
    if !require("python3") {
        return;
    }
    let server = Server::start("checksum-busy");
    write_file(server.root().join("small.bin"), b"small");
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let names: Vec<String> = (0..cpus).map(|i| format!("huge{i}.bin")).collect();
    for n in &names {
        sparse(&server, n, 64 << 30);
    }
    python_scenario(
        SCRIPT,
        &server,
        "busy",
        (USER, PASSWORD),
        &names,
        Duration::from_secs(60),
    );
}
