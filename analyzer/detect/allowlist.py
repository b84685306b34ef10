"""Allowlists from the ``[allowlist]`` config table: known principals, IPs and roles.

Applied to alerts after the detections ran (never by editing SQL), and counted, so a summary can
say how many findings were suppressed::

    [allowlist]
    principals = ["arn:aws:iam::111122223333:user/break-glass", "ci-deployer"]  # ARNs or user names
    ips = ["203.0.113.10", "198.51.100.0/24"]                                   # addresses or CIDRs
    roles = ["OrganizationAccountAccessRole", "arn:aws:iam::111122223333:role/sso/Admin"]

A role (name, or ARN of the role) matches alerts whose principal is a session of that role
(``arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION``): the same role that CloudTrail records as
``userIdentity.sessionContext.sessionIssuer.arn``. Names compare case-insensitively, as IAM does.
An alert is suppressed when any one entry matches it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from analyzer.errors import AnalyzerError

KEYS = ("principals", "ips", "roles")
ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:.*/)?([^/]+)$", re.IGNORECASE)
SESSION_ARN = re.compile(r"^arn:aws[\w-]*:sts::(\d{12}):assumed-role/([^/]+)/", re.IGNORECASE)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Allowlist:
    """Entries that suppress alerts; empty by default."""

    principals: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any] | None) -> Allowlist:
        """Build from the ``[allowlist]`` table (validated: unknown keys and bad CIDRs are errors)."""
        if not table:
            return cls()
        unknown = sorted(set(table) - set(KEYS))
        if unknown:
            raise AnalyzerError(f"[allowlist]: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
        values: dict[str, tuple[str, ...]] = {}
        for key in KEYS:
            entries = table.get(key, [])
            if not isinstance(entries, list) or not all(isinstance(e, str) and e.strip() for e in entries):
                raise AnalyzerError(f"[allowlist] {key}: a list of non-empty strings")
            values[key] = tuple(e.strip() for e in entries)
        allowlist = cls(**values)
        allowlist._networks()  # validate now, not at the first alert
        return allowlist

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Allowlist:
        table = config.get("allowlist")
        if table is not None and not isinstance(table, Mapping):
            raise AnalyzerError("config: [allowlist] must be a table")
        return cls.from_mapping(table)

    def __bool__(self) -> bool:
        return bool(self.principals or self.ips or self.roles)

    def _networks(self) -> tuple[list[Network], set[str]]:
        networks: list[Network] = []
        literal: set[str] = set()
        for entry in self.ips:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if "/" in entry:
                    raise AnalyzerError(f"[allowlist] ips: {entry!r} is not an address or CIDR network") from None
                literal.add(entry)  # e.g. 'AWS Internal' or a service name CloudTrail puts there
        return networks, literal

    def _ip_allowed(self, networks: list[Network], literal: set[str], value: str) -> bool:
        if value in literal:
            return True
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return any(address in network for network in networks if network.version == address.version)

    def _role_allowed(self, principal: str) -> bool:
        session = SESSION_ARN.match(principal)
        for entry in self.roles:
            role = ROLE_ARN.match(entry)
            if role:
                if principal.lower() == entry.lower():
                    return True
                if session and session.group(1) == role.group(1) and session.group(2).lower() == role.group(2).lower():
                    return True
            elif session and session.group(2).lower() == entry.lower():
                return True
        return False

    def matches(self, alerts: pl.DataFrame) -> pl.Series:
        """A boolean mask over ``alerts``: True where an entry suppresses the alert."""
        if alerts.is_empty() or not self:
            return pl.Series("suppressed", [False] * alerts.height, dtype=pl.Boolean)
        names = {p.lower() for p in self.principals}
        networks, literal = self._networks()
        mask: list[bool] = []
        for principal, user_name, source_ip in zip(
            alerts["principal"].to_list(), alerts["user_name"].to_list(), alerts["source_ip"].to_list(), strict=True
        ):
            hit = bool(
                (principal is not None and principal.lower() in names)
                or (user_name is not None and user_name.lower() in names)
                or (source_ip is not None and self.ips and self._ip_allowed(networks, literal, source_ip))
                or (principal is not None and self.roles and self._role_allowed(principal))
            )
            mask.append(hit)
        return pl.Series("suppressed", mask, dtype=pl.Boolean)
