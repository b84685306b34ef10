"""The one configuration file every command reads (TOML), checked once against the schema.

Looked up in this order: ``--config PATH``; ``$ANALYZER_CONFIG``; ``./analyzer.toml``;
``~/.config/analyzer/config.toml``. A missing default file is fine (built-in defaults apply); a
missing file named explicitly, or a file that is not valid TOML, is an error. The file is checked
against :mod:`analyzer.settings` before a command does anything, so that no setting is silently
ignored: an unknown table or key is an error naming the nearest valid one, a wrong type is one
line naming the file, line and key, and a secret written into the file is refused (the file names
the environment variable that holds it: ``url_env``). ``docs/config.md`` lists every key.

``[nightly]`` and ``[notify.*]`` (``analyzer nightly``; flags win over these)::

    [nightly]
    source = "s3://my-trail-bucket/org"   # or a local directory; default: [pull] bucket/prefix
    report_dir = "/var/lib/analyzer/reports"  # default: DATA/_analyzer/reports
    late_margin = "2h"           # the window reaches this far back before the last complete run's end
    first_run_lookback = "24h"   # the window of the very first run
    max_lookback = "7d"          # a default window never starts earlier (runs that keep failing)
    fail_on = "high"             # exit 3 when a run announces an alert this severe (else [detect] fail_on)
    renotify_growth = 2.0        # re-notify an alert whose events reach 2x those last announced; 0: never
    forget_alerts_after = "90d"  # forget alert state not seen for this long (no data, no report; was: retention)
    workers = 4                  # ingest worker processes (default: [ingest] workers, else one per core)
    fetch_threads = 32           # concurrent S3 downloads (default: [pull] workers, else 32)
    timeout = "30m"              # stop when the detections run longer (default: [detect] timeout, else none)

    [notify.sns]
    topic_arn = "arn:aws:sns:eu-west-1:111122223333:cloudtrail-alerts"
    min_severity = "medium"      # only alerts at least this severe (default: info, i.e. all)
    # profile = "audit"          # default: [pull] profile, else the standard credential chain
    # endpoint_url = "..."       # an SNS-compatible endpoint (default: AWS_ENDPOINT_URL_SNS/AWS_ENDPOINT_URL)

    [notify.webhook]             # Slack-compatible: {"text": ..., "blocks": [...]}
    url_env = "ANALYZER_WEBHOOK_URL"  # the NAME of the variable holding the URL (the URL is a secret)
    min_severity = "low"
    timeout = 10                 # seconds per attempt ("10s" too)
    retries = 3                  # more attempts on 5xx, 429, timeouts and connection errors
    backoff = 1.0                # seconds before the first retry, doubling (with jitter)
    max_alerts = 20              # alerts per message (Slack allows 50 blocks)
    blocks = true                # false: {"text"} only, for receivers that know no blocks
    include_alerts = false       # true: add "alerts" (the JSON alert shape) for non-Slack receivers
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from analyzer.errors import AnalyzerError
from analyzer.settings import Settings, Table, decode, plain

if TYPE_CHECKING:
    from analyzer.detect import Allowlist, Catalogue

DEFAULT_LOCATIONS = (
    (Path("analyzer.toml"), "found in the current directory"),
    (Path("~/.config/analyzer/config.toml"), "found in your home directory"),
)
SEARCHED = "$ANALYZER_CONFIG, ./analyzer.toml, ~/.config/analyzer/config.toml"

Key = tuple[str, ...]


class ConfigError(AnalyzerError):
    """The configuration file is unreadable, or not what the schema allows."""


# -- where the file is ----------------------------------------------------------------------------------------------


def locate(explicit: Path | str | None = None) -> tuple[Path | None, str]:
    """The configuration file in force (or None) and how it was found, for ``-v``."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{explicit}: configuration file not found")
        return path, "--config"
    if env := os.environ.get("ANALYZER_CONFIG"):
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{env}: configuration file not found ($ANALYZER_CONFIG)")
        return path, "$ANALYZER_CONFIG"
    for candidate, origin in DEFAULT_LOCATIONS:
        if candidate.expanduser().is_file():
            return candidate.expanduser(), origin
    return None, "none found"


def config_path(explicit: Path | str | None = None) -> Path | None:
    """The configuration file in force, or None when there is none."""
    return locate(explicit)[0]


