"""The promotion gate: which candidate becomes ``@champion``.

A candidate that passes the absolute checks of :class:`PromotionConfig` on its out-of-sample
backtest becomes ``@challenger``. It becomes ``@champion`` only by a deliberate promotion
(``scripts/promote.py --apply``, a retrain job configured to, or the first model of a
deployment in a clean workspace) and only when it also compares well with the current
champion on the same sessions (:func:`sharpe_difference_test`, ``vs_champion``). The
absolute checks:

- its Sharpe ratio is above a floor and above the benchmark's over the same sessions;
- its Deflated Sharpe Ratio (Bailey and López de Prado, 2014) is at least ``dsr_confidence``:
  the probability that its true Sharpe exceeds the best Sharpe that ``n_trials`` tries of
  skill-less strategies would show by chance, ``n_trials`` being the number of distinct
  strategy configurations tried on the same research question (data snapshot, universe,
  horizon), in any MLflow experiment, failed tries included (so a big sweep raises the bar);
- its maximum drawdown is within ``max_drawdown``;
- the out-of-sample period has at least ``min_oos_sessions`` sessions.

:func:`evaluate_gate` is a pure function of the figures; :func:`promote` applies it to the
registry and writes the decision and its figures as tags on the model version;
:func:`count_trials` reads the trials of a research question from the tracking store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

from py_finance.errors import ConfigError
from py_finance.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    get_alias_version,
    set_alias,
    set_version_tags,
)

log = logging.getLogger(__name__)

SHARPE = "sharpe"
_EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()  # the standard normal (stdlib: no scipy import per stage)
SR_VARIANCE_CHOICES = ("max", "trials", "sampling")
VS_CHAMPION_CHOICES = ("better", "not_worse", "ignore")
# Params that say where a run wrote, not what strategy it was: not part of a trial's identity
# (``models.``/``matrix.``: the other models and cells of the DVC matrix, not this run's).
_NOT_STRATEGY = (
    "tracking.",
    "paths.",
    "live.",
    "promotion.",
    "hydra.",
    "experiment.",
    "models.",
    "matrix.",
)
# Settings of how a run executes, not of what it computes: the walk-forward's executor and
# its workers (bit-identical predictions, tested), thread counts, devices, progress and
# logging, and how many names an ingest commits at once.
EXECUTION_SETTINGS = frozenset(
    {
        "executor",
        "workers",
        "n_jobs",
        "num_threads",
        "nthread",
        "nthreads",
        "accelerator",
        "devices",
        "progress",
        "verbose",
        "verbosity",
        "log_level",
    }
)
_EXECUTION_KEYS = frozenset({"data.batch_size"})


@dataclass(frozen=True, slots=True)
class PromotionConfig:
    """Settings of the promotion gate (``conf/promotion/``).

    Parameters
    ----------
    min_sharpe
        The candidate's annualised out-of-sample Sharpe must be strictly above this.
    beat_benchmark
        The candidate's Sharpe must be strictly above the benchmark's (same sessions).
    dsr_confidence
        Minimum Deflated Sharpe Ratio, a probability in (0, 1); 0.95 by default.
    max_drawdown
        Largest tolerated fall from a peak, as a positive fraction (0.40 = -40%); null: off.
    min_oos_sessions
        Minimum number of out-of-sample sessions (756 = about three years).
    n_trials
        Number of trials for the DSR; null counts the distinct strategy configurations
        recorded in the MLflow experiment (never fewer than 1).
    sr_variance
        Variance of the Sharpe ratios across trials used by the DSR: ``trials`` (measured
        across the recorded trials), ``sampling`` (the sampling variance of the candidate's
        Sharpe estimate, what independent skill-less trials would show), or ``max`` of the
        two (the default, the stricter one).
    candidate
        Which backtest variant is the candidate (``regime_aware`` or ``baseline``).
    vs_champion
        How the candidate must compare with the deployment's current ``@champion`` on the
        same out-of-sample sessions (a paired test of the Sharpe difference on daily returns,
        :func:`sharpe_difference_test`): ``better`` (significantly higher Sharpe at
        ``vs_champion_confidence``: a statistical tie keeps the champion), ``not_worse`` (not
        significantly lower) or ``ignore``.
    vs_champion_confidence
        One-sided confidence of that test (0.95: the difference must be 1.645 standard
        errors).
    min_common_sessions
        Fewest sessions the two must share for the comparison; fewer fails it.
    min_shadow_sessions
        Fewest shadow-trading sessions (daily returns) ``scripts/promote.py --from-shadow``
        compares a challenger's virtual book with the champion's live one on.
    retrain_apply
        Whether the scheduled retrain job (``scripts/retrain.py``) may make a candidate that
        passes ``@champion``; false (the default): it proposes, as an experiment does.
    bootstrap
        The pipeline's promote stage makes a candidate that passes ``@champion`` only while
        its deployment has no champion, outside DVC experiments and with no uncommitted
        change to tracked files (a fresh clone's ``make run``); otherwise it becomes
        ``@challenger`` and ``scripts/promote.py --apply`` moves the champion. False: never.
    """

    min_sharpe: float = 0.0
    beat_benchmark: bool = True
    dsr_confidence: float = 0.95
    max_drawdown: float | None = 0.40
    min_oos_sessions: int = 756
    n_trials: int | None = None
    sr_variance: str = "max"
    candidate: str = "regime_aware"
    vs_champion: str = "better"
    vs_champion_confidence: float = 0.95
    min_common_sessions: int = 252
    min_shadow_sessions: int = 20
    retrain_apply: bool = False
    bootstrap: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < float(self.dsr_confidence) < 1.0:
            raise ConfigError(
                f"promotion.dsr_confidence must be in (0, 1), got {self.dsr_confidence}"
            )
        if self.max_drawdown is not None and not 0.0 < float(self.max_drawdown) <= 1.0:
            raise ConfigError(
                f"promotion.max_drawdown must be in (0, 1] (a positive fraction), "
                f"got {self.max_drawdown}"
            )
        if int(self.min_oos_sessions) < 3:
            raise ConfigError(
                f"promotion.min_oos_sessions must be >= 3, got {self.min_oos_sessions}"
            )
        if self.n_trials is not None and int(self.n_trials) < 1:
            raise ConfigError(f"promotion.n_trials must be >= 1 or null, got {self.n_trials}")
        if self.sr_variance not in SR_VARIANCE_CHOICES:
            raise ConfigError(
                f"promotion.sr_variance must be one of {SR_VARIANCE_CHOICES}, "
                f"got {self.sr_variance!r}"
            )
        if self.vs_champion not in VS_CHAMPION_CHOICES:
            raise ConfigError(
                f"promotion.vs_champion must be one of {VS_CHAMPION_CHOICES}, "
                f"got {self.vs_champion!r}"
            )
        if not 0.5 <= float(self.vs_champion_confidence) < 1.0:
            raise ConfigError(
                "promotion.vs_champion_confidence must be in [0.5, 1), "
                f"got {self.vs_champion_confidence}"
            )
        if int(self.min_common_sessions) < 3:
            raise ConfigError(
                f"promotion.min_common_sessions must be >= 3, got {self.min_common_sessions}"
            )
        if self.candidate not in ("regime_aware", "baseline"):
            raise ConfigError(
                f"promotion.candidate must be regime_aware or baseline, got {self.candidate!r}"
            )


@dataclass(frozen=True, slots=True)
class GateEvidence:
    """The figures the gate judges, all out of sample.

    Attributes
    ----------
    sharpe, benchmark_sharpe
        Annualised Sharpe ratios of the candidate and the benchmark over the same sessions.
    dsr
        Deflated Sharpe Ratio of the candidate given ``n_trials`` (a probability).
    psr
        Probabilistic Sharpe Ratio against 0 (the DSR of a single trial).
    n_trials
        Trials the DSR deflates for.
    expected_max_sharpe
        Annualised Sharpe that the best of ``n_trials`` skill-less trials is expected to show:
        the bar the DSR measures the candidate against.
    sr_variance
        Per-session variance of the Sharpe ratio across trials used for that bar.
    max_drawdown
        Maximum drawdown (negative fraction, e.g. -0.34).
    n_sessions
        Out-of-sample sessions.
    best_trial_sharpe
        Highest annualised Sharpe among the recorded trials (NaN when none were read).
    """

    sharpe: float
    benchmark_sharpe: float
    dsr: float
    psr: float
    n_trials: int
    expected_max_sharpe: float
    sr_variance: float
    max_drawdown: float
    n_sessions: int
    best_trial_sharpe: float = math.nan

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict of the figures (for JSON and tags)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Outcome of the promotion gate for one candidate version.

    Attributes
    ----------
    promote
        True when the candidate passed every check (and, unless a dry run, is ``@champion``).
    reasons
        One line per check with its numbers, e.g. ``"sharpe 0.71 > benchmark 0.45: pass"``.
    candidate_version
        The version that was judged (always ``@challenger`` afterwards, unless a dry run).
    previous_champion
        The ``@champion`` version before the decision; None when there was none.
    evidence
        The figures judged; None for the legacy Sharpe-only call.
    comparison
        The paired test against the champion; None when there was none.
    decision
        ``promoted`` (now ``@champion``), ``challenger`` (passed the absolute checks, now
        ``@challenger``), ``rejected``, or ``champion`` (the candidate is the champion
        already: nothing moved).
    """

    promote: bool
    reasons: list[str]
    candidate_version: str
    previous_champion: str | None
    evidence: GateEvidence | None = field(default=None)
    comparison: SharpeComparison | None = field(default=None)
    decision: str = ""


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """Trials recorded for one research question (:func:`count_trials`).

    Attributes
    ----------
    n_trials
        Distinct strategy configurations among the backtest runs that ended, failed ones
        included (at least 1).
    sharpes
        Annualised Sharpe of each finished configuration (its latest run).
    n_runs
        Backtest runs read (repeats of one configuration count once in ``n_trials``).
    """

    n_trials: int
    sharpes: tuple[float, ...]
    n_runs: int


@dataclass(frozen=True, slots=True)
class SharpeComparison:
    """A paired test of two strategies' Sharpe ratios on the same sessions.

    Attributes
    ----------
    sharpe, champion_sharpe
        Annualised Sharpe ratios of the candidate and the champion over the common sessions.
    difference
        ``sharpe - champion_sharpe`` (annualised).
    std_error
        HAC standard error of the difference (annualised).
    z
        ``difference / std_error``.
    n_sessions
        Common sessions the test used.
    first, last
        First and last common session (ISO dates).
    champion_version
        The champion version compared with.
    rescored_sessions
        Sessions of the candidate's window after the champion's own backtest ended, scored
        from the champion's logged model (0: its logged returns covered the window).
    """

    sharpe: float
    champion_sharpe: float
    difference: float
    std_error: float
    z: float
    n_sessions: int
    first: str = ""
    last: str = ""
    champion_version: str = ""
    rescored_sessions: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON and tags)."""
        return asdict(self)


def sharpe_difference_test(
    candidate: Any, champion: Any, *, periods_per_year: int = 252
) -> SharpeComparison:
    """Paired test of the Sharpe difference of two return series (Ledoit & Wolf, 2008).

    The delta method on the first two moments of both series, with a heteroskedasticity-
    and autocorrelation-consistent covariance (Bartlett kernel, Newey-West bandwidth
    ``floor(4 (T/100)^(2/9))``): the HAC inference of Ledoit and Wolf's "Robust performance
    hypothesis testing with the Sharpe ratio" (J. Empirical Finance, 2008), which stays valid
    for fat-tailed, serially dependent daily returns, where the Jobson-Korkie/Memmel test
    does not.

    Parameters
    ----------
    candidate, champion
        Simple per-session returns (pandas Series indexed by session); only the sessions
        where both are known are used.
    periods_per_year
        Sessions per year of the annualisation.

    Returns
    -------
    SharpeComparison
        Both Sharpe ratios, the difference, its standard error and z; NaN figures when fewer
        than 3 common sessions or a constant series.
    """
    import numpy as np
    import pandas as pd

    both = pd.concat([pd.Series(candidate), pd.Series(champion)], axis=1, join="inner").dropna()
    r = both.to_numpy(dtype="float64")
    t = len(r)
    ann = math.sqrt(periods_per_year)
    span = (
        (
            pd.Timestamp(both.index[0]).date().isoformat(),
            pd.Timestamp(both.index[-1]).date().isoformat(),
        )
        if t and isinstance(both.index, pd.DatetimeIndex)
        else ("", "")
    )
    nan = SharpeComparison(math.nan, math.nan, math.nan, math.nan, math.nan, t, *span)
    if t < 3:
        return nan
    mu = r.mean(axis=0)
    gamma = (r**2).mean(axis=0)
    var = gamma - mu**2
    if (var <= 0).any():
        return nan
    sd = np.sqrt(var)
    sr = mu / sd
    # Gradient of sr_a - sr_b with respect to (mu_a, mu_b, gamma_a, gamma_b).
    grad = np.array(
        [
            gamma[0] / sd[0] ** 3,
            -gamma[1] / sd[1] ** 3,
            -mu[0] / (2 * sd[0] ** 3),
            mu[1] / (2 * sd[1] ** 3),
        ]
    )
    y = np.column_stack(
        [r[:, 0] - mu[0], r[:, 1] - mu[1], r[:, 0] ** 2 - gamma[0], r[:, 1] ** 2 - gamma[1]]
    )
    lags = math.floor(4.0 * (t / 100.0) ** (2.0 / 9.0))
    psi = _crossprod(y, y) / t
    for lag in range(1, min(lags, t - 1) + 1):
        gam = _crossprod(y[lag:], y[:-lag]) / t
        psi += (1.0 - lag / (lags + 1.0)) * (gam + gam.T)
    variance = float(grad @ _matvec(psi, grad)) / t
    diff = float(sr[0] - sr[1]) * ann
    if variance > 0:
        se = math.sqrt(variance) * ann
        z = diff / se
    else:  # the same returns on every session (a model that traded alike): no difference
        se = 0.0
        z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return SharpeComparison(float(sr[0]) * ann, float(sr[1]) * ann, diff, se, z, t, *span)


def _crossprod(a: Any, b: Any) -> Any:
    """``a.T @ b`` by elementwise sums: the same bits whatever BLAS kernel the machine picks."""
    import numpy as np

    return np.array(
        [[float(np.sum(a[:, i] * b[:, j])) for j in range(b.shape[1])] for i in range(a.shape[1])]
    )


def _matvec(m: Any, v: Any) -> Any:
    import numpy as np

    return np.array([float(np.sum(m[i] * v)) for i in range(m.shape[0])])


def judge_vs_champion(
    comparison: SharpeComparison | None, config: PromotionConfig
) -> tuple[bool, str]:
    """The gate's comparison with the champion: whether it passes, and its reason line.

    No comparison (the deployment has no champion yet) passes; with ``vs_champion: ignore``
    the comparison is shown but does not decide.
    """
    if comparison is None:
        return True, "vs champion: none yet: pass"
    c = comparison
    z_bar = _NORMAL.inv_cdf(float(config.vs_champion_confidence))
    if not math.isfinite(c.sharpe) or not math.isfinite(c.champion_sharpe):
        head = f"vs champion v{c.champion_version}: {c.n_sessions} common sessions"
    else:
        head = (
            f"vs champion v{c.champion_version}: sharpe {c.sharpe:.3f} vs "
            f"{c.champion_sharpe:.3f} on {c.n_sessions} common sessions"
            + (f" ({c.rescored_sessions} re-scored)" if c.rescored_sessions else "")
            + f", difference {c.difference:+.3f} (se {c.std_error:.3f}, z {c.z:+.2f})"
        )
    if c.n_sessions < config.min_common_sessions or math.isnan(c.z):
        ok = config.vs_champion == "ignore"
        why = (
            f"fewer than {config.min_common_sessions} comparable sessions"
            if c.n_sessions < config.min_common_sessions
            else "not comparable (a constant return series)"
        )
        return ok, f"{head}: {why}" + (": ignored: pass" if ok else ": fail")
    level = f"{config.vs_champion_confidence:.0%}"
    if c.z >= z_bar:
        verdict = f"better at {level}"
    elif c.z <= -z_bar:
        verdict = f"worse at {level}"
    else:
        verdict = f"a statistical tie at {level}"
    if config.vs_champion == "better":
        ok = c.z >= z_bar
    elif config.vs_champion == "not_worse":
        ok = c.z > -z_bar
    else:
        ok = True
    mode = {"better": "must be better", "not_worse": "must not be worse", "ignore": "ignored"}
    return ok, f"{head}: {verdict} ({mode[config.vs_champion]}): " + ("pass" if ok else "fail")


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Per-session Sharpe that the best of ``n_trials`` skill-less trials is expected to show.

    ``sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))`` (Bailey and López
    de Prado, 2014); 0 for a single trial.
    """
    if n_trials <= 1:
        return 0.0
    return math.sqrt(max(sr_variance, 0.0)) * (
        (1.0 - _EULER_GAMMA) * float(_NORMAL.inv_cdf(1.0 - 1.0 / n_trials))
        + _EULER_GAMMA * float(_NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e)))
    )


