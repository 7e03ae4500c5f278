//! TYPE E (RFC 959 §3.1.1.2): EBCDIC on the wire, UTF-8 text in the stored file.
//!
//! Each code page is a bijection between the 256 EBCDIC codes and U+0000–U+00FF (ISO-8859-1).
//! The tables below are IBM's published mappings (the same as ICU's `ibm-1047_P100-1995` and
//! `ibm-037_P100-1995`), as produced by glibc's `iconv -f IBM1047` / `iconv -f IBM037`; the
//! IBM-037 one also equals Python's built-in `cp037` codec. They were generated with
//! `python3 -c "..."` reading `iconv -f IBMxxx -t UTF-32BE` of the bytes 0–255.
//!
//! Line ends follow the z/OS text convention (`swaplfnl`): IBM's tables map EBCDIC NL 0x15 to
//! U+0085 and EBCDIC LF 0x25 to U+000A; here the two are swapped, so a stored LF travels as
//! NL 0x15 (the end of line RFC 959 names for EBCDIC) and U+0085 as 0x25.
//!
//! Retrieve ([`Utf8ToEbcdic`]) fails with [`CodecError::Unmappable`] on a character above
//! U+00FF or on bytes that are not UTF-8; store ([`ebcdic_to_utf8`]) never fails, since every
//! EBCDIC code has a character. No replacement character is ever substituted.

use super::{CodePage, CodecError};

#[rustfmt::skip]
const IBM1047_TO_LATIN1: [u8; 256] = [
    0x00, 0x01, 0x02, 0x03, 0x9C, 0x09, 0x86, 0x7F, // 0x00
    0x97, 0x8D, 0x8E, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, // 0x08
    0x10, 0x11, 0x12, 0x13, 0x9D, 0x85, 0x08, 0x87, // 0x10
    0x18, 0x19, 0x92, 0x8F, 0x1C, 0x1D, 0x1E, 0x1F, // 0x18
    0x80, 0x81, 0x82, 0x83, 0x84, 0x0A, 0x17, 0x1B, // 0x20
    0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x05, 0x06, 0x07, // 0x28
    0x90, 0x91, 0x16, 0x93, 0x94, 0x95, 0x96, 0x04, // 0x30
    0x98, 0x99, 0x9A, 0x9B, 0x14, 0x15, 0x9E, 0x1A, // 0x38
    0x20, 0xA0, 0xE2, 0xE4, 0xE0, 0xE1, 0xE3, 0xE5, // 0x40
    0xE7, 0xF1, 0xA2, 0x2E, 0x3C, 0x28, 0x2B, 0x7C, // 0x48
    0x26, 0xE9, 0xEA, 0xEB, 0xE8, 0xED, 0xEE, 0xEF, // 0x50
    0xEC, 0xDF, 0x21, 0x24, 0x2A, 0x29, 0x3B, 0x5E, // 0x58
    0x2D, 0x2F, 0xC2, 0xC4, 0xC0, 0xC1, 0xC3, 0xC5, // 0x60
    0xC7, 0xD1, 0xA6, 0x2C, 0x25, 0x5F, 0x3E, 0x3F, // 0x68
    0xF8, 0xC9, 0xCA, 0xCB, 0xC8, 0xCD, 0xCE, 0xCF, // 0x70
    0xCC, 0x60, 0x3A, 0x23, 0x40, 0x27, 0x3D, 0x22, // 0x78
    0xD8, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, // 0x80
    0x68, 0x69, 0xAB, 0xBB, 0xF0, 0xFD, 0xFE, 0xB1, // 0x88
    0xB0, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x70, // 0x90
    0x71, 0x72, 0xAA, 0xBA, 0xE6, 0xB8, 0xC6, 0xA4, // 0x98
    0xB5, 0x7E, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, // 0xA0
    0x79, 0x7A, 0xA1, 0xBF, 0xD0, 0x5B, 0xDE, 0xAE, // 0xA8
    0xAC, 0xA3, 0xA5, 0xB7, 0xA9, 0xA7, 0xB6, 0xBC, // 0xB0
    0xBD, 0xBE, 0xDD, 0xA8, 0xAF, 0x5D, 0xB4, 0xD7, // 0xB8
    0x7B, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, // 0xC0
    0x48, 0x49, 0xAD, 0xF4, 0xF6, 0xF2, 0xF3, 0xF5, // 0xC8
    0x7D, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E, 0x4F, 0x50, // 0xD0
    0x51, 0x52, 0xB9, 0xFB, 0xFC, 0xF9, 0xFA, 0xFF, // 0xD8
    0x5C, 0xF7, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, // 0xE0
    0x59, 0x5A, 0xB2, 0xD4, 0xD6, 0xD2, 0xD3, 0xD5, // 0xE8
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, // 0xF0
    0x38, 0x39, 0xB3, 0xDB, 0xDC, 0xD9, 0xDA, 0x9F, // 0xF8
];

