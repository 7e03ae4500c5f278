#!/usr/bin/env python3
"""A reference FTP client for RFC 959's representations, structures and modes, written from the
RFC's text and from docs/representations.md, never from Wharf's Rust code: the end-to-end tests
(tests/tests/e2e_representations.rs) drive the real server with it, so that a codec and its test
cannot share one misreading.

A client's view throughout: it has local data (bytes, text, or a list of records), produces the
wire form to send, and turns the wire form it receives back into local data.

- Control connection: commands, replies and multi-line replies (RFC 959 §4.2), PASV and EPSV data
  connections, `110 MARK yyyy = mmmm` replies during an upload (§4.2.1, §5.4).
- Representation (§3.1.1): TYPE A and TYPE E with format N, T or C, TYPE I. Local text has LF line
  ends. TYPE E uses IBM-1047 (the `ebcdic` package's cp1047) or IBM-037 (Python's cp037) with the
  line-end convention docs/representations.md chose (LF <-> NL 0x15, U+0085 <-> 0x25).
- Structure (§3.1.2): F; R (a list of records); P (page headers of §3.1.2.3).
- Mode (§3.4): S (§3.4.1, with the 0xFF codes of record structure), B (§3.4.2), C (§3.4.3),
  and Z (draft-preston-ftpext-deflate: the MODE S bytes as one zlib stream, RFC 1950, read and
  written by Python's zlib).
- Restart (§3.5): when retrieving, each restart marker is recorded with the number of data bytes
  received before it; when storing, the client sends its own marker `C<offset>` every N bytes of
  its local data and collects the server's 110 replies.

Where RFC 959 leaves a choice to the server (what the stored file looks like, which marker text
the server sends), this client follows docs/representations.md and says so where it does.

Usage:
    python3 rfc959_client.py selftest
    python3 rfc959_client.py get|put PORT USER PASSWORD REMOTE LOCAL [TYPE [STRU [MODE]]]

`selftest` checks the codecs against the RFC's own examples and by round trips, with no server.
`get` and `put` move one file, for a person poking at a server (TYPE as `A`, `E`, `I`, `A C`,
`E T`...). The end-to-end scenarios that use this library are in representations_client.py.
"""

import random
import re
import select
import socket
import struct
import sys
import time
import zlib

HOST = "127.0.0.1"
TIMEOUT = 30  # seconds, for every socket operation and every wait


class ProtocolError(Exception):
    """The data connection broke the agreed format."""


class Truncated(ProtocolError):
    """The data connection closed before the format's explicit end of file."""


class Unmappable(ValueError):
    """Local text holds a character the EBCDIC code page has no code for."""


def check(cond, what):
    """Fails the scenario with `what` unless `cond` holds."""
    if not cond:
        raise AssertionError(what)


# ----- representation types (RFC 959 §3.1.1) --------------------------------------------------

# §3.4.3: "If the type is ASCII or EBCDIC the filler byte is <SP> (Space, ASCII code 32, EBCDIC
# code 64). If the type is Image or Local byte the filler is a zero byte."
FILLER = {"A": 0x20, "E": 0x40, "I": 0x00, "L": 0x00}


def ascii_to_wire(text):
    """Local text (LF line ends) to NVT-ASCII: "the <CRLF> sequence should be used where
    necessary to denote the end of a line of text" (§3.1.1.1). Other bytes go as they are."""
    return text.replace(b"\n", b"\r\n")


def ascii_from_wire(wire):
    """NVT-ASCII to local text: CRLF becomes LF; a CR without an LF stays."""
    return wire.replace(b"\r\n", b"\n")


class CodePage:
    """One EBCDIC code page (§3.1.1.2) as this client uses it: the 256 codes one to one onto
    U+0000-U+00FF. IBM-037 is Python's own cp037; IBM-1047 comes from the `ebcdic` package
    (PyPI), which registers cp1047. Neither is Wharf's table.

    Line ends: RFC 959 names <NL> as EBCDIC's end of line (§3.1.1.2, §3.4). IBM's published
    tables pair NL 0x15 with U+0085 and LF 0x25 with U+000A (Python's cp037 does); z/OS UNIX text
    and ICU's `swaplfnl` swap the two (the `ebcdic` package's cp1047 already does).
    docs/representations.md chose the swap, "a stored LF (U+000A) travels as EBCDIC NL 0x15 ...
    and U+0085 (NEL) as 0x25", so this class puts LF at 0x15 and U+0085 at 0x25 whatever the
    table did."""

    CODECS = {"IBM-1047": "cp1047", "IBM-037": "cp037"}

    def __init__(self, name):
        codec = self.CODECS[name]
        if codec == "cp1047":
            import ebcdic  # noqa: F401  (registers cp1047 with Python's codecs)
        chars = list(bytes(range(256)).decode(codec))
        check({chars[0x15], chars[0x25]} == {"\n", "\x85"}, f"{name}: NL/LF are not at 0x15/0x25")
        chars[0x15], chars[0x25] = "\n", "\x85"
        check(sorted(map(ord, chars)) == list(range(256)), f"{name} is not one to one on Latin-1")
        self.name = name
        self._to_latin1 = {ord(c): i for i, c in enumerate(chars)}  # char -> code, as a char
        self._from_latin1 = {i: ord(c) for i, c in enumerate(chars)}  # code -> char

    def encode(self, text):
        """Text to EBCDIC; a character above U+00FF is Unmappable (nothing is replaced)."""
        try:
            return text.translate(self._to_latin1).encode("latin-1")
        except UnicodeEncodeError as e:
            bad = e.object[e.start]
            raise Unmappable(f"U+{ord(bad):04X} has no code in {self.name}") from None

    def decode(self, wire):
        """EBCDIC to text: every code has a character."""
        return bytes(wire).decode("latin-1").translate(self._from_latin1)


# ----- what travels: data, end of record, restart marker, end of file -------------------------
# The mode encoders take, and the mode decoders report, these events (§3.4: "the sending host
# will translate its internal end of line or end of record denotation into the representation
# prescribed by the transfer mode and file structure").
DATA, EOR, MARK, EOF = "data", "eor", "mark", "eof"

