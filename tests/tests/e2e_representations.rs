//! End to end, RFC 959's representations, structures and modes (issue 17): the real `wharf`
//! driven by tests/e2e/rfc959_client.py, a client written from the RFC's text and from
//! docs/representations.md, never from the Rust codecs, so that a codec and its test cannot
//! share one misreading.
//!
//! Each test prepares files in the server's root and in the client's folder, runs one scenario
//! of tests/e2e/representations_client.py (which plays it with that client, checks the replies
//! and the bytes on the wire, and saves what it received), then checks what a user would see:
//! the stored bytes on the server's disk and the bytes the client ended up with.
//!
//! TYPE E needs IBM-1047, which Python's own codecs lack: the client takes it from the PyPI
//! package `ebcdic` (`python3 -m pip install --user ebcdic`; .ci/run installs it). Without it
//! the TYPE E tests print `SKIPPED`, except under `CI=true`, where they fail.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use wharf_tests::e2e::{
    assert_same_bytes, client_script, python_scenario, random_bytes, read_file, require,
    run_client, write_file, Server, ServerOptions, PASSWORD, USER,
};

/// The scenarios; the reference client itself is [`CLIENT`].
const SCRIPT: &str = "representations_client.py";
/// The reference client, whose `selftest` runs without a server.
const CLIENT: &str = "rfc959_client.py";
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs one scenario of [`SCRIPT`] against `server`; prints what it printed.
fn scenario(server: &Server, name: &str, extra: &[&str]) {
    let out = python_scenario(
        SCRIPT,
        server,
        name,
        (USER, PASSWORD),
        extra,
        SCENARIO_TIMEOUT,
    );
    print!("{out}");
}

/// Whether Python has the `ebcdic` package (IBM-1047).
fn ebcdic_installed() -> bool {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "import ebcdic"]);
    run_client(&mut cmd, Duration::from_secs(60))
        .status
        .success()
}

/// Like the harness's `require`, for the Python package `ebcdic`: false (after printing
/// `SKIPPED: ...`) when it is missing, a failure when it is missing and `CI=true`.
fn require_ebcdic() -> bool {
    if !require("python3") {
        return false;
    }
    if ebcdic_installed() {
        return true;
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!(
            "the Python package ebcdic is not installed and CI=true: .ci/run installs it with \
             `python3 -m pip install --user ebcdic`"
        );
    }
    eprintln!(
        "SKIPPED: the Python package ebcdic is not installed \
         (python3 -m pip install --user ebcdic)"
    );
    false
}

/// The names in `dir`, sorted, without the server's own `.wharf-meta.toml` (a failed upload
/// must leave neither its name nor a `.wharf-part.*` file behind).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read the folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".wharf-meta.toml")
        .collect();
    v.sort();
    v
}

/// Text of about `len` bytes in lines of words from a small vocabulary (so it compresses).
fn words(len: usize, seed: u64) -> Vec<u8> {
    const VOCABULARY: &str = "ship cargo wharf crane invoice pallet harbour manifest berth tide \
                              quay bill lading customs container freight";
    let vocabulary: Vec<&str> = VOCABULARY.split_whitespace().collect();
    let noise = random_bytes(len / 2 + 16, seed);
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0;
    while out.len() < len {
        let n = noise[i % noise.len()] as usize;
        out.extend_from_slice(vocabulary[n % vocabulary.len()].as_bytes());
        out.push(if n.is_multiple_of(11) { b'\n' } else { b' ' });
        i += 1;
    }
    out.push(b'\n');
    out
}

// ----- TYPE A with format N, T, C ---------------------------------------------------------------

/// ASA carriage control first on each line (`1` new page, `0` double space, `+` overprint),
/// Telnet format effectors (FF, VT, a lone CR), UTF-8 above 0x7F; LF line ends and no CRLF, so
/// the text comes back byte for byte (docs/representations.md, TYPE A).
const FORMATTED_TEXT: &str = "1TITLE PAGE\n0double spaced\n+overprinted\n plain line\n\
                              form\x0cfeed and\x0bvertical tab\ncarriage\rreturn alone\n\
                              \u{fc}\u{f1}\u{ed}\u{e7}\u{f8}d\u{e9}\n";

