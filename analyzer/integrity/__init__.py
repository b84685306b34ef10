"""Log integrity: CloudTrail's digest files checked as ``aws cloudtrail validate-logs`` does, in bulk.

One job per module: :mod:`~analyzer.integrity.hashing` (SHA-256 of a file's uncompressed content),
:mod:`~analyzer.integrity.digest` (names and JSON), :mod:`~analyzer.integrity.keys` (public keys),
:mod:`~analyzer.integrity.signature` (SHA256withRSA over the signing string),
:mod:`~analyzer.integrity.chain` (the checks), :mod:`~analyzer.integrity.findings` (alerts),
:mod:`~analyzer.integrity.stores` (S3, a local copy) and :mod:`~analyzer.integrity.record` (the
manifest's digests). The job that runs them is :mod:`analyzer.jobs.verify`.
"""