# Descriptor codes of §3.4.2, shared by the compressed mode's escapes (§3.4.3).
D_EOR, D_EOF, D_SUSPECT, D_MARK = 128, 64, 32, 16
D_UNDEFINED = 0x0F


def file_events(local, to_wire, *, marks_every=None, start=0, stop=None, end_of_file=True):
    """STRU F: the local data from `start` to `stop` through the representation, with the
    client's restart marker `C<local offset>` every `marks_every` local bytes (§3.5: "The
    marker information has meaning only to the sender"), then the end of file."""
    stop = len(local) if stop is None else stop
    pos = start
    while pos < stop:
        end = stop if not marks_every else min(stop, (pos // marks_every + 1) * marks_every)
        yield (DATA, to_wire(local[pos:end]))
        pos = end
        if marks_every and pos % marks_every == 0 and pos < len(local):
            yield (MARK, f"C{pos}")
    if end_of_file:
        yield (EOF,)


def record_events(records, end_of_file=True):
    """STRU R: each record's data, then its end (§3.4: "all the end-of-record markers (EOR) are
    explicit, including the final one")."""
    for rec in records:
        if rec:
            yield (DATA, rec)
        yield (EOR,)
    if end_of_file:
        yield (EOF,)


# ----- MODE S (§3.4.1) --------------------------------------------------------------------------


def encode_stream(events, stru, join_eor_eof=True):
    """STRU F: the data bytes; the end of file is the close. STRU R: "EOR and EOF will each be
    indicated by a two-byte control code" 0xFF 0x01 / 0xFF 0x02, or 0xFF 0x03 for both; "If a
    byte of all ones was intended to be sent as data, it should be repeated"."""
    eor_held = False
    for ev in events:
        kind = ev[0]
        if stru != "R":
            if kind == DATA:
                yield ev[1]
            elif kind == EOF:
                return
            else:  # §3.5: "The restart procedure is defined only for the block and compressed
                # modes"
                raise ValueError(f"MODE S with STRU {stru} carries no {kind}")
            continue
        if eor_held and kind != EOF:
            yield b"\xff\x01"
            eor_held = False
        if kind == DATA:
            yield ev[1].replace(b"\xff", b"\xff\xff")
        elif kind == EOR:
            eor_held = True
        elif kind == EOF:
            if eor_held and join_eor_eof:
                yield b"\xff\x03"
            else:
                yield (b"\xff\x01" if eor_held else b"") + b"\xff\x02"
            return
        else:
            raise ValueError("MODE S carries no restart markers (§3.5)")


class StreamDecoder:
    """MODE S. STRU F and P: every byte is data, the close is the end of file. STRU R: the 0xFF
    codes; the end of file is the EOF code, or (docs/representations.md, "Where the file ends")
    the close right after a complete record."""

    def __init__(self, stru, sink):
        self.stru, self.sink = stru, sink
        self.held_ff = False
        self.wire = 0  # wire bytes read so far, for error messages

    def feed(self, chunk):
        if self.stru != "R":
            self.sink.on_data(chunk)
            return
        buf = (b"\xff" if self.held_ff else b"") + bytes(chunk)
        base = self.wire - (1 if self.held_ff else 0)
        self.wire += len(chunk)
        self.held_ff = False
        i = 0
        while i < len(buf):
            j = buf.find(b"\xff", i)
            if j < 0:
                self.sink.on_data(buf[i:])
                return
            self.sink.on_data(buf[i:j])
            if j + 1 == len(buf):
                self.held_ff = True
                return
            code = buf[j + 1]
            if code == 0xFF:
                self.sink.on_data(b"\xff")
            elif code in (1, 2, 3):
                if self.sink.eof:
                    raise ProtocolError(
                        f"a control code after the end of file (wire byte {base + j})"
                    )
                if code & 1:
                    self.sink.on_eor()
                if code & 2:
                    self.sink.on_eof()
            else:
                raise ProtocolError(
                    f"undefined control code 0xFF 0x{code:02X} at wire byte {base + j}"
                )
            i = j + 2

    def finish(self):
        if self.stru != "R":
            self.sink.on_eof()
            return
        if self.held_ff:
            raise Truncated("the connection closed after an 0xFF escape byte")
        if not self.sink.eof:
            if self.sink.open_record():
                raise Truncated("the connection closed inside a record (MODE S, STRU R)")
            self.sink.on_eof()
            self.sink.eof_implicit = True


# ----- MODE B (§3.4.2) --------------------------------------------------------------------------


def block_header(flags, count):
    """ "The header consists of the three bytes. Of the 24 bits of header information, the 16
    low order bits shall represent byte count, and the 8 high order bits shall represent
    descriptor codes." """
    return bytes([flags]) + count.to_bytes(2, "big")


def encode_block(events, max_block=65535):
    """Data in blocks of at most `max_block` bytes. The last block of a record carries EOR, the
    last block of the file EOF (an empty block when the data has gone); a restart marker is a
    block of its own with descriptor 16 whose data is the marker's text."""
    held = None  # [flags, data]: the last data block, kept so an EOR or EOF can be flagged on it

    def release():
        nonlocal held
        out = b"" if held is None else block_header(held[0], len(held[1])) + held[1]
        held = None
        return out

    for ev in events:
        kind = ev[0]
        if kind == DATA:
            data = ev[1]
            for i in range(0, len(data), max_block):
                out = release()
                if out:
                    yield out
                held = [0, data[i : i + max_block]]
        elif kind == EOR:
            if held is None or held[0] & D_EOR:
                out = release()
                if out:
                    yield out
                held = [0, b""]
            held[0] |= D_EOR
        elif kind == MARK:
            text = ev[1].encode("ascii")
            yield release() + block_header(D_MARK, len(text)) + text
        elif kind == EOF:
            if held is None:
                held = [0, b""]
            held[0] |= D_EOF
            yield release()
            return
    out = release()  # no EOF: an interrupted transfer
    if out:
        yield out


class BlockDecoder:
    """MODE B: blocks until the one flagged EOF. Undefined descriptor bits (1, 2, 4, 8), a
    restart marker that is also EOR or EOF, and anything after the EOF block are errors; a
    close before the EOF block is Truncated."""

    def __init__(self, sink):
        self.sink = sink
        self.buf = bytearray()
        self.wire = 0

    def feed(self, chunk):
        self.buf += chunk
        i = 0
        while len(self.buf) - i >= 3:
            flags = self.buf[i]
            count = int.from_bytes(self.buf[i + 1 : i + 3], "big")
            if len(self.buf) - i - 3 < count:
                break
            at = self.wire + i
            if self.sink.eof:
                raise ProtocolError(f"a block after the EOF block (wire byte {at})")
            if flags & D_UNDEFINED:
                raise ProtocolError(f"undefined descriptor bits in 0x{flags:02X} at wire byte {at}")
            data = bytes(self.buf[i + 3 : i + 3 + count])
            i += 3 + count
            if flags & D_MARK:
                if flags & (D_EOR | D_EOF):
                    raise ProtocolError(f"a restart marker block flagged EOR/EOF at wire byte {at}")
                self.sink.on_mark(data, at)
                continue
            if flags & D_SUSPECT:
                self.sink.suspect += count
            self.sink.on_data(data)
            if flags & D_EOR:
                self.sink.on_eor()
            if flags & D_EOF:
                self.sink.on_eof()
        del self.buf[:i]
        self.wire += i

    def finish(self):
        if self.buf:
            raise Truncated(
                f"the connection closed inside a block ({len(self.buf)} bytes of it came)"
            )
        if not self.sink.eof:
            raise Truncated("the connection closed before the EOF block (MODE B)")


# ----- MODE C (§3.4.3) --------------------------------------------------------------------------

RUN = re.compile(rb"(.)\1{2,}", re.S)  # three or more equal bytes


def literal_strings(data):
    """ "If n>0 bytes (up to 127) of regular data are sent, these n bytes are preceded by a byte
    with the left-most bit set to 0 and the right-most 7 bits containing the number n." """
    for i in range(0, len(data), 127):
        chunk = data[i : i + 127]
        yield bytes([len(chunk)]) + chunk


def compressed_strings(data, filler):
    """Data as compressed-mode strings: a run of three or more equal bytes becomes replicated
    bytes `10nnnnnn d` (or a filler string `11nnnnnn` when it is the filler byte), at most 63
    each; everything else goes in byte strings."""
    pos = 0
    for m in RUN.finditer(data):
        yield from literal_strings(data[pos : m.start()])
        byte, n = m.group(1)[0], m.end() - m.start()
        while n:
            k = min(n, 63)
            yield bytes([0xC0 | k]) if byte == filler else bytes([0x80 | k, byte])
            n -= k
        pos = m.end()
    yield from literal_strings(data[pos:])


def encode_compressed(events, filler):
    """Strings, and escapes `0x00 <descriptor>` that "apply to the succeeding string of bytes"
    (§3.4.3). Read as docs/representations.md reads it: an EOR or EOF escape goes before the
    string that ends the record or file; with no string to carry it (an empty record, an empty
    file) it is followed by an empty filler string 0xC0. A restart marker is the escape with
    code 16 followed by a byte string holding the marker's text."""
    held, flags = None, 0  # the last string, and the escape codes that will go before it

    def release():
        nonlocal held, flags
        if flags:
            out = bytes([0, flags]) + (b"\xc0" if held is None else held)
        else:
            out = held or b""
        held, flags = None, 0
        return out

    for ev in events:
        kind = ev[0]
        if kind == DATA:
            for s in compressed_strings(ev[1], filler):
                out = release()
                if out:
                    yield out
                held = s
        elif kind == EOR:
            if flags & D_EOR:
                yield release()
            flags |= D_EOR
        elif kind == MARK:
            text = ev[1].encode("ascii")
            check(0 < len(text) <= 127, "a marker fits one byte string")
            yield release() + bytes([0, D_MARK, len(text)]) + text
        elif kind == EOF:
            flags |= D_EOF
            yield release()
            return
    if held is not None and not flags:  # no EOF: an interrupted transfer
        yield release()


class CompressedDecoder:
    """MODE C: byte strings, replicated bytes, filler strings and escapes. An escape's codes
    apply to the next string; an escape followed by another escape applies to an empty string
    (docs/representations.md); an escape followed by the close is Truncated."""

    def __init__(self, filler, sink):
        self.filler, self.sink = filler, sink
        self.buf = bytearray()
        self.flags = None  # codes of an escape waiting for its string
        self.wire = 0

    def feed(self, chunk):
        self.buf += chunk
        buf, i = self.buf, 0
        while i < len(buf):
            h = buf[i]
            if h == 0:  # escape
                if len(buf) - i < 2:
                    break
                d = buf[i + 1]
                if d & D_UNDEFINED:
                    raise ProtocolError(
                        f"undefined descriptor bits in escape 0x{d:02X}"
                        f" at wire byte {self.wire + i}"
                    )
                if self.flags is not None:
                    self._string(b"", self.wire + i)
                self.flags = d
                i += 2
            elif h < 0x80:  # byte string
                if len(buf) - i < 1 + h:
                    break
                self._string(bytes(buf[i + 1 : i + 1 + h]), self.wire + i)
                i += 1 + h
            elif h < 0xC0:  # replicated byte
                if len(buf) - i < 2:
                    break
                self._string(bytes([buf[i + 1]]) * (h & 0x3F), self.wire + i)
                i += 2
            else:  # filler string
                self._string(bytes([self.filler]) * (h & 0x3F), self.wire + i)
                i += 1
        del buf[:i]
        self.wire += i

    def _string(self, s, at):
        flags, self.flags = self.flags or 0, None
        if self.sink.eof:
            raise ProtocolError(f"a string after the end of file (wire byte {at})")
        if flags & D_MARK:
            if flags & (D_EOR | D_EOF):
                raise ProtocolError(f"a restart marker escape flagged EOR/EOF at wire byte {at}")
            self.sink.on_mark(s, at)
            return
        if flags & D_SUSPECT:
            self.sink.suspect += len(s)
        self.sink.on_data(s)
        if flags & D_EOR:
            self.sink.on_eor()
        if flags & D_EOF:
            self.sink.on_eof()

    def finish(self):
        if self.buf:
            raise Truncated("the connection closed inside a string (MODE C)")
        if self.flags is not None:
            raise Truncated("the connection closed after an escape, before its string (MODE C)")
        if not self.sink.eof:
            raise Truncated("the connection closed before the EOF escape (MODE C)")


# ----- MODE Z (draft-preston-ftpext-deflate) ----------------------------------------------------


def encode_deflate(events, stru, level):
    """The MODE S bytes of the transfer as one zlib stream (RFC 1950), made by Python's zlib."""
    z = zlib.compressobj(level)
    for chunk in encode_stream(events, stru):
        out = z.compress(chunk)
        if out:
            yield out
    yield z.flush()


class DeflateDecoder:
    """MODE Z: Python's zlib.decompressobj over the wire, the MODE S decoder over what comes out.
    The end is the zlib stream's end (its Adler-32 checked by zlib); bytes after it are an error,
    a close before it is Truncated."""

    def __init__(self, inner):
        self.inner = inner
        self.z = zlib.decompressobj()

    def feed(self, chunk):
        if self.z.eof:
            raise ProtocolError("bytes after the end of the zlib stream")
        try:
            out = self.z.decompress(chunk)
        except zlib.error as e:
            raise ProtocolError(f"not a zlib stream: {e}") from None
        self.inner.feed(out)
        if self.z.eof:
            if self.z.unused_data:
                raise ProtocolError("bytes after the end of the zlib stream")
            self.inner.finish()

    def finish(self):
        if not self.z.eof:
            raise Truncated("the connection closed before the end of the zlib stream (MODE Z)")


# ----- page structure (§3.1.2.3) ----------------------------------------------------------------


def encode_pages(data, page_size=255, first_index=0):
    """Simple pages (type 1): header length 4, page index, data length, type; "All fields are one
    logical byte in length" (8 bits here), then the last page (type 0, header length 4, data
    length 0; its index 0, as docs/representations.md sends it)."""
    out = bytearray()
    for n, i in enumerate(range(0, len(data), page_size)):
        index = first_index + n
        if index > 255:
            raise ValueError("more pages than a one-byte index numbers")
        chunk = data[i : i + page_size]
        out += bytes([4, index, len(chunk), 1]) + chunk
    out += bytes([4, 0, 0, 0])
    return bytes(out)


def decode_pages(data):
    """The pages in `data`: a list of (index, type, page data, optional header fields), and
    whether the last page came. "The minimum header length is 4"; the last page's "header length
    must be 4, and the data length must be 0"."""
    pages, i, last = [], 0, False
    while i < len(data):
        if len(data) - i < 4:
            raise Truncated(f"a page header cut short at byte {i}")
        hl, index, dl, kind = data[i : i + 4]
        if hl < 4:
            raise ProtocolError(f"page header length {hl} < 4 at byte {i}")
        if kind == 0:
            if hl != 4 or dl != 0:
                raise ProtocolError(f"a last page with header length {hl}, data length {dl}")
            if i + 4 != len(data):
                raise ProtocolError("data after the last page")
            last = True
            break
        if len(data) - i < hl + dl:
            raise Truncated(f"a page cut short at byte {i}")
        pages.append((index, kind, bytes(data[i + hl : i + hl + dl]), bytes(data[i + 4 : i + hl])))
        i += hl + dl
    return pages, last


# ----- what arrived -----------------------------------------------------------------------------


class Received:
    """What a mode decoder delivered: the data (after the mode, before the representation), where
    each record ended, each restart marker with the number of data bytes received before it, the
    end of file, and how many bytes came in suspect blocks."""

    def __init__(self):
        self.data = bytearray()
        self.record_ends = []
        self.marks = []  # (marker text, data bytes before it)
        self.eof = False
        self.eof_implicit = False
        self.suspect = 0

    def on_data(self, b):
        if b:
            if self.eof:
                raise ProtocolError("data after the end of file")
            self.data += b

    def on_eor(self):
        self.record_ends.append(len(self.data))

    def on_mark(self, raw, at):
        # §3.4.2: "printable characters in the language being used over the control connection
        # ... <SP> ... must not be used WITHIN a restart marker."
        if not raw or any(c < 33 or c > 126 for c in raw):
            raise ProtocolError(
                f"restart marker {raw!r} at wire byte {at} is not printable ASCII without spaces"
            )
        self.marks.append((raw.decode("ascii"), len(self.data)))

    def on_eof(self):
        self.eof = True

    def open_record(self):
        """Whether data came after the last end of record."""
        return len(self.data) > (self.record_ends[-1] if self.record_ends else 0)

    def records(self):
        if self.open_record():
            raise ProtocolError("the last record has no end of record")
        out, start = [], 0
        for end in self.record_ends:
            out.append(bytes(self.data[start:end]))
            start = end
        return out


# ----- transfer parameters ----------------------------------------------------------------------


class Format:
    """TYPE, its format control, STRU, MODE, the EBCDIC code page and the MODE Z level; converts
    local data to the wire and back.

    Local data: STRU F and P: bytes (TYPE A, I) or text (TYPE E); STRU R: a list of those, one
    per record. TYPE A with STRU R carries each record as it is (its end is the EOR, not a
    CRLF; docs/representations.md: "no CR is added or removed")."""

    def __init__(self, rep="A", form=None, stru="F", mode="S", codepage="IBM-1047", level=None):
        self.rep, self.form, self.stru, self.mode, self.level = rep, form, stru, mode, level
        self.codepage = CodePage(codepage) if rep == "E" else None

    def type_command(self):
        return f"TYPE {self.rep}" + (f" {self.form}" if self.form else "")

    @property
    def filler(self):
        return FILLER[self.rep]

    def unit_to_wire(self, local):
        if self.rep == "E":
            return self.codepage.encode(local)
        if self.rep == "A" and self.stru != "R":
            return ascii_to_wire(local)
        return bytes(local)

    def unit_from_wire(self, wire):
        if self.rep == "E":
            return self.codepage.decode(wire)
        if self.rep == "A" and self.stru != "R":
            return ascii_from_wire(bytes(wire))
        return bytes(wire)

    def events(self, local, *, page_size=255, **marks):
        """Representation, then structure (§3: RFC 959's order)."""
        if self.stru == "R":
            return record_events([self.unit_to_wire(r) for r in local])
        if self.stru == "P":
            return iter([(DATA, encode_pages(self.unit_to_wire(local), page_size)), (EOF,)])
        return file_events(local, self.unit_to_wire, **marks)

    def encode_events(self, events):
        """Then the mode."""
        if self.mode == "S":
            return encode_stream(events, self.stru)
        if self.mode == "B":
            return encode_block(events)
        if self.mode == "C":
            return encode_compressed(events, self.filler)
        if self.mode == "Z":
            return encode_deflate(events, self.stru, 6 if self.level is None else self.level)
        raise ValueError(f"unknown mode {self.mode}")

    def encode(self, local, **kw):
        return self.encode_events(self.events(local, **kw))

    def decoder(self, sink):
        if self.mode == "S":
            return StreamDecoder(self.stru, sink)
        if self.mode == "B":
            return BlockDecoder(sink)
        if self.mode == "C":
            return CompressedDecoder(self.filler, sink)
        if self.mode == "Z":
            return DeflateDecoder(StreamDecoder(self.stru, sink))
        raise ValueError(f"unknown mode {self.mode}")

    def local(self, received):
        """The local data a receiver keeps."""
        if self.stru == "R":
            return [self.unit_from_wire(r) for r in received.records()]
        if self.stru == "P":
            pages, last = decode_pages(received.data)
            check(last, "the pages end without the last page")
            return self.unit_from_wire(b"".join(p[2] for p in pages))
        return self.unit_from_wire(received.data)

    def decode(self, wire, step=None):
        """The whole wire at once (or `step` bytes at a time): (local data, Received)."""
        sink = Received()
        dec = self.decoder(sink)
        step = step or max(1, len(wire))
        for i in range(0, len(wire), step):
            dec.feed(wire[i : i + step])
        if not sink.eof:
            dec.finish()
        return self.local(sink), sink


# ----- the control connection (§4.2, §5.3) ------------------------------------------------------


class Reply:
    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[0][:3])

    @property
    def text(self):
        return self.lines[0][4:]

    def __str__(self):
        return "\n".join(self.lines)


def parse_reply(buf):
    """The first complete reply in `buf` and the bytes after it, or None if it has not all come.
    §4.2: a reply is a code, <SP>, text; a multi-line reply starts with the code and "-", and ends
    with a line starting with the same code and <SP>."""
    lines, pos = [], 0
    while True:
        end = buf.find(b"\n", pos)
        if end < 0:
            return None
        line = buf[pos:end].rstrip(b"\r").decode("utf-8", "replace")
        pos = end + 1
        lines.append(line)
        first = lines[0]
        if len(lines) == 1:
            if not re.match(r"^\d{3}([ -]|$)", first):
                raise ProtocolError(f"a reply line without a code: {first!r}")
            done = not first[3:4] == "-"
        else:
            done = line[:3] == first[:3] and line[3:4] in (" ", "")
        if done:
            return Reply(lines), buf[pos:]


MARK_REPLY = re.compile(r"^110 MARK (\S+) = (\S+)$")


def parse_mark(reply):
    """ "110 Restart marker reply. In this case, the text is exact ... MARK yyyy = mmmm" """
    m = MARK_REPLY.match(reply.lines[0])
    check(m and len(reply.lines) == 1, f"a 110 reply not of the form 'MARK yyyy = mmmm': {reply}")
    return m.group(1), m.group(2)


class Control:
    """One control connection, with a transcript kept for failure messages."""

    transcripts = []

    def __init__(self, port, host=HOST):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.host = host
        self.buf = b""
        self.log = []
        Control.transcripts.append(self.log)
        greeting = self.reply()
        check(greeting.code == 220, f"greeting: {greeting}")

    def send(self, line):
        self.log.append("C: " + line)
        self.sock.sendall(line.encode("utf-8") + b"\r\n")

    def _take(self):
        got = parse_reply(self.buf)
        if got is None:
            return None
        reply, self.buf = got
        self.log.extend("S: " + l for l in reply.lines)
        return reply

    def reply(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            r = self._take()
            if r is not None:
                return r
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply within {timeout} s")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the control connection")
            self.buf += chunk

    def poll(self, wait=0.0):
        """A reply if a complete one is there within `wait` seconds, else None."""
        r = self._take()
        if r is not None or not select.select([self.sock], [], [], wait)[0]:
            return r
        self.sock.settimeout(TIMEOUT)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the control connection")
        self.buf += chunk
        return self._take()

    def cmd(self, line):
        self.send(line)
        return self.reply()

    def expect(self, line, *codes):
        r = self.cmd(line)
        check(r.code in codes, f"{line}: want {' or '.join(map(str, codes))}, got {r}")
        return r

    def login(self, user, password):
        if self.expect(f"USER {user}", 230, 331).code == 331:
            self.expect(f"PASS {password}", 230)

    def set_format(self, fmt):
        """TYPE, STRU and MODE (§4.1.2), and the MODE Z level."""
        self.expect(fmt.type_command(), 200)
        self.expect(f"STRU {fmt.stru}", 200)
        self.expect(f"MODE {fmt.mode}", 200)
        if fmt.level is not None:
            self.expect(f"OPTS MODE Z LEVEL {fmt.level}", 200)

    def data_connection(self, epsv=False, rcvbuf=None):
        """PASV (§4.1.2: "the host and port address this server is listening on") or EPSV (RFC
        2428: `229 ... (|||port|)`), and a connection to it."""
        if epsv:
            r = self.expect("EPSV", 229)
            m = re.search(r"\((.)\1\1(\d+)\1\)", r.text)
            check(m, f"cannot parse {r}")
            addr = (self.host, int(m.group(2)))
        else:
            r = self.expect("PASV", 227)
            m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", r.text)
            check(m, f"cannot parse {r}")
            n = [int(x) for x in m.groups()]
            addr = (".".join(map(str, n[:4])), n[4] * 256 + n[5])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # before connect, so the window stays small and the server cannot run ahead
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(TIMEOUT)
        s.connect(addr)
        return s


def session(port, user, password, host=HOST):
    """A logged-in control connection."""
    ctl = Control(port, host)
    ctl.login(user, password)
    return ctl


def cut(sock):
    """Closes a data connection with a reset (SO_LINGER 0): a connection lost mid-transfer."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def coalesce(chunks, size=1 << 18):
    """Joins small pieces into sends of about `size` bytes."""
    buf = bytearray()
    for c in chunks:
        buf += c
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


class Transfer:
    """One transfer command: its first and final replies, the 110 MARK replies that came, and
    for a retrieve what arrived (`received`, the raw `wire`) and any format error found in it."""

    def __init__(self):
        self.first = self.final = None
        self.marks = []  # (client marker, server marker) from 110 replies
        self.received = None
        self.wire = bytearray()
        self.error = None
        self.cut = False
        self.sent = 0

    def ok(self):
        return self.final is not None and self.final.code // 100 == 2 and self.error is None

    def _reply(self, r):
        if r.code == 110:
            self.marks.append(parse_mark(r))
        else:
            self.final = r

    def __str__(self):
        return f"first {self.first}; final {self.final}; error {self.error}; marks {self.marks}"


def retrieve(ctl, command, fmt, *, rest=None, stop=None, rcvbuf=None, epsv=False):
    """PASV (or EPSV), REST if given, the command (RETR, LIST, NLST), then the data through the
    decoder until its end of file or until `stop(received)` says to cut the connection."""
    t = Transfer()
    data = ctl.data_connection(epsv, rcvbuf)
    try:
        if rest is not None:
            ctl.expect(f"REST {rest}", 350)
        t.first = ctl.cmd(command)
        if t.first.code // 100 != 1:
            t.final = t.first
            return t
        t.received = sink = Received()
        dec = fmt.decoder(sink)
        try:
            while not sink.eof:
                chunk = data.recv(1 << 16)
                if not chunk:
                    dec.finish()
                    break
                t.wire += chunk
                dec.feed(chunk)
                if stop is not None and not sink.eof and stop(sink):
                    cut(data)
                    t.cut = True
                    break
        except (ProtocolError, OSError) as e:
            t.error = e
            cut(data)  # a server still sending must not wait on a reader that has stopped
        while t.final is None:
            t._reply(ctl.reply())
        if sink.eof and not t.cut and t.error is None:
            # An explicit end of file came; a 226 means the server closed the data connection
            # ("the server must indicate [its close] ... by either a 250 or 226 reply", §3.2).
            data.settimeout(5 if t.final.code == 226 else 0.2)
            try:
                extra = data.recv(1 << 16)
                if extra:
                    t.error = ProtocolError(f"{len(extra)} bytes after the end of file")
            except OSError:
                pass
    finally:
        data.close()
    return t


def store(ctl, command, chunks, *, rest=None, wait_marks=0, ending="close", epsv=False):
    """PASV (or EPSV), REST if given, the command (STOR, APPE), then the wire bytes `chunks`,
    reading 110 replies as they come. Then, if `wait_marks`, waits (bounded) until that many 110
    replies have come; then ends the data connection: "close" (the normal end) or "cut" (a
    reset: the connection lost)."""
    t = Transfer()
    data = ctl.data_connection(epsv)
    try:
        if rest is not None:
            ctl.expect(f"REST {rest}", 350)
        t.first = ctl.cmd(command)
        if t.first.code // 100 != 1:
            t.final = t.first
            return t
        try:
            for chunk in coalesce(chunks):
                data.sendall(chunk)
                t.sent += len(chunk)
                while t.final is None and (r := ctl.poll()) is not None:
                    t._reply(r)
                if t.final is not None:
                    break  # the server gave up on the upload
        except OSError as e:
            t.error = e
        deadline = time.monotonic() + TIMEOUT
        while t.final is None and len(t.marks) < wait_marks and time.monotonic() < deadline:
            r = ctl.poll(0.2)
            if r is not None:
                t._reply(r)
        if ending == "cut":
            cut(data)
            t.cut = True
        else:
            try:
                data.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            data.close()
        while t.final is None:
            t._reply(ctl.reply())
    finally:
        data.close()
    return t


# ----- selftest: the codecs against the RFC's examples and by round trip, no server -------------


def expect_error(kind, fn, what):
    try:
        fn()
    except kind:
        return
    raise AssertionError(f"{what}: want {kind.__name__}")


def selftest_rfc_examples():
    # §3.4.2: "to transmit a six-character marker, the following would be sent:" descriptor 16,
    # byte count 6, then the six marker bytes.
    wire = b"".join(encode_block([(DATA, b"hello"), (MARK, "ABCDEF"), (DATA, b"world"), (EOF,)]))
    check(
        wire == b"\x00\x00\x05hello" + b"\x10\x00\x06ABCDEF" + b"\x40\x00\x05world",
        f"MODE B marker: {wire!r}",
    )
    local, got = Format("I", mode="B").decode(wire)
    check(local == b"helloworld" and got.marks == [("ABCDEF", 5)], "MODE B marker read back")
    # §3.4.2 descriptor codes: EOR 128 on a record's last block, EOF 64 on the file's.
    wire = b"".join(Format("I", stru="R", mode="B").encode([b"ab", b"", b"c"]))
    check(
        wire == b"\x80\x00\x02ab" + b"\x80\x00\x00" + b"\xc0\x00\x01c", f"MODE B records: {wire!r}"
    )
    check(b"".join(encode_block([(EOF,)])) == b"\x40\x00\x00", "MODE B empty file")
    # §3.4.1: 0xFF doubled as data; EOR 1, EOF 2, both 3.
    fmt = Format("I", stru="R")
    wire = b"".join(fmt.encode([b"\xff", b"a\xffb"]))
    check(wire == b"\xff\xff\xff\x01a\xff\xffb\xff\x03", f"MODE S records: {wire!r}")
    apart = b"".join(encode_stream(record_events([b"\xff", b"a\xffb"]), "R", join_eor_eof=False))
    check(apart == b"\xff\xff\xff\x01a\xff\xffb\xff\x01\xff\x02", f"MODE S EOR then EOF: {apart!r}")
    for w in (wire, apart, apart[:-2]):  # the last: closed right after a complete record
        check(fmt.decode(w)[0] == [b"\xff", b"a\xffb"], f"MODE S records read back from {w!r}")
    # §3.4.3: a byte string (0 + n), replicated bytes (10 + n, d), a filler string (11 + n).
    check(b"".join(literal_strings(b"abc")) == b"\x03abc", "byte string")
    for rep, fill in (("A", b" "), ("E", b"\x40"), ("I", b"\x00")):
        sink = Received()
        CompressedDecoder(FILLER[rep], sink).feed(b"\x85x\x00\x40\xc4")
        check(bytes(sink.data) == b"xxxxx" + fill * 4 and sink.eof, f"filler for TYPE {rep}")
    wire = b"".join(encode_compressed([(DATA, b"ab" + b"x" * 5 + b" " * 4), (EOF,)], 0x20))
    check(wire == b"\x02ab\x85x\x00\x40\xc4", f"MODE C strings: {wire!r}")
    wire = b"".join(encode_compressed([(DATA, b"y" * 100), (EOF,)], 0))
    check(wire == b"\xbfy\x00\x40\xa5y", f"MODE C long run: {wire!r}")
    # docs/representations.md's example of escapes: records ab, (empty), ccc.
    wire = b"".join(Format("I", stru="R", mode="C").encode([b"ab", b"", b"ccc"]))
    check(wire == bytes.fromhex("0080026162" "0080c0" "00c08363"), f"MODE C records: {wire.hex()}")
    check(
        Format("I", stru="R", mode="C").decode(wire)[0] == [b"ab", b"", b"ccc"],
        "MODE C records read back",
    )
    # §3.1.2.3: page headers.
    wire = encode_pages(b"x" * 300)
    check(
        wire
        == bytes([4, 0, 255, 1])
        + b"x" * 255
        + bytes([4, 1, 45, 1])
        + b"x" * 45
        + bytes([4, 0, 0, 0]),
        "pages",
    )
    pages, last = decode_pages(bytes([5, 7, 2, 3, 0x99]) + b"hi" + bytes([4, 0, 0, 0]))
    check(last and pages == [(7, 3, b"hi", b"\x99")], f"an access-controlled page: {pages}")
    # §4.2: a multi-line reply, as the RFC shows it; §4.2.1: the 110 reply.
    r, rest = parse_reply(
        b"123-First line\r\nSecond line\r\n  234 A line beginning with numbers\r\n"
        b"123 The last line\r\n200 x\r\n"
    )
    check(r.code == 123 and len(r.lines) == 4 and rest == b"200 x\r\n", "multi-line reply")
    check(
        parse_reply(b"123-First line\r\n123-not the end\r\n") is None,
        "an unfinished multi-line reply",
    )
    check(parse_mark(Reply(["110 MARK yyyy = mmmm"])) == ("yyyy", "mmmm"), "110 MARK")


def selftest_errors():
    b = Format("I", mode="B")
    expect_error(Truncated, lambda: b.decode(b"\x00\x00\x02ab"), "MODE B without the EOF block")
    expect_error(Truncated, lambda: b.decode(b"\x40\x00\x05ab"), "MODE B block cut short")
    expect_error(ProtocolError, lambda: b.decode(b"\x41\x00\x00"), "MODE B undefined bit")
    expect_error(
        ProtocolError, lambda: b.decode(b"\x40\x00\x00\x00\x00\x00"), "MODE B block after EOF"
    )
    expect_error(
        ProtocolError, lambda: b.decode(b"\x10\x00\x02a b\x40\x00\x00"), "marker with a space"
    )
    _, got = b.decode(b"\x20\x00\x02ab\x40\x00\x00")
    check(got.suspect == 2 and bytes(got.data) == b"ab", "MODE B suspect block is data")
    c = Format("I", mode="C")
    expect_error(Truncated, lambda: c.decode(b"\x02ab\x00\x40"), "MODE C escape then close")
    expect_error(Truncated, lambda: c.decode(b"\x02ab"), "MODE C without EOF")
    expect_error(ProtocolError, lambda: c.decode(b"\x00\x44\x02ab"), "MODE C undefined bit")
    check(
        Format("I", stru="R", mode="C").decode(b"\x00\x80\x00\xc0\x81a")[0] == [b"", b"a"],
        "escape after escape",
    )
    r = Format("I", stru="R")
    expect_error(ProtocolError, lambda: r.decode(b"ab\xff\x04"), "MODE S undefined code")
    expect_error(Truncated, lambda: r.decode(b"ab\xff\x01cd"), "MODE S close inside a record")
    expect_error(Truncated, lambda: r.decode(b"ab\xff"), "MODE S close after 0xFF")
    expect_error(ProtocolError, lambda: r.decode(b"ab\xff\x03cd"), "MODE S data after EOF")
    z = Format("I", mode="Z")
    stream = zlib.compress(b"hello " * 1000)
    expect_error(Truncated, lambda: z.decode(stream[:-3]), "MODE Z truncated")
    expect_error(ProtocolError, lambda: z.decode(stream + b"x"), "MODE Z trailing bytes")
    expect_error(
        ProtocolError,
        lambda: z.decode(stream[:-1] + bytes([stream[-1] ^ 1])),
        "MODE Z bad Adler-32",
    )
    expect_error(ValueError, lambda: encode_pages(b"x" * (256 * 255 + 1)), "257 pages")
    expect_error(ProtocolError, lambda: decode_pages(bytes([4, 0, 1, 0])), "last page with data")


def selftest_code_pages():
    # docs/representations.md's table, and the letters any EBCDIC chart shows.
    c037 = CodePage("IBM-037")
    check(
        c037.encode("Aa0 []^¬") == bytes([0xC1, 0x81, 0xF0, 0x40, 0xBA, 0xBB, 0xB0, 0x5F]),
        "IBM-037",
    )
    check(c037.encode("\n\x85") == b"\x15\x25", "IBM-037 line ends")
    expect_error(Unmappable, lambda: c037.encode("5 €"), "'€' in IBM-037")
    everything = "".join(map(chr, range(256)))
    check(c037.decode(c037.encode(everything)) == everything, "IBM-037 round trip")
    try:
        c1047 = CodePage("IBM-1047")
    except ImportError:
        print("selftest: the ebcdic package is missing: IBM-1047 not checked (pip install ebcdic)")
        return
    check(
        c1047.encode("Aa0 []^¬") == bytes([0xC1, 0x81, 0xF0, 0x40, 0xAD, 0xBD, 0x5F, 0xB0]),
        "IBM-1047",
    )
    check(c1047.encode("\n\x85") == b"\x15\x25", "IBM-1047 line ends")
    check(c1047.decode(c1047.encode(everything)) == everything, "IBM-1047 round trip")
    check(sorted(c1047.encode(everything)) == list(range(256)), "IBM-1047 one to one")


def sample(rep, stru, rng):
    """Local data for a round trip: text with lines for A and E, bytes with 0xFF and runs for I."""
    if rep == "E":
        lines = [
            "".join(chr(rng.randrange(256)) for _ in range(rng.randrange(40))).replace("\n", "")
            for _ in range(30)
        ]
        return lines if stru == "R" else "\n".join(lines) + "\n"
    if rep == "A":
        words = [b"alpha", b"  ", b"beta", b"\xc3\xbc", b"\x0b", b"1", b"+", b"0"]
        lines = [b" ".join(rng.choice(words) for _ in range(rng.randrange(12))) for _ in range(30)]
        return lines if stru == "R" else b"\n".join(lines) + b"\n"
    chunks = [
        rng.randbytes(rng.randrange(300)) + bytes([rng.choice([0, 0xFF, 7])]) * rng.randrange(200)
        for _ in range(30)
    ]
    return chunks if stru == "R" else b"".join(chunks)


def selftest_round_trips():
    """Every TYPE x STRU x MODE: encode then decode is the identity, whether the wire comes in
    one piece or a byte at a time (h11's invariant, STYLE.md)."""
    rng = random.Random(959)
    reps = [("A", None), ("I", None), ("E", "IBM-037")] + (
        [("E", "IBM-1047")] if _have_ebcdic() else []
    )
    for rep, codepage in reps:
        for stru in "FRP":
            for mode in "SBCZ":
                fmt = Format(rep, stru=stru, mode=mode, codepage=codepage or "IBM-1047")
                local = sample(rep, stru, rng)
                if stru == "P" and rep != "I":
                    local = local[:3000]
                wire = b"".join(fmt.encode(local))
                for step in (None, 1, 7):
                    got, _ = fmt.decode(wire, step)
                    check(
                        got == local, f"round trip TYPE {rep} STRU {stru} MODE {mode} step {step}"
                    )
    for mode in "BC":  # client markers, read back where they were put
        fmt = Format("I", mode=mode)
        data = rng.randbytes(100_000)
        got, rec = fmt.decode(b"".join(fmt.encode(data, marks_every=30_000)))
        check(
            got == data and rec.marks == [(f"C{n}", n) for n in (30_000, 60_000, 90_000)],
            f"MODE {mode} markers",
        )
    big = Format("I", mode="B")
    data = rng.randbytes(200_000)
    wire = b"".join(big.encode(data))
    check(
        wire[:3] == b"\x00\xff\xff" and big.decode(wire)[0] == data, "MODE B splits at 65,535 bytes"
    )
    # §3.1.1.1: CRLF ends a line on the wire; a lone CR is a character like any other.
    check(ascii_to_wire(b"a\rb\n\n") == b"a\rb\r\n\r\n", "TYPE A line ends on the wire")
    check(ascii_from_wire(b"a\rb\r\n\r\n") == b"a\rb\n\n", "TYPE A line ends read back")
    check(
        b"".join(Format("A", stru="R").encode([b"x"])) == b"x\xff\x03",
        "TYPE A records carry no CRLF",
    )


def _have_ebcdic():
    try:
        import ebcdic  # noqa: F401
    except ImportError:
        return False
    return True


def selftest():
    selftest_rfc_examples()
    selftest_errors()
    selftest_code_pages()
    selftest_round_trips()
    print("PASS selftest")


# ----- command line -----------------------------------------------------------------------------


def manual(direction, port, user, password, remote, local, rep="I", stru="F", mode="S"):
    """get/put of one file, for a person: TYPE (`A`, `E`, `I`, `A C`...), STRU, MODE. The local
    file is UTF-8 for TYPE E; in STRU R each of its lines is a record."""
    parts = rep.split()
    fmt = Format(parts[0], parts[1] if len(parts) > 1 else None, stru, mode)
    ctl = session(int(port), user, password)
    ctl.set_format(fmt)
    text = fmt.rep == "E"
    if direction == "get":
        t = retrieve(ctl, f"RETR {remote}", fmt)
        if t.ok():
            got = fmt.local(t.received)
            if stru == "R":
                got = ("\n" if text else b"\n").join(got + ["" if text else b""])
            with open(local, "wb") as f:
                f.write(got.encode("utf-8") if text else got)
    else:
        with open(local, "rb") as f:
            data = f.read()
        data = data.decode("utf-8") if text else data
        if stru == "R":
            data = data.split("\n" if text else b"\n")
            data = data[:-1] if data and not data[-1] else data
        t = store(ctl, f"STOR {remote}", fmt.encode(data))
    print(t)
    return 0 if t.ok() else 1


def main(argv):
    if argv[1:2] == ["selftest"]:
        selftest()
        return 0
    if argv[1:2] in (["get"], ["put"]) and len(argv) >= 7:
        return manual(argv[1], *argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
