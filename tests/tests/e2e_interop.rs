//! End to end, what common clients do that Wharf must meet as every common server does
//! (issue 15): an FTPS upload whose client closes the data connection without reading from
//! it (Go's crypto/tls); REST followed by PASV/EPSV/PORT/TYPE before the RETR/STOR it is for;
//! ABOR sent the BSD way (Telnet IP, then the Synch with its IAC as TCP urgent data) by tnftp
//! at Ctrl-C and by a raw client, and inline; and three smaller points: ncftp's
//! `MDTM <time> <file>`, an IPv6 `passive_address`, and CCC in FEAT.
//!
//! A missing client program skips a test, except under `CI=true`, where it fails it.

use std::fs;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};
use wharf_tests::e2e::{
    assert_same_bytes, python_scenario, random_bytes, read_file, require, run_client,
    run_client_or_kill, wharf_bin, wharf_cli, write_file, ClientOutput, Ctrl, Server,
    ServerOptions, TempDir, PASSWORD, USER,
};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

fn python(server: &Server, script: &str, scenario: &str, extra: &[String]) -> String {
    let out = python_scenario(
        script,
        server,
        scenario,
        (USER, PASSWORD),
        extra,
        CLIENT_TIMEOUT,
    );
    print!("{out}");
    out
}

/// A sparse file of `len` bytes (zeros) on the server's side: large downloads without disk.
fn sparse_file(path: &std::path::Path, len: u64) {
    let f = fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.set_len(len).expect("set_len");
}

// ----- an FTPS upload closed without reading -------------------------------------------------

#[test]
fn ftps_upload_closed_without_reading_the_data_connection_is_complete() {
    if !require("python3") {
        return;
    }
    let server = Server::start("interop-unread-close");
    let cafile = server.self_signed_cert();
    let root = server.root().to_str().expect("UTF-8 path").to_string();
    python(
        &server,
        "tls_unread_close.py",
        "upload",
        &[cafile.to_str().expect("UTF-8 path").to_string(), root],
    );
}

// ----- REST until the transfer it is for ----------------------------------------------------

/// `rest_client.py SCENARIO ... FILE OFFSET [UPLOAD]`.
fn rest(server: &Server, scenario: &str, file: &str, offset: usize, upload: Option<&[u8]>) {
    let mut extra = vec![file.to_string(), offset.to_string()];
    if let Some(bytes) = upload {
        let local = server.client_dir().join("upload.bin");
        write_file(&local, bytes);
        extra.push(local.to_str().expect("UTF-8 path").to_string());
    }
    python(server, "rest_client.py", scenario, &extra);
}

/// A file on the server and the offset a resumed download starts from.
fn rest_download(name: &str, scenario: &str) {
    if !require("python3") {
        return;
    }
    let server = Server::start(name);
    let data = random_bytes(3_000_000, 151);
    write_file(server.root().join("file.bin"), &data);
    let offset = 1_234_567;
    rest(&server, scenario, "file.bin", offset, None);
    assert_same_bytes(
        &format!("{scenario}: the bytes from REST {offset}"),
        &read_file(server.client_dir().join("got.bin")),
        &data[offset..],
    );
}

/// A partial file on the server; a resumed upload of the rest must give the whole file.
fn rest_upload(name: &str, scenario: &str) {
    if !require("python3") {
        return;
    }
    let server = Server::start(name);
    let whole = random_bytes(3_000_000, 152);
    let offset = 1_234_567;
    // The server holds more than the first `offset` bytes, with a wrong tail that the resumed
    // upload overwrites; what is before the offset must stay.
    let mut partial = whole[..offset].to_vec();
    partial.extend_from_slice(&random_bytes(100_000, 153));
    write_file(server.root().join("file.bin"), &partial);
    rest(
        &server,
        scenario,
        "file.bin",
        offset,
        Some(&whole[offset..]),
    );
    assert_same_bytes(
        &format!("{scenario}: the file after a resumed upload from {offset}"),
        &read_file(server.root().join("file.bin")),
        &whole,
    );
}

#[test]
fn rest_then_epsv_then_retr_resumes_the_download() {
    rest_download("interop-rest-epsv-retr", "rest_epsv_retr");
}

