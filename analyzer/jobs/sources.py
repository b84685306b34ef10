"""Where the logs come from: the trail URL and the ``[pull]`` table, assembled into an :class:`S3Source` once.

``pull`` and ``nightly`` (and a notebook) reach a trail the same way: flags win over ``[pull]`` of
the configuration file, a malformed URL is a usage error, and one ``--region`` also sets the S3
client's region, as the AWS CLI's ``--region`` does (with several, the client's region is
``AWS_REGION``/the profile's, else the bucket's own).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer.errors import AnalyzerError, UsageError

if TYPE_CHECKING:
    from analyzer.settings import PullTable
    from analyzer.sources.s3 import S3Source

#: How usage errors name the trail argument.
TRAIL = "s3://BUCKET[/PREFIX]"
#: analyzer.sources.s3.DEFAULT_WORKERS (not imported: boto3 is slow to import; tests check they agree).
DEFAULT_WORKERS = 32


def _strings(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def trail_url(given: str | None, pull: PullTable | None = None, *, option: str | None = None) -> str:
    """``given``, else ``[pull] bucket``/``prefix``, checked to be an ``s3://BUCKET[/PREFIX]`` URL
    (a usage error otherwise, naming ``option`` when the URL came from one)."""
    from analyzer.settings import PullTable
    from analyzer.sources.layout import S3Location, position

    pull = pull or PullTable()
    if given is None:
        if not pull.bucket:
            raise UsageError(f"give {TRAIL} (or [pull] bucket in the configuration file)", option=option)
        given = f"s3://{pull.bucket}/{(pull.prefix or '').strip('/')}"
    try:
        position(S3Location.parse(given).prefix)  # a prefix deeper than AWSLogs/ must follow the layout
    except AnalyzerError as exc:
        if "://" not in given and given.strip("/"):
            hint = f"did you mean s3://{given.strip('/')}?"
            raise UsageError(f"{given}: not an s3:// URL ({hint})", option=option) from None
        raise UsageError(str(exc), option=option) from None
    return given


def s3_source(
    url: str | None = None,
    pull: PullTable | None = None,
    *,
    profile: str | None = None,
    endpoint_url: str | None = None,
    workers: int | None = None,
    accounts: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    org_id: str | None = None,
    keep_raw: Path | None = None,
    check: bool = True,
) -> S3Source:
    """The :class:`~analyzer.sources.s3.S3Source` for ``url`` (else ``[pull]`` bucket/prefix): each
    option given here wins over its ``[pull]`` key. ``check``: fail fast, in one line, on a missing
    bucket, bad credentials or an unreachable endpoint (:meth:`~analyzer.sources.s3.S3Source.check`)."""
    import boto3

    from analyzer.settings import PullTable
    from analyzer.sources.layout import is_account, is_org
    from analyzer.sources.s3 import S3Source, make_session

    pull = pull or PullTable()
    where = trail_url(url, pull)
    chosen_accounts = list(accounts or _strings(pull.accounts))
    chosen_regions = list(regions or _strings(pull.regions))
    chosen_org = org_id or pull.org_id
    for account in chosen_accounts:
        if not is_account(account):
            raise UsageError(f"{account!r}: an account id is 12 digits", option="--account")
    if chosen_org is not None and not is_org(chosen_org):
        raise UsageError(f"{chosen_org!r}: an organization id looks like o-abcd123456", option="--org-id")
    chosen_profile = profile or pull.profile
    session = make_session(chosen_profile)  # an unknown profile is one clear line
    if len(chosen_regions) == 1:  # --region eu-west-1: the client's region too
        session = boto3.Session(profile_name=chosen_profile, region_name=chosen_regions[0])
    source = S3Source.connect(
        where,
        session=session,
        endpoint_url=endpoint_url or pull.endpoint_url,
        workers=workers or pull.workers or DEFAULT_WORKERS,
        accounts=chosen_accounts,
        regions=chosen_regions,
        org_id=chosen_org,
        keep_raw=keep_raw,
    )
    if check:
        source.check()
    return source
