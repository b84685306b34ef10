"""MFA posture: who still needs MFA, from IAM itself and from the CloudTrail dataset.

The pieces, each with one job: :mod:`~analyzer.posture.model` (what one snapshot holds, as an Arrow
table), :mod:`~analyzer.posture.credential_report` (IAM's credential report CSV, read as untrusted
input), :mod:`~analyzer.posture.store` (dated snapshots committed into the dataset's manifest),
:mod:`~analyzer.posture.assess` (the join with the sign-ins, the ranked "who needs MFA now" list, the
findings in the alert shape, coverage over time) and the renderers (:mod:`~analyzer.posture.render`).
The AWS side is :mod:`analyzer.sources.iam`; the job that runs it all is :mod:`analyzer.jobs.posture`.
"""
