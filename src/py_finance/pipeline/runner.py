"""Ad-hoc backtests from the seed's CLI flags, outside the DVC pipeline's outputs.

``scripts/run_backtest.py`` and ``scripts/run_multi_horizon_backtest.py`` turn their flags
into Hydra overrides, run the research and backtest stages into their own folder under
``outputs/backtests/`` (so ``dvc repro`` still sees its outputs untouched) and log to the
project's MLflow store like every other backtest.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from py_finance.config import build, compose, project_root
from py_finance.errors import PyFinanceError
from py_finance.pipeline import evaluation, research
from py_finance.pipeline.context import Context

MODELS = ("lightgbm", "xgboost", "lstm", "tcn", "transformer")


def overlay_overrides(
    *, regime_aware: bool, vol_scaling: bool, drawdown_throttle: bool, sector_tilts: bool
) -> list[str]:
    """Hydra overrides of the seed's overlay flags (the backtest and the live loop alike).

    The Regime-Aware strategy always has the position and sector caps; each flag adds one
    overlay (regime exposure multipliers, volatility targeting, drawdown throttle, regime
    sector tilts).
    """
    out = ["risk=full", f"regime_policy={'fixed' if regime_aware else 'none'}"]
    if not vol_scaling:
        out.append("risk.vol_target=null")
    if not drawdown_throttle:
        out.append("risk.drawdown_throttle=null")
    if not sector_tilts:
        out.append("risk.sector_tilts=null")
    return out


@dataclass(frozen=True, slots=True)
class BacktestFlags:
    """The seed's backtest flags."""

    start_date: dt.date | None = None
    end_date: dt.date | None = None
    model: str = "lightgbm"
    horizon: int = 5
    top_k: int | None = None
    regime_aware: bool = False
    vol_scaling: bool = False
    drawdown_throttle: bool = False
    sector_tilts: bool = False

    def overrides(self) -> list[str]:
        """Hydra overrides for these flags.

        The Regime-Aware strategy always has the position and sector caps; each flag adds
        one overlay (regime exposure multipliers, volatility targeting, drawdown throttle,
        regime sector tilts). Baseline is always the bare top-k.
        """
        if self.model not in MODELS:
            raise PyFinanceError(f"--model must be one of {MODELS}, got {self.model!r}")
        if self.horizon not in (1, 5, 20):
            raise PyFinanceError(f"--horizon must be 1, 5 or 20, got {self.horizon}")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise PyFinanceError(
                f"--end-date {self.end_date} is before --start-date {self.start_date}"
            )
        out = [
            f"model={self.model}",
            f"labels=h{self.horizon}",
            *overlay_overrides(
                regime_aware=self.regime_aware,
                vol_scaling=self.vol_scaling,
                drawdown_throttle=self.drawdown_throttle,
                sector_tilts=self.sector_tilts,
            ),
        ]
        if self.start_date:
            out.append(f"data.start={self.start_date.isoformat()}")
        if self.end_date:
            out.append(f"data.end={self.end_date.isoformat()}")
        if self.top_k is not None:
            out.append(f"portfolio.top_k={self.top_k}")
        return out

    def tag(self) -> str:
        """A folder-safe name for the run's outputs."""
        parts = [self.model, f"h{self.horizon}"]
        parts += [
            name
            for name, on in (
                ("regime", self.regime_aware),
                ("vol", self.vol_scaling),
                ("dd", self.drawdown_throttle),
                ("tilts", self.sector_tilts),
            )
            if on
        ]
        if self.start_date or self.end_date:
            parts.append(f"{self.start_date or 'start'}_{self.end_date or 'end'}")
        return re.sub(r"[^A-Za-z0-9_.-]", "-", "-".join(str(p) for p in parts))


def run_backtest_cli(
    flags: BacktestFlags, extra: Sequence[str] = (), root: Path | None = None
) -> tuple[dict[str, Any], str]:
    """Run ingest -> features -> labels -> regimes -> train -> backtest -> report.

    Returns the metrics and the Markdown report. Outputs go to
    ``<root>/outputs/backtests/<tag>/``; MLflow runs go to the project's store.
    """
    root = (root or project_root()).resolve()
    workdir = root / "outputs" / "backtests" / flags.tag()
    overrides = [
        *flags.overrides(),
        f"tracking.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        f"tracking.artifact_location={root / 'mlruns'}",
        *extra,
    ]
    ctx = Context(build(compose(overrides)), workdir)
    research.ingest(ctx)
    research.features(ctx)
    research.labels(ctx)
    research.regimes(ctx)
    research.train(ctx)
    # Logged to MLflow as trials of their research question; never registered.
    metrics = evaluation.backtest(ctx, log_model=False)
    return metrics, evaluation.report(ctx)
