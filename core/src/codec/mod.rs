//! Data codecs: the representation types, file structures and transmission modes of RFC 959
//! §3.1–3.5, plus MODE Z (draft-preston-ftpext-deflate), as pure streaming transforms between
//! the stored file and the bytes of the data connection.
//!
//! This module owns the byte formats of a transfer and nothing else: it reads no file, opens no
//! connection and keeps no clock. The runtime hands it bytes and writes what it returns. The
//! choices behind each format (what is stored for a record or a page, the code pages, restart
//! markers, the limits) are written down for users in `docs/representations.md`.
//!
//! - [`Encoder`] (retrieve): stored file bytes in, wire bytes out.
//! - [`Decoder`] (store): wire bytes in, stored file bytes out, with the client's restart
//!   markers ([`Marker`]).
//! - [`AsciiEncoder`] / [`AsciiDecoder`]: the TYPE A line-end transform alone, for the
//!   runtime's fast path and for SIZE in TYPE A ([`AsciiEncoder::encoded_len`]).
//!
//! The layers compose in RFC 959's order: representation (TYPE), then structure (STRU), then
//! mode (MODE). Each is its own small state machine holding a bounded amount of state (a block
//! header, a partial UTF-8 character, one page or one block, a restart marker of at most 64
//! bytes, the deflate window); none buffers a record, a file or a compressed run. The output
//! never depends on how the input was split into calls. No input makes them panic: every
//! malformed or unconvertible input is a [`CodecError`].
//!
//! | module | owns |
//! | --- | --- |
//! | `ascii` | TYPE A: LF in the file, CRLF on the wire |
//! | `ebcdic` | TYPE E: the IBM-1047 and IBM-037 tables, UTF-8 in the file |
//! | `text` | lines of text (TYPE A or E) into wire bytes or records, for retrieve |
//! | `record` | STRU R: the 0xFF escapes (MODE S's record form and TYPE I's stored form) |
//! | `page` | STRU P: page headers |
//! | `stream`, `block`, `compressed`, `deflate` | MODE S, B, C and Z |
//! | `wire` | the retrieve side below the sources: the page packer, then the mode's encoder |
//! | `store` | the store side of representation and structure, and restart-marker offsets |
//! | `pipeline` | [`Encoder`] and [`Decoder`]: the layers put together |
//! | `samples` | (tests and fuzzing) stored files a format carries unchanged |

mod ascii;
mod block;
mod compressed;
mod deflate;
mod ebcdic;
mod page;
mod pipeline;
mod record;
mod store;
mod stream;
mod text;
mod wire;

#[cfg(any(test, fuzzing))]
pub(crate) mod samples;
#[cfg(test)]
mod tests;

pub use ascii::{AsciiDecoder, AsciiEncoder};
pub use pipeline::{Decoder, Encoder};

use std::fmt;

/// Representation type (RFC 959 §3.1.1): what the bytes on the wire stand for. The default is
/// TYPE A N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Representation {
    /// TYPE I, and TYPE L 8: the stored bytes as they are.
    Image,
    /// TYPE A: NVT-ASCII text, CRLF line ends on the wire, LF in the stored file.
    Ascii(FormatControl),
    /// TYPE E: EBCDIC text on the wire in the given code page, UTF-8 in the stored file.
    Ebcdic(FormatControl, CodePage),
}

impl Default for Representation {
    fn default() -> Representation {
        Representation::Ascii(FormatControl::NonPrint)
    }
}

/// The vertical format control of a text type (RFC 959 §3.1.1.5).
///
/// All three transform alike: the format controls T and C describe the content (Telnet format
/// effectors, ASA carriage-control characters at the start of each line), which Wharf stores as
/// sent and returns unchanged, so that a file stored and retrieved with the same parameters
/// comes back "in exactly the same form" (§3.1.1.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FormatControl {
    /// N: non-print, the default.
    #[default]
    NonPrint,
    /// T: Telnet format effectors (CR, LF, NL, VT, FF) in the text.
    Telnet,
    /// C: ASA (FORTRAN) carriage control, the first character of each line.
    Asa,
}