def sharpe_sampling_variance(returns: Sequence[float] | Any) -> float:
    """Sampling variance of a per-session Sharpe estimate (Mertens / Lo, non-normal returns)."""
    import numpy as np
    import pandas as pd

    r = np.asarray(pd.Series(returns, dtype="float64").dropna())
    if r.size < 3 or float(np.ptp(r)) == 0.0:
        return math.nan
    sr = float(r.mean() / r.std(ddof=1))
    z = (r - r.mean()) / r.std(ddof=0)
    g3, g4 = float(np.mean(z**3)), float(np.mean(z**4))
    return (1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2) / (r.size - 1)


def candidate_returns(curve: Any) -> Any:
    """Per-session returns of a growth-of-1 curve, its first session's included (the gate's)."""
    curve = curve.dropna()
    returns = curve.pct_change()
    if len(returns):
        returns.iloc[0] = curve.iloc[0] - 1.0
    return returns


def gate_evidence(
    returns: Any,
    benchmark_sharpe: float,
    *,
    n_trials: int,
    trial_sharpes: Sequence[float] = (),
    sr_variance: str = "max",
    periods_per_year: int = 252,
) -> GateEvidence:
    """Compute the gate's figures from the candidate's out-of-sample returns.

    Parameters
    ----------
    returns
        Simple per-session returns of the candidate strategy, out of sample.
    benchmark_sharpe
        The benchmark's annualised Sharpe over the same sessions.
    n_trials
        Number of trials to deflate for (>= 1).
    trial_sharpes
        Annualised Sharpe ratios of the recorded trials, for their variance.
    sr_variance
        ``max``, ``trials`` or ``sampling`` (see :class:`PromotionConfig`).
    periods_per_year
        Sessions per year of the annualisation.

    Returns
    -------
    GateEvidence
        Sharpe, DSR, PSR, the expected best Sharpe of ``n_trials`` skill-less trials, max
        drawdown and the number of sessions.
    """
    import numpy as np
    import pandas as pd

    from py_finance.backtest.metrics import (
        deflated_sharpe_ratio,
        max_drawdown,
        probabilistic_sharpe_ratio,
    )

    r = pd.Series(returns, dtype="float64").dropna()
    n_trials = max(int(n_trials), 1)
    ann = math.sqrt(periods_per_year)
    sampling = sharpe_sampling_variance(r)
    finite = [s / ann for s in trial_sharpes if math.isfinite(s)]
    across = float(np.var(finite, ddof=1)) if len(finite) >= 2 else math.nan
    if sr_variance == "trials":
        var = across if math.isfinite(across) else sampling
    elif sr_variance == "sampling":
        var = sampling
    else:
        known = [v for v in (across, sampling) if math.isfinite(v)]
        var = max(known) if known else math.nan
    std = float(r.std(ddof=1)) if len(r) >= 2 else math.nan
    sharpe = float(r.mean()) / std * ann if std and math.isfinite(std) else math.nan
    if n_trials == 1:
        dsr = probabilistic_sharpe_ratio(r.to_numpy(), 0.0)
    else:
        dsr = deflated_sharpe_ratio(r.to_numpy(), n_trials, sr_variance=var)
    curve = np.concatenate(([1.0], np.cumprod(1.0 + r.to_numpy())))
    return GateEvidence(
        sharpe=sharpe,
        benchmark_sharpe=float(benchmark_sharpe),
        dsr=float(dsr),
        psr=float(probabilistic_sharpe_ratio(r.to_numpy(), 0.0)),
        n_trials=n_trials,
        expected_max_sharpe=expected_max_sharpe(n_trials, var) * ann,
        sr_variance=float(var),
        max_drawdown=float(max_drawdown(curve)) if len(r) else math.nan,
        n_sessions=len(r),
        best_trial_sharpe=max(trial_sharpes, default=math.nan, key=_nan_low),
    )


