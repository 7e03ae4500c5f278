"""Helpers shared by the end-to-end client scripts in this folder (imported by name: Python
puts a script's own folder first on sys.path)."""

import ftplib
import hashlib


def check(cond, what):
    """Fails the script with `what` unless `cond` holds."""
    if not cond:
        raise AssertionError(what)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def expect_error(code, fn, *args):
    """Calls fn(*args), which must fail with an FTP error reply starting with `code`."""
    try:
        resp = fn(*args)
    except ftplib.all_errors as e:
        check(str(e).startswith(code), f"{fn.__name__}{args}: want {code}, got {e}")
        return str(e)
    raise AssertionError(f"{fn.__name__}{args}: want {code}, got success {resp!r}")


class ReuseFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session (or, after
    CCC, the session it had: set `saved_session`), as FileZilla, curl and lftp do and as Wharf
    requires by default."""

    saved_session = None

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            session = getattr(self.sock, "session", None) or self.saved_session
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size