/// The EBCDIC code page of TYPE E. Each maps the 256 EBCDIC codes one to one onto U+0000–U+00FF.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CodePage {
    /// IBM-1047 (Latin-1, the z/OS Open Systems code page): the default.
    #[default]
    Ibm1047,
    /// IBM-037 (CECP USA/Canada).
    Ibm037,
}

impl CodePage {
    /// The code page's name, as IBM writes it ("IBM-1047").
    pub fn name(self) -> &'static str {
        match self {
            CodePage::Ibm1047 => "IBM-1047",
            CodePage::Ibm037 => "IBM-037",
        }
    }
}

/// File structure (RFC 959 §3.1.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Structure {
    /// STRU F: a continuous sequence of bytes, the default.
    #[default]
    File,
    /// STRU R: a sequence of records. For text, a record is a stored line.
    Record,
    /// STRU P: indexed pages (simple pages only; see `docs/representations.md` for the limits).
    Page,
}

/// Transmission mode (RFC 959 §3.4, and MODE Z).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// MODE S: bytes as they are; the end of the file is the connection's close (or, in
    /// STRU R, the 0xFF 0x02 end-of-file code).
    #[default]
    Stream,
    /// MODE B: blocks with a 3-byte header; carries restart markers.
    Block,
    /// MODE C: byte strings, replicated bytes and filler; carries restart markers.
    Compressed,
    /// MODE Z: the MODE S bytes deflated in zlib format (RFC 1950). `level` is 0 (stored) to 9
    /// (smallest); a larger value counts as 9.
    Deflate {
        /// The deflate level, 0–9 (`OPTS MODE Z LEVEL n`).
        level: u8,
    },
}

impl Mode {
    /// MODE Z's level when the client has not chosen one.
    pub const DEFAULT_DEFLATE_LEVEL: u8 = 6;
}

/// The transfer parameters a data connection carries: TYPE, STRU and MODE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DataFormat {
    /// TYPE.
    pub representation: Representation,
    /// STRU.
    pub structure: Structure,
    /// MODE.
    pub mode: Mode,
}

impl DataFormat {
    /// TYPE I, STRU F, MODE S: the wire carries the stored bytes unchanged, so the runtime may
    /// copy them without a codec (its zero-copy path). The codecs would add nothing.
    pub fn is_identity(&self) -> bool {
        self.representation == Representation::Image
            && self.structure == Structure::File
            && self.mode == Mode::Stream
    }
}

/// A restart marker the client sent while storing (MODE B or C).
///
/// The runtime makes the stored file durable up to `offset`, then replies
/// `110 MARK {sender} = {offset}`; the client may later resume with `REST {offset}` and the same
/// STOR, sending again from its own marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// The client's marker text: 1 to 64 printable ASCII characters, no spaces.
    pub sender: String,
    /// The stored-file offset of the end of the data that came before the marker.
    pub offset: u64,
}

/// Why a transfer's bytes could not be converted. `Display` gives a sentence a client can read
/// after a 451 or 551 reply code.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// Retrieve: the stored file has a character the representation cannot carry (TYPE E: a
    /// character above U+00FF, or bytes that are not UTF-8). `offset` is the stored-file
    /// offset of its first byte.
    Unmappable {
        /// Stored-file offset of the character.
        offset: u64,
        /// What the character is and why it has no code.
        what: String,
    },
    /// The bytes break the rules of the agreed TYPE, STRU or MODE (from the client on store,
    /// or in a stored file that was to be read as records).
    Malformed(String),
    /// The data connection closed before the explicit end the mode or structure requires
    /// (MODE B/C end-of-file, the last page, the zlib end, a complete record): an incomplete
    /// upload that must not be taken for a file.
    Truncated(String),
    /// The file does not fit the format's fields (page structure: at most 256 pages).
    TooLarge(String),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Unmappable { offset, what } => {
                write!(f, "Cannot convert the file at byte {offset}: {what}.")
            }
            CodecError::Malformed(why) => write!(f, "Malformed data: {why}."),
            CodecError::Truncated(why) => write!(f, "Incomplete transfer: {why}."),
            CodecError::TooLarge(why) => write!(f, "File too large for this format: {why}."),
        }
    }
}

impl std::error::Error for CodecError {}