# -- the loaded file ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    """A checked configuration: the typed settings, and what the file said where (for messages)."""

    settings: Settings = dataclasses.field(default_factory=Settings)
    path: Path | None = None
    origin: str = "none found"
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the TOML as written
    text: str = ""

    @property
    def name(self) -> str:
        """The file as messages name it (``./analyzer.toml`` when found in the current directory)."""
        if self.path is None:
            return "config"
        return f"./{self.path}" if self.origin == DEFAULT_LOCATIONS[0][1] else str(self.path)

    def describe(self) -> str:
        """One line for ``-v``: which file was loaded and what it sets, or that none was."""
        if self.path is None:
            return f"config: none (looked for {SEARCHED}): built-in defaults"
        keys = [dotted(k) for k in leaves(self.data)]
        sets = f": sets {', '.join(keys)}" if keys else ": sets nothing"
        return f"config: {self.name} ({self.origin}){sets}"

    def where(self, path: Key) -> str:
        """``./analyzer.toml line 3`` (the line when it can be found)."""
        line = find_line(self.text, path) if self.text else None
        return f"{self.name} line {line}" if line else self.name

    def error(self, path: Key, message: str) -> ConfigError:
        return ConfigError(f"bad value for {dotted(path)} in {self.where(path)}: {message}")

    def value(self, path: Key) -> Any:
        """The value as written in the file, or None."""
        node: Any = self.data
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return node

    def table(self, name: str) -> dict[str, Any]:
        """A table as plain values (durations in seconds, sizes in bytes), only the keys the file sets:
        for the library functions that take a mapping (``notifiers_from_config``)."""
        result = msgspec.to_builtins(getattr(self.settings, name), enc_hook=plain)
        return dict(result) if isinstance(result, dict) else {}

    def applied(self, *paths: str, overridden: Iterable[str] = ()) -> list[str]:
        """``key = value`` for each dotted key the file sets and no flag overrode (for the summary)."""
        skip = set(overridden)
        out = []
        for text in paths:
            path = tuple(text.split("."))
            written = self.value(path)
            if written is not None and text not in skip:
                out.append(f"{text} = {json.dumps(written)}")
        return out

    def params_applied(self, overridden: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
        """``ID.NAME = VALUE`` for each detection parameter the file sets and no ``--param`` overrode."""
        overridden = overridden or {}
        return [f"{det}.{name} = {json.dumps(value)}"
                for det, values in (self.settings.detect.params or {}).items()
                for name, value in values.items() if name not in overridden.get(det, {})]

    def check_params(self, catalogue: Catalogue) -> None:
        """``[detect.params."ID"]`` against the catalogue: an unknown detection or parameter is an
        error naming the nearest one, a value of the wrong type names its line."""
        from analyzer.detect.params import coerce

        for det_id, values in (self.settings.detect.params or {}).items():
            path: Key = ("detect", "params", det_id)
            if det_id not in catalogue:
                close = difflib.get_close_matches(det_id, list(catalogue), n=1)
                hint = f"; did you mean [{dotted((*path[:2], close[0]))}]?" if close else " (see `analyzer detections`)"
                raise ConfigError(f"unknown detection [{dotted(path)}] in {self.where(path)}{hint}")
            params = catalogue[det_id].params
            for name, value in values.items():
                if name not in params:
                    close = difflib.get_close_matches(name, list(params), n=1)
                    known = ", ".join(params) or "none"
                    hint = f"; did you mean {close[0]}?" if close else f" (its parameters: {known})"
                    raise ConfigError(f"unknown parameter {dotted((*path, name))} in {self.where((*path, name))}{hint}")
                try:
                    coerce(det_id, params[name], value)
                except AnalyzerError as exc:
                    raise self.error((*path, name), str(exc)) from None

    def allowlist(self) -> Allowlist:
        """The ``[allowlist]`` table, its networks checked (a bad CIDR names its line)."""
        from analyzer.detect.allowlist import Allowlist

        try:
            return Allowlist.from_mapping(self.table("allowlist"))
        except AnalyzerError as exc:  # a bad network, or an empty entry: name the key's line
            key = next((k for k in ("principals", "roles", "ips") if f" {k}:" in str(exc)), "ips")
            raise ConfigError(f"{self.where(('allowlist', key))}: {exc}") from None

    def allowlist_entries(self) -> int:
        table = self.settings.allowlist
        return sum(len(entries or ()) for entries in (table.principals, table.ips, table.roles))

    def note(self, parts: list[str], *, suppressed: int | None = None) -> str | None:
        """The summary line saying what the file changed: ``config ./analyzer.toml: 2 allowlist
        entries suppressed 19 alerts; ...`` (None when it changed nothing)."""
        if self.path is None:
            return None
        entries = self.allowlist_entries()
        if suppressed is not None and entries:
            parts = [f"{entries} allowlist {'entry' if entries == 1 else 'entries'} suppressed {suppressed} "
                     f"alert{'' if suppressed == 1 else 's'}", *parts]
        return f"config {self.name}: {'; '.join(parts)}" if parts else None


def load(explicit: Path | str | None = None) -> Config:
    """Find, read and check the configuration (every command does this first)."""
    path, origin = locate(explicit)
    if path is None:
        return Config(origin=origin)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the configuration is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{Config(path=path, origin=origin).name}: invalid TOML: {exc}") from exc
    unchecked = Config(path=path, origin=origin, data=data, text=text)  # names the file and lines in errors
    return dataclasses.replace(unchecked, settings=check(data, unchecked))


def load_config(explicit: Path | str | None = None) -> dict[str, Any]:
    """The parsed configuration, checked (an empty dict when no file is in force)."""
    return dict(load(explicit).data)


def validate(data: Mapping[str, Any]) -> Settings:
    """A configuration given as a mapping (e.g. from Python), checked like a file."""
    return check(data, Config(data=data))


# -- checking -------------------------------------------------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SECRET_NAME = re.compile(r"(?:^|_)(?:url|uri|token|secret|password|passwd|key|credentials?|webhook|auth|"
                          r"signature)(?:$|_)", re.IGNORECASE)
