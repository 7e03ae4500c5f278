//! End to end with curl: listings, `-T` uploads and downloads in passive (EPSV, PASV, and after
//! PRET with `--ftp-pret`) and active (EPRT and PORT) mode, and the three `--ftp-method` ways
//! of reaching a file two folders down; bytes compared on both sides.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use wharf_tests::e2e::{
    assert_same_bytes, random_bytes, read_file, require, run_client, write_file, ClientOutput,
    Server, PASSWORD, USER,
};

const TIMEOUT: Duration = Duration::from_secs(60);

/// `curl -sS --max-time 30 --user alice:secret ARGS...`, which must succeed.
fn curl(args: &[&str]) -> ClientOutput {
    let out = run_client(
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "--user"])
            .arg(format!("{USER}:{PASSWORD}"))
            .args(args),
        TIMEOUT,
    );
    out.assert_success(&format!("curl {}", args.join(" ")));
    out
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn curl_lists_a_folder() {
    if !require("curl") {
        return;
    }
    let server = Server::start("curl-list");
    write_file(server.root().join("one.txt"), b"1\n");
    write_file(server.root().join("two words.txt"), b"22\n");
    write_file(server.root().join("sub/inner.txt"), b"333\n");

    let out = curl(&[&format!("{}/", server.url())]);
    let names: BTreeSet<String> = out
        .stdout
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            assert!(fields.len() >= 9, "LIST line not in ls -l form: {l:?}");
            fields[8..].join(" ")
        })
        .collect();
    let want: BTreeSet<String> = ["one.txt", "two words.txt", "sub"].map(String::from).into();
    assert_eq!(names, want, "LIST through curl:\n{}", out.stdout);
    let sub_line = out.stdout.lines().find(|l| l.ends_with(" sub")).unwrap();
    assert!(sub_line.starts_with('d'), "sub is not a folder: {sub_line}");

    let out = curl(&["--list-only", &format!("{}/", server.url())]);
    let names: BTreeSet<String> = out.stdout.lines().map(String::from).collect();
    assert_eq!(names, want, "NLST through curl --list-only");

    let out = curl(&["--list-only", &format!("{}/sub/", server.url())]);
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), ["inner.txt"]);
}

#[test]
fn curl_upload_and_download_passive() {
    if !require("curl") {
        return;
    }
    let server = Server::start("curl-pasv");
    let data = random_bytes(3_000_000, 11);
    let local = server.client_dir().join("up.bin");
    write_file(&local, &data);

    // -T upload (EPSV), into folders curl creates.
    curl(&[
        "--ftp-create-dirs",
        "-T",
        path_str(&local),
        &format!("{}/incoming/new/up.bin", server.url()),
    ]);
    assert_same_bytes(
        "curl -T upload on disk",
        &read_file(server.root().join("incoming/new/up.bin")),
        &data,
    );

    // Download with the default (EPSV), with --ftp-pasv, with plain PASV, and announced with
    // PRET first (curl fails when PRET is refused).
    for (i, extra) in [
        &[][..],
        &["--ftp-pasv"][..],
        &["--ftp-pasv", "--disable-epsv"][..],
        &["--ftp-pret"][..],
    ]
    .iter()
    .enumerate()
    {
        let dest = server.client_dir().join(format!("down{i}.bin"));
        let mut args: Vec<&str> = extra.to_vec();
        let url = format!("{}/incoming/new/up.bin", server.url());
        args.extend(["-o", path_str(&dest), &url]);
        curl(&args);
        assert_same_bytes(
            &format!("download with {extra:?}"),
            &read_file(&dest),
            &data,
        );
    }
}

#[test]
fn curl_active_mode_ftp_port() {
    if !require("curl") {
        return;
    }
    let server = Server::start("curl-port");
    let data = random_bytes(2_500_000, 12);
    let local = server.client_dir().join("active.bin");
    write_file(&local, &data);
    write_file(server.root().join("listed.txt"), b"x\n");

    // EPRT (curl's default for --ftp-port), then plain PORT with --disable-eprt.
    for (i, extra) in [&[][..], &["--disable-eprt"][..]].iter().enumerate() {
        let name = format!("active{i}.bin");
        let mut args = vec!["--ftp-port", "127.0.0.1"];
        args.extend_from_slice(extra);
        let url = format!("{}/{name}", server.url());
        let mut up = args.clone();
        up.extend(["-T", path_str(&local), &url]);
        curl(&up);
        assert_same_bytes(
            &format!("active upload {extra:?}"),
            &read_file(server.root().join(&name)),
            &data,
        );

        let dest = server.client_dir().join(format!("back{i}.bin"));
        let mut down = args.clone();
        down.extend(["-o", path_str(&dest), &url]);
        curl(&down);
        assert_same_bytes(
            &format!("active download {extra:?}"),
            &read_file(&dest),
            &data,
        );

        let mut list = args.clone();
        let root_url = format!("{}/", server.url());
        list.extend(["--list-only", &root_url]);
        let out = curl(&list);
        assert!(
            out.stdout.lines().any(|l| l == "listed.txt"),
            "active NLST {extra:?}: {}",
            out.stdout
        );
    }
}

#[test]
fn curl_ftp_methods_reach_a_file_two_folders_down() {
    if !require("curl") {
        return;
    }
    let server = Server::start("curl-methods");
    let data = random_bytes(700_000, 13);
    write_file(server.root().join("a/b/deep.bin"), &data);
    let upload = random_bytes(300_000, 14);
    let local = server.client_dir().join("upload.bin");
    write_file(&local, &upload);

    for method in ["nocwd", "singlecwd", "multicwd"] {
        let dest = server.client_dir().join(format!("deep-{method}.bin"));
        curl(&[
            "--ftp-method",
            method,
            "-o",
            path_str(&dest),
            &format!("{}/a/b/deep.bin", server.url()),
        ]);
        assert_same_bytes(
            &format!("download with --ftp-method {method}"),
            &read_file(&dest),
            &data,
        );

        let name = format!("up-{method}.bin");
        curl(&[
            "--ftp-method",
            method,
            "-T",
            path_str(&local),
            &format!("{}/a/b/{name}", server.url()),
        ]);
        assert_same_bytes(
            &format!("upload with --ftp-method {method}"),
            &read_file(server.root().join("a/b").join(&name)),
            &upload,
        );

        let out = curl(&[
            "--ftp-method",
            method,
            "--list-only",
            &format!("{}/a/b/", server.url()),
        ]);
        assert!(
            out.stdout.lines().any(|l| l == "deep.bin"),
            "NLST of a/b with --ftp-method {method}: {}",
            out.stdout
        );
    }
}

#[test]
fn curl_missing_file_is_an_error() {
    if !require("curl") {
        return;
    }
    let server = Server::start("curl-missing");
    let out = run_client(
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "--user"])
            .arg(format!("{USER}:{PASSWORD}"))
            .arg(format!("{}/nothing-here.bin", server.url())),
        TIMEOUT,
    );
    // curl exit 78: "The resource referenced in the URL does not exist" (550 on RETR).
    assert_eq!(
        out.status.code(),
        Some(78),
        "curl on a missing file: {out:?}"
    );
    let out = run_client(
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "--user"])
            .arg(format!("{USER}:wrong-password"))
            .arg(format!("{}/", server.url())),
        TIMEOUT,
    );
    // curl exit 67: "The user name, password, or similar was not accepted" (530).
    assert_eq!(
        out.status.code(),
        Some(67),
        "curl with a bad password: {out:?}"
    );
}
