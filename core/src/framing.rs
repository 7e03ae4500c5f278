//! Line framing of the control connection.
//!
//! Owns the bytes between the socket and the command parser: Telnet IAC sequences are stripped
//! (RFC 959 §4.1.3: the control connection speaks Telnet; a Data Mark left at the start of a
//! line by a Synch whose IAC went as urgent data is dropped too), a line ends at LF, CRLF or a bare CR
//! (a client that sends `ABOR\r\n` with MSG_OOB, as Python's ftplib does, has its LF taken out
//! of the stream by the receiving kernel), and a line longer than the configured bound is
//! dropped as it arrives, never buffered whole, and reported once as [`Frame::TooLong`].
//!
//! Every byte is looked at exactly once, when it arrives: the search for the end of a line never
//! rescans. It does no I/O and holds at most the bound plus the complete lines not yet consumed.

use std::collections::VecDeque;

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;
const WILL: u8 = 251;
const DONT: u8 = 254;
/// Telnet Data Mark, the end of a Synch (RFC 854).
const DM: u8 = 242;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Telnet {
    Data,
    Iac,
    /// After WILL/WONT/DO/DONT: one option byte follows.
    Option,
    /// Inside a subnegotiation, until IAC SE.
    Sub,
    SubIac,
}

/// One complete unit from the control connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A command line without its terminator.
    Line(&'a [u8]),
    /// A line that exceeded the bound; its bytes were discarded.
    TooLong,
}

#[derive(Clone, Copy, Debug)]
enum Queued {
    Line(usize),
    TooLong,
}

/// Splits the control stream into lines. See the module documentation.
#[derive(Debug)]
pub struct LineFramer {
    max_line: usize,
    /// Bytes of complete lines not yet taken, followed by the current partial line.
    buf: Vec<u8>,
    /// Start of the first line not yet taken.
    read: usize,
    /// Start of the current partial line.
    partial: usize,
    queue: VecDeque<Queued>,
    telnet: Telnet,
    after_cr: bool,
    discarding: bool,
}

impl LineFramer {
    /// A framer that refuses lines longer than `max_line` bytes (terminator excluded).
    pub fn new(max_line: usize) -> LineFramer {
        LineFramer {
            max_line: max_line.max(16),
            buf: Vec::new(),
            read: 0,
            partial: 0,
            queue: VecDeque::new(),
            telnet: Telnet::Data,
            after_cr: false,
            discarding: false,
        }
    }

    /// Feeds bytes from the connection.
    pub fn push(&mut self, input: &[u8]) {
        for &b in input {
            match self.telnet {
                Telnet::Data => {
                    if b == IAC {
                        self.telnet = Telnet::Iac;
                    } else {
                        self.data_byte(b);
                    }
                }
                Telnet::Iac => {
                    self.telnet = match b {
                        IAC => {
                            self.data_byte(IAC);
                            Telnet::Data
                        }
                        WILL..=DONT => Telnet::Option,
                        SB => Telnet::Sub,
                        // IP, DM, AO, AYT, NOP, ...: a two-byte command, dropped.
                        SE.. => Telnet::Data,
                        // Not a Telnet command: the IAC was alone (its partner was sent as
                        // urgent data and the kernel took it out of the stream); the byte
                        // is data.
                        _ => {
                            self.data_byte(b);
                            Telnet::Data
                        }
                    }
                }
                Telnet::Option => self.telnet = Telnet::Data,
                Telnet::Sub => {
                    if b == IAC {
                        self.telnet = Telnet::SubIac;
                    }
                }
                Telnet::SubIac => {
                    self.telnet = if b == SE { Telnet::Data } else { Telnet::Sub };
                }
            }
        }
    }

    fn data_byte(&mut self, b: u8) {
        let after_cr = std::mem::take(&mut self.after_cr);
        match b {
            b'\n' if after_cr => {} // the LF of a CRLF whose CR already ended the line
            0 if after_cr => {}     // Telnet CR NUL
            b'\r' | b'\n' => {
                self.end_line();
                self.after_cr = b == b'\r';
            }
            // A Telnet Data Mark at the start of a line, without its IAC: BSD-derived clients
            // (BSD ftp, tnftp, inetutils) send `IAC IP`, then `IAC` as urgent data, then
            // `DM ABOR`; without SO_OOBINLINE the kernel removes the urgent IAC from the
            // stream and the DM arrives glued to the command. No verb starts with it.
            DM if self.buf.len() == self.partial => {}
            _ => {
                if self.discarding {
                    return;
                }
                if self.buf.len() - self.partial >= self.max_line {
                    self.buf.truncate(self.partial);
                    self.discarding = true;
                    return;
                }
                self.buf.push(b);
            }
        }
    }

    fn end_line(&mut self) {
        if std::mem::take(&mut self.discarding) {
            self.queue.push_back(Queued::TooLong);
        } else {
            self.queue
                .push_back(Queued::Line(self.buf.len() - self.partial));
            self.partial = self.buf.len();
        }
    }

