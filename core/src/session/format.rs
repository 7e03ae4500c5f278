//! The transfer parameters of RFC 959 §3.1–3.4: TYPE (with format control and, for EBCDIC,
//! the code page SITE CODEPAGE picks), STRU, MODE (with OPTS MODE Z LEVEL), and what follows
//! from them for a transfer: the [`DataFormat`] the runtime's codecs apply, how the `150`
//! names it, and the format listings travel in.
//!
//! The session only records and describes them; the bytes are the codecs' business
//! ([`crate::codec`], `docs/representations.md`).

use super::Session;
use crate::action::Representation;
use crate::codec::{self, CodePage, DataFormat, FormatControl, Mode, Structure};
use crate::command::{ModeCode, TypeCode};

impl Session {
    pub(super) fn cmd_type(&mut self, t: TypeCode) {
        let (representation, text) = match t {
            TypeCode::Ascii(FormatControl::NonPrint) => (
                codec::Representation::Ascii(FormatControl::NonPrint),
                "Switching to ASCII mode.".to_owned(),
            ),
            TypeCode::Ascii(f) => (
                codec::Representation::Ascii(f),
                format!("Switching to ASCII mode, {}.", format_name(f)),
            ),
            TypeCode::Ebcdic(f) => (
                codec::Representation::Ebcdic(f, self.code_page),
                format!(
                    "Switching to EBCDIC mode ({}), {}.",
                    self.code_page.name(),
                    format_name(f)
                ),
            ),
            TypeCode::Image => (
                codec::Representation::Image,
                "Switching to Binary mode.".to_owned(),
            ),
        };
        self.format.representation = representation;
        self.reply(200, &text);
    }

    pub(super) fn cmd_stru(&mut self, s: Structure) {
        self.format.structure = s;
        let text = match s {
            Structure::File => "Structure set to F.",
            Structure::Record => "Structure set to R (records).",
            Structure::Page => "Structure set to P (pages).",
        };
        self.reply(200, text);
    }

    pub(super) fn cmd_mode(&mut self, m: ModeCode) {
        let (mode, text) = match m {
            ModeCode::Stream => (Mode::Stream, "Mode set to S.".to_owned()),
            ModeCode::Block => (Mode::Block, "Mode set to B (block).".to_owned()),
            ModeCode::Compressed => (Mode::Compressed, "Mode set to C (compressed).".to_owned()),
            ModeCode::Deflate => (
                Mode::Deflate {
                    level: self.deflate_level,
                },
                format!("Mode set to Z (deflate, level {}).", self.deflate_level),
            ),
        };
        self.format.mode = mode;
        self.reply(200, &text);
    }

    /// `OPTS MODE Z LEVEL n` (draft-preston-ftpext-deflate): the deflate level, 0 to 9.
    pub(super) fn opts_mode(&mut self, value: &str) {
        let mut words = value.split_ascii_whitespace();
        let ok = words.next().is_some_and(|w| w.eq_ignore_ascii_case("Z"));
        let level = match (ok, words.next(), words.next(), words.next()) {
            (true, Some(k), Some(n), None) if k.eq_ignore_ascii_case("LEVEL") => {
                n.parse::<u8>().ok().filter(|&n| n <= 9)
            }
            _ => None,
        };
        match level {
            Some(n) => {
                self.deflate_level = n;
                if let Mode::Deflate { level } = &mut self.format.mode {
                    *level = n;
                }
                self.reply(200, &format!("MODE Z LEVEL set to {n}."));
            }
            None => self.reply(501, "Use OPTS MODE Z LEVEL <0-9>."),
        }
    }

    /// `SITE CODEPAGE [IBM-1047|IBM-037]`: the EBCDIC code page of TYPE E, for this session.
    pub(super) fn site_codepage(&mut self, arg: &str) {
        let arg = arg.trim();
        if arg.is_empty() {
            let text = format!("EBCDIC code page is {}.", self.code_page.name());
            self.reply(200, &text);
            return;
        }
        let digits: String = arg.chars().filter(char::is_ascii_digit).collect();
        let page = match digits.trim_start_matches('0') {
            "1047" => CodePage::Ibm1047,
            "37" => CodePage::Ibm037,
            _ => {
                self.reply(504, "Unknown code page; use IBM-1047 or IBM-037.");
                return;
            }
        };
        self.code_page = page;
        if let codec::Representation::Ebcdic(f, _) = self.format.representation {
            self.format.representation = codec::Representation::Ebcdic(f, page);
        }
        self.reply(200, &format!("EBCDIC code page set to {}.", page.name()));
    }

    /// Text or binary, for the transfer log and the events.
    pub(super) fn coarse_representation(format: &DataFormat) -> Representation {
        match format.representation {
            codec::Representation::Image => Representation::Binary,
            _ => Representation::Ascii,
        }
    }

    /// How the `150` names the representation.
    pub(super) fn mode_word(format: &DataFormat) -> &'static str {
        match format.representation {
            codec::Representation::Image => "BINARY",
            codec::Representation::Ascii(_) => "ASCII",
            codec::Representation::Ebcdic(..) => "EBCDIC",
        }
    }

    /// The format a listing travels in (RFC 959: listings are text and follow the current
    /// type, structure and mode): EBCDIC in TYPE E, ASCII otherwise (TYPE I included); `None`
    /// for the plain cases (TYPE A or I, STRU F, MODE S), where the listing's CRLF text goes
    /// out as it is.
    pub(super) fn listing_format(&self) -> Option<DataFormat> {
        let f = &self.format;
        let plain = f.structure == Structure::File && f.mode == Mode::Stream;
        let representation = match f.representation {
            codec::Representation::Ebcdic(_, page) => {
                codec::Representation::Ebcdic(FormatControl::NonPrint, page)
            }
            _ if plain => return None,
            _ => codec::Representation::Ascii(FormatControl::NonPrint),
        };
        let structure = match f.structure {
            // A listing has no pages; its lines are records in STRU R.
            Structure::Page => Structure::File,
            s => s,
        };
        Some(DataFormat {
            representation,
            structure,
            mode: f.mode,
        })
    }
}

fn format_name(f: FormatControl) -> &'static str {
    match f {
        FormatControl::NonPrint => "non-print",
        FormatControl::Telnet => "Telnet format controls",
        FormatControl::Asa => "ASA carriage control",
    }
}
