"""The ClearMaas benchmark: the real gateway against calling a fast fake upstream directly, run with
`python -m bench` (method and figures in bench/README.md); not part of the test suite."""

from __future__ import annotations

__all__: list[str] = []