    /// The next complete frame, if any. Call [`LineFramer::consume`] once done with it.
    pub fn peek(&self) -> Option<Frame<'_>> {
        match *self.queue.front()? {
            Queued::Line(len) => Some(Frame::Line(&self.buf[self.read..self.read + len])),
            Queued::TooLong => Some(Frame::TooLong),
        }
    }

    /// Drops the frame [`LineFramer::peek`] returned.
    pub fn consume(&mut self) {
        if let Some(Queued::Line(len)) = self.queue.pop_front() {
            self.read += len;
        }
        let all_taken = self.queue.is_empty() && self.read == self.partial;
        if self.read > 0 && (all_taken || (self.read >= 4096 && self.read * 2 >= self.buf.len())) {
            // Slide what is left to the front: at once when everything complete has been taken,
            // otherwise only once the taken prefix is large, so the copy stays amortised O(1).
            self.buf.drain(..self.read);
            self.partial -= self.read;
            self.read = 0;
        }
    }

    /// Copies the next complete line into `line` (cleared first) and consumes it. Returns
    /// `None` when no complete frame is waiting, `Some(false)` for a line that was too long.
    pub fn next_into(&mut self, line: &mut Vec<u8>) -> Option<bool> {
        line.clear();
        let ok = match self.peek()? {
            Frame::Line(l) => {
                line.extend_from_slice(l);
                true
            }
            Frame::TooLong => false,
        };
        self.consume();
        Some(ok)
    }

    /// Bytes held: complete lines not yet taken plus the partial line, each complete frame
    /// counting one more byte for its terminator — so that a flood of empty (or too long)
    /// lines, which hold no bytes but one queue entry each, is bounded too.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.read + self.queue.len()
    }

    /// How many complete frames are waiting.
    pub fn pending_frames(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(framer: &mut LineFramer) -> Vec<Option<String>> {
        let mut out = Vec::new();
        let mut line = Vec::new();
        while let Some(ok) = framer.next_into(&mut line) {
            out.push(ok.then(|| String::from_utf8_lossy(&line).into_owned()));
        }
        out
    }

    #[test]
    fn terminators() {
        let mut f = LineFramer::new(100);
        f.push(b"USER a\r\nPASS b\nNOOP\rQUIT\r");
        f.push(b"\nSYST");
        assert_eq!(
            lines(&mut f),
            vec![
                Some("USER a".into()),
                Some("PASS b".into()),
                Some("NOOP".into()),
                Some("QUIT".into())
            ]
        );
        f.push(b"\r\n");
        assert_eq!(lines(&mut f), vec![Some("SYST".into())]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn telnet_sequences_are_stripped() {
        let mut f = LineFramer::new(100);
        // IAC IP IAC DM ABOR, with DM delivered inline.
        f.push(&[255, 244, 255, 242]);
        f.push(b"ABOR\r\n");
        // IAC WILL x, IAC SB ... IAC SE, IAC IAC (a literal 0xFF).
        f.push(&[
            255, 251, 1, b'N', 255, 250, 1, 2, 255, 240, b'O', 255, 255, b'\r', b'\n',
        ]);
        let mut line = Vec::new();
        assert_eq!(f.next_into(&mut line), Some(true));
        assert_eq!(line, b"ABOR");
        assert_eq!(f.next_into(&mut line), Some(true));
        assert_eq!(line, b"NO\xff");
    }

    #[test]
    fn bsd_abort_sequences_leave_abor() {
        // BSD ftp / tnftp / inetutils: `IAC IP` and `IAC` (urgent) then `DM ABOR`. Without
        // SO_OOBINLINE the urgent IAC is taken out of the stream: `IAC IP DM ABOR`.
        let mut f = LineFramer::new(100);
        f.push(&[255, 244, 242]);
        f.push(b"ABOR\r\n");
        // A client that sends `IAC IP`, then `IAC DM` with the DM urgent: `IAC IP IAC ABOR`.
        f.push(&[255, 244, 255]);
        f.push(b"ABOR\r\n");
        // With the urgent byte inline: `IAC IP IAC DM ABOR`.
        f.push(&[255, 244, 255, 242, b'A', b'B', b'O', b'R', b'\r', b'\n']);
        assert_eq!(
            lines(&mut f),
            vec![
                Some("ABOR".into()),
                Some("ABOR".into()),
                Some("ABOR".into())
            ]
        );
        // A DM byte inside a line is data.
        f.push(b"SITE x\xf2y\r\n");
        let mut line = Vec::new();
        assert_eq!(f.next_into(&mut line), Some(true));
        assert_eq!(line, b"SITE x\xf2y");
    }

    #[test]
    fn long_lines_are_discarded_not_buffered() {
        let mut f = LineFramer::new(16);
        for _ in 0..1000 {
            f.push(&[b'x'; 100]);
            assert!(f.buffered() <= 16);
        }
        f.push(b"\r\nNOOP\r\n");
        assert_eq!(lines(&mut f), vec![None, Some("NOOP".into())]);
    }

    quickcheck::quickcheck! {
        fn chunking_does_not_matter(data: Vec<u8>, cuts: Vec<usize>) -> bool {
            let mut whole = LineFramer::new(64);
            whole.push(&data);
            let mut pieces = LineFramer::new(64);
            let mut rest = &data[..];
            for c in cuts {
                if rest.is_empty() { break; }
                let (a, b) = rest.split_at(c % (rest.len() + 1));
                pieces.push(a);
                rest = b;
            }
            pieces.push(rest);
            lines(&mut whole) == lines(&mut pieces) && whole.buffered() == pieces.buffered()
        }
    }
}