#: What a secret looks like, and what to do instead. A match is refused wherever it appears; its value is never shown.
_SECRET_VALUES = (
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"), "an AWS access key id", "aws"),
    (re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*:[^/@\s]*@"), "a URL with a password in it", "userinfo"),
    (re.compile(r"hooks\.slack\.com/|discord(?:app)?\.com/api/webhooks/|webhook\.office\.com/|"
                r"outlook\.office\.com/webhook|chat\.googleapis\.com/.*[?&]key=", re.IGNORECASE),
     "a webhook URL", "env"),
    (re.compile(r"[?&](?:token|access_token|key|sig|signature|secret|code)=", re.IGNORECASE),
     "a URL with a token in it", "env"),
    (re.compile(r"\bxox[abposr]-|\bgh[pousr]_[A-Za-z0-9]{30,}|-----BEGIN [A-Z ]*PRIVATE KEY"), "a token", "env"),
)


def dotted(path: Key) -> str:
    """``detect.params."console-brute-force".ip_threshold``: TOML's own spelling of a key."""
    return ".".join(p if _BARE.fullmatch(p) else json.dumps(p) for p in path)


def leaves(data: Mapping[str, Any], path: Key = ()) -> Iterator[Key]:
    """Every key path the mapping sets, tables descended."""
    for name, value in data.items():
        if isinstance(value, Mapping) and value:
            yield from leaves(value, (*path, name))
        else:
            yield (*path, name)


def _secret_hint(path: Key, how: str) -> str:
    if how == "aws":
        return ('AWS credentials come from a profile (profile = "NAME") or the standard chain (AWS_* environment '
                "variables), never from this file")
    if how == "userinfo":
        return "drop the user:password@ part: credentials come from the environment, never from this file"
    if path[:2] == ("notify", "webhook"):
        return ('put the URL in an environment variable and name the variable here: url_env = "ANALYZER_WEBHOOK_URL" '
                "(or --webhook-url-env NAME)")
    return "put it in an environment variable: this file holds no secrets"


def _strings(value: Any, path: Key) -> Iterator[tuple[Key, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for name, item in value.items():
            yield from _strings(item, (*path, name))
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, path)


def _check_secrets(data: Mapping[str, Any], config: Config) -> None:
    for path, text in _strings(data, ()):
        for pattern, what, how in _SECRET_VALUES:
            if pattern.search(text):
                raise ConfigError(f"secret in {config.where(path)}: {dotted(path)} holds {what}; "
                                  f"{_secret_hint(path, how)}")


def _core(annotation: Any) -> Any:
    """The type under ``Annotated[...]`` and ``X | None``."""
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _is_table(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Table)


_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean (true or false)",
          "array": "a list", "object": "a table", "datetime": "a date-time", "date": "a date", "time": "a time"}


def _friendly(message: str) -> str:
    """msgspec's message without its path, in the file's terms: ``expected an integer, got a string``."""
    message = re.sub(r" - at `[^`]*`$", "", message)

    def name(match: re.Match[str]) -> str:
        kinds = [_NAMES.get(k, k) for k in match[1].split(" | ") if k != "null"]
        return " or ".join(kinds) if len(kinds) < 3 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"

    message = re.sub(r"`([^`]*)`", name, message)
    return message[:1].lower() + message[1:]


def _convert(value: Any, annotation: Any, path: Key, config: Config) -> None:
    try:
        msgspec.convert(value, annotation, dec_hook=decode)
    except msgspec.ValidationError as exc:
        raise config.error(path, _friendly(str(exc))) from None


def _unknown(path: Key, value: Any, known: list[str], config: Config) -> ConfigError:
    name = path[-1]
    typo = difflib.get_close_matches(name, known, n=1, cutoff=0.8)  # fail_onn, url_envv: not a secret's own key
    if _SECRET_NAME.search(name) and not name.endswith("_env") and not typo and not isinstance(value, Mapping):
        aws = name.lower().startswith("aws_") or path[:1] == ("pull",) or path[:2] == ("notify", "sns")
        return ConfigError(f"secret in {config.where(path)}: {dotted(path)}: this file holds no secrets; "
                           f"{_secret_hint(path, 'aws' if aws else 'env')}")
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if isinstance(value, Mapping):
        what, shown = "table", f"[{dotted(path)}]"
        hint = f"; did you mean [{dotted((*path[:-1], close[0]))}]?" if close else ""
    else:
        what, shown = "key", dotted(path)
        hint = f"; did you mean {close[0]}?" if close else ""
    if not close:
        hint = f" (known: {', '.join(known)})" if known else f" ([{dotted(path[:-1])}] has no keys)"
    return ConfigError(f"unknown {what} {shown} in {config.where(path)}{hint}")


def _walk(value: Any, annotation: Any, path: Key, config: Config) -> None:
    """Check ``value`` against the schema type ``annotation``: every table's keys by name (the nearest
    known one suggested), every other value by msgspec (its own error, with the key's file and line)."""
    core = _core(annotation)
    if _is_table(core) and isinstance(value, Mapping):
        fields = {f.encode_name: f for f in msgspec.structs.fields(core)}
        for name, item in value.items():
            if name not in fields:
                raise _unknown((*path, name), item, list(fields), config)
        for name, item in value.items():
            _walk(item, fields[name].type, (*path, name), config)
    elif typing.get_origin(core) is dict and isinstance(value, Mapping):
        _, item_type = typing.get_args(core)
        for name, item in value.items():
            _walk(item, item_type, (*path, name), config)
    else:
        _convert(value, annotation, path, config)


def check(data: Mapping[str, Any], config: Config) -> Settings:
    """``data`` (parsed TOML) as :class:`Settings`, or the first problem as a one-line :class:`ConfigError`."""
    _check_secrets(data, config)
    _walk(data, Settings, (), config)
    try:
        return msgspec.convert(data, Settings, dec_hook=decode)
    except msgspec.ValidationError as exc:  # every value passed above: a problem only the whole can have
        raise ConfigError(f"{config.name}: {_friendly(str(exc))}") from None


# -- finding a key's line (tomllib keeps no positions) --------------------------------------------------------------

_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")


def _parts(text: str) -> Key:
    """A dotted key as TOML reads it (quotes, escapes and spaces around dots included)."""
    node: Any = tomllib.loads(f"{text} = 0")
    parts: list[str] = []
    while isinstance(node, dict):
        [(name, node)] = node.items()
        parts.append(name)
    return tuple(parts)


def find_line(text: str, path: Key) -> int | None:
    """The line that sets ``path`` (a table header or ``key = ...``); failing that, the first line
    of a table under it, or of the table or inline table that holds it."""
    table: Key = ()
    child = holder = None
    holder_depth = -1
    closing: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if closing:  # inside a multi-line string
            if closing in line:
                closing = None
            continue
        if header := _HEADER.match(line):
            here = table = _parts(header[1])
        elif assign := _ASSIGN.match(line):
            here = (*table, *_parts(assign[1]))
            rest = line[assign.end():].lstrip()
            for quotes in ('"""', "'''"):
                if rest.startswith(quotes) and rest.count(quotes) == 1:
                    closing = quotes
        else:
            continue
        if here == path:
            return number
        if here[:len(path)] == path and child is None:
            child = number
        if path[:len(here)] == here and len(here) > holder_depth:
            holder, holder_depth = number, len(here)
    return child or holder