#[test]
fn rest_then_port_then_retr_resumes_the_download() {
    rest_download("interop-rest-port-retr", "rest_port_retr");
}

#[test]
fn rest_then_type_and_pasv_then_stor_resumes_the_upload() {
    rest_upload("interop-rest-type-pasv-stor", "rest_type_pasv_stor");
}

#[test]
fn ftplib_pasv_then_rest_resumes_download_and_upload() {
    // Python's own order (PASV, REST, RETR/STOR) works today; it must keep working.
    rest_download("interop-ftplib-rest-retr", "ftplib_retr");
    rest_upload("interop-ftplib-rest-stor", "ftplib_stor");
}

fn curl(args: &[&str]) -> ClientOutput {
    run_client(
        Command::new("curl")
            .args(["-sS", "-v", "--max-time", "60"])
            .args(args),
        CLIENT_TIMEOUT,
    )
}

#[test]
fn curl_resumes_download_and_upload() {
    // curl -C - sends EPSV, TYPE I, SIZE, REST n, RETR for a download and SIZE then APPE for
    // an upload (curl 7.88): it works today; it must keep working.
    if !require("curl") {
        return;
    }
    let server = Server::start("interop-curl-resume");
    let data = random_bytes(3_000_000, 154);
    let auth = format!("{USER}:{PASSWORD}");
    write_file(server.root().join("down.bin"), &data);
    let local = server.client_dir().join("down.bin");
    write_file(&local, &data[..1_000_000]);
    let url = format!("{}/down.bin", server.url());
    let p = local.to_str().expect("UTF-8 path");
    let out = curl(&["-u", &auth, "-C", "-", "-o", p, &url]);
    out.assert_success("curl -C - download");
    assert!(out.stderr.contains("REST 1000000"), "{}", out.stderr);
    assert_same_bytes("curl -C - download", &read_file(&local), &data);

    write_file(server.root().join("up.bin"), &data[..1_000_000]);
    let up = server.client_dir().join("up.bin");
    write_file(&up, &data);
    let url = format!("{}/up.bin", server.url());
    let p = up.to_str().expect("UTF-8 path");
    curl(&["-u", &auth, "-C", "-", "-T", p, &url]).assert_success("curl -C - -T upload");
    assert_same_bytes(
        "curl -C - -T upload",
        &read_file(server.root().join("up.bin")),
        &data,
    );
}

// ----- ABOR the BSD way -----------------------------------------------------------------------

/// A server whose user `slow` downloads at 1 MB/s (a user store made with `wharf user add`),
/// so that an abort lands in the middle of a transfer; `slow`'s home holds a 20 MB file.
fn slow_server(name: &str) -> (Server, TempDir) {
    let store = TempDir::new(&format!("{name}-store"));
    let home = store.join("home");
    fs::create_dir_all(&home).expect("mkdir home");
    sparse_file(&home.join("big.bin"), 20_000_000);
    let config = store.join("wharf.toml");
    write_file(&config, b"users_file = \"users.toml\"\n");
    wharf_cli(
        store.path(),
        &config,
        &[
            "user",
            "add",
            "slow",
            "--home",
            home.to_str().expect("UTF-8 path"),
            "--download-rate",
            "1000000",
            "--password-stdin",
        ],
        "slowpass\n",
        Duration::from_secs(60),
    )
    .assert_success("wharf user add slow");
    let users = store.join("users.toml");
    let server = Server::start_with(
        name,
        ServerOptions::default().config(format!("users_file = {:?}\n", users)),
    );
    (server, store)
}

#[test]
fn tnftp_ctrl_c_aborts_a_download_with_426_then_226() {
    if !require("tnftp") || !require("python3") {
        return;
    }
    let (server, _store) = slow_server("interop-tnftp-abort");
    let out = python_scenario(
        "tnftp_abort.py",
        &server,
        "abort",
        ("slow", "slowpass"),
        &["big.bin"],
        CLIENT_TIMEOUT,
    );
    print!("{out}");
}

fn raw_abort(how: &str) {
    if !require("python3") {
        return;
    }
    let server = Server::start(&format!("interop-abor-{how}"));
    sparse_file(&server.root().join("huge.bin"), 1 << 30);
    python(&server, "abor_client.py", how, &["huge.bin".to_string()]);
}

