#!/usr/bin/env python3
"""Plays a user of tnftp (NetBSD's ftp, BSD-derived) who presses Ctrl-C during a download.

    python3 tnftp_abort.py abort PORT USER PASSWORD CLIENT_DIR FILE

tnftp runs on a pseudo-terminal (as at a terminal: Ctrl-C is the byte 0x03 typed on the
terminal, which the line discipline turns into SIGINT for tnftp). During a RETR, tnftp's
SIGINT handler calls abort_remote(), which sends on the control connection, as BSD ftp has
since 4.3BSD (RFC 959 section 4.1.3, "Telnet IP and Synch"):

    send(IAC IP IAC, MSG_OOB)   -- three bytes, the last (IAC) marked urgent
    "DM ABOR\\r\\n"             -- normal data

(strace of Debian's tnftp 20210827: sendto(3, "\\xff\\xf4\\xff", 3, MSG_OOB) then
write(3, "\\xf2ABOR\\r\\n", 7).)

Without SO_OOBINLINE the server's kernel takes the urgent byte out of the stream, so the
server reads `IAC IP` then `DM` (0xF2) glued to `ABOR\\r\\n`. Then tnftp drains the data
connection until it ends and reads two replies: the transfer's (426) and the ABOR's (226).

PASS when, after Ctrl-C, tnftp shows 426 then 226, no 5xx, and the session goes on (`pwd`
gets 257, `quit` gets 221). Every wait is bounded; the transcript is printed either way.
"""

import os
import pty
import re
import select
import signal
import sys
import time

from ftputil import check

HOST = "127.0.0.1"


class Tty:
    """tnftp on a pseudo-terminal, with everything it printed kept in `out`."""

    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvp(argv[0], argv)
        self.out = b""

    def send(self, text):
        os.write(self.fd, text.encode())

    def read_until(self, pattern, limit, start=0):
        """Reads until `pattern` (a regex on the bytes printed since `start`) matches, or
        `limit` seconds pass; returns the match or None."""
        deadline = time.monotonic() + limit
        rx = re.compile(pattern.encode(), re.M)
        while True:
            m = rx.search(self.out, start)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if r:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # EIO: tnftp exited
                    chunk = b""
                if not chunk:
                    return rx.search(self.out, start)
                self.out += chunk

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def scenario_abort(port, user, password, cdir, name):
    # -n: no auto-login; -e: no command-line editing (a plain terminal); -v: print every
    # reply; -d: print the commands sent (not the ABOR: abort_remote writes it directly).
    t = Tty(["tnftp", "-n", "-e", "-v", "-d"])
    try:
        t.send(f"open {HOST} {port}\n")
        check(t.read_until(r"^220 ", 20), "no greeting")
        t.send(f"user {user} {password}\n")
        check(t.read_until(r"^230 ", 20), "login failed")
        t.send("progress off\nbinary\n")
        check(t.read_until(r"^200 ", 20), "TYPE I")
        t.send(f"get {name} /dev/null\n")
        m = t.read_until(r"^150 ", 20)
        check(m, "no 150 for the download")
        # Let some data flow (the server sends this user's file at a limited rate), then
        # press Ctrl-C as a user would.
        time.sleep(1.0)
        mark = len(t.out)
        t.send("\x03")
        t.read_until(r"^ftp> ", 60, mark)
        after = t.out[mark:].decode("utf-8", "replace")
        codes = re.findall(r"^(\d{3}) ", after, re.M)
        print(f"replies after Ctrl-C: {codes}")
        end = len(t.out)
        t.send("pwd\n")
        pwd = t.read_until(r"^257 ", 20, end)
        t.send("quit\n")
        bye = t.read_until(r"^221 ", 20, end)
    finally:
        print("---- tnftp's terminal ----")
        print(t.out.decode("utf-8", "replace").replace("\r\n", "\n"))
        print("---- end ----")
        t.close()
    check(codes[:2] == ["426", "226"],
          f"after Ctrl-C want 426 then 226 (BSD-style ABOR honoured), got {codes}")
    check(not any(c.startswith("5") for c in codes), f"an error reply after Ctrl-C: {codes}")
    check(pwd, "pwd after the abort got no 257")
    check(bye, "quit after the abort got no 221")


def main():
    name, port, user, password, cdir = sys.argv[1:6]
    fn = globals().get(f"scenario_{name}")
    check(fn is not None, f"unknown scenario {name}")
    fn(int(port), user, password, cdir, *sys.argv[6:])
    print(f"PASS {name}")


if __name__ == "__main__":
    main()