/// STOR then RETR in `TYPE A <form>`: stored with LF, CRLF on the wire (the client checks the
/// wire), the same text back.
fn type_a_round_trip(form: &str) {
    if !require("python3") {
        return;
    }
    let server = Server::start(&format!("type-a-{form}"));
    write_file(
        server.client_dir().join("text.txt"),
        FORMATTED_TEXT.as_bytes(),
    );
    scenario(&server, "type_a", &[form]);
    assert_same_bytes(
        &format!("stored in TYPE A {form}"),
        &read_file(server.root().join(format!("a_{form}.txt"))),
        FORMATTED_TEXT.as_bytes(),
    );
    assert_same_bytes(
        &format!("retrieved in TYPE A {form}"),
        &read_file(server.client_dir().join(format!("got_{form}.txt"))),
        FORMATTED_TEXT.as_bytes(),
    );
}

#[test]
fn type_a_non_print_round_trip() {
    type_a_round_trip("N");
}

#[test]
fn type_a_telnet_format_controls_round_trip() {
    type_a_round_trip("T");
}

#[test]
fn type_a_carriage_control_round_trip() {
    type_a_round_trip("C");
}

// ----- TYPE E -------------------------------------------------------------------------------------

/// Every character U+0000-U+00FF but LF (each has one EBCDIC code), 32 to a line, and the
/// characters whose codes IBM-1047 and IBM-037 do not share.
fn latin1_text() -> String {
    let mut s = String::new();
    for line in 0..8u32 {
        for c in line * 32..line * 32 + 32 {
            let ch = char::from_u32(c).expect("Latin-1");
            if ch != '\n' {
                s.push(ch);
            }
        }
        s.push('\n');
    }
    s.push_str("brackets [1] caret ^ not \u{ac} Y-acute \u{dd} diaeresis \u{a8}\n");
    s
}

/// STOR EBCDIC text, check it is stored as UTF-8 with LF; RETR gives the same EBCDIC (the
/// client checks the wire against Python's code page).
fn type_e_round_trip(codepage: &str) {
    if !require_ebcdic() {
        return;
    }
    let server = Server::start(&format!("type-e-{codepage}"));
    let text = latin1_text();
    write_file(server.client_dir().join("text.txt"), text.as_bytes());
    scenario(&server, "type_e", &[codepage]);
    assert_same_bytes(
        &format!("stored from {codepage} (UTF-8, LF line ends)"),
        &read_file(server.root().join("e.txt")),
        text.as_bytes(),
    );
    assert_same_bytes(
        &format!("retrieved in {codepage}"),
        &read_file(server.client_dir().join("got.txt")),
        text.as_bytes(),
    );
}

#[test]
fn type_e_ibm_1047_round_trip() {
    type_e_round_trip("IBM-1047");
}

#[test]
fn type_e_ibm_037_round_trip_chosen_with_site_codepage() {
    type_e_round_trip("IBM-037");
}

#[test]
fn type_e_download_of_a_character_without_a_code_fails_and_replaces_nothing() {
    if !require_ebcdic() {
        return;
    }
    let server = Server::start("type-e-unmappable");
    let euro = format!(
        "{}price: 5 \u{20ac}\nafter it\n",
        "a line of text before it\n".repeat(40)
    );
    let latin1 = b"caf\xe9 au lait\n"; // Latin-1, not UTF-8
    write_file(server.root().join("euro.txt"), euro.as_bytes());
    write_file(server.client_dir().join("euro.txt"), euro.as_bytes());
    write_file(server.root().join("latin1.txt"), latin1);
    scenario(&server, "type_e_unmappable", &[]);
    assert_eq!(names(server.root()), ["euro.txt", "latin1.txt"]);
    assert_same_bytes(
        "euro.txt",
        &read_file(server.root().join("euro.txt")),
        euro.as_bytes(),
    );
}