#[test]
fn abor_with_urgent_iac_as_bsd_ftp_sends_it_gets_426_then_226() {
    raw_abort("oob");
}

#[test]
fn abor_with_telnet_ip_and_synch_inline_gets_426_then_226() {
    raw_abort("inline");
}

// ----- smaller points -------------------------------------------------------------------------

#[test]
fn mdtm_with_a_time_and_a_file_sets_the_time_or_says_it_cannot() {
    let server = Server::start("interop-mdtm-set");
    let path = server.root().join("stamp.txt");
    write_file(&path, b"stamp\n");
    let mut c = server.login();
    // ncftp's form: MDTM YYYYMMDDHHMMSS path, asking to set the modification time.
    let r = c.cmd("MDTM 20200101000000 stamp.txt");
    let mtime = fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let want = 1_577_836_800; // 2020-01-01T00:00:00Z
                              // Set, as MFMT does (issue 17), and answered 213 like MFMT.
    assert_eq!(r.code, 213, "MDTM 20200101000000 stamp.txt: {r}");
    assert_eq!(
        mtime, want,
        "MDTM answered {r} but the file's time is {mtime}, not {want}"
    );
    println!("MDTM with a time: {r}");
    // The query form still answers.
    let r = c.cmd("MDTM stamp.txt");
    assert_eq!(r.code, 213, "MDTM stamp.txt: {r}");
}

#[test]
fn an_ipv6_passive_address_is_refused_by_check_config_and_at_start() {
    let dir = TempDir::new("interop-passive-v6");
    let config = dir.join("wharf.toml");
    write_file(&config, b"passive_address = \"::1\"\n");
    let says_why = |text: &str| {
        text.contains("wharf.toml")
            && text.contains("passive_address")
            && (text.contains("IPv4") || text.contains("IPv6"))
    };

    let out = run_client(
        Command::new(wharf_bin()).arg("check-config").arg(&config),
        Duration::from_secs(30),
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    println!("check-config: {} {text}", out.status);
    assert!(
        !out.status.success(),
        "check-config accepted passive_address = \"::1\" (PASV can only advertise IPv4):\n{text}"
    );
    assert!(
        says_why(&text),
        "check-config must name the file, the key and the reason:\n{text}"
    );

    let root = dir.join("root");
    fs::create_dir_all(&root).expect("mkdir root");
    let serve = run_client_or_kill(
        Command::new(wharf_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(&root)
            .args(["--user", &format!("{USER}:{PASSWORD}"), "--config"])
            .arg(&config)
            .current_dir(dir.path()),
        Duration::from_secs(15),
    );
    let out = serve.unwrap_or_else(|printed| {
        panic!("wharf serve started with passive_address = \"::1\" (killed after 15 s):\n{printed}")
    });
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(!out.status.success(), "serve exited 0:\n{text}");
    assert!(
        says_why(&text),
        "serve must refuse with the file, the key and the reason:\n{text}"
    );
}

/// The features FEAT lists, one per line, without the leading space.
fn features(server: &Server) -> Vec<String> {
    let mut c = Ctrl::connect(server.addr());
    let r = c.cmd("FEAT");
    assert_eq!(r.code, 211, "FEAT: {r}");
    r.lines[1..r.lines.len() - 1]
        .iter()
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn feat_lists_ccc_only_when_allow_ccc_is_on() {
    let off = Server::start("interop-feat-ccc-off");
    let listed = features(&off);
    assert!(
        listed.iter().any(|f| f == "AUTH TLS"),
        "FTPS is on: {listed:?}"
    );
    assert!(
        !listed.iter().any(|f| f == "CCC"),
        "FEAT lists CCC while allow_ccc is off (the default): {listed:?}"
    );
    let on = Server::start_with(
        "interop-feat-ccc-on",
        ServerOptions::default().config("allow_ccc = true\n"),
    );
    let listed = features(&on);
    assert!(
        listed.iter().any(|f| f == "CCC"),
        "FEAT does not list CCC with allow_ccc = true: {listed:?}"
    );
}
