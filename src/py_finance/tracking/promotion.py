"""The promotion gate: which candidate becomes ``@champion``.

:func:`evaluate_gate` is a pure function of the metrics; :func:`promote` applies it to the
registry. The skeleton's gate: out-of-sample Sharpe above a floor and above the benchmark's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from py_finance.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    get_alias_version,
    set_alias,
    set_version_tags,
)

log = logging.getLogger(__name__)

SHARPE = "sharpe"


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Outcome of the promotion gate for one candidate version.

    Attributes
    ----------
    promote
        True when the candidate passed every check and is now ``@champion``.
    reasons
        One line per check with its numbers, e.g. ``"sharpe 0.71 > benchmark 0.45: pass"``.
    candidate_version
        The version that was judged (always ``@challenger`` afterwards).
    previous_champion
        The ``@champion`` version before the decision; None when there was none.
    """

    promote: bool
    reasons: list[str]
    candidate_version: str
    previous_champion: str | None


def evaluate_gate(
    candidate: Mapping[str, float],
    benchmark: Mapping[str, float],
    *,
    min_sharpe: float = 0.0,
) -> tuple[bool, list[str]]:
    """Judge a candidate's out-of-sample metrics against a floor and a benchmark.

    Parameters
    ----------
    candidate
        Out-of-sample backtest metrics of the candidate; uses ``sharpe`` (annualised).
    benchmark
        The benchmark's metrics over the same sessions; uses ``sharpe``.
    min_sharpe
        The candidate's Sharpe must be strictly above this.

    Returns
    -------
    tuple[bool, list[str]]
        Whether every check passed, and one reason per check. A missing or NaN Sharpe fails
        its checks, so does an infinite one; equality fails (both comparisons are strict).
    """
    sharpe = _metric(candidate, SHARPE)
    bench = _metric(benchmark, SHARPE)
    checks = [
        (f"{SHARPE} {{a}} > {{b}}", sharpe, min_sharpe),
        (f"{SHARPE} {{a}} > benchmark {{b}}", sharpe, bench),
    ]
    reasons = []
    passed = True
    for template, a, b in checks:
        # The candidate's Sharpe must be a real number; the bar may be -inf (no floor).
        ok = math.isfinite(a) and not math.isnan(b) and a > b
        passed = passed and ok
        text_a, text_b = _format_pair(a, b)
        reasons.append(template.format(a=text_a, b=text_b) + (": pass" if ok else ": fail"))
    return passed, reasons


def promote(
    name: str,
    version: str | int,
    candidate_metrics: Mapping[str, float],
    benchmark_metrics: Mapping[str, float],
    *,
    min_sharpe: float = 0.0,
) -> GateDecision:
    """Run the gate for a registered version and move the aliases accordingly.

    Parameters
    ----------
    name
        Registered model name, e.g. ``py-finance-h5``.
    version
        The candidate version.
    candidate_metrics, benchmark_metrics
        Out-of-sample metrics (see :func:`evaluate_gate`).
    min_sharpe
        Floor for the candidate's Sharpe.

    Returns
    -------
    GateDecision
        The decision. The candidate always becomes ``@challenger``; it becomes ``@champion``
        only when the gate passes, otherwise the previous champion stays. The decision is
        written to the version's tags ``gate.decision`` (promoted/rejected), ``gate.reasons``,
        ``gate.sharpe``, ``gate.benchmark_sharpe``, ``gate.min_sharpe``.
    """
    version = str(version)
    previous = get_alias_version(name, CHAMPION)
    passed, reasons = evaluate_gate(candidate_metrics, benchmark_metrics, min_sharpe=min_sharpe)
    # Tags first: if moving an alias fails, the version still says what the gate decided.
    set_version_tags(
        name,
        version,
        {
            "gate.decision": "promoted" if passed else "rejected",
            "gate.reasons": "; ".join(reasons),
            "gate.sharpe": repr(_metric(candidate_metrics, SHARPE)),
            "gate.benchmark_sharpe": repr(_metric(benchmark_metrics, SHARPE)),
            "gate.min_sharpe": repr(float(min_sharpe)),
            "gate.previous_champion": previous or "",
        },
    )
    set_alias(name, CHALLENGER, version)
    if passed:
        set_alias(name, CHAMPION, version)
    log.info(
        "%s version %s %s (champion was %s): %s",
        name,
        version,
        "promoted to @champion" if passed else "rejected",
        previous,
        "; ".join(reasons),
    )
    return GateDecision(
        promote=passed,
        reasons=reasons,
        candidate_version=version,
        previous_champion=previous,
    )


def _metric(metrics: Mapping[str, float], key: str) -> float:
    try:
        return float(metrics[key])
    except (KeyError, TypeError, ValueError):
        return math.nan


def _format_pair(a: float, b: float) -> tuple[str, str]:
    # Enough digits that two different numbers never print the same ("0.5 > 0.5: pass").
    for digits in (3, 6, 17):
        text_a, text_b = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if text_a != text_b or a == b or math.isnan(a) or math.isnan(b):
            return text_a, text_b
    return repr(a), repr(b)
