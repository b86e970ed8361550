"""Database connection strings without their secrets: one redaction for every message.

A connection string is parsed leniently into its parameters (both forms PostgreSQL takes:
``postgresql://user:password@host:port/db?password=…`` and ``host=… password=…``; a password
with an unencoded ``/``, ``#``, ``?`` or ``@`` included), and then:

- ``describe(url)`` renders it from the parsed parameters only: ``postgresql://user:***@host:port/db``,
  never the text it was given;
- ``remember(url)`` records its password (raw, percent-decoded and percent-encoded, and the pieces
  between its ``@ / # ? :`` characters, which drivers echo in host errors) as a known secret;
- ``scrub(text)`` replaces every known secret in ``text`` with ``***``: the CLI, the server log
  and every error built from a driver's message pass through it.

``scrub(describe(u)) == describe(u)`` and, once ``remember(u)`` ran, the password of ``u`` is in no
output of ``scrub``.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, unquote

_SCHEMES = ("postgresql://", "postgres://")
_KEYWORD = re.compile(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")
_MIN_PIECE = 3  # shorter pieces of a password are not hidden on their own (they would hide ordinary text)

_known: set[str] = set()
_lock = threading.Lock()


def is_connection_string(text: object) -> bool:
    """A postgresql:// URL or a keyword string ('host=… dbname=…')."""
    if not isinstance(text, str):
        return False
    return text.startswith(_SCHEMES) or bool(re.match(r"\s*\w+\s*=", text))


def parse(text: str) -> dict[str, str]:
    """The parameters of a connection string, never raising: user, password, host, port, dbname
    (those present). The URL form is split at the last '@' so that a password may hold
    unencoded '/', '#', '?' or '@'; query parameters override the authority's."""
    params: dict[str, str] = {}
    if text.startswith(_SCHEMES):
        rest = text.split("://", 1)[1]
        query = ""
        at = rest.rfind("@")
        userinfo, hostpart = (rest[:at], rest[at + 1:]) if at >= 0 else ("", rest)
        if "?" in hostpart:
            hostpart, query = hostpart.split("?", 1)
        if userinfo:
            user, sep, password = userinfo.partition(":")
            params["user"] = unquote(user)
            if sep:
                params["password"] = unquote(password)
        hostport, _, dbname = hostpart.partition("/")
        if hostport.startswith("["):  # [::1]:5432
            host, _, port = hostport[1:].partition("]")
            port = port.lstrip(":")
        else:
            host, _, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
        params.update({k: unquote(v) for k, v in (("host", host), ("port", port), ("dbname", dbname)) if v})
        for pair in query.split("&"):
            key, sep, value = pair.partition("=")
            if sep and key:
                params[unquote(key)] = unquote(value)
        return params
    for key, value in _KEYWORD.findall(text):
        if value.startswith("'") and value.endswith("'") and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key] = value
    return params


def describe(text: str) -> str:
    """``postgresql://user:***@host:port/dbname`` from the parsed parameters (the password, when
    there is one, as ***; absent parts left out)."""
    p = parse(text)
    user = quote(p.get("user", ""), safe="")
    auth = f"{user}{':***' if 'password' in p else ''}@" if user or "password" in p else ""
    host = p.get("host", "")
    port = f":{p['port']}" if p.get("port") else ""
    return f"postgresql://{auth}{host}{port}/{quote(p.get('dbname', ''), safe='')}"


def secrets_of(text: str) -> set[str]:
    """Every form of the password of a connection string that could reach a message: as given,
    percent-decoded, percent-encoded, and its pieces between '@', '/', '#', '?', ':' and '&'."""
    password = parse(text).get("password")
    if not password:
        return set()
    forms = {password, quote(password, safe=""), quote(password)}
    raw = re.search(r"[?&\s]password=('?)([^&\s']*)", text)
    if raw:
        forms.add(raw.group(2))
    if text.startswith(_SCHEMES):
        userinfo = text.split("://", 1)[1].rpartition("@")[0]
        forms.add(userinfo.partition(":")[2])
    pieces = {piece for form in forms for piece in re.split(r"[@/#?:&]", form) if len(piece) >= _MIN_PIECE}
    return {f for f in forms | pieces if f}


def remember(text: str | None) -> None:
    """Add the password of a connection string to the secrets :func:`scrub` hides (anything
    else is ignored)."""
    if is_connection_string(text):
        found = secrets_of(text)
        with _lock:
            _known.update(found)


def scrub(text: str, *connection_strings: str | None) -> str:
    """``text`` with every known secret (and those of ``connection_strings``) replaced by ***."""
    for c in connection_strings:
        remember(c)
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, "***")
    return text


_installed = False


def install_log_scrubber() -> None:
    """Scrub every log record of this process (messages and their arguments), whoever logs it:
    the server log gets the details of a database failure, never its password."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    make_record = logging.getLogRecordFactory()

    def scrubbed(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if _known:
            record.msg = scrub(record.getMessage())
            record.args = ()
            if record.exc_info:  # formatted now, scrubbed: handlers use exc_text when it is set
                record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(scrubbed)