#[rustfmt::skip]
const IBM037_TO_LATIN1: [u8; 256] = [
    0x00, 0x01, 0x02, 0x03, 0x9C, 0x09, 0x86, 0x7F, // 0x00
    0x97, 0x8D, 0x8E, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, // 0x08
    0x10, 0x11, 0x12, 0x13, 0x9D, 0x85, 0x08, 0x87, // 0x10
    0x18, 0x19, 0x92, 0x8F, 0x1C, 0x1D, 0x1E, 0x1F, // 0x18
    0x80, 0x81, 0x82, 0x83, 0x84, 0x0A, 0x17, 0x1B, // 0x20
    0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x05, 0x06, 0x07, // 0x28
    0x90, 0x91, 0x16, 0x93, 0x94, 0x95, 0x96, 0x04, // 0x30
    0x98, 0x99, 0x9A, 0x9B, 0x14, 0x15, 0x9E, 0x1A, // 0x38
    0x20, 0xA0, 0xE2, 0xE4, 0xE0, 0xE1, 0xE3, 0xE5, // 0x40
    0xE7, 0xF1, 0xA2, 0x2E, 0x3C, 0x28, 0x2B, 0x7C, // 0x48
    0x26, 0xE9, 0xEA, 0xEB, 0xE8, 0xED, 0xEE, 0xEF, // 0x50
    0xEC, 0xDF, 0x21, 0x24, 0x2A, 0x29, 0x3B, 0xAC, // 0x58
    0x2D, 0x2F, 0xC2, 0xC4, 0xC0, 0xC1, 0xC3, 0xC5, // 0x60
    0xC7, 0xD1, 0xA6, 0x2C, 0x25, 0x5F, 0x3E, 0x3F, // 0x68
    0xF8, 0xC9, 0xCA, 0xCB, 0xC8, 0xCD, 0xCE, 0xCF, // 0x70
    0xCC, 0x60, 0x3A, 0x23, 0x40, 0x27, 0x3D, 0x22, // 0x78
    0xD8, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, // 0x80
    0x68, 0x69, 0xAB, 0xBB, 0xF0, 0xFD, 0xFE, 0xB1, // 0x88
    0xB0, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x70, // 0x90
    0x71, 0x72, 0xAA, 0xBA, 0xE6, 0xB8, 0xC6, 0xA4, // 0x98
    0xB5, 0x7E, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, // 0xA0
    0x79, 0x7A, 0xA1, 0xBF, 0xD0, 0xDD, 0xDE, 0xAE, // 0xA8
    0x5E, 0xA3, 0xA5, 0xB7, 0xA9, 0xA7, 0xB6, 0xBC, // 0xB0
    0xBD, 0xBE, 0x5B, 0x5D, 0xAF, 0xA8, 0xB4, 0xD7, // 0xB8
    0x7B, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, // 0xC0
    0x48, 0x49, 0xAD, 0xF4, 0xF6, 0xF2, 0xF3, 0xF5, // 0xC8
    0x7D, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E, 0x4F, 0x50, // 0xD0
    0x51, 0x52, 0xB9, 0xFB, 0xFC, 0xF9, 0xFA, 0xFF, // 0xD8
    0x5C, 0xF7, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, // 0xE0
    0x59, 0x5A, 0xB2, 0xD4, 0xD6, 0xD2, 0xD3, 0xD5, // 0xE8
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, // 0xF0
    0x38, 0x39, 0xB3, 0xDB, 0xDC, 0xD9, 0xDA, 0x9F, // 0xF8
];

/// EBCDIC NL, the line end on the wire.
pub(super) const NL: u8 = 0x15;

/// The z/OS `swaplfnl` convention: NL 0x15 ↔ U+000A, LF 0x25 ↔ U+0085.
const fn swap_lf_nl(mut table: [u8; 256]) -> [u8; 256] {
    let nl = table[0x15];
    table[0x15] = table[0x25];
    table[0x25] = nl;
    table
}

/// The inverse of a bijection of the bytes (checked by the tests).
const fn invert(table: &[u8; 256]) -> [u8; 256] {
    let mut inverse = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        inverse[table[i] as usize] = i as u8;
        i += 1;
    }
    inverse
}