def evaluate_gate(
    candidate: Mapping[str, float] | GateEvidence,
    benchmark: Mapping[str, float] | None = None,
    *,
    min_sharpe: float | None = None,
    config: PromotionConfig | None = None,
) -> tuple[bool, list[str]]:
    """Judge a candidate's out-of-sample figures.

    Parameters
    ----------
    candidate
        :class:`GateEvidence`, or a mapping of out-of-sample metrics of the candidate
        (``sharpe``; with a ``config``, also ``dsr``, ``max_drawdown``, ``n_sessions``).
    benchmark
        The benchmark's metrics over the same sessions (``sharpe``); not needed with evidence.
    min_sharpe
        Floor for the candidate's Sharpe; overrides ``config.min_sharpe``.
    config
        The gate's settings. Without one (the skeleton's call) only the Sharpe floor and
        the benchmark are checked.

    Returns
    -------
    tuple[bool, list[str]]
        Whether every check passed, and one reason per check with its numbers. A missing,
        NaN or infinite figure fails its check; comparisons with the floor and the benchmark
        are strict.
    """
    if isinstance(candidate, GateEvidence):
        figures: dict[str, float] = {k: float(v) for k, v in candidate.as_dict().items()}
        bench = figures["benchmark_sharpe"]
    else:
        figures = {k: _metric(candidate, k) for k in candidate}
        bench = _metric(benchmark or {}, SHARPE)
    sharpe = figures.get(SHARPE, math.nan)
    floor = float(min_sharpe if min_sharpe is not None else (config.min_sharpe if config else 0))
    checks: list[tuple[str, bool]] = []

    def strictly_above(template: str, a: float, b: float) -> None:
        ok = math.isfinite(a) and not math.isnan(b) and a > b
        text_a, text_b = _format_pair(a, b)
        checks.append((template.format(a=text_a, b=text_b), ok))

    strictly_above(f"{SHARPE} {{a}} > {{b}}", sharpe, floor)
    if config is None or config.beat_benchmark:
        strictly_above(f"{SHARPE} {{a}} > benchmark {{b}}", sharpe, bench)
    if config is not None:
        dsr = figures.get("dsr", math.nan)
        n = int(figures.get("n_trials", config.n_trials or 1))
        bar = figures.get("expected_max_sharpe", math.nan)
        ok = math.isfinite(dsr) and dsr >= config.dsr_confidence
        detail = f"n_trials {n}" + (
            f", expected best skill-less sharpe {bar:.3g}" if math.isfinite(bar) else ""
        )
        checks.append((f"dsr {dsr:.3g} >= {config.dsr_confidence:g} ({detail})", ok))
        if config.max_drawdown is not None:
            mdd = figures.get("max_drawdown", math.nan)
            ok = math.isfinite(mdd) and -mdd <= config.max_drawdown
            checks.append((f"max drawdown {mdd:.1%} within -{config.max_drawdown:.0%}", ok))
        sessions = figures.get("n_sessions", math.nan)
        ok = math.isfinite(sessions) and sessions >= config.min_oos_sessions
        shown = int(sessions) if math.isfinite(sessions) else sessions
        checks.append((f"oos sessions {shown} >= {config.min_oos_sessions}", ok))
    reasons = [text + (": pass" if ok else ": fail") for text, ok in checks]
    return all(ok for _, ok in checks), reasons


