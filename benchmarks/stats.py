"""Medians, spreads and paired ratios of interleaved samples.

Samples of different contenders taken in the same repetition ran seconds apart, so
their ratio is a *paired* measurement that cancels most of the machine's drift. A
ratio is therefore reported as the median of the per-repetition ratios, with their
interquartile range as the spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def quantile(values: Sequence[float], q: float) -> float:
    """The `q` quantile with linear interpolation (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    """Median and interquartile range of some samples."""

    n: int
    median: float
    p25: float
    p75: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        return cls(
            len(finite),
            quantile(finite, 0.5),
            quantile(finite, 0.25),
            quantile(finite, 0.75),
            min(finite),
            max(finite),
        )

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.10 = 10 %)."""
        if not self.median or not math.isfinite(self.median):
            return math.nan
        return (self.p75 - self.p25) / abs(self.median)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "spread": self.spread}


def paired(numerator: Sequence[float], denominator: Sequence[float]) -> Summary:
    """Per-repetition ratios numerator[i] / denominator[i], summarised."""
    return Summary.of([a / b if b else math.nan for a, b in zip(numerator, denominator, strict=False)])


def overhead_ratio(ours: Sequence[float], theirs: Sequence[float], floor: Sequence[float]) -> tuple[float, Summary]:
    """How our overhead over `floor` compares with theirs: (ours - floor) / (theirs - floor).

    Returns the ratio of the median overheads (the point estimate) and the summary of
    the per-repetition ratios (the spread; single repetitions can be wild when an
    overhead is small next to the noise).
    """
    point = _safe_div(
        Summary.of(ours).median - Summary.of(floor).median, Summary.of(theirs).median - Summary.of(floor).median
    )
    per_rep = [_safe_div(a - f, b - f) for a, b, f in zip(ours, theirs, floor, strict=False)]
    return point, Summary.of(per_rep)


def _safe_div(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan
