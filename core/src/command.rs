//! The command parser: one line of the control connection to a typed [`Command`].
//!
//! Parsing is syntax only (what the verb is, whether its argument has the right form); whether a
//! command is allowed now is the session's decision. A [`ParseError`] carries the reply the
//! client gets: 500 for an unknown verb, 501 for a bad argument, 504 for a parameter not
//! implemented, 522 for a network protocol not supported (RFC 2428). Commands borrow their
//! arguments from the line, so parsing allocates nothing.

use crate::action::ChecksumAlgorithm;
use crate::addr;
use crate::codec::{FormatControl, Structure};
use core::net::SocketAddr;

/// TYPE argument (RFC 959 §3.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeCode {
    /// `A [N|T|C]`: ASCII, with its format control (N when omitted).
    Ascii(FormatControl),
    /// `E [N|T|C]`: EBCDIC, with its format control (the session's code page).
    Ebcdic(FormatControl),
    /// `I` or `L 8`: image (binary).
    Image,
}

/// MODE argument (RFC 959 §3.4, and MODE Z).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeCode {
    /// `S`: stream.
    Stream,
    /// `B`: block.
    Block,
    /// `C`: compressed.
    Compressed,
    /// `Z`: deflate (at the session's level).
    Deflate,
}

/// EPSV argument (RFC 2428 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: the protocol of the control connection.
    Any,
    /// `EPSV 1` / `EPSV 2` (or another number, which the session refuses with 522).
    Proto(u8),
    /// `EPSV ALL`: from now on only EPSV may set up data connections.
    All,
}

/// Which command asked to set a modification time (the reply is the same; the log differs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTimeVerb {
    /// `MFMT YYYYMMDDHHMMSS path` (draft-somers-ftp-mfxx).
    Mfmt,
    /// `MDTM YYYYMMDDHHMMSS path`, the two-argument form ncftp sends.
    Mdtm,
}

/// Arguments of LIST, NLST and STAT with a path: `-la`-style options are accepted and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListArgs<'a> {
    /// The path or glob pattern, if one was given.
    pub path: Option<&'a str>,
}

/// One parsed command. Arguments borrow from the line they came from.
#[allow(missing_docs)] // each variant is the RFC command of the same name
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    User(&'a str),
    Pass(&'a str),
    Acct(&'a str),
    Cwd(&'a str),
    Cdup,
    Smnt(&'a str),
    Rein,
    Quit,
    Port(SocketAddr),
    Eprt(SocketAddr),
    Lprt(SocketAddr),
    Pasv,
    Epsv(EpsvArg),
    Lpsv,
    Type(TypeCode),
    Stru(Structure),
    Mode(ModeCode),
    Retr(&'a str),
    Stor(&'a str),
    Stou(Option<&'a str>),
    Appe(&'a str),
    Allo,
    Rest(u64),
    Rnfr(&'a str),
    Rnto(&'a str),
    Abor,
    Dele(&'a str),
    Rmd(&'a str),
    Mkd(&'a str),
    Pwd,
    List(ListArgs<'a>),
    Nlst(ListArgs<'a>),
    Mlsd(Option<&'a str>),
    Mlst(Option<&'a str>),
    Site(&'a str),
    Syst,
    Stat(ListArgs<'a>),
    Help(Option<&'a str>),
    Noop,
    Feat,
    Opts(&'a str),
    Size(&'a str),
    Mdtm(&'a str),
    /// HASH (draft-bryan-ftpext-hash): the checksum of a file in the selected algorithm.
    Hash(&'a str),
    /// RANG (draft-bryan-ftp-range): the byte range the next HASH covers, both ends
    /// included; `RANG 1 0` resets it.
    Rang(u64, u64),
    /// XCRC, XMD5, XSHA1, XSHA256, XSHA512: the checksum of a file, or of a byte range of it
    /// (`start` included, `end` excluded), in that algorithm.
    XChecksum {
        algorithm: ChecksumAlgorithm,
        path: &'a str,
        start: u64,
        end: Option<u64>,
    },
    /// LANG (RFC 2640), with the language tag asked for, if any.
    Lang(Option<&'a str>),
    /// PRET (pre-transfer, for servers that pick a data node per transfer): the transfer
    /// command that will follow.
    Pret(&'a str),
    /// MFMT, or MDTM with a time before the path (ncftp): set a file's modification time.
    Mfmt {
        time: crate::time::UnixTime,
        path: &'a str,
        verb: SetTimeVerb,
    },
    Auth(&'a str),
    Pbsz(&'a str),
    Prot(&'a str),
    Ccc,
}

/// A line that is not a valid command, with the reply it earns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The reply code: 500, 501, 504 or 522.
    pub code: u16,
    /// The reply text.
    pub message: String,
}

impl ParseError {
    fn new(code: u16, message: impl Into<String>) -> ParseError {
        ParseError {
            code,
            message: message.into(),
        }
    }
}

/// What the server knows of each verb: its name and the syntax HELP prints.
pub struct VerbInfo {
    /// The verb, upper case.
    pub name: &'static str,
    /// The syntax line HELP prints for it.
    pub syntax: &'static str,
}

/// Every verb the parser accepts, in the order HELP lists them.
pub const VERBS: &[VerbInfo] = &[
    v("ABOR", "ABOR (abort the running transfer)"),
    v("ACCT", "ACCT <account> (not needed here)"),
    v("ALLO", "ALLO <bytes> (not needed here)"),
    v("APPE", "APPE <path> (append to a file)"),
    v("AUTH", "AUTH TLS (start TLS on the control connection)"),
    v("CCC", "CCC (clear the command channel)"),
    v("CDUP", "CDUP (change to the parent directory)"),
    v("CWD", "CWD <path> (change directory)"),
    v("DELE", "DELE <path> (delete a file)"),
    v(
        "EPRT",
        "EPRT |<proto>|<address>|<port>| (active data connection)",
    ),
    v("EPSV", "EPSV [1|2|ALL] (extended passive mode)"),
    v("FEAT", "FEAT (list extensions)"),
    v(
        "HASH",
        "HASH <path> (checksum in the algorithm OPTS HASH selects)",
    ),
    v("HELP", "HELP [<command>]"),
    v("LANG", "LANG [EN] (language of replies)"),
    v("LIST", "LIST [<path>] (long directory listing)"),
    v(
        "LPRT",
        "LPRT <af,hal,h1,...,pal,p1,...> (long active data connection)",
    ),
    v("LPSV", "LPSV (long passive mode)"),
    v(
        "MDTM",
        "MDTM <path> (modification time); MDTM YYYYMMDDHHMMSS <path> sets it",
    ),
    v(
        "MFMT",
        "MFMT YYYYMMDDHHMMSS <path> (set the modification time, UTC)",
    ),
    v("MKD", "MKD <path> (make a directory)"),
    v("MLSD", "MLSD [<path>] (machine listing of a directory)"),
    v("MLST", "MLST [<path>] (machine listing of one entry)"),
    v("MODE", "MODE S|B|C|Z (transfer mode)"),
    v("NLST", "NLST [<path>] (name list)"),
    v("NOOP", "NOOP"),
    v("OPTS", "OPTS UTF8 ON | OPTS MLST <facts>"),
    v("PASS", "PASS <password>"),
    v("PASV", "PASV (passive mode)"),
    v("PBSZ", "PBSZ 0"),
    v("PORT", "PORT <h1,h2,h3,h4,p1,p2> (active data connection)"),
    v(
        "PRET",
        "PRET <transfer command> (announce the next transfer)",
    ),
    v("PROT", "PROT C|P (data channel protection)"),
    v("PWD", "PWD (print working directory)"),
    v("QUIT", "QUIT (end the session)"),
    v(
        "RANG",
        "RANG <start> <end> (byte range of the next HASH; RANG 1 0 resets)",
    ),
    v("REIN", "REIN (log out, keep the connection)"),
    v("REST", "REST <offset> (restart a transfer at offset)"),
    v("RETR", "RETR <path> (download a file)"),
    v("RMD", "RMD <path> (remove a directory)"),
    v("RNFR", "RNFR <path> (rename from)"),
    v("RNTO", "RNTO <path> (rename to)"),
    v("SITE", "SITE <command> (SITE HELP lists them)"),
    v("SIZE", "SIZE <path> (size of a file)"),
    v("SMNT", "SMNT <path> (not needed here)"),
    v("STAT", "STAT [<path>] (server, transfer or file status)"),
    v("STOR", "STOR <path> (upload a file)"),
    v("STOU", "STOU (upload to a unique name)"),
    v("STRU", "STRU F|R|P (file structure)"),
    v("SYST", "SYST (system type)"),
    v(
        "TYPE",
        "TYPE A [N|T|C] | E [N|T|C] | I | L 8 (representation type)",
    ),
    v("USER", "USER <name>"),
    v("XCRC", "XCRC <path> [<start> [<end>]] (CRC-32)"),
    v("XCUP", "XCUP (as CDUP)"),
    v("XCWD", "XCWD <path> (as CWD)"),
    v("XMD5", "XMD5 <path> [<start> [<end>]] (MD5)"),
    v("XMKD", "XMKD <path> (as MKD)"),
    v("XPWD", "XPWD (as PWD)"),
    v("XRMD", "XRMD <path> (as RMD)"),
    v("XSHA1", "XSHA1 <path> [<start> [<end>]] (SHA-1)"),
    v("XSHA256", "XSHA256 <path> [<start> [<end>]] (SHA-256)"),
    v("XSHA512", "XSHA512 <path> [<start> [<end>]] (SHA-512)"),
];

const fn v(name: &'static str, syntax: &'static str) -> VerbInfo {
    VerbInfo { name, syntax }
}

/// Looks a verb up case-insensitively.
pub fn verb_info(name: &str) -> Option<&'static VerbInfo> {
    VERBS.iter().find(|v| v.name.eq_ignore_ascii_case(name))
}

/// Parses one command line (without its line terminator).
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, ParseError> {
    let line = core::str::from_utf8(line)
        .map_err(|_| ParseError::new(501, "Command line is not valid UTF-8."))?;
    let (verb, arg) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    if verb.is_empty() {
        return Err(ParseError::new(500, "Empty command line."));
    }
    // Verbs are letters, but for the checksum commands' digits (XSHA256); at most 7 long.
    let well_formed = verb.len() <= 7
        && verb.as_bytes()[0].is_ascii_alphabetic()
        && verb.bytes().all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return Err(unknown(verb));
    }
    let mut up = [0u8; 7];
    up[..verb.len()].copy_from_slice(verb.as_bytes());
    up.make_ascii_uppercase();
    let up = &up[..verb.len()];

    let need = |what: &str| -> Result<&str, ParseError> {
        if arg.is_empty() {
            Err(ParseError::new(
                501,
                format!("{} needs {what}.", core::str::from_utf8(up).unwrap_or("?")),
            ))
        } else {
            Ok(arg)
        }
    };
    let opt = || if arg.is_empty() { None } else { Some(arg) };

    Ok(match up {
        b"USER" => Command::User(need("a user name")?),
        b"PASS" => Command::Pass(arg),
        b"ACCT" => Command::Acct(need("an account")?),
        b"CWD" | b"XCWD" => Command::Cwd(need("a directory")?),
        b"CDUP" | b"XCUP" => Command::Cdup,
        b"SMNT" => Command::Smnt(need("a path")?),
        b"REIN" => Command::Rein,
        b"QUIT" => Command::Quit,
        b"PORT" => Command::Port(SocketAddr::V4(
            addr::parse_port(need("h1,h2,h3,h4,p1,p2")?).map_err(|_| {
                ParseError::new(501, "Bad PORT argument; expected h1,h2,h3,h4,p1,p2.")
            })?,
        )),
        b"EPRT" => Command::Eprt(parse_eprt_arg(need("|proto|address|port|")?)?),
        b"LPRT" => Command::Lprt(
            addr::parse_lprt(need("an address")?)
                .map_err(|_| ParseError::new(501, "Bad LPRT argument."))?,
        ),
        b"PASV" => Command::Pasv,
        b"LPSV" => Command::Lpsv,
        b"EPSV" => Command::Epsv(match arg.trim() {
            "" => EpsvArg::Any,
            a if a.eq_ignore_ascii_case("ALL") => EpsvArg::All,
            a => match a.parse::<u8>() {
                Ok(n) => EpsvArg::Proto(n),
                Err(_) => return Err(ParseError::new(501, "EPSV takes 1, 2 or ALL.")),
            },
        }),
        b"TYPE" => Command::Type(parse_type(need("a type code")?)?),
        b"STRU" => Command::Stru(match need("a structure code")?.trim() {
            s if s.eq_ignore_ascii_case("F") => Structure::File,
            s if s.eq_ignore_ascii_case("R") => Structure::Record,
            s if s.eq_ignore_ascii_case("P") => Structure::Page,
            _ => {
                return Err(ParseError::new(
                    501,
                    "Unknown structure code; use F, R or P.",
                ))
            }
        }),
        b"MODE" => Command::Mode(match need("a mode code")?.trim() {
            s if s.eq_ignore_ascii_case("S") => ModeCode::Stream,
            s if s.eq_ignore_ascii_case("B") => ModeCode::Block,
            s if s.eq_ignore_ascii_case("C") => ModeCode::Compressed,
            s if s.eq_ignore_ascii_case("Z") => ModeCode::Deflate,
            _ => return Err(ParseError::new(501, "Unknown mode code; use S, B, C or Z.")),
        }),
        b"RETR" => Command::Retr(need("a file name")?),
        b"STOR" => Command::Stor(need("a file name")?),
        b"STOU" => Command::Stou(opt()),
        b"APPE" => Command::Appe(need("a file name")?),
        b"ALLO" => Command::Allo,
        b"REST" => Command::Rest(
            need("an offset")?
                .trim()
                .parse::<u64>()
                .map_err(|_| ParseError::new(501, "REST needs a non-negative byte offset."))?,
        ),
        b"RNFR" => Command::Rnfr(need("a path")?),
        b"RNTO" => Command::Rnto(need("a path")?),
        b"ABOR" => Command::Abor,
        b"DELE" => Command::Dele(need("a file name")?),
        b"RMD" | b"XRMD" => Command::Rmd(need("a directory")?),
        b"MKD" | b"XMKD" => Command::Mkd(need("a directory")?),
        b"PWD" | b"XPWD" => Command::Pwd,
        b"LIST" => Command::List(list_args(arg)),
        b"NLST" => Command::Nlst(list_args(arg)),
        b"MLSD" => Command::Mlsd(opt()),
        b"MLST" => Command::Mlst(opt()),
        b"SITE" => Command::Site(need("a SITE command")?),
        b"SYST" => Command::Syst,
        b"STAT" => Command::Stat(list_args(arg)),
        b"HELP" => Command::Help(opt().map(str::trim)),
        b"NOOP" => Command::Noop,
        b"FEAT" => Command::Feat,
        b"OPTS" => Command::Opts(need("an option")?),
        b"SIZE" => Command::Size(need("a file name")?),
        b"MDTM" => {
            let arg = need("a file name")?;
            match split_time(arg) {
                Some(Ok((time, path))) => Command::Mfmt {
                    time,
                    path,
                    verb: SetTimeVerb::Mdtm,
                },
                Some(Err(e)) => return Err(e),
                None => Command::Mdtm(arg),
            }
        }
        b"MFMT" => match split_time(need("a time and a path")?) {
            Some(Ok((time, path))) => Command::Mfmt {
                time,
                path,
                verb: SetTimeVerb::Mfmt,
            },
            Some(Err(e)) => return Err(e),
            None => {
                return Err(ParseError::new(
                    501,
                    "MFMT needs a time and a path: MFMT YYYYMMDDHHMMSS <path> (UTC).",
                ))
            }
        },
        b"HASH" => Command::Hash(need("a file name")?),
        b"RANG" => {
            let bad = || ParseError::new(501, "RANG needs a start and an end byte: RANG 0 49.");
            let mut parts = need("a start and an end byte")?.split_ascii_whitespace();
            let mut num = || {
                parts
                    .next()
                    .and_then(|p| p.parse::<u64>().ok())
                    .ok_or_else(bad)
            };
            let (start, end) = (num()?, num()?);
            if parts.next().is_some() {
                return Err(bad());
            }
            Command::Rang(start, end)
        }
        b"XCRC" | b"XMD5" | b"XSHA1" | b"XSHA256" | b"XSHA512" => {
            let algorithm = match up {
                b"XCRC" => ChecksumAlgorithm::Crc32,
                b"XMD5" => ChecksumAlgorithm::Md5,
                b"XSHA1" => ChecksumAlgorithm::Sha1,
                b"XSHA256" => ChecksumAlgorithm::Sha256,
                _ => ChecksumAlgorithm::Sha512,
            };
            let (path, start, end) = parse_x_checksum(need("a file name")?)?;
            Command::XChecksum {
                algorithm,
                path,
                start,
                end,
            }
        }
        b"LANG" => Command::Lang(opt().map(str::trim)),
        b"PRET" => Command::Pret(need("a transfer command")?),
        b"AUTH" => Command::Auth(need("a mechanism")?),
        b"PBSZ" => Command::Pbsz(need("a buffer size")?),
        b"PROT" => Command::Prot(need("a protection level")?),
        b"CCC" => Command::Ccc,
        _ => return Err(unknown(verb)),
    })
}

/// The argument of XCRC and its kin: `"path with spaces" [start [end]]`, or an unquoted path
/// optionally followed by one or two byte offsets (the last words, when they are numbers).
fn parse_x_checksum(arg: &str) -> Result<(&str, u64, Option<u64>), ParseError> {
    let bad = || ParseError::new(501, "Use: XCRC \"<path>\" [<start> [<end>]].");
    let (path, rest) = match arg.strip_prefix('"') {
        Some(quoted) => {
            let close = quoted.find('"').ok_or_else(bad)?;
            (&quoted[..close], quoted[close + 1..].trim())
        }
        None => {
            // Up to two trailing numbers are the range.
            let mut path = arg.trim_end();
            let mut numbers = 0;
            while numbers < 2 {
                match path.rsplit_once(' ') {
                    Some((head, last))
                        if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        path = head.trim_end();
                        numbers += 1;
                    }
                    _ => break,
                }
            }
            (path, arg[path.len()..].trim())
        }
    };
    if path.is_empty() {
        return Err(bad());
    }
    let mut nums = rest.split_ascii_whitespace();
    let start = match nums.next() {
        Some(n) => n.parse::<u64>().map_err(|_| bad())?,
        None => 0,
    };
    let end = match nums.next() {
        Some(n) => Some(n.parse::<u64>().map_err(|_| bad())?),
        None => None,
    };
    if nums.next().is_some() || end.is_some_and(|e| e < start) {
        return Err(bad());
    }
    Ok((path, start, end))
}

/// `YYYYMMDDHHMMSS[.fff] <path>`: `None` when the argument does not start with 14 digits and
/// a space (then it is a path); an error when it does but the time is impossible.
fn split_time(arg: &str) -> Option<Result<(crate::time::UnixTime, &str), ParseError>> {
    let (time, path) = arg.split_once(' ')?;
    let digits = time.split('.').next().unwrap_or("");
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let path = path.trim_start_matches(' ');
    if path.is_empty() {
        return Some(Err(ParseError::new(
            501,
            "A path is needed after the time.",
        )));
    }
    Some(match crate::time::UnixTime::parse_mdtm(time) {
        Some(t) => Ok((t, path)),
        None => Err(ParseError::new(
            501,
            format!("'{time}' is not a valid time: use YYYYMMDDHHMMSS (UTC)."),
        )),
    })
}

fn unknown(verb: &str) -> ParseError {
    let shown: String = verb.chars().take(16).collect();
    ParseError::new(500, format!("Unknown command '{shown}'."))
}

fn parse_type(arg: &str) -> Result<TypeCode, ParseError> {
    let mut parts = arg.split_ascii_whitespace();
    let code = parts.next().unwrap_or("");
    let param = parts.next();
    if parts.next().is_some() {
        return Err(ParseError::new(501, "Too many TYPE parameters."));
    }
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let format = |p: Option<&str>| match p {
        None => Ok(FormatControl::NonPrint),
        Some(p) if is(p, "N") => Ok(FormatControl::NonPrint),
        Some(p) if is(p, "T") => Ok(FormatControl::Telnet),
        Some(p) if is(p, "C") => Ok(FormatControl::Asa),
        Some(_) => Err(ParseError::new(
            501,
            "Unknown format control; use N, T or C.",
        )),
    };
    match (code, param) {
        (c, p) if is(c, "A") => Ok(TypeCode::Ascii(format(p)?)),
        (c, p) if is(c, "E") => Ok(TypeCode::Ebcdic(format(p)?)),
        (c, None) if is(c, "I") => Ok(TypeCode::Image),
        (c, Some("8")) if is(c, "L") => Ok(TypeCode::Image),
        (c, Some(_)) if is(c, "L") => Err(ParseError::new(504, "Only byte size 8 is supported.")),
        (c, None) if is(c, "L") => Err(ParseError::new(501, "TYPE L needs a byte size.")),
        _ => Err(ParseError::new(501, "Unknown TYPE; use A, E, I or L 8.")),
    }
}

fn parse_eprt_arg(arg: &str) -> Result<SocketAddr, ParseError> {
    addr::parse_eprt(arg).map_err(|_| {
        let arg = arg.trim();
        let proto = arg
            .chars()
            .next()
            .and_then(|d| arg[d.len_utf8()..].split(d).next());
        match proto {
            Some(p) if p != "1" && p != "2" && p.parse::<u32>().is_ok() => {
                ParseError::new(522, "Network protocol not supported, use (1,2)")
            }
            _ => ParseError::new(501, "Bad EPRT argument; expected |proto|address|port|."),
        }
    })
}

/// `-la /dir` → `/dir`; `-a` → none; options are the leading words that begin with `-`.
fn list_args(arg: &str) -> ListArgs<'_> {
    let mut rest = arg.trim_start();
    while rest.starts_with('-') {
        match rest.find(' ') {
            Some(i) => rest = rest[i + 1..].trim_start(),
            None => rest = "",
        }
    }
    ListArgs {
        path: if rest.is_empty() { None } else { Some(rest) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command<'_> {
        parse_command(line.as_bytes()).unwrap()
    }
    fn code(line: &str) -> u16 {
        parse_command(line.as_bytes()).unwrap_err().code
    }

    #[test]
    fn verbs_are_case_insensitive_and_aliases_map() {
        assert_eq!(ok("user alice"), Command::User("alice"));
        assert_eq!(ok("XPWD"), Command::Pwd);
        assert_eq!(ok("xcwd /a b"), Command::Cwd("/a b"));
        assert_eq!(ok("XCUP"), Command::Cdup);
        assert_eq!(ok("PASS"), Command::Pass(""));
    }

    #[test]
    fn errors_carry_their_reply_codes() {
        assert_eq!(code("FOO"), 500);
        assert_eq!(code(""), 500);
        assert_eq!(code("TOOLONGVERB x"), 500);
        assert_eq!(code("RETR"), 501);
        assert_eq!(code("TYPE E X"), 501);
        assert_eq!(code("TYPE X"), 501);
        assert_eq!(code("MODE X"), 501);
        assert_eq!(code("STRU X"), 501);
        assert_eq!(code("REST -1"), 501);
        assert_eq!(code("EPRT |3|x|5|"), 522);
        assert_eq!(code("EPRT |1|x|5|"), 501);
        assert_eq!(code("PORT 1,2,3"), 501);
    }

    #[test]
    fn types() {
        let ascii = |f| Command::Type(TypeCode::Ascii(f));
        assert_eq!(ok("TYPE A"), ascii(FormatControl::NonPrint));
        assert_eq!(ok("TYPE a n"), ascii(FormatControl::NonPrint));
        assert_eq!(ok("TYPE A T"), ascii(FormatControl::Telnet));
        assert_eq!(ok("TYPE A C"), ascii(FormatControl::Asa));
        assert_eq!(
            ok("TYPE E"),
            Command::Type(TypeCode::Ebcdic(FormatControl::NonPrint))
        );
        assert_eq!(
            ok("TYPE e c"),
            Command::Type(TypeCode::Ebcdic(FormatControl::Asa))
        );
        assert_eq!(ok("TYPE I"), Command::Type(TypeCode::Image));
        assert_eq!(ok("TYPE L 8"), Command::Type(TypeCode::Image));
        assert_eq!(code("TYPE L 7"), 504);
        assert_eq!(code("TYPE A X"), 501);
        assert_eq!(ok("STRU r"), Command::Stru(Structure::Record));
        assert_eq!(ok("STRU P"), Command::Stru(Structure::Page));
        assert_eq!(ok("MODE b"), Command::Mode(ModeCode::Block));
        assert_eq!(ok("MODE Z"), Command::Mode(ModeCode::Deflate));
    }

    #[test]
    fn list_options_are_dropped() {
        assert_eq!(ok("LIST -la"), Command::List(ListArgs { path: None }));
        assert_eq!(
            ok("LIST -a -l /x y"),
            Command::List(ListArgs { path: Some("/x y") })
        );
        assert_eq!(
            ok("NLST *.txt"),
            Command::Nlst(ListArgs {
                path: Some("*.txt")
            })
        );
    }

    #[test]
    fn every_help_verb_parses_to_something_known() {
        for v in VERBS {
            let line = format!("{} 1", v.name);
            let r = parse_command(line.as_bytes());
            assert!(
                r.as_ref().map_or_else(|e| e.code != 500, |_| true),
                "{}",
                v.name
            );
        }
    }

    quickcheck::quickcheck! {
        fn never_panics(line: Vec<u8>) -> bool {
            let _ = parse_command(&line);
            true
        }
    }
}