def promote(
    name: str,
    version: str | int,
    candidate_metrics: Mapping[str, float] | GateEvidence,
    benchmark_metrics: Mapping[str, float] | None = None,
    *,
    min_sharpe: float | None = None,
    config: PromotionConfig | None = None,
    comparison: SharpeComparison | None = None,
    deploy: bool = True,
    dry_run: bool = False,
) -> GateDecision:
    """Run the gate for a registered version and move the aliases accordingly.

    Parameters
    ----------
    name
        Registered model (deployment) name, e.g. ``py-finance-bundled-h5``.
    version
        The candidate version.
    candidate_metrics, benchmark_metrics
        Out-of-sample figures (see :func:`evaluate_gate`).
    min_sharpe
        Floor for the candidate's Sharpe (overrides the config's).
    config
        Gate settings; None runs the skeleton's Sharpe-only gate.
    comparison
        The paired test against the current champion on the same sessions
        (:func:`sharpe_difference_test`); None when the deployment has no champion. Judged
        by ``config.vs_champion`` (:func:`judge_vs_champion`).
    deploy
        Whether a candidate that passes every check may become ``@champion``: True for a
        deliberate promotion (``scripts/promote.py --apply``, a retrain job configured to);
        False for experiments, sweeps and dirty workspaces, whose candidates stop at
        ``@challenger``.
    dry_run
        Decide and explain, but change nothing in the registry.

    Returns
    -------
    GateDecision
        The decision: ``promote`` is True when the candidate became (or, in a dry run,
        would become) ``@champion``. A candidate that passes the absolute checks becomes
        ``@challenger`` (worth shadowing) whatever the comparison says; the champion moves
        only when the comparison also passes and ``deploy`` allows it. The decision is
        written to the version's tags: ``gate.decision`` (promoted, challenger or
        rejected), ``gate.reasons``, the figures ``gate.*``, ``gate.vs_champion.*`` and the
        thresholds ``gate.config.*``.
    """
    version = str(version)
    previous = get_alias_version(name, CHAMPION)
    absolute, reasons = evaluate_gate(
        candidate_metrics, benchmark_metrics, min_sharpe=min_sharpe, config=config
    )
    compared = True
    if config is not None:
        compared, line = judge_vs_champion(comparison, config)
        reasons.append(line)
    evidence = candidate_metrics if isinstance(candidate_metrics, GateEvidence) else None
    if previous is not None and version == previous:
        # The champion judged again (a rerun of its own backtest, a retrain on the same data):
        # nothing to decide, and the challenger it may have stays where it is.
        reasons.append(f"v{version} is @champion already: no alias moves")
        log.info("%s v%s is @champion already: %s", name, version, "; ".join(reasons))
        return GateDecision(
            promote=False,
            reasons=reasons,
            candidate_version=version,
            previous_champion=previous,
            evidence=evidence,
            comparison=comparison,
            decision="champion",
        )
    passed = absolute and compared and deploy
    if absolute and compared and not deploy:
        reasons.append(
            "proposes only (not a deliberate promotion): @challenger; "
            "`scripts/promote.py --apply` makes it @champion"
        )
    floor = min_sharpe if min_sharpe is not None else (config.min_sharpe if config else 0.0)
    if evidence is not None:
        sharpe, bench = evidence.sharpe, evidence.benchmark_sharpe
    else:
        sharpe = _metric(candidate_metrics, SHARPE)  # type: ignore[arg-type]
        bench = _metric(benchmark_metrics or {}, SHARPE)
    decision = "promoted" if passed else ("challenger" if absolute else "rejected")
    tags: dict[str, str] = {
        "gate.decision": decision,
        "gate.reasons": "; ".join(reasons),
        "gate.sharpe": repr(sharpe),
        "gate.benchmark_sharpe": repr(bench),
        "gate.min_sharpe": repr(float(floor)),
        "gate.previous_champion": previous or "",
    }
    if evidence is not None:
        for key, value in evidence.as_dict().items():
            if key not in ("sharpe", "benchmark_sharpe"):
                tags[f"gate.{key}"] = repr(value)
    if comparison is not None:
        for key, value in comparison.as_dict().items():
            tags[f"gate.vs_champion.{key}"] = repr(value) if not isinstance(value, str) else value
    if config is not None:
        for key, value in asdict(config).items():
            tags[f"gate.config.{key}"] = repr(value)
    if dry_run:
        log.info("dry run: %s v%s would be %s", name, version, decision)
    else:
        # Tags first: if moving an alias fails, the version still says what the gate decided.
        set_version_tags(name, version, tags)
        if absolute:
            set_alias(name, CHALLENGER, version)
        if passed:
            set_alias(name, CHAMPION, version)
        log.info(
            "%s version %s %s (champion was %s): %s",
            name,
            version,
            {
                "promoted": "promoted to @champion",
                "challenger": "is @challenger",
                "rejected": "rejected",
            }[decision],
            previous,
            "; ".join(reasons),
        )
    return GateDecision(
        promote=passed,
        reasons=reasons,
        candidate_version=version,
        previous_champion=previous,
        evidence=evidence,
        comparison=comparison,
        decision=decision,
    )


