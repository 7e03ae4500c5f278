//! The transfer log in the standard xferlog format, as wu-ftpd, vsftpd and ProFTPD write it
//! (see xferlog(5)): one line per file transfer, whole or not, 14 fields separated by single
//! spaces:
//!
//! ```text
//! current-time transfer-time remote-host file-size filename transfer-type special-action-flag
//!   direction access-mode username service-name authentication-method authenticated-user-id
//!   completion-status
//! Sat Nov 21 20:30:00 2026 1 127.0.0.1 5 /Outbox/a.txt b _ i r acme/alice ftp 0 * c
//! ```
//!
//! (`current-time` is itself five space-separated words, so a line splits into 18 words.)
//!
//! Choices where the servers differ, and why:
//! - `current-time` is in the `ctime(3)` form wu-ftpd writes (`Sat Nov  1 20:30:00 2026`: the
//!   day of the month padded with a space), in UTC like every time Wharf prints (SITE ZONE says
//!   `+0000`); the others write local time.
//! - `transfer-time` is whole seconds, rounded, at least 1 (vsftpd also never writes 0).
//! - `filename` is the path as the user sees it (`/Outbox/a.txt`), not the path on the
//!   server's disk. Spaces would break the format, so white space and control characters are
//!   written as `_`: vsftpd replaces spaces with `_`, ProFTPD white space and control
//!   characters; we do what ProFTPD does, which also keeps a line from being split by a name
//!   with a newline in it.
//! - `access-mode` is `a` for the anonymous login and `r` for every account; `username` is
//!   the login name (`partner/user`), with the same replacements as the file name.
//! - `service-name` `ftp`, `authentication-method` `0`, `authenticated-user-id` `*`: as
//!   vsftpd writes them (no RFC 931 lookups).
//! - `completion-status` is `c` for a transfer that completed (226) and `i` for one that did
//!   not (the file on either side is incomplete).
//! - Only transfers that started (got their `150`: the file and the data connection were
//!   open) are logged; one that failed before that (`425`) moved nothing and is only in the
//!   events file, as `upload_failed` / `download_failed`. Listings are not logged.
//!
//! This module formats lines; [`crate::events`] writes them (one `write` per line to a file
//! opened for appending, like the events log).

use std::net::IpAddr;
use std::time::Duration;
use wharf_core::{Representation, UnixTime};

/// One file transfer, as the transfer log records it.
#[derive(Clone, Debug)]
pub struct Transfer<'a> {
    /// When the transfer ended.
    pub time: UnixTime,
    /// How long it took.
    pub duration: Duration,
    /// The client's address.
    pub remote_host: IpAddr,
    /// Bytes moved on the data connection.
    pub size: u64,
    /// The path as the user sees it.
    pub filename: &'a str,
    /// TYPE A or TYPE I.
    pub representation: Representation,
    /// An upload (`i`), else a download (`o`).
    pub incoming: bool,
    /// Logged in as anonymous.
    pub anonymous: bool,
    /// The login name.
    pub user: &'a str,
    /// The transfer completed.
    pub complete: bool,
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Sat Nov 21 20:30:00 2026`: `t` in the form of `ctime(3)`, in UTC.
pub fn ctime(t: UnixTime) -> String {
    let c = t.to_civil();
    // 1970-01-01 was a Thursday.
    let weekday = (t.0.div_euclid(86_400) + 4).rem_euclid(7) as usize;
    let month = MONTHS[(c.month as usize).clamp(1, 12) - 1];
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[weekday], month, c.day, c.hour, c.minute, c.second, c.year
    )
}

/// A field with white space and control characters replaced by `_` (an empty one becomes
/// `_` too, so that every line keeps its field count).
pub fn field(s: &str) -> String {
    if s.is_empty() {
        return "_".into();
    }
    s.chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Whole seconds, rounded, at least 1.
fn seconds(d: Duration) -> u64 {
    let rounded = (d.as_millis() + 500) / 1000;
    u64::try_from(rounded).unwrap_or(u64::MAX).max(1)
}

/// The log line of `t`, with its final newline.
pub fn line(t: &Transfer<'_>) -> String {
    format!(
        "{} {} {} {} {} {} _ {} {} {} ftp 0 * {}\n",
        ctime(t.time),
        seconds(t.duration),
        t.remote_host,
        t.size,
        field(t.filename),
        match t.representation {
            Representation::Ascii => 'a',
            Representation::Binary => 'b',
        },
        if t.incoming { 'i' } else { 'o' },
        if t.anonymous { 'a' } else { 'r' },
        field(t.user),
        if t.complete { 'c' } else { 'i' },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_core::time::Civil;

    fn at(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> UnixTime {
        UnixTime::from_civil(Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    #[test]
    fn ctime_form() {
        assert_eq!(
            ctime(at(2026, 11, 21, 20, 30, 0)),
            "Sat Nov 21 20:30:00 2026"
        );
        assert_eq!(ctime(UnixTime(0)), "Thu Jan  1 00:00:00 1970");
        assert_eq!(
            ctime(at(2024, 2, 29, 23, 59, 59)),
            "Thu Feb 29 23:59:59 2024"
        );
        assert_eq!(ctime(at(1969, 12, 31, 0, 0, 0)), "Wed Dec 31 00:00:00 1969");
    }

    #[test]
    fn the_example_line() {
        let t = Transfer {
            time: at(2026, 11, 21, 20, 30, 0),
            duration: Duration::from_millis(120),
            remote_host: "127.0.0.1".parse().unwrap(),
            size: 5,
            filename: "/Outbox/a.txt",
            representation: Representation::Binary,
            incoming: true,
            anonymous: false,
            user: "acme/alice",
            complete: true,
        };
        assert_eq!(
            line(&t),
            "Sat Nov 21 20:30:00 2026 1 127.0.0.1 5 /Outbox/a.txt b _ i r acme/alice ftp 0 * c\n"
        );
    }

    #[test]
    fn odd_names_keep_the_field_count() {
        let t = Transfer {
            time: at(2026, 1, 2, 3, 4, 5),
            duration: Duration::from_millis(10_600),
            remote_host: "::1".parse().unwrap(),
            size: 0,
            filename: "/In box/a\tb\nc\u{7f}d.txt",
            representation: Representation::Ascii,
            incoming: false,
            anonymous: true,
            user: "",
            complete: false,
        };
        let l = line(&t);
        assert!(l.ends_with('\n') && l.matches('\n').count() == 1, "{l:?}");
        let words: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(words.len(), 18, "{l:?}");
        assert_eq!(words[5], "11");
        assert_eq!(words[6], "::1");
        assert_eq!(words[8], "/In_box/a_b_c_d.txt");
        assert_eq!(&words[9..], ["a", "_", "o", "a", "_", "ftp", "0", "*", "i"]);
    }
}
