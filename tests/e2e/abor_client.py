#!/usr/bin/env python3
"""Plays the ABOR of BSD-derived clients (4.3BSD ftp, tnftp, inetutils ftp) during a download,
byte for byte as their abort_remote() sends it (RFC 959, 4.1.3: Telnet IP, then the Synch:
IAC DM with the IAC sent as TCP urgent data; RFC 854).

    python3 abor_client.py oob|inline PORT USER PASSWORD CLIENT_DIR FILE

`oob`: exactly what tnftp does (checked with strace on Debian's tnftp 20210827):
    send(ctrl, "\\xff\\xf4\\xff", 3, MSG_OOB)    IAC IP IAC, the last IAC urgent
    write(ctrl, "\\xf2ABOR\\r\\n")               DM ABOR CRLF
  A server without SO_OOBINLINE does not see the urgent byte: it reads IAC IP, then DM (0xF2)
  glued to ABOR.
`inline`: the same bytes with nothing urgent, IAC IP IAC DM ABOR CRLF in one write (what the
  server reads when it has SO_OOBINLINE, and what some clients send).

The download is of a large file; the client reads its first MiB and then stops reading, so the
server is in the middle of the transfer, held by flow control, when ABOR comes. PASS when the
next two replies are 426 (the transfer) then 226 (the ABOR), the data connection ends within
10 s without the rest of the file, and the session goes on (NOOP gets 200).
"""

import ftplib
import socket
import sys
import time

from ftputil import check

HOST = "127.0.0.1"
TIMEOUT = 10
ABORT = {
    "oob": (b"\xff\xf4\xff", b"\xf2ABOR\r\n"),
    "inline": (None, b"\xff\xf4\xff\xf2ABOR\r\n"),
}


def reply(ftp):
    """The next reply, raw (ftplib.getmultiline raises nothing on 4xx/5xx)."""
    try:
        return ftp.getmultiline()
    except (socket.timeout, TimeoutError):
        return f"(no reply within {TIMEOUT} s)"
    except (OSError, EOFError) as e:
        return f"(control connection failed: {e!r})"


def drain(conn, limit):
    """Reads the data connection until it ends; returns (bytes, whether it ended)."""
    total = 0
    deadline = time.monotonic() + limit
    conn.settimeout(1)
    while time.monotonic() < deadline:
        try:
            chunk = conn.recv(1 << 20)
        except (socket.timeout, TimeoutError):
            continue
        except OSError:  # a reset ends it too
            return total, True
        if not chunk:
            return total, True
        total += len(chunk)
    return total, False


def abort(how, port, user, password, cdir, name):
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect(HOST, port)
    ftp.login(user, password)
    ftp.voidcmd("TYPE I")
    size = ftp.size(name)
    conn = ftp.transfercmd(f"RETR {name}")  # PASV, RETR, 150
    conn.settimeout(TIMEOUT)
    got = 0
    while got < 1 << 20:
        chunk = conn.recv(1 << 16)
        check(chunk, "the download ended early")
        got += len(chunk)
    urgent, rest = ABORT[how]
    if urgent:
        ftp.sock.send(urgent, socket.MSG_OOB)
    ftp.sock.sendall(rest)
    first = reply(ftp)
    second = reply(ftp) if first[:1].isdigit() else "(not read)"
    print(f"{how}: after ABOR: {first!r} then {second!r}")
    more, ended = drain(conn, TIMEOUT)
    conn.close()
    print(f"{how}: data connection {'ended' if ended else 'still open'}; "
          f"{got + more} of {size} bytes received")
    check(first.startswith("426") and second.startswith("226"),
          f"{how}: want 426 then 226, got {first!r} then {second!r}")
    check(ended and got + more < size, f"{how}: the transfer ran on after ABOR")
    check(ftp.voidcmd("NOOP").startswith("200"), "NOOP after the abort")
    ftp.quit()


def main():
    name, port, user, password, cdir = sys.argv[1:6]
    check(name in ABORT, f"unknown scenario {name}")
    abort(name, int(port), user, password, cdir, *sys.argv[6:])
    print(f"PASS {name}")


if __name__ == "__main__":
    main()
