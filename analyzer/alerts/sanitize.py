"""Making attacker-controlled log values safe to show.

Every string in a CloudTrail record can be chosen by whoever made the call: user agents, user
names (failed sign-ins record whatever was typed), request parameters. Each renderer passes every
such value through one of these functions; none of them trusts the value to be printable.
"""

from __future__ import annotations

import html
import re

# Terminal escape sequences: CSI (ESC [ ... final byte), OSC/DCS/PM/APC strings up to BEL or ST,
# and two-byte ESC sequences. The 8-bit C1 forms (0x9b CSI, 0x9d OSC, ...) are handled the same way.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI
    r"|(?:\x1b[\]P^_X]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # OSC, DCS, PM, APC
    r"|\x1b[ -/]*[0-~]?",  # any other ESC sequence, or a lone ESC (an unterminated string loses its ESC)
)
# C0 and C1 controls, DEL, and the Unicode bidirectional overrides/isolates that can make a
# value display as something else ("Trojan Source"), plus zero-width characters.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069\ufeff]")
_WHITESPACE_CONTROL = re.compile("[\t\n\r\v\f\u2028\u2029]+")

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|])")
# what GitHub-flavoured Markdown turns into a link on its own: scheme://, www., an e-mail's @
_AUTOLINK = re.compile(r"(?<=[A-Za-z0-9])(:)(?=//)|(?<=\bwww)(\.)|(@)", re.IGNORECASE)
# C0/C1 controls, DEL, bidirectional overrides and zero-width characters, written out by visible()
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069\ufeff]")
_UNPRINTABLE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069\ufeff]"
)
#: What a spreadsheet runs as a formula when a cell starts with it (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def text(value: object) -> str:
    """``value`` as one printable line: escape sequences and control characters removed.

    Line breaks and tabs become one space, so a value can never start a new line of output.
    """
    if value is None:
        return ""
    result = str(value)
    if result.isprintable():  # the common case: no control, format or separator character at all
        return result
    result = _ESCAPE_SEQUENCE.sub("", result)
    result = _WHITESPACE_CONTROL.sub(" ", result)
    return _CONTROL.sub("", result)


def _escape(match: re.Match[str]) -> str:
    return match.group(0).encode("unicode_escape").decode("ascii")


def visible(value: object, *, keep_newlines: bool = False) -> str:
    """``value`` with every control character written as its escape (``\\x1b``, ``\\n``): one safe line.

    For names an investigator must *see* exactly (object keys, file names, user names): an
    escape sequence shows as text instead of being obeyed or silently dropped, and a line break in
    a key cannot forge a line of the summary. ``keep_newlines`` keeps line breaks (messages that
    are ours, like DuckDB's caret under a position).
    """
    if value is None:
        return ""
    result = str(value)
    if result.isprintable():
        return result
    return (_UNPRINTABLE_BUT_NEWLINE if keep_newlines else _UNPRINTABLE).sub(_escape, result)


def spreadsheet(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: one starting with ``= + - @``, tab or CR gets a
    leading ``'`` (OWASP), so ``=HYPERLINK(…)`` from a user agent is not a formula."""
    return "'" + value if value.startswith(FORMULA_START) else value


def terminal(value: object) -> str:
    """For the terminal: :func:`text` (rich markup is neutralised by passing ``rich.text.Text``)."""
    return text(value)


def markdown(value: object) -> str:
    """For a Markdown table cell: no line breaks, no table or code metacharacters, no HTML, no autolinks."""
    result = text(value)
    result = _MARKDOWN_SPECIAL.sub(r"\\\1", result)
    result = _AUTOLINK.sub(lambda m: "\\" + m.group(0), result)  # a bare URL stays text, not a link
    return result.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def html_text(value: object) -> str:
    """For HTML text or attribute values: control characters removed, then ``html.escape``."""
    return html.escape(text(value), quote=True)


def html_block(value: object, *, quote: bool = True) -> str:
    """For a ``<pre>`` block: line breaks kept, everything else as :func:`html_text`. ``quote=False``
    leaves quotes as they are: they mean nothing in element text (only in attribute values), and a
    page of pretty-printed JSON is a fifth smaller without ``&quot;``."""
    if value is None:
        return ""
    lines = str(value).split("\n")
    if all(line.isprintable() for line in lines):
        return html.escape("\n".join(lines), quote=quote)
    return "\n".join(html.escape(text(line), quote=quote) for line in lines)


# -- secrets ------------------------------------------------------------------------------------------
# a URL in any form an error text may quote it: plain, JSON-escaped (https:\/\/h\/p), URL-encoded
# (https%3A%2F%2Fh%2Fp); its scheme and host are kept, everything after (user info, path, query) goes
_URL = re.compile(
    r"(?P<scheme>\b[a-z][a-z0-9+.-]{1,15})(?::|%3a)(?://|\\/\\/|%2f%2f)"
    r"(?:[^\s/\\@\"'<>%]*(?:@|%40))?(?P<host>[a-z0-9.\-\[\]:]+)?(?:(?:/|\\/|%2f|[?#])[^\s\"'<>]*)?",
    re.IGNORECASE,
)
_AWS_SIGNED = re.compile(
    r"((?:X-Amz-Security-Token|X-Amz-Credential|X-Amz-Signature|X-Amz-Date|AWSAccessKeyId|Signature|"
    r"SessionToken|security[-_ ]token|aws_secret_access_key|aws_session_token)[\"']?\s*(?:=|:|%3D)\s*[\"']?)"
    r"[^\s&\"'<>,;]+",
    re.IGNORECASE,
)
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{12,}\b")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-]{40,}")  # secret keys (40), session tokens (hundreds), signatures


def redact_url(url: str) -> str:
    """``https://host/…``: where a URL points, without user info, path or query (the secrets)."""
    match = _URL.match(url.strip())
    if not match:
        return "(a URL)"
    return f"{match.group('scheme').lower()}://{match.group('host') or '?'}/…"


def secrets(value: object) -> str:
    """An error text made safe to print or store: every URL cut to scheme://host (in plain,
    JSON-escaped and URL-encoded forms), AWS key ids, signatures and session tokens removed, and
    control characters written out (:func:`visible`). Structural, so a secret nobody listed, or
    an echoed prefix of one, is removed all the same."""
    result = "" if value is None else str(value)
    result = _URL.sub(lambda m: f"{m.group('scheme')}://{m.group('host') or '?'}/…", result)
    result = _AWS_SIGNED.sub(r"\1…", result)
    result = _AWS_KEY_ID.sub("(an access key id)", result)
    result = _LONG_TOKEN.sub("…", result)
    return visible(result)
