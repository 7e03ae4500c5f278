//! STRU P (RFC 959 §3.1.2.3): the file as indexed pages, each behind a header of one-byte
//! fields: header length, page index, data length, page type. "All fields are one logical
//! byte in length"; the logical byte is 8 bits here, which bounds what can be sent.
//!
//! Retrieve ([`PageEncoder`]): the representation's bytes as simple pages (type 1) of 255 bytes
//! of data, indexes 0, 1, 2 … (or from the restart page), then a last page (type 0, header
//! length 4, data length 0, index field 0: it is no section of the file). 256 pages of 255
//! bytes (65,280 bytes) is the most an 8-bit index can number; more is
//! [`CodecError::TooLarge`].
//!
//! Store ([`PageDecoder`]): only simple pages and the last page, with consecutive indexes in
//! transmission order from 0 (on a resumed upload, from whatever index the first page has).
//! Descriptor pages (type 2), access-controlled pages (type 3), unknown types, gaps and
//! out-of-order indexes are [`CodecError::Malformed`]. The stored file is the pages' data,
//! concatenated; the last page's index is not looked at.

use super::CodecError;

/// Data bytes in a full page.
pub(super) const PAGE_DATA: usize = 255;
/// Pages an 8-bit index can number.
const MAX_PAGES: u16 = 256;

const LAST_PAGE: u8 = 0;
const SIMPLE_PAGE: u8 = 1;

/// Packs bytes into simple pages, holding at most one page.
#[derive(Clone, Debug)]
pub(super) struct PageEncoder {
    data: [u8; PAGE_DATA],
    len: usize,
    /// The next page's index (256: no more pages can be numbered).
    index: u16,
}

impl PageEncoder {
    /// An encoder whose first page has index `first`.
    pub(super) fn new(first: u16) -> PageEncoder {
        PageEncoder {
            data: [0; PAGE_DATA],
            len: 0,
            index: first,
        }
    }

    /// Appends the complete pages `data` fills to `pages`.
    pub(super) fn data(&mut self, mut data: &[u8], pages: &mut Vec<u8>) -> Result<(), CodecError> {
        while !data.is_empty() {
            if self.len == 0 && self.index >= MAX_PAGES {
                return Err(too_large());
            }
            let take = (PAGE_DATA - self.len).min(data.len());
            let (now, rest) = data.split_at(take);
            if let Some(slot) = self.data.get_mut(self.len..self.len + take) {
                slot.copy_from_slice(now);
            }
            self.len += take;
            data = rest;
            if self.len == PAGE_DATA {
                self.emit(pages);
            }
        }
        Ok(())
    }

    /// The end of the file: a partial page, then the last page.
    pub(super) fn finish(&mut self, pages: &mut Vec<u8>) {
        if self.len > 0 {
            self.emit(pages);
        }
        pages.extend_from_slice(&[4, 0, 0, LAST_PAGE]);
    }

    fn emit(&mut self, pages: &mut Vec<u8>) {
        let index = u8::try_from(self.index).unwrap_or(u8::MAX);
        let len = u8::try_from(self.len).unwrap_or(u8::MAX);
        pages.extend_from_slice(&[4, index, len, SIMPLE_PAGE]);
        pages.extend_from_slice(self.data.get(..self.len).unwrap_or_default());
        self.len = 0;
        self.index += 1;
    }
}

fn too_large() -> CodecError {
    CodecError::TooLarge(
        "page structure numbers pages with one byte, so it carries at most 256 pages of 255 \
         bytes (65,280 bytes); use STRU F"
            .into(),
    )
}

/// Reads pages, holding at most one header.
#[derive(Clone, Debug)]
pub(super) struct PageDecoder {
    header: [u8; 4],
    have: usize,
    /// Data bytes left in the current page.
    remaining: usize,
    /// The index the next simple page must have; `None` before the first page of a resumed
    /// upload, which may have any index.
    expected: Option<u16>,
    /// The last page has come.
    ended: bool,
}

impl PageDecoder {
    /// A decoder for a transfer that starts at the file's start (`resumed` false: the first
    /// page has index 0) or at a restart point.
    pub(super) fn new(resumed: bool) -> PageDecoder {
        PageDecoder {
            header: [0; 4],
            have: 0,
            remaining: 0,
            expected: if resumed { None } else { Some(0) },
            ended: false,
        }
    }

