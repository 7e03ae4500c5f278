"""Server CPU per GiB of ways to send a file over loopback TCP, measured side by side.

Usage: python3 send_paths.py FILE ROUNDS METHOD[,METHOD...]   (RECV=splice for a splicing
receiver; default: a receiver that reads into a 1 MiB buffer, as wharf-bench's RETR does)

Methods: sendfileN (sendfile(2) N MiB per call, as Wharf and vsftpd do), copyN (pread into an
N KiB buffer and write it, as pure-ftpd does), mmapN (write N KiB slices of an mmap).

Each round runs every method once, the order rotated by one each round, each in a fresh
sender process (its utime+stime is the figure) and a fresh receiver process, on 127.0.0.1.
Prints, per method, the median and every run of server CPU s/GiB and MB/s, and the median of
the sender's voluntary context switches per run (how often it slept waiting for the socket). Every process
is bounded by an alarm; the file should be in the page cache (cat it to /dev/null first).
Not part of the tests: docs/transfers.md quotes it for why downloads use sendfile.
"""

import mmap
import os
import resource
import signal
import socket
import statistics
import sys
import time

LIMIT_S = 120


def send(method, sock, path, size):
    fd = os.open(path, os.O_RDONLY)
    sent = 0
    if method.startswith("sendfile"):
        chunk = int(method[len("sendfile"):]) << 20
        while sent < size:
            n = os.sendfile(sock.fileno(), fd, sent, min(chunk, size - sent))
            if n == 0:
                break
            sent += n
    elif method.startswith("copy"):
        buf = memoryview(bytearray(int(method[len("copy"):]) << 10))
        while sent < size:
            n = os.preadv(fd, [buf], sent)
            if n == 0:
                break
            sock.sendall(buf[:n])
            sent += n
    elif method.startswith("mmap"):
        chunk = int(method[len("mmap"):]) << 10
        with mmap.mmap(fd, size, prot=mmap.PROT_READ) as m:
            view = memoryview(m)
            while sent < size:
                n = min(chunk, size - sent)
                sock.sendall(view[sent:sent + n])
                sent += n
            view.release()
    else:
        raise SystemExit(f"unknown method {method}")
    os.close(fd)
    return sent


def receive(port, size):
    c = socket.create_connection(("127.0.0.1", port))
    got = 0
    if os.environ.get("RECV") == "splice":
        pr, pw = os.pipe()
        try:
            import fcntl
            fcntl.fcntl(pw, 1031, 1 << 20)  # F_SETPIPE_SZ
        except OSError:
            pass
        null = os.open("/dev/null", os.O_WRONLY)
        while True:
            n = os.splice(c.fileno(), pw, 1 << 20)
            if not n:
                break
            got += n
            while n:
                n -= os.splice(pr, null, n)
    else:
        buf = bytearray(1 << 20)
        while True:
            n = c.recv_into(buf)
            if not n:
                break
            got += n
    return got == size


def run(method, path, size):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    rpid = os.fork()
    if rpid == 0:
        signal.alarm(LIMIT_S)
        ls.close()
        os._exit(0 if receive(port, size) else 1)
    r, w = os.pipe()
    spid = os.fork()
    if spid == 0:
        signal.alarm(LIMIT_S)
        os.close(r)
        conn, _ = ls.accept()
        t0 = time.perf_counter()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        sent = send(method, conn, path, size)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        t1 = time.perf_counter()
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        slept = ru1.ru_nvcsw - ru0.ru_nvcsw
        os.write(w, f"{sent / (t1 - t0) / 1e6:.0f} {cpu / (size / 2**30):.3f} {slept}".encode())
        os._exit(0 if sent == size else 1)
    os.close(w)
    ls.close()
    out = os.read(r, 100).decode()
    os.close(r)
    _, sender_status = os.waitpid(spid, 0)
    _, receiver_status = os.waitpid(rpid, 0)
    if sender_status or receiver_status or not out:
        raise SystemExit(f"{method}: a run failed (sender {sender_status}, receiver {receiver_status})")
    mbs, cpu, slept = out.split()
    return int(mbs), float(cpu), int(slept)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    path, rounds, methods = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
    size = os.path.getsize(path)
    results = {m: [] for m in methods}
    for i in range(rounds):
        k = i % len(methods)
        for m in methods[k:] + methods[:k]:
            results[m].append(run(m, path, size))
    for m, runs in results.items():
        cpus = sorted(c for _, c, _ in runs)
        mbs = sorted(b for b, _, _ in runs)
        slept = statistics.median(v for _, _, v in runs)
        print(f"{m:12} server CPU s/GiB median {statistics.median(cpus):.3f} {cpus}  "
              f"MB/s median {statistics.median(mbs):.0f} {mbs}  sleeps median {slept:.0f}")


if __name__ == "__main__":
    main()
