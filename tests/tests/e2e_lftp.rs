//! End to end with lftp: `mirror` (download) and `mirror -R` (upload) of a tree with nested
//! folders, UTF-8 names, names with spaces, an empty file and an empty folder, compared byte for
//! byte by walking both trees.

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use wharf_tests::e2e::{
    assert_same_tree, random_bytes, require, run_client, write_file, ClientOutput, Server,
    PASSWORD, USER,
};

/// Fills `base` with the tree both tests move.
fn build_tree(base: &Path) {
    write_file(base.join("top.txt"), b"at the top\n");
    write_file(base.join("empty.txt"), b"");
    write_file(base.join("big.bin"), &random_bytes(2_000_000, 21));
    write_file(
        base.join("nested/deeper/deepest/file.bin"),
        &random_bytes(200_000, 22),
    );
    write_file(
        base.join("nested/sibling.txt"),
        b"sibling\r\nwith CRLF kept\r\n",
    );
    write_file(
        base.join("Grüße/naïve café.txt"),
        "UTF-8 content: ünïcødé\n".as_bytes(),
    );
    write_file(base.join("日本語/ファイル.bin"), &random_bytes(12_345, 23));
    write_file(
        base.join("with space/file name with spaces.txt"),
        b"spaces\n",
    );
    std::fs::create_dir_all(base.join("empty folder")).expect("mkdir");
}

/// `lftp -c 'settings; open ...; COMMANDS'` with a UTF-8 locale and a private HOME.
fn lftp(server: &Server, commands: &str) -> ClientOutput {
    let script = format!(
        "set net:max-retries 1; set net:timeout 10; set net:reconnect-interval-base 1; \
         set ftp:ssl-allow false; set cmd:fail-exit true; \
         open -u {USER},{PASSWORD} {}; {commands}",
        server.url()
    );
    let home = server.dir().join("lftp-home");
    std::fs::create_dir_all(&home).expect("mkdir lftp home");
    let out = run_client(
        Command::new("lftp")
            .arg("-c")
            .arg(&script)
            .env("HOME", &home)
            .env("LC_ALL", "C.UTF-8")
            .env("LANG", "C.UTF-8"),
        Duration::from_secs(120),
    );
    out.assert_success(&format!("lftp -c {script:?}"));
    out
}

fn quoted(p: &Path) -> String {
    let s = p.to_str().expect("temporary paths are UTF-8");
    assert!(!s.contains('"'), "path with a quote: {s}");
    format!("\"{s}\"")
}

#[test]
fn lftp_mirror_downloads_the_tree() {
    if !require("lftp") {
        return;
    }
    let server = Server::start("lftp-mirror");
    build_tree(&server.root().join("exchange"));
    let dest = server.client_dir().join("copy");
    lftp(
        &server,
        &format!("mirror --parallel=3 /exchange {}", quoted(&dest)),
    );
    assert_same_tree(&dest, &server.root().join("exchange"));
}

#[test]
fn lftp_mirror_reverse_uploads_the_tree() {
    if !require("lftp") {
        return;
    }
    let server = Server::start("lftp-mirror-r");
    let src = server.client_dir().join("outgoing");
    build_tree(&src);
    lftp(&server, &format!("mirror -R {} /uploaded", quoted(&src)));
    assert_same_tree(&server.root().join("uploaded"), &src);

    // Mirroring again uploads nothing new and changes nothing.
    lftp(&server, &format!("mirror -R {} /uploaded", quoted(&src)));
    assert_same_tree(&server.root().join("uploaded"), &src);
}