// ----- STRU R -------------------------------------------------------------------------------------

/// TYPE A, STRU R in `mode`: records are stored one per line (docs/representations.md).
fn stru_r_text(mode: &str) {
    if !require("python3") {
        return;
    }
    let server = Server::start(&format!("stru-r-text-{mode}"));
    write_file(server.root().join("lines.txt"), b"alpha\nbeta\n\ngamma");
    scenario(&server, "stru_r_text", &[mode]);
    assert_same_bytes(
        &format!("records stored from MODE {mode}"),
        &read_file(server.root().join("rec.txt")),
        "first record\n\n  indented  \n\u{fc}n\u{ef}c\u{f6}d\u{e9} bytes pass\nlast\n".as_bytes(),
    );
    assert!(
        !server.root().join("bad.txt").exists(),
        "a record holding an LF was stored"
    );
}

#[test]
fn stru_r_text_records_are_lines_mode_s() {
    stru_r_text("S");
}

#[test]
fn stru_r_text_records_are_lines_mode_b() {
    stru_r_text("B");
}

#[test]
fn stru_r_text_records_are_lines_mode_c() {
    stru_r_text("C");
}

/// Records with 0xFF bytes, empty ones, one of zeros, and one longer than a MODE B block.
fn binary_records() -> Vec<Vec<u8>> {
    vec![
        b"\x00\x01binary".to_vec(),
        Vec::new(),
        vec![0xFF],
        vec![0xFF, 0xFF, 0x01, 0x02, 0xFF, 0x03],
        vec![0; 300],
        random_bytes(70_000, 7),
        b"last".to_vec(),
    ]
}

/// RFC 959 §3.4.1's stream-mode record encoding: 0xFF doubled, `0xFF 0x01` after each record,
/// and the file's end as `last` says.
fn stream_record_encoding(records: &[Vec<u8>], last: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        for &b in r {
            out.push(b);
            if b == 0xFF {
                out.push(0xFF);
            }
        }
        if i + 1 < records.len() {
            out.extend_from_slice(b"\xff\x01");
        }
    }
    out.extend_from_slice(last);
    out
}

