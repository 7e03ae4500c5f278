//! TYPE A (RFC 959 §3.1.1.1) in STRU F and STRU P: the stored file holds lines ending in LF;
//! the wire carries CRLF.
//! - retrieve: every LF not already preceded by CR becomes CRLF ([`AsciiEncoder`]);
//! - store: every CRLF becomes LF; a CR not followed by LF is kept ([`AsciiDecoder`]).
//!
//! Both keep one byte of state across chunk boundaries, so the output never depends on how the
//! input was split. The runtime also uses them directly (TYPE A, STRU F, MODE S) and for SIZE.
//! In STRU R a text record is a stored line and no CR is added or removed (see `text`).

/// LF → CRLF for retrieving in TYPE A.
#[derive(Clone, Debug, Default)]
pub struct AsciiEncoder {
    last_was_cr: bool,
}

impl AsciiEncoder {
    /// A new encoder at the start of a file.
    pub fn new() -> AsciiEncoder {
        AsciiEncoder::default()
    }

    /// Appends the wire form of `input` to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        let mut start = 0;
        for (i, &b) in input.iter().enumerate() {
            if b == b'\n' && !self.was_cr_before(input, i) {
                out.extend_from_slice(&input[start..i]);
                out.extend_from_slice(b"\r\n");
                start = i + 1;
            }
        }
        out.extend_from_slice(&input[start..]);
        if let Some(&last) = input.last() {
            self.last_was_cr = last == b'\r';
        }
    }

    /// How many bytes [`AsciiEncoder::encode`] would produce for `input` (for SIZE in TYPE A).
    pub fn encoded_len(&mut self, input: &[u8]) -> u64 {
        let mut extra = 0u64;
        for (i, &b) in input.iter().enumerate() {
            if b == b'\n' && !self.was_cr_before(input, i) {
                extra += 1;
            }
        }
        if let Some(&last) = input.last() {
            self.last_was_cr = last == b'\r';
        }
        input.len() as u64 + extra
    }

    fn was_cr_before(&self, input: &[u8], i: usize) -> bool {
        if i == 0 {
            self.last_was_cr
        } else {
            input[i - 1] == b'\r'
        }
    }
}

/// CRLF → LF for storing in TYPE A.
#[derive(Clone, Debug, Default)]
pub struct AsciiDecoder {
    pending_cr: bool,
}

impl AsciiDecoder {
    /// A new decoder at the start of a file.
    pub fn new() -> AsciiDecoder {
        AsciiDecoder::default()
    }

    /// Appends the file form of `input` to `out`. A CR at the very end of `input` is held back
    /// until the next call (or [`AsciiDecoder::finish`]) shows whether an LF follows.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + 1);
        let mut rest = input;
        if self.pending_cr {
            self.pending_cr = false;
            if rest.first() != Some(&b'\n') {
                out.push(b'\r');
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\r') {
            out.extend_from_slice(&rest[..pos]);
            match rest.get(pos + 1) {
                Some(b'\n') => {
                    // CRLF → LF: drop the CR, the LF is copied with the next run.
                }
                Some(_) => out.push(b'\r'),
                None => self.pending_cr = true,
            }
            rest = &rest[pos + 1..];
        }
        out.extend_from_slice(rest);
    }

    /// Flushes a CR held back at the end of the stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn encode_all(chunks: &[&[u8]]) -> Vec<u8> {
        let mut e = AsciiEncoder::new();
        let mut out = Vec::new();
        for c in chunks {
            e.encode(c, &mut out);
        }
        out
    }

    fn decode_all(chunks: &[&[u8]]) -> Vec<u8> {
        let mut d = AsciiDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.decode(c, &mut out);
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn examples() {
        assert_eq!(encode_all(&[b"a\nb\r\nc\n"]), b"a\r\nb\r\nc\r\n");
        assert_eq!(encode_all(&[b"a\r", b"\nb\n"]), b"a\r\nb\r\n");
        assert_eq!(decode_all(&[b"a\r\nb\rc\r"]), b"a\nb\rc\r");
        assert_eq!(decode_all(&[b"a\r", b"\nb"]), b"a\nb");
        assert_eq!(decode_all(&[b"a\r", b"x"]), b"a\rx");
    }

    quickcheck! {
        fn chunking_does_not_matter(data: Vec<u8>, split: usize) -> bool {
            let split = if data.is_empty() { 0 } else { split % data.len() };
            let (a, b) = data.split_at(split);
            encode_all(&[&data]) == encode_all(&[a, b]) && decode_all(&[&data]) == decode_all(&[a, b])
        }

        fn encoded_len_is_exact(data: Vec<u8>) -> bool {
            AsciiEncoder::new().encoded_len(&data) == encode_all(&[&data]).len() as u64
        }

        fn unix_text_round_trips(data: Vec<u8>) -> bool {
            // A file without CR characters survives retrieve then store unchanged.
            let text: Vec<u8> = data.into_iter().filter(|&b| b != b'\r').collect();
            decode_all(&[&encode_all(&[&text])]) == text
        }
    }
}
