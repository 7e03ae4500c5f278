//! Replies on the control connection, encoded exactly as RFC 959 §4.2 defines them.
//!
//! A [`Reply`] holds its wire bytes, built once. A one-line reply is `NNN text CRLF`. A multi-line
//! reply repeats the code on every line: `NNN-first CRLF`, `NNN-middle CRLF` ... `NNN last CRLF`,
//! so that no line of a reply can be mistaken for the end of it and every line begins with three
//! digits. Two replies follow a later RFC instead, because clients parse them by that RFC:
//! the feature lines of FEAT (RFC 2389: each begins with one space; FileZilla does not strip a
//! `211-` prefix and would miss every feature) and the entry line of MLST (RFC 3659 §7.2: one
//! space, then the facts). [`Reply::with_body`] builds those.
//!
//! Text is sanitised: CR and other control characters become `?`, so a file name can never end a
//! reply line early or inject a reply of its own.

use core::fmt;

/// One reply, ready to write to the control connection.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    wire: Vec<u8>,
}

impl Reply {
    /// A reply whose text may span several lines (separated by `\n`).
    ///
    /// `code` must be a three-digit reply code (100..=599); anything else is a bug in the caller
    /// and is clamped to 500 so that the wire stays well-formed.
    pub fn new(code: u16, text: &str) -> Reply {
        let code = checked_code(code);
        let mut wire = Vec::with_capacity(text.len() + 8);
        let mut lines = text.split('\n').peekable();
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { b'-' } else { b' ' };
            push_code(&mut wire, code, sep);
            push_clean(&mut wire, line);
            wire.extend_from_slice(b"\r\n");
        }
        Reply { code, wire }
    }

    /// `NNN-first`, then each body line as ` line` (one leading space), then `NNN last`: the
    /// shape RFC 2389 requires of FEAT and RFC 3659 of MLST.
    pub fn with_body<'a>(
        code: u16,
        first: &str,
        body: impl IntoIterator<Item = &'a str>,
        last: &str,
    ) -> Reply {
        let code = checked_code(code);
        let mut wire = Vec::with_capacity(64);
        push_code(&mut wire, code, b'-');
        push_clean(&mut wire, first);
        wire.extend_from_slice(b"\r\n");
        for line in body {
            wire.push(b' ');
            push_clean(&mut wire, line);
            wire.extend_from_slice(b"\r\n");
        }
        push_code(&mut wire, code, b' ');
        push_clean(&mut wire, last);
        wire.extend_from_slice(b"\r\n");
        Reply { code, wire }
    }

    /// The three-digit reply code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The bytes to write to the control connection, CRLF line endings included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.wire
    }

    /// The reply as text (lossless: the wire form is always valid UTF-8).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.wire).unwrap_or("")
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({:?})", self.as_str())
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn checked_code(code: u16) -> u16 {
    if (100..=599).contains(&code) {
        code
    } else {
        500
    }
}

fn push_code(wire: &mut Vec<u8>, code: u16, sep: u8) {
    wire.extend_from_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        sep,
    ]);
}

fn push_clean(wire: &mut Vec<u8>, text: &str) {
    for ch in text.chars() {
        if ch.is_control() {
            wire.push(b'?');
        } else {
            let mut buf = [0u8; 4];
            wire.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
    }
}

/// Quotes a path for a 257 reply: wrapped in `"`, every `"` inside doubled (RFC 959 appendix II).
pub fn quote_path(path: &str) -> String {
    let mut s = String::with_capacity(path.len() + 2);
    s.push('"');
    for ch in path.chars() {
        if ch == '"' {
            s.push('"');
        }
        s.push(ch);
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line() {
        assert_eq!(Reply::new(200, "OK").as_bytes(), b"200 OK\r\n");
    }

    #[test]
    fn multi_line_repeats_code() {
        let r = Reply::new(214, "Commands:\n 123 USER\nEnd");
        assert_eq!(r.as_str(), "214-Commands:\r\n214- 123 USER\r\n214 End\r\n");
    }

    #[test]
    fn body_lines_begin_with_space() {
        let r = Reply::with_body(211, "Features:", ["UTF8", "SIZE"], "End");
        assert_eq!(r.as_str(), "211-Features:\r\n UTF8\r\n SIZE\r\n211 End\r\n");
    }

    #[test]
    fn control_characters_cannot_break_lines() {
        let r = Reply::new(550, "bad\rname\u{0}");
        assert_eq!(r.as_str(), "550 bad?name?\r\n");
    }

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote_path("/a\"b"), "\"/a\"\"b\"");
    }
}