def is_strategy_setting(key: str) -> bool:
    """Whether a flattened config key can change predictions, weights or equity.

    Output locations, tracking, live and promotion settings, other matrix cells and
    execution settings (:data:`EXECUTION_SETTINGS`: executor, workers, threads, devices,
    progress, logging) cannot: a rerun that changes only them is the same trial.
    """
    if key.startswith(_NOT_STRATEGY) or key == "variant" or key in _EXECUTION_KEYS:
        return False
    return key.rsplit(".", 1)[-1] not in EXECUTION_SETTINGS


def trial_key(params: Mapping[str, str], variant: str = "") -> str:
    """Identity of a strategy configuration: a hash of the settings that change its results.

    Only :func:`is_strategy_setting` keys count: where a run wrote and how it executed
    (executor, workers, threads) do not make another trial.
    """
    kept = {k: str(v) for k, v in params.items() if is_strategy_setting(k)}
    text = json.dumps([variant, sorted(kept.items())])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Tags of every backtest run: the research question it answers and the trial (configuration).
QUESTION_TAG = "trial.question"
TRIAL_TAG = "trial.key"
# Runs that ended: a FAILED backtest was still a try at the question.
_ENDED = ("FINISHED", "FAILED", "KILLED")


def research_question(data_hash: str, universe: Sequence[str], horizon: int) -> str:
    """Identity of a research question: the data snapshot, the universe and the horizon.

    Trials are counted per question, across MLflow experiments: a quick look on another slice
    of the data is another question and does not raise this one's bar, and logging under
    another experiment name does not reset it.
    """
    text = json.dumps([str(data_hash), sorted(str(u) for u in universe), int(horizon)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trial_tags(question: str, params: Mapping[str, Any], variant: str) -> dict[str, str]:
    """The ledger tags of one backtest run (see :func:`count_trials`)."""
    flat = {k: str(v) for k, v in params.items()}
    return {QUESTION_TAG: question, TRIAL_TAG: trial_key(flat, variant), "variant": variant}


def count_trials(question: str, *, metric: str = SHARPE) -> TrialRecord:
    """Count the strategy configurations tried on one research question.

    The ledger is the tracking store itself: every backtest run carries the tags
    :data:`QUESTION_TAG` and :data:`TRIAL_TAG` (:func:`trial_tags`), in whatever experiment it
    was logged, deleted experiments and runs included.

    Parameters
    ----------
    question
        :func:`research_question` of the candidate.
    metric
        The metric each trial reports (annualised Sharpe).

    Returns
    -------
    TrialRecord
        Distinct trial keys among the runs of the question that ended (finished or failed:
        a configuration that crashed was still tried); the Sharpe of each finished trial
        (the latest run of a repeated configuration). At least one trial.
    """
    from py_finance.tracking._mlflow import import_mlflow

    mlflow = import_mlflow()
    from mlflow.entities import ViewType

    client = mlflow.MlflowClient()
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    keys: set[str] = set()
    latest: dict[str, tuple[int, float]] = {}
    n_runs = 0
    for chunk in range(0, len(ids), 100):
        token = None
        while True:
            page = client.search_runs(
                ids[chunk : chunk + 100],
                filter_string=f"tags.`{QUESTION_TAG}` = '{question}'",
                run_view_type=ViewType.ALL,
                max_results=1000,
                page_token=token,
            )
            for run in page:
                key = run.data.tags.get(TRIAL_TAG)
                if not key or run.info.status not in _ENDED:
                    continue
                n_runs += 1
                keys.add(key)
                value = run.data.metrics.get(metric)
                if run.info.status != "FINISHED" or value is None:
                    continue
                started = int(run.info.start_time or 0)
                if key not in latest or started >= latest[key][0]:
                    latest[key] = (started, float(value))
            token = page.token
            if not token:
                break
    sharpes = tuple(v for _, v in latest.values())
    return TrialRecord(n_trials=max(len(keys), 1), sharpes=sharpes, n_runs=n_runs)


def _nan_low(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


def _metric(metrics: Mapping[str, Any], key: str) -> float:
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


def find_trial_run(question: str, key: str, variant: str) -> Any | None:
    """The latest finished run of a trial that logged a model, in any experiment; or None."""
    from py_finance.tracking._mlflow import import_mlflow
    from py_finance.tracking.runs import MODEL_URI_TAG

    mlflow = import_mlflow()
    from mlflow.entities import ViewType

    client = mlflow.MlflowClient()
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    best = None
    for chunk in range(0, len(ids), 100):
        runs = client.search_runs(
            ids[chunk : chunk + 100],
            filter_string=(
                f"tags.`{QUESTION_TAG}` = '{question}' and tags.`{TRIAL_TAG}` = '{key}' "
                f"and tags.variant = '{variant}' and attributes.status = 'FINISHED'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=50,
        )
        for run in runs:
            if MODEL_URI_TAG not in run.data.tags:
                continue
            if best is None or int(run.info.start_time) > int(best.info.start_time):
                best = run
            break
    return best


@dataclass(frozen=True, slots=True)
class Recheck:
    """The current champion judged again with the trials its question holds now."""

    version: str
    passed: bool
    reasons: list[str]
    n_trials_then: int | None
    n_trials_now: int
    demoted: bool

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for the promotion file)."""
        return asdict(self)


def recheck_champion(
    name: str,
    config: PromotionConfig,
    *,
    periods_per_year: int = 252,
    dry_run: bool = False,
) -> Recheck | None:
    """Judge ``name@champion`` again when its research question has gained trials.

    The champion was promoted with the trial count of its day; every configuration tried on
    the same question since raises the bar. When its DSR over the current count fails the
    gate, the alias is removed (live trading then has no model until a candidate passes) and
    the version is tagged ``gate.recheck``. Returns None when there is no champion, its trial
    count is unchanged, or its run cannot be read.
    """
    import pandas as pd

    from py_finance.tracking._mlflow import import_mlflow
    from py_finance.tracking.registry import _client

    version = get_alias_version(name, CHAMPION)
    if version is None:
        return None
    client = _client()
    mv = client.get_model_version(name, version)
    then_text = (mv.tags or {}).get("gate.n_trials")
    then = int(then_text) if then_text else None
    if not mv.run_id:
        return None
    run = client.get_run(mv.run_id)
    question = run.data.tags.get(QUESTION_TAG)
    if not question:
        return None
    record = count_trials(question)
    now = int(config.n_trials) if config.n_trials is not None else record.n_trials
    if then is not None and now <= then:
        return None
    mlflow = import_mlflow()
    path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path="equity.parquet")
    equity = pd.read_parquet(path)
    variant = run.data.tags.get("variant", config.candidate)
    curve = equity[variant].dropna()
    returns = candidate_returns(curve)
    bench = equity["benchmark"].reindex(curve.index).pct_change().fillna(0.0)
    std = float(bench.std(ddof=1))
    bench_sharpe = float(bench.mean()) / std * math.sqrt(periods_per_year) if std else math.nan
    evidence = gate_evidence(
        returns,
        bench_sharpe,
        n_trials=now,
        trial_sharpes=record.sharpes,
        sr_variance=config.sr_variance,
        periods_per_year=periods_per_year,
    )
    passed, reasons = evaluate_gate(evidence, config=config)
    demoted = not passed and not dry_run
    if not dry_run:
        set_version_tags(
            name,
            version,
            {
                "gate.recheck": ("passed" if passed else "failed") + f" over {now} trials",
                "gate.recheck_reasons": "; ".join(reasons),
                "gate.recheck_dsr": repr(evidence.dsr),
            },
        )
        if demoted:
            client.delete_registered_model_alias(name, CHAMPION)
    log.log(
        logging.INFO if passed else logging.WARNING,
        "champion %s v%s re-checked over %d trials (was %s): %s",
        name,
        version,
        now,
        then,
        "still passes" if passed else "fails, @champion removed" if demoted else "fails",
    )
    return Recheck(version, passed, reasons, then, now, demoted)