/// One code page, both ways, with the line-end convention applied.
pub(super) struct Table {
    /// EBCDIC code → Latin-1 code point.
    pub(super) to_latin1: [u8; 256],
    /// Latin-1 code point → EBCDIC code.
    pub(super) from_latin1: [u8; 256],
    /// The code page's name, for messages.
    pub(super) name: &'static str,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

static IBM1047: Table = {
    let to_latin1 = swap_lf_nl(IBM1047_TO_LATIN1);
    Table {
        to_latin1,
        from_latin1: invert(&to_latin1),
        name: "IBM-1047",
    }
};

static IBM037: Table = {
    let to_latin1 = swap_lf_nl(IBM037_TO_LATIN1);
    Table {
        to_latin1,
        from_latin1: invert(&to_latin1),
        name: "IBM-037",
    }
};

impl CodePage {
    pub(super) fn table(self) -> &'static Table {
        match self {
            CodePage::Ibm1047 => &IBM1047,
            CodePage::Ibm037 => &IBM037,
        }
    }
}

/// Store: EBCDIC bytes to UTF-8. Every code maps; a code above 0x7F in Latin-1 takes two bytes.
pub(super) fn ebcdic_to_utf8(table: &Table, input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    for &b in input {
        let c = table.to_latin1[usize::from(b)];
        if c < 0x80 {
            out.push(c);
        } else {
            out.extend_from_slice(&[0xC0 | (c >> 6), 0x80 | (c & 0x3F)]);
        }
    }
}

/// Retrieve: UTF-8 to EBCDIC, one character at a time, holding a partial character (at most
/// three bytes) across calls.
#[derive(Clone, Debug, Default)]
pub(super) struct Utf8ToEbcdic {
    /// The bytes of a partial character.
    held: [u8; 4],
    /// How many of `held` are set (0: at a character boundary).
    have: u8,
    /// How many bytes the partial character has in all.
    need: u8,
    /// Stored-file offset of the partial character's first byte.
    start: u64,
}

impl Utf8ToEbcdic {
    /// Converts `input`, whose first byte is at stored-file offset `offset`.
    pub(super) fn convert(
        &mut self,
        table: &Table,
        input: &[u8],
        offset: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        out.reserve(input.len());
        for (i, &b) in input.iter().enumerate() {
            let at = offset.saturating_add(i as u64);
            if self.have == 0 {
                if b < 0x80 {
                    out.push(table.from_latin1[usize::from(b)]);
                    continue;
                }
                self.need = match b {
                    0xC2..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    0xF0..=0xF4 => 4,
                    _ => return Err(not_utf8(at, b)),
                };
                self.held[0] = b;
                self.have = 1;
                self.start = at;
                continue;
            }
            // A continuation byte; the second byte of some leads has a narrower range.
            let range = match (self.have, self.held[0]) {
                (1, 0xE0) => 0xA0..=0xBF,
                (1, 0xED) => 0x80..=0x9F,
                (1, 0xF0) => 0x90..=0xBF,
                (1, 0xF4) => 0x80..=0x8F,
                _ => 0x80..=0xBF,
            };
            if !range.contains(&b) {
                return Err(not_utf8(self.start, self.held[0]));
            }
            if let Some(slot) = self.held.get_mut(usize::from(self.have)) {
                *slot = b;
            }
            self.have += 1;
            if self.have < self.need {
                continue;
            }
            let cp = self.code_point();
            self.have = 0;
            match u8::try_from(cp) {
                Ok(latin1) => out.push(table.from_latin1[usize::from(latin1)]),
                Err(_) => {
                    return Err(CodecError::Unmappable {
                        offset: self.start,
                        what: format!("the character U+{cp:04X} has no code in {}", table.name),
                    })
                }
            }
        }
        Ok(())
    }

    /// The end of a line or of the file: a partial character there is not UTF-8.
    pub(super) fn end(&mut self) -> Result<(), CodecError> {
        if self.have == 0 {
            return Ok(());
        }
        self.have = 0;
        Err(not_utf8(self.start, self.held[0]))
    }