/// TYPE I, STRU R in `mode`: the stored file is the stream-mode record encoding of the
/// records; the same file retrieved in STRU F MODE S gives those bytes.
fn stru_r_binary(mode: &str) {
    if !require("python3") {
        return;
    }
    let server = Server::start(&format!("stru-r-binary-{mode}"));
    let records = binary_records();
    let hex: String = records
        .iter()
        .map(|r| r.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
        .collect();
    write_file(server.client_dir().join("records.hex"), hex.as_bytes());
    write_file(server.root().join("malformed.bin"), b"ab\xff\x07cd\xff\x01");
    scenario(&server, "stru_r_binary", &[mode]);
    let stored = read_file(server.root().join("rec.bin"));
    // docs/representations.md says the stored file is "the stream-mode record encoding" but not
    // how it ends: 0xFF 0x03 (the last record and the file), 0xFF 0x01 0xFF 0x02, or 0xFF 0x01
    // alone. Any of the three is RFC 959's encoding of these records; nothing else is.
    let forms = [
        stream_record_encoding(&records, b"\xff\x03"),
        stream_record_encoding(&records, b"\xff\x01\xff\x02"),
        stream_record_encoding(&records, b"\xff\x01"),
    ];
    assert!(
        forms.contains(&stored),
        "records stored from MODE {mode}: {} bytes, not the stream-mode record encoding \
         ({} bytes ending 0xFF 0x03); first 40 bytes {:02x?}, last 8 {:02x?}",
        stored.len(),
        forms[0].len(),
        &stored[..stored.len().min(40)],
        &stored[stored.len().saturating_sub(8)..]
    );
    assert_same_bytes(
        "rec.bin retrieved in STRU F, MODE S",
        &read_file(server.client_dir().join("stored_via_f.bin")),
        &stored,
    );
}

#[test]
fn stru_r_binary_stored_in_stream_record_encoding_mode_s() {
    stru_r_binary("S");
}

#[test]
fn stru_r_binary_stored_in_stream_record_encoding_mode_b() {
    stru_r_binary("B");
}

#[test]
fn stru_r_binary_stored_in_stream_record_encoding_mode_c() {
    stru_r_binary("C");
}

// ----- STRU P -------------------------------------------------------------------------------------

/// TYPE I, STRU P in `mode`: pages of 200 bytes are stored concatenated; a download comes in
/// pages of 255 (the client checks the wire).
fn stru_p(mode: &str) {
    if !require("python3") {
        return;
    }
    let server = Server::start(&format!("stru-p-{mode}"));
    let src = random_bytes(1000, 11);
    write_file(server.client_dir().join("page_src.bin"), &src);
    write_file(server.root().join("down.bin"), &src);
    scenario(&server, "stru_p", &[mode]);
    assert_same_bytes(
        &format!("pages stored from MODE {mode}"),
        &read_file(server.root().join("up.bin")),
        &src,
    );
}

#[test]
fn stru_p_pages_mode_s() {
    stru_p("S");
}

#[test]
fn stru_p_pages_mode_b() {
    stru_p("B");
}

#[test]
fn stru_p_carries_at_most_65280_bytes() {
    if !require("python3") {
        return;
    }
    let server = Server::start("stru-p-limit");
    let full = random_bytes(65_280, 12);
    write_file(server.root().join("p65280.bin"), &full);
    write_file(server.client_dir().join("p65280.bin"), &full);
    write_file(server.root().join("p65281.bin"), &random_bytes(65_281, 13));
    scenario(&server, "stru_p_limit", &[]);
}

// ----- MODE B and MODE C --------------------------------------------------------------------------

/// 5 MiB: random stretches with runs between them (zeros, 0xFF, spaces, letters), so MODE C's
/// replicated bytes and filler strings are used in both directions.
fn five_mib() -> Vec<u8> {
    let mut v = Vec::with_capacity(5 << 20);
    let mut i = 0u64;
    while v.len() < 5 << 20 {
        let noise = random_bytes(1 + (i as usize * 7919) % 4000, i);
        v.extend_from_slice(&noise);
        let run = [0x00u8, 0xFF, 0x20, b'x'][i as usize % 4];
        v.extend(std::iter::repeat_n(run, (i as usize * 37) % 200));
        i += 1;
    }
    v.truncate(5 << 20);
    v
}

/// STOR and RETR of 5 MiB in TYPE I, MODE `mode`.
fn mode_round_trip(mode: &str) {
    if !require("python3") {
        return;
    }
    let server = Server::start(&format!("mode-{mode}-5mib"));
    let big = five_mib();
    write_file(server.client_dir().join("big.bin"), &big);
    write_file(server.root().join("down.bin"), &big);
    scenario(&server, "mode_round_trip", &[mode]);
    assert_same_bytes(
        &format!("stored from MODE {mode}"),
        &read_file(server.root().join("up.bin")),
        &big,
    );
    assert_same_bytes(
        &format!("retrieved in MODE {mode}"),
        &read_file(server.client_dir().join("got.bin")),
        &big,
    );
}

#[test]
fn mode_b_round_trip_5_mib() {
    mode_round_trip("B");
}

#[test]
fn mode_c_round_trip_5_mib() {
    mode_round_trip("C");
}

#[test]
fn mode_b_upload_closed_before_the_eof_block_is_refused() {
    if !require("python3") {
        return;
    }
    let server = Server::start("mode-b-no-eof");
    scenario(&server, "mode_b_no_eof", &[]);
    assert_eq!(
        names(server.root()),
        Vec::<String>::new(),
        "an upload without its EOF block left a file"
    );
}

// ----- restart (RFC 959 §3.5) ---------------------------------------------------------------------

#[test]
fn mode_b_retr_resumes_from_a_server_restart_marker() {
    if !require("python3") {
        return;
    }
    // A marker every 256 KiB (`restart_marker_interval`, default 1 MiB).
    let server = Server::start_with(
        "restart-retr",
        ServerOptions::default().config("restart_marker_interval = 262144\n"),
    );
    let big = random_bytes(12 << 20, 21);
    write_file(server.root().join("big.bin"), &big);
    write_file(server.client_dir().join("big.bin"), &big);
    scenario(&server, "restart_retr", &[]);
    assert_same_bytes(
        "the download resumed from a marker",
        &read_file(server.client_dir().join("got.bin")),
        &big,
    );
}

#[test]
fn mode_b_stor_resumes_from_a_110_mark_after_the_connection_was_cut() {
    if !require("python3") {
        return;
    }
    let server = Server::start("restart-stor");
    let big = random_bytes(4 << 20, 22);
    write_file(server.client_dir().join("big.bin"), &big);
    scenario(&server, "restart_stor", &[]);
    assert_same_bytes(
        "the upload resumed from a 110 MARK",
        &read_file(server.root().join("up.bin")),
        &big,
    );
    assert_eq!(names(server.root()), ["up.bin"]);
}

// ----- MODE Z -------------------------------------------------------------------------------------

#[test]
fn mode_z_download_read_by_python_zlib_at_levels_1_and_9() {
    if !require("python3") {
        return;
    }
    let server = Server::start("mode-z-download");
    let text = words(2 << 20, 31);
    write_file(server.root().join("text.txt"), &text);
    write_file(server.client_dir().join("text.txt"), &text);
    scenario(&server, "mode_z_download", &[]);
}

#[test]
fn mode_z_upload_made_by_python_zlib() {
    if !require("python3") {
        return;
    }
    let server = Server::start("mode-z-upload");
    let text = words(2 << 20, 32);
    write_file(server.client_dir().join("text.txt"), &text);
    scenario(&server, "mode_z_upload", &[]);
    assert_same_bytes(
        "stored from MODE Z",
        &read_file(server.root().join("zup.txt")),
        &text,
    );
}

#[test]
fn mode_z_truncated_or_corrupt_upload_is_refused() {
    if !require("python3") {
        return;
    }
    let server = Server::start("mode-z-bad-upload");
    write_file(server.client_dir().join("text.txt"), &words(300_000, 33));
    scenario(&server, "mode_z_bad_upload", &[]);
    assert_eq!(
        names(server.root()),
        Vec::<String>::new(),
        "a refused MODE Z upload left a file"
    );
}

// ----- FEAT, LANG, listings -----------------------------------------------------------------------

#[test]
fn feat_lists_mode_z_lang_mfmt_and_hash_and_lang_en_is_accepted() {
    if !require("python3") {
        return;
    }
    let server = Server::start("feat-lang");
    scenario(&server, "feat_lang", &[]);
}

#[test]
fn listings_follow_the_type_and_mode_nlst_in_ebcdic_list_compressed() {
    if !require_ebcdic() {
        return;
    }
    let server = Server::start("listings");
    write_file(server.root().join("alpha.txt"), b"a\n");
    write_file(server.root().join("beta[1].dat"), b"b\n");
    fs::create_dir(server.root().join("sub")).expect("mkdir sub");
    scenario(&server, "listings", &["alpha.txt", "beta[1].dat", "sub"]);
}

// ----- the client itself --------------------------------------------------------------------------

#[test]
fn reference_client_selftest() {
    if !require("python3") {
        return;
    }
    let have_1047 = ebcdic_installed();
    if !have_1047 && std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("the Python package ebcdic is not installed and CI=true (.ci/run installs it)");
    }
    let mut cmd = Command::new("python3");
    cmd.arg(client_script(CLIENT))
        .arg("selftest")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_client(&mut cmd, Duration::from_secs(120));
    out.assert_success("rfc959_client.py selftest");
    print!("{}", out.stdout);
    assert!(
        out.stdout.lines().any(|l| l == "PASS selftest"),
        "selftest exited 0 without its PASS line:\n{}",
        out.stdout
    );
}