    /// Reads from `input`: returns how many bytes were consumed and, if they were page data,
    /// that data (headers give `None`).
    pub(super) fn next<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<&'a [u8]>), CodecError> {
        if input.is_empty() {
            return Ok((0, None));
        }
        if self.ended {
            return Err(CodecError::Malformed(
                "data came after the last page".into(),
            ));
        }
        if self.remaining > 0 {
            let n = self.remaining.min(input.len());
            self.remaining -= n;
            return Ok((n, input.get(..n)));
        }
        let mut used = 0;
        for &b in input {
            if let Some(slot) = self.header.get_mut(self.have) {
                *slot = b;
            }
            self.have += 1;
            used += 1;
            if self.have == self.header.len() {
                self.have = 0;
                self.header_done()?;
                break;
            }
        }
        Ok((used, None))
    }

    fn header_done(&mut self) -> Result<(), CodecError> {
        let [header_len, index, data_len, kind] = self.header;
        match kind {
            LAST_PAGE if header_len == 4 && data_len == 0 => {
                self.ended = true;
                Ok(())
            }
            LAST_PAGE => Err(malformed(
                "a last page (type 0) must have header length 4 and data length 0",
            )),
            SIMPLE_PAGE if header_len != 4 => Err(malformed(
                "a simple page (type 1) must have header length 4",
            )),
            SIMPLE_PAGE => {
                let index = u16::from(index);
                match self.expected {
                    Some(e) if e >= MAX_PAGES => return Err(too_large()),
                    Some(e) if e != index => {
                        return Err(CodecError::Malformed(format!(
                            "page {index} came where page {e} was expected: Wharf stores pages \
                             sent in order without gaps, from page 0"
                        )))
                    }
                    _ => {}
                }
                self.expected = Some(index + 1);
                self.remaining = usize::from(data_len);
                Ok(())
            }
            2 => Err(malformed(
                "descriptor pages (type 2) are not supported: Wharf stores simple pages only",
            )),
            3 => Err(malformed(
                "access-controlled pages (type 3) are not supported: Wharf stores simple pages \
                 only",
            )),
            other => Err(CodecError::Malformed(format!(
                "page type {other} is not defined (0 is the last page, 1 a simple page)"
            ))),
        }
    }

    /// The last page has come.
    pub(super) fn ended(&self) -> bool {
        self.ended
    }

    /// Between a page's first header byte and its last data byte.
    pub(super) fn in_page(&self) -> bool {
        self.have > 0 || self.remaining > 0
    }
}

fn malformed(why: &str) -> CodecError {
    CodecError::Malformed(why.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(data: &[u8], first: u16) -> Result<Vec<u8>, CodecError> {
        let mut e = PageEncoder::new(first);
        let mut pages = Vec::new();
        e.data(data, &mut pages)?;
        e.finish(&mut pages);
        Ok(pages)
    }

    fn decode(pages: &[u8], resumed: bool) -> Result<(Vec<u8>, bool), CodecError> {
        let mut d = PageDecoder::new(resumed);
        let mut data = Vec::new();
        let mut rest = pages;
        while !rest.is_empty() {
            let (n, got) = d.next(rest)?;
            data.extend_from_slice(got.unwrap_or_default());
            rest = &rest[n..];
        }
        Ok((data, d.ended()))
    }

    #[test]
    fn pages_of_255_then_the_last_page() {
        assert_eq!(encode(b"", 0).unwrap(), [4, 0, 0, 0]);
        assert_eq!(
            encode(b"abc", 0).unwrap(),
            [4, 0, 3, 1, b'a', b'b', b'c', 4, 0, 0, 0]
        );
        let data: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let pages = encode(&data, 0).unwrap();
        assert_eq!(pages[..4], [4, 0, 255, 1]);
        assert_eq!(pages[259..263], [4, 1, 255, 1]);
        assert_eq!(pages[518..522], [4, 2, 90, 1]);
        assert_eq!(pages[pages.len() - 4..], [4, 0, 0, 0]);
        assert_eq!(decode(&pages, false).unwrap(), (data, true));
    }

    #[test]
    fn at_most_256_pages() {
        let full = vec![7u8; 256 * 255];
        let pages = encode(&full, 0).unwrap();
        assert_eq!(pages.len(), 256 * 259 + 4);
        assert_eq!(decode(&pages, false).unwrap(), (full.clone(), true));
        let mut more = full;
        more.push(1);
        assert!(matches!(encode(&more, 0), Err(CodecError::TooLarge(_))));
        // From a restart at page 255: one page, then nothing more.
        assert!(encode(&[1; 255], 255).is_ok());
        assert!(matches!(
            encode(&[1; 256], 255),
            Err(CodecError::TooLarge(_))
        ));
    }

    #[test]
    fn only_simple_pages_in_order() {
        let bad: [&[u8]; 7] = [
            &[4, 1, 0, 1],             // does not start at 0
            &[4, 0, 0, 1, 4, 2, 0, 1], // a gap
            &[4, 0, 0, 1, 4, 0, 0, 1], // a repeat
            &[4, 0, 0, 2],             // descriptor page
            &[5, 0, 0, 3, 9],          // access-controlled page
            &[5, 0, 0, 1],             // simple page with a longer header
            &[4, 0, 1, 0],             // last page with data
        ];
        for pages in bad {
            assert!(
                matches!(decode(pages, false), Err(CodecError::Malformed(_))),
                "{pages:?}"
            );
        }
        assert!(matches!(
            decode(&[4, 0, 0, 0, 1], false),
            Err(CodecError::Malformed(_))
        ));
        // A resumed upload starts at any index, then counts on.
        assert_eq!(
            decode(&[4, 9, 1, 1, b'x', 4, 10, 0, 1], true).unwrap(),
            (b"x".to_vec(), false)
        );
        assert!(decode(&[4, 9, 1, 1, b'x', 4, 12, 0, 1], true).is_err());
        let mut d = PageDecoder::new(false);
        assert_eq!(d.next(&[4, 0]).unwrap(), (2, None));
        assert!(d.in_page());
    }
}
