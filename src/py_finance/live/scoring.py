"""Scores of a live session: the champion's inputs read from the store, its scores and std.

A row model (trees) scores the session's feature rows. A sequence model reads the panel of
the last ``window`` sessions of features ending at the session (its pyfunc's input, with the
``(session, symbol)`` keys) and returns the session's scores with their MC-dropout std; the
std goes to the portfolio's uncertainty weighting exactly as the backtest passes the
walk-forward's ``std`` column. Every read of the store is as of the run's knowledge time.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from py_finance.errors import DataError
from py_finance.io import read_parquet
from py_finance.pipeline.context import Context
from py_finance.pipeline.research import feature_frame

log = logging.getLogger(__name__)

# Sessions of bar history read beyond the feature lookback (gaps, holidays, listings).
HISTORY_SLACK = 40


@dataclass(frozen=True, slots=True)
class SessionScores:
    """What the portfolio code needs from the model for one live session.

    Attributes
    ----------
    scores
        ``session x symbol`` scores: the session's row last; earlier rows when the regime
        policy measures the strategy on history (the walk-forward's out-of-sample scores,
        then the model's own).
    std
        Same shape: the scores' predictive std (MC dropout) where the model gives one
        (the session's row; the walk-forward's ``std`` for earlier rows), else None.
    window
        Sessions of features the model read per score (1 for a row model).
    """

    scores: pd.DataFrame
    std: pd.DataFrame | None
    window: int


def model_window(model: Any) -> int:
    """Sessions of features a loaded model reads per score (1 for row models)."""
    return max(1, int(getattr(model, "window", 1) or 1))


def read_window(
    ctx: Context,
    model: Any,
    history: pd.DataFrame,
    session: dt.date,
    as_of: pd.Timestamp,
    extra_sessions: int = 0,
) -> pd.DataFrame:
    """Feature rows up to ``session`` known at ``as_of``: the model's window and ``extra_sessions``.

    Parameters
    ----------
    history
        ``session x symbol`` closes known at ``as_of`` up to ``session`` (bounds the read).
    extra_sessions
        Sessions of features wanted before the window (history-dependent policies).

    Raises
    ------
    DataError
        When ``session`` has no complete feature row, or (one line) when the store holds
        fewer sessions of features than the model's window.
    """
    s = ctx.settings
    window = model_window(model)
    lookback = s.features.lookback + HISTORY_SLACK + window - 1 + extra_sessions
    start = history.index[-lookback] if lookback < len(history) else None
    feats = feature_frame(ctx, start, session, as_of)
    today = pd.Timestamp(session)
    level = feats.index.get_level_values("session")
    if not (level == today).any():
        raise DataError(f"no complete feature rows for {session}: not enough history")
    feats = feats[level <= today]
    held = pd.DatetimeIndex(feats.index.get_level_values("session")).unique()
    if len(held) < window:
        raise DataError(
            f"the store holds {len(held)} session(s) of features up to {session} known at "
            f"{as_of.isoformat()}, fewer than the {window} the model "
            f"{getattr(model, 'name', 'champion')} v{getattr(model, 'version', '?')} reads: "
            "ingest more history"
        )
    return feats


def _walk_forward_scores(ctx: Context, session: dt.date) -> pd.DataFrame:
    path = ctx.model_dir() / "predictions.parquet"
    if not path.exists():
        raise DataError(
            f"regime policy {ctx.settings.regime_policy.name!r} needs the walk-forward's "
            f"out-of-sample predictions at {path}: run the pipeline (dvc repro) first"
        )
    oos = read_parquet(path, stage=ctx.dvc_stage("train"))
    return oos[oos.index.get_level_values("session") <= pd.Timestamp(session)]


def score_session(
    ctx: Context,
    model: Any,
    history: pd.DataFrame,
    session: dt.date,
    as_of: pd.Timestamp,
) -> SessionScores:
    """The model's scores (and std) for ``session`` from features known at ``as_of``.

    A history-dependent regime policy also gets the scores of earlier sessions: those the
    walk-forward covered are its out-of-sample predictions (the model saw their labels in
    training, so its own scores there would flatter the strategy), later ones the model's.

    Raises
    ------
    DataError
        No feature rows for the session, fewer sessions than the model's window, or a
        history-dependent policy without the walk-forward's predictions.
    """
    s = ctx.settings
    window = model_window(model)
    needs_history = bool(s.regime_policy.needs_history)
    extra = int(s.live.policy_history_sessions) if needs_history else 0
    feats = read_window(ctx, model, history, session, as_of, extra)
    today = pd.Timestamp(session)
    sessions = pd.DatetimeIndex(feats.index.get_level_values("session")).unique().sort_values()
    # Exactly the window the pyfunc reads, so its MC draws are those of the logged model.
    inputs = feats[feats.index.get_level_values("session") >= sessions[-window]]
    scored = model.score_session(inputs)
    columns = history.columns
    scores = scored["score"].rename(today).to_frame().T.reindex(columns=columns)
    std = (
        scored["std"].rename(today).to_frame().T.reindex(columns=columns)
        if "std" in scored.columns and scored["std"].notna().any()
        else None
    )
    if needs_history:
        oos = _walk_forward_scores(ctx, session)
        oos = oos[oos.index.get_level_values("session") < today]
        past = [oos[[c for c in ("score", "std") if c in oos.columns]]]
        # The model scores only the sessions after the walk-forward's (with their windows).
        later = sessions[sessions < today]
        if len(oos):
            later = later[later > oos.index.get_level_values("session").max()]
        if len(later):
            first = sessions[max(0, int(sessions.searchsorted(later[0])) - (window - 1))]
            level = feats.index.get_level_values("session")
            own = model.predict_frame(feats[(level >= first) & (level < today)])
            past.append(own[own.index.get_level_values("session") >= later[0]])
        earlier = pd.concat(past)
        scores = pd.concat([earlier["score"].unstack("symbol"), scores])
        scores = scores.sort_index().reindex(columns=columns)
        if std is not None:
            past_std = (
                earlier["std"].unstack("symbol")
                if "std" in earlier.columns
                else pd.DataFrame(index=scores.index[:-1])
            )
            std = pd.concat([past_std, std]).reindex(index=scores.index, columns=columns)
    scores.index.name = "session"
    log.debug(
        "scored %s: %d names (window %d)", session, int(scores.iloc[-1].notna().sum()), window
    )
    return SessionScores(scores=scores, std=std, window=window)
