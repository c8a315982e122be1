"""Errors a user can act on, and the one redaction every message passes through.

The CLI prints a `ReplicatorError` as one line and exits 2; nothing else escapes as a traceback.
Before anything is printed or written into a report, `scrub()` removes secrets from it: the
passwords of every connection string this process was given (`remember_secrets_in`), and anything
that looks like a password in a URL or a conninfo string, whatever produced the text (libpq echoes
malformed connection strings in its parse errors).
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote, unquote

MASK = "***"

# Shorter fragments would also match ordinary words in messages; passwords that short are not
# secrets anyway, and the URL/conninfo patterns below still hide them where they appear as such.
_MIN_SECRET_LEN = 4

_secrets: set[str] = set()
_lock = threading.Lock()

# scheme://user:password@host: everything between the user's ':' and the token's last '@'
# (an unencoded '@' in a password must not leave its tail visible).
_URL_PASSWORD = re.compile(r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@\"']*:)(?P<pw>[^\s\"']*)@")
# key=value conninfo: password=secret, password = 'quoted \' secret'
_CONNINFO_PASSWORD = re.compile(r"(?P<pre>\bpassword\s*=\s*)(?!\*\*\*)(?P<pw>'(?:[^'\\]|\\.)*'?|[^\s'\"]+)", re.I)
# ?password=... or &password=... in a URL query
_QUERY_PASSWORD = re.compile(r"(?P<pre>[?&]password=)(?!\*\*\*)(?P<pw>[^&\s\"']*)", re.I)
# PGPASSWORD=... in an echoed environment
_ENV_PASSWORD = re.compile(r"(?P<pre>\bPGPASSWORD=)(?!\*\*\*)(?P<pw>\S+)")


class ReplicatorError(Exception):
    """A problem with input, configuration or connectivity, explained in one line."""

    exit_code = 2


class GuardViolation(ReplicatorError):
    """A statement that is not provably read-only was about to be sent to the master."""


class ConfigError(ReplicatorError):
    pass


class ConnectError(ReplicatorError):
    pass


class IdentityError(ReplicatorError):
    """The two URLs do not name a master and a distinct, writable replica (see `replicator.identity`)."""


def remember_secret(secret: str | None) -> None:
    """Never print `secret` (nor its percent-encoded forms) from now on."""
    if not secret or len(secret) < _MIN_SECRET_LEN:
        return
    forms = {secret, quote(secret, safe=""), quote(secret), unquote(secret)}
    with _lock:
        _secrets.update(f for f in forms if len(f) >= _MIN_SECRET_LEN)


def passwords_in(conninfo: str) -> list[str]:
    """Passwords in a URL or key=value string, found leniently: also in strings libpq cannot parse."""
    found = []
    text = conninfo.strip()
    m = re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://(?P<userinfo>.*)@[^@]*$", text, re.S)
    if m and ":" in m.group("userinfo"):
        found.append(m.group("userinfo").split(":", 1)[1])
    for rx in (_CONNINFO_PASSWORD, _QUERY_PASSWORD):
        for pm in rx.finditer(text):
            pw = pm.group("pw")
            if pw.startswith("'"):
                pw = re.sub(r"\\(.)", r"\1", pw.strip("'"))
            found.append(pw)
    return [p for p in found if p]


def remember_secrets_in(conninfo: str | None) -> None:
    """Remember the password(s) a connection string carries, parseable or not."""
    if conninfo:
        for pw in passwords_in(conninfo):
            remember_secret(pw)


def scrub(text: str) -> str:
    """`text` with every known secret and every URL / conninfo password replaced by `***`."""
    if not text:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for s in known:
        if s in text:
            text = text.replace(s, MASK)
    text = _URL_PASSWORD.sub(lambda m: m.group("pre") + MASK + "@", text)
    for rx in (_QUERY_PASSWORD, _CONNINFO_PASSWORD, _ENV_PASSWORD):
        text = rx.sub(lambda m: m.group("pre") + MASK, text)
    return text


def one_line(text: str) -> str:
    """The message on one line (libpq adds DETAIL/HINT lines), scrubbed."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return scrub("; ".join(lines))