    fn code_point(&self) -> u32 {
        let [b0, b1, b2, b3] = self.held.map(u32::from);
        match self.need {
            2 => ((b0 & 0x1F) << 6) | (b1 & 0x3F),
            3 => ((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F),
            _ => ((b0 & 0x07) << 18) | ((b1 & 0x3F) << 12) | ((b2 & 0x3F) << 6) | (b3 & 0x3F),
        }
    }
}

fn not_utf8(offset: u64, first: u8) -> CodecError {
    CodecError::Unmappable {
        offset,
        what: format!(
            "the file is not UTF-8 text there (a sequence starting with byte 0x{first:02X})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn to_ebcdic(cp: CodePage, text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut conv = Utf8ToEbcdic::default();
        conv.convert(cp.table(), text.as_bytes(), 0, &mut out)
            .unwrap();
        conv.end().unwrap();
        out
    }

    #[test]
    fn tables_are_bijections() {
        for cp in [CodePage::Ibm1047, CodePage::Ibm037] {
            let t = cp.table();
            let mut seen = [false; 256];
            for &c in &t.to_latin1 {
                assert!(!seen[usize::from(c)], "{}: 0x{c:02X} twice", t.name);
                seen[usize::from(c)] = true;
            }
            for b in 0..=255u8 {
                assert_eq!(t.from_latin1[usize::from(t.to_latin1[usize::from(b)])], b);
            }
        }
    }

    #[test]
    fn known_code_points() {
        let both = [
            ('A', 0xC1),
            ('a', 0x81),
            ('0', 0xF0),
            (' ', 0x40),
            ('Z', 0xE9),
            ('9', 0xF9),
        ];
        let ibm1047 = [
            ('[', 0xAD),
            (']', 0xBD),
            ('^', 0x5F),
            ('¬', 0xB0),
            ('{', 0xC0),
            ('}', 0xD0),
        ];
        let ibm037 = [
            ('[', 0xBA),
            (']', 0xBB),
            ('¬', 0x5F),
            ('^', 0xB0),
            ('{', 0xC0),
            ('|', 0x4F),
        ];
        for (cp, specific) in [(CodePage::Ibm1047, ibm1047), (CodePage::Ibm037, ibm037)] {
            for (c, code) in both.iter().chain(specific.iter()) {
                assert_eq!(
                    to_ebcdic(cp, &c.to_string()),
                    [*code],
                    "{} {c:?}",
                    cp.name()
                );
                let mut back = Vec::new();
                ebcdic_to_utf8(cp.table(), &[*code], &mut back);
                assert_eq!(back, c.to_string().as_bytes(), "{} 0x{code:02X}", cp.name());
            }
        }
    }

    #[test]
    fn line_ends_follow_swaplfnl() {
        for cp in [CodePage::Ibm1047, CodePage::Ibm037] {
            assert_eq!(to_ebcdic(cp, "a\nb\u{85}"), [0x81, 0x15, 0x82, 0x25]);
            let mut back = Vec::new();
            ebcdic_to_utf8(cp.table(), &[0x15, 0x25, 0x0D], &mut back);
            assert_eq!(back, "\n\u{85}\r".as_bytes());
        }
    }

    #[test]
    fn unmappable_characters_are_errors_with_their_offset() {
        let mut conv = Utf8ToEbcdic::default();
        let mut out = Vec::new();
        let err = conv.convert(&IBM1047, "ab€".as_bytes(), 100, &mut out);
        assert_eq!(
            err,
            Err(CodecError::Unmappable {
                offset: 102,
                what: "the character U+20AC has no code in IBM-1047".into()
            })
        );
        for bad in [
            &b"\xff"[..],
            b"\xc0\x80",
            b"\xe0\x80\x80",
            b"\xed\xa0\x80",
            b"\xc3(",
        ] {
            let mut conv = Utf8ToEbcdic::default();
            let err = conv.convert(&IBM037, bad, 7, &mut Vec::new()).unwrap_err();
            assert!(
                matches!(err, CodecError::Unmappable { offset: 7, .. }),
                "{bad:?}: {err:?}"
            );
        }
        let mut conv = Utf8ToEbcdic::default();
        conv.convert(&IBM037, b"x\xc3", 0, &mut Vec::new()).unwrap();
        assert!(matches!(
            conv.end(),
            Err(CodecError::Unmappable { offset: 1, .. })
        ));
    }

    quickcheck! {
        fn latin1_text_round_trips(points: Vec<u8>, split: usize) -> bool {
            let text: String = points.iter().map(|&p| char::from(p)).collect();
            let bytes = text.as_bytes();
            let split = if bytes.is_empty() { 0 } else { split % bytes.len() };
            [CodePage::Ibm1047, CodePage::Ibm037].iter().all(|cp| {
                let mut conv = Utf8ToEbcdic::default();
                let mut wire = Vec::new();
                let (a, b) = bytes.split_at(split);
                conv.convert(cp.table(), a, 0, &mut wire).unwrap();
                conv.convert(cp.table(), b, a.len() as u64, &mut wire).unwrap();
                conv.end().unwrap();
                let mut back = Vec::new();
                ebcdic_to_utf8(cp.table(), &wire, &mut back);
                wire.len() == points.len() && back == bytes
            })
        }
    }
}
