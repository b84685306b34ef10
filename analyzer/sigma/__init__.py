"""Sigma rules over the dataset: pySigma with this project's CloudTrail pipeline and DuckDB backend.

    from analyzer.sigma import load_sigma_rules
    loaded = load_sigma_rules([Path("rules/cloud/aws/cloudtrail")])
    loaded.detections   # Detection objects the engine runs like the catalogue's (detection_id "sigma:<id>")
    loaded.skipped      # (file, why) for the rules that could not be converted

Needs the optional ``analyzer[sigma]`` extra (pySigma).
"""

from analyzer.sigma.rules import SigmaLoad, load_sigma_rules, rule_files

__all__ = ["SigmaLoad", "load_sigma_rules", "rule_files"]
