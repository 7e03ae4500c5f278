#!/usr/bin/env python3
"""Passive-port thief for the security test: connects to a server's passive data port from a
different loopback address and reports what it received.

    python3 thief.py BIND_ADDR HOST PORT TIMEOUT_SECONDS

Binds its socket to BIND_ADDR (e.g. 127.0.0.2; Linux routes all of 127/8 to lo) before
connecting to HOST:PORT. Prints `connected` (flushed) once the TCP connection is up, then reads
until the server closes it or TIMEOUT_SECONDS pass, and prints one last line:

    result closed bytes=N     the server closed the connection (EOF)
    result reset bytes=N      the server reset it
    result timeout bytes=N    it was still open when the time was up
    result refused            the connection could not be made at all

Rust's standard library cannot bind a client socket before connecting, hence this script.
"""

import socket
import sys
import time


def main():
    bind_addr, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((bind_addr, 0))
    s.settimeout(timeout)
    try:
        s.connect((host, port))
    except OSError as e:
        print(f"result refused ({e})", flush=True)
        return 0
    print(f"connected from {s.getsockname()[0]}", flush=True)
    deadline = time.monotonic() + timeout
    got = 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"result timeout bytes={got}", flush=True)
                return 0
            s.settimeout(left)
            b = s.recv(65536)
            if not b:
                print(f"result closed bytes={got}", flush=True)
                return 0
            got += len(b)
    except socket.timeout:
        print(f"result timeout bytes={got}", flush=True)
    except ConnectionResetError:
        print(f"result reset bytes={got}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
