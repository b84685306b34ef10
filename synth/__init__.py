"""The synthetic CloudTrail corpus generator, for tests and benchmarks only (not in the wheel).

It lives beside the package, not in it: ``analyzer`` ships what users run. Tests import it through
pytest's ``pythonpath`` (pyproject.toml), benchmarks through ``bench/common.py``.
"""

from synth.corpus import CorpusStats, write_corpus

__all__ = ["CorpusStats", "write_corpus"]
