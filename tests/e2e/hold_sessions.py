#!/usr/bin/env python3
"""Holds many logged-in FTP sessions at once, for the idle-sessions test.

    python3 hold_sessions.py HOST PORT USER PASSWORD COUNT SERVER_PID

Raises its own open-file limit (soft to hard) first, since COUNT sockets may exceed a soft
limit of 1024. Reads the server's proportional set size (Pss, /proc/PID/smaps_rollup), then
opens COUNT sessions one after the other (greeting 220, USER 331, PASS 230) and keeps them
all open; then sends NOOP on every one (200 expected), reads the server's Pss again, and
prints one line:

    held=N failed=M pss_before_kib=A pss_after_kib=B first_failure=...

Every socket has a 20 s timeout, so the script always ends.
"""

import resource
import socket
import sys


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return -1


def reply(sock, buf):
    """One FTP reply (multi-line aware); returns (code, text, leftover bytes)."""
    code = None
    while True:
        while b"\r\n" not in buf:
            data = sock.recv(4096)
            if not data:
                raise OSError("connection closed by the server")
            buf += data
        line, buf = buf.split(b"\r\n", 1)
        text = line.decode("utf-8", "replace")
        if code is None:
            code = text[:3]
            if text[3:4] != "-":
                return code, text, buf
        elif text.startswith(code + " "):
            return code, text, buf


def main():
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    count, pid = int(sys.argv[5]), int(sys.argv[6])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    before = pss_kib(pid)
    held, failed, first = [], 0, ""
    for i in range(count):
        try:
            s = socket.create_connection((host, port), timeout=20)
            s.settimeout(20)
            steps = [(None, "220"), (f"USER {user}", "331"), (f"PASS {password}", "230")]
            buf = b""
            for cmd, want_code in steps:
                if cmd:
                    s.sendall(cmd.encode() + b"\r\n")
                code, text, buf = reply(s, buf)
                if code != want_code:
                    raise OSError(f"session {i}: {cmd or 'greeting'}: {text}")
            held.append(s)
        except OSError as e:
            failed += 1
            first = first or str(e)
    alive = 0
    for s in held:
        try:
            s.sendall(b"NOOP\r\n")
            code, text, _ = reply(s, b"")
            if code == "200":
                alive += 1
            else:
                first = first or f"NOOP: {text}"
        except OSError as e:
            first = first or f"NOOP: {e}"
    after = pss_kib(pid)
    print(
        f"held={alive} failed={failed + len(held) - alive} pss_before_kib={before} "
        f"pss_after_kib={after} first_failure={first}",
        flush=True,
    )
    for s in held:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
