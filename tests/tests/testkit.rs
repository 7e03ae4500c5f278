//! The core's test kit itself: the fake runtime answers as action.rs documents (moved out of
//! core/src so that nothing under core/ reads a clock, test code included).

use std::time::{Duration, Instant};
use wharf_core::testkit::*;
use wharf_core::*;

fn harness() -> Harness {
    Harness::builder()
        .user("alice", "secret", true)
        .files(|fs| {
            fs.write_file("/a.txt", "one\ntwo\n").unwrap();
            fs.mkdir_all("/dir/sub").unwrap();
        })
        .start(Instant::now())
}

#[test]
fn greeting_login_and_retrieve() {
    let mut h = harness();
    let greeting = h.take_replies();
    assert_eq!(greeting.len(), 1);
    assert_eq!(greeting[0].code(), 220);
    h.login("alice", "secret").unwrap();
    assert!(h.command_text("PASV").starts_with("227 "));
    let text = h.command_text("RETR a.txt");
    assert!(
        text.starts_with("150 ") && text.contains("\r\n226 "),
        "{text}"
    );
    let t = h.last_transfer().unwrap();
    assert_eq!(t.data, b"one\r\ntwo\r\n");
    assert_eq!(t.result, Some(Ok(())));
    assert!(h.anomalies().is_empty());
}

#[test]
fn upload_held_then_aborted() {
    let mut h = harness();
    h.take_replies();
    h.login("alice", "secret").unwrap();
    h.command("TYPE I");
    h.command("EPSV");
    h.hold_next_transfer();
    h.queue_upload("data");
    assert!(h.command_text("STOR new.bin").starts_with("150 "));
    assert!(h.transfer_running());
    assert_eq!(h.fs.file("/new.bin"), Some(&b""[..]));
    let text = h.command_text("ABOR");
    assert!(
        text.starts_with("426 ") && text.contains("\r\n226 "),
        "{text}"
    );
    assert!(!h.transfer_running());
}

#[test]
fn memfs_rename_semantics() {
    let mut fs = MemFs::new();
    fs.write_file("/d/a", "x").unwrap();
    fs.write_file("/b", "yy").unwrap();
    fs.mkdir_all("/e").unwrap();
    assert_eq!(fs.rename("/d", "/d/x"), Err(StorageError::InvalidName));
    assert_eq!(fs.rename("/b", "/e"), Err(StorageError::IsADirectory));
    fs.rename("/d/a", "/b").unwrap();
    assert_eq!(fs.file("/b"), Some(&b"x"[..]));
    assert_eq!(fs.total_bytes(), 1);
    fs.rename("/d", "/e").unwrap();
    assert!(fs.is_dir("/e") && !fs.exists("/d"));
    assert_eq!(fs.remove_dir("/"), Err(StorageError::PermissionDenied));
}

#[test]
fn timeouts_fire_when_time_is_advanced() {
    let mut h = harness();
    h.take_replies();
    h.advance(Duration::from_secs(59));
    assert!(h.take_replies().is_empty());
    h.advance(Duration::from_secs(2));
    let r = h.take_replies();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].code(), 421);
    assert!(h.is_closed());
}

#[test]
fn reply_checker() {
    assert!(check_reply(&Reply::new(200, "ok")).is_ok());
    assert!(check_reply(&Reply::new(214, "a\nb\nc")).is_ok());
    assert!(check_reply(&Reply::with_body(211, "Features:", ["UTF8"], "End")).is_ok());
    assert!(check_reply(&Reply::with_body(214, "x", ["UTF8"], "End")).is_err());
}
