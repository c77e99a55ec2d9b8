"""Risk overlays: position/sector caps, regime exposure and the drawdown throttle.

Pure functions of (weights, state, config), used unchanged by the backtester and the live
loop. Every weight function accepts one row (1-D array, one session) or a matrix (2-D array,
one row per session) and returns a new float64 array of the same shape; the input is never
modified. Weights are long-only fractions of equity; what a function takes out of a row and
cannot place elsewhere stays in cash, so no overlay ever increases a row's total. A weight
that is infinite or negative is a :class:`~py_finance.errors.DataError` before any overlay
runs (:func:`check_weights`), so no overlay turns a bad row into a plausible one.

A NaN weight means what it means to the backtest engine and the live loop: no order for
that name, keep what is held. Every overlay returns NaN where it was given NaN (scaled or
capped, it stays "hold", never becomes a sale) and sizes the other names as if that weight
were 0: what is held of it is not the overlays' to know or move. A row of NaN (a session
without rebalancing) comes back as a row of NaN.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from py_finance.errors import ConfigError, DataError
from py_finance.risk.config import RegimePolicy, RegimePolicyConfig, RiskConfig, SectorTiltConfig
from py_finance.risk.throttle import ACTIVE_CODE, throttle_update

log = logging.getLogger(__name__)

ACTIVE = "ACTIVE"
REDUCING = "REDUCING"
HALTED = "HALTED"
THROTTLE_STATES = (ACTIVE, REDUCING, HALTED)

# Weights are O(1) fractions; anything below this is float noise, not money to place.
_ABS_TOL = 1e-13
# A name or sector within this relative distance of its cap counts as full.
_REL_TOL = 1e-12
# Rows normalised to sum to the gross limit land a few ulps on either side of it (n names
# add up to n x 1.1e-16 of rounding); this much above the limit is rounding, not leverage.
GROSS_TOL = 1e-9


def gross_bound(max_gross: float) -> float:
    """The largest row total :func:`check_weights` accepts for the limit ``max_gross``."""
    return float(max_gross) * (1.0 + GROSS_TOL)


def _label(labels: Sequence[Any] | pd.Index | None, i: int, what: str) -> str:
    if labels is None:
        return f"{what} {i}"
    label = labels[i]
    return (
        str(label.date())
        if isinstance(label, pd.Timestamp) and label == label.normalize()
        else str(label)
    )


def check_weights(
    w: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    max_gross: float = 1.0,
    *,
    sessions: Sequence[Any] | pd.Index | None = None,
    symbols: Sequence[Any] | pd.Index | None = None,
) -> None:
    """Raise a :class:`~py_finance.errors.DataError` unless the target weights are usable.

    Every weight must be finite and >= 0 (NaN is allowed: "no order" for that name), and the
    positive weights of each row, added in column order, must sum to at most
    ``max_gross`` (plus ``GROSS_TOL`` relative, for rounding). The backtest engine checks
    the rows it trades with the same sum, in the same order, so both agree on every row.

    Parameters
    ----------
    w
        One row (1-D) or ``session x symbol`` (2-D) of weights decided at the close of each
        session, fractions of equity.
    max_gross
        Largest total of a row: ``risk.max_leverage`` (1.0, fully invested, unless set).
    sessions, symbols
        Labels of the rows and columns for the message (row and column numbers if not
        given).

    Raises
    ------
    DataError
        For the first offending row in session order, naming its session and a symbol: the
        first infinite or negative weight, or else the symbol at which the row's running
        total passes the limit.
    """
    arr = np.asarray(w, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"weights must be 1-D or 2-D, got {arr.ndim}-D")
    if arr.size == 0:
        return
    bad = (arr < 0.0) | (arr == np.inf)
    bad_rows = bad.any(axis=1)
    bound = gross_bound(max_gross)
    if np.isfinite(bound):
        # A running total in column order, as the engine's loop adds it (np.cumsum is
        # sequential, unlike np.sum's pairwise sums, so both round alike).
        running = np.cumsum(np.where(arr > 0.0, arr, 0.0), axis=1)
        over_rows = running[:, -1] > bound
    else:
        running = None
        over_rows = np.zeros(arr.shape[0], dtype=bool)
    hits = np.flatnonzero(bad_rows | over_rows)
    if not len(hits):
        return
    r = int(hits[0])
    session = _label(sessions, r, "row")
    if bad_rows[r]:
        c = int(np.flatnonzero(bad[r])[0])
        value = float(arr[r, c])
        why = (
            "weights must be >= 0 (the book is long-only)"
            if value < 0.0
            else "weights must be finite"
        )
        raise DataError(
            f"target weight of {_label(symbols, c, 'column')} on session {session} is "
            f"{value:g}: {why} (NaN means no order); fix the scores or the weighting that "
            "produced it"
        )
    assert running is not None
    c = int(np.flatnonzero(running[r] > bound)[0])
    raise DataError(
        f"target weights of session {session} sum to {running[r, -1]:.10g}, above the gross "
        f"limit {max_gross:g} (risk.max_leverage), passed at symbol "
        f"{_label(symbols, c, 'column')}; scale the row down, or set risk.max_leverage "
        "explicitly to allow more"
    )


def _as_2d(
    w: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
) -> tuple[np.ndarray, bool, np.ndarray]:
    """Copy ``w`` to a float64 matrix with NaN as 0. Returns (matrix, was_1d, NaN mask).

    NaN means "no order, keep what is held" (as in the backtest engine): the overlays size
    the other names as if that one's weight were 0 and :func:`_back` puts the NaN back.
    """
    arr = np.array(w, dtype=np.float64, copy=True)
    if arr.ndim == 1:
        arr = arr[None, :]
        was_1d = True
    elif arr.ndim == 2:
        was_1d = False
    else:
        raise ValueError(f"weights must be 1-D or 2-D, got {arr.ndim}-D")
    check_weights(arr, math.inf)
    hold = np.isnan(arr)
    arr[hold] = 0.0
    return arr, was_1d, hold


def _back(arr: np.ndarray, was_1d: bool, hold: np.ndarray) -> np.ndarray:
    if hold.any():
        arr = np.where(hold, np.nan, arr)
    return arr[0] if was_1d else arr


def _sector_index(sectors: Sequence[str], n_cols: int) -> tuple[np.ndarray, int]:
    """Integer sector code per column and the number of sectors."""
    if isinstance(sectors, str) or len(sectors) != n_cols:
        raise ValueError(
            f"sectors must give one sector per column ({n_cols}), got "
            f"{1 if isinstance(sectors, str) else len(sectors)}"
        )
    _, codes = np.unique(np.asarray(sectors, dtype=object).astype(str), return_inverse=True)
    codes = codes.reshape(-1)
    return codes, int(codes.max()) + 1 if n_cols else 0


def _by_sector(x: np.ndarray, codes: np.ndarray, n_sectors: int) -> np.ndarray:
    """Row totals of ``x`` per sector (``rows x n_sectors``), without BLAS.

    A product with a one-hot matrix would go through BLAS, whose kernel (chosen per CPU)
    changes the last bits of the totals, and through them the weights, the backtest and
    ``dvc.lock``; numpy's own sums over each sector's columns are the same on every machine.
    """
    out = np.zeros((x.shape[0], n_sectors), dtype=np.float64)
    for k in range(n_sectors):
        cols = codes == k
        if cols.any():
            out[:, k] = x[:, cols].sum(axis=1)
    return out


def _redistribute(
    w: np.ndarray,
    excess: np.ndarray,
    name_cap: float | None,
    sector_codes: np.ndarray | None = None,
    n_sectors: int = 0,
    sector_cap: float | None = None,
) -> np.ndarray:
    """Place ``excess`` (per row) on held names that still have room.

    All eligible names (held, below ``name_cap``, in a sector below ``sector_cap``) grow by
    the same factor, i.e. proportionally to their weight, until the excess is placed or a
    name or sector reaches its cap; the full one drops out and the rest go on. Each round
    fills at least one name or sector, so the loop ends after at most
    ``n_names + n_sectors + 1`` rounds. What cannot be placed stays in cash.
    """
    n_cols = w.shape[1]
    by_sector = sector_codes is not None and sector_cap is not None
    excess = np.asarray(excess, dtype=np.float64).copy()
    max_rounds = n_cols + n_sectors + 2
    for _ in range(max_rounds):
        pending = excess > _ABS_TOL
        if not pending.any():
            break
        cand = (w > 0.0) & pending[:, None]
        if name_cap is not None:
            cand &= w < name_cap * (1.0 - _REL_TOL)
        sec_tot: np.ndarray | None = None
        if by_sector and sector_cap is not None and sector_codes is not None:
            sec_tot = _by_sector(w, sector_codes, n_sectors)
            sec_open = sec_tot < sector_cap * (1.0 - _REL_TOL)
            cand &= sec_open[:, sector_codes]
        cand_w = np.where(cand, w, 0.0)
        base = cand_w.sum(axis=1)
        has_room = base > 0.0
        if not has_room.any():
            break
        # Work with each candidate's share of the candidates' weight (<= 1) and the amount
        # placed this round, not with a growth factor: with tiny weights the factor
        # overflows while the amounts stay finite.
        safe_base = np.where(has_room, base, 1.0)
        share = cand_w / safe_base[:, None]
        amount = np.where(has_room, excess, 0.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if name_cap is not None:
                name_room = np.where(cand, (name_cap - w) / np.where(cand, share, 1.0), np.inf)
                amount = np.minimum(amount, name_room.min(axis=1))
            if sec_tot is not None and sector_cap is not None and sector_codes is not None:
                sec_share = _by_sector(share, sector_codes, n_sectors)
                sec_room = np.where(
                    sec_share > 0.0,
                    (sector_cap - sec_tot) / np.where(sec_share > 0.0, sec_share, 1.0),
                    np.inf,
                )
                amount = np.minimum(amount, sec_room.min(axis=1))
        amount = np.maximum(amount, 0.0)
        added = share * amount[:, None]
        w = w + added
        if name_cap is not None:
            # The binding name lands on its cap up to one ulp; pin it there (the ulp is cash).
            w = np.where(cand, np.minimum(w, name_cap), w)
        excess = np.where(has_room, excess - added.sum(axis=1), 0.0)
    return w


def cap_positions(w: np.ndarray, max_position: float) -> np.ndarray:
    """Cap every name's weight at ``max_position``.

    Parameters
    ----------
    w
        Long-only target weights, one row (1-D) or ``session x name`` (2-D), fractions of
        equity. NaN (no order: keep what is held) stays NaN; the others are capped as if
        it were 0.
    max_position
        Largest weight of one name (fraction of equity).

    Returns
    -------
    np.ndarray
        Capped weights, same shape. The excess above the cap is redistributed to names that
        are held and below the cap, proportionally to their weight, round after round until
        no name is above the cap; what cannot be placed stays in cash. Zero weights stay
        zero and a row's total never increases.
    """
    arr, was_1d, hold = _as_2d(w)
    cap = float(max_position)
    excess = np.clip(arr - cap, 0.0, None).sum(axis=1)
    arr = np.minimum(arr, cap)
    arr = _redistribute(arr, excess, cap)
    return _back(arr, was_1d, hold)


def cap_sectors(
    w: np.ndarray,
    sectors: Sequence[str],
    max_sector: float,
    max_position: float | None = None,
) -> np.ndarray:
    """Cap every sector's total weight at ``max_sector``.

    Parameters
    ----------
    w
        Long-only target weights, one row (1-D) or ``session x name`` (2-D).
    sectors
        Sector of each column (same order as the columns of ``w``).
    max_sector
        Largest total weight of one sector (fraction of equity).
    max_position
        If given, redistribution never pushes a name above it (names already above it are
        left as they are; run :func:`cap_positions` first).

    Returns
    -------
    np.ndarray
        Capped weights, same shape. A sector over the cap is scaled down to it; the excess
        goes to held names in sectors below the cap, proportionally to their weight, without
        pushing any sector above ``max_sector`` or any name above ``max_position``, round
        after round; what cannot be placed stays in cash. A row's total never increases.
    """
    arr, was_1d, hold = _as_2d(w)
    codes, n_sectors = _sector_index(sectors, arr.shape[1])
    cap = float(max_sector)
    if arr.shape[1] == 0:
        return _back(arr, was_1d, hold)
    totals = _by_sector(arr, codes, n_sectors)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = np.where(totals > cap, cap / np.where(totals > 0, totals, 1.0), 1.0)
    scaled = arr * scale[:, codes]
    excess = (arr - scaled).sum(axis=1)
    out = _redistribute(scaled, excess, max_position, codes, n_sectors, cap)
    return _back(out, was_1d, hold)


def apply_regime_exposure(
    w: np.ndarray, regimes: Sequence[str] | str, policy: RegimePolicyConfig
) -> np.ndarray:
    """Scale each row by its regime's exposure multiplier.

    Parameters
    ----------
    w
        Weights, one row (1-D) or ``session x name`` (2-D).
    regimes
        Regime of each row, known at the close of that row's session (a single ``str`` for a
        1-D row, or to use one regime for every row).
    policy
        Multiplier per regime; anything not in ``REGIMES`` (e.g. ``unknown``) gets
        ``policy.unknown_exposure``.

    Returns
    -------
    np.ndarray
        ``w * policy.multiplier(regime)`` row by row, same shape.
    """
    arr, was_1d, hold = _as_2d(w)
    if isinstance(regimes, str):
        mult = np.full(arr.shape[0], policy.multiplier(regimes))
    else:
        if len(regimes) != arr.shape[0]:
            raise ValueError(
                f"regimes must give one regime per row ({arr.shape[0]}), got {len(regimes)}"
            )
        cache: dict[str, float] = {}
        mult = np.array(
            [cache.setdefault(r, policy.multiplier(r)) for r in map(str, regimes)],
            dtype=np.float64,
        )
    return _back(arr * mult[:, None], was_1d, hold)


@dataclass(frozen=True, slots=True)
class ThrottleState:
    """State of the drawdown throttle after the close of one session.

    Parameters
    ----------
    peak
        High-water mark of equity (account currency), possibly reset (see
        :func:`throttle_step`).
    state
        ``ACTIVE``, ``REDUCING`` or ``HALTED``.
    sessions_in_state
        Consecutive sessions spent in ``state``, this one included (1 on entry).
    """

    peak: float
    state: str
    sessions_in_state: int

    def __post_init__(self) -> None:
        if self.state not in THROTTLE_STATES:
            raise ValueError(f"throttle state must be one of {THROTTLE_STATES}, got {self.state!r}")


def drawdown_from_peak(equity: float, peak: float) -> float:
    """Drawdown ``1 - equity / peak`` as a fraction (0 at the high-water mark)."""
    if peak <= 0.0:
        return 0.0 if equity >= peak else 1.0
    return max(0.0, 1.0 - equity / peak)


def throttle_step(prev: ThrottleState | None, equity: float, cfg: RiskConfig) -> ThrottleState:
    """Advance the drawdown throttle by one session.

    Call after the close of session t with that session's end equity; the result's
    multiplier (:func:`throttle_multiplier`) scales the weights decided at t. Causal: only
    ``prev`` and today's equity are used.

    Parameters
    ----------
    prev
        State after the previous session, or ``None`` for the first session (the peak starts
        at ``equity``).
    equity
        Account equity at the close of this session (account currency, >= 0).
    cfg
        Thresholds (``RiskConfig``).

    Returns
    -------
    ThrottleState
        New state. Rules, in order:

        1. ``peak = max(prev.peak, equity)`` (the high-water mark).
        2. If the book has spent ``reset_after_sessions`` sessions in REDUCING or HALTED
           (``prev.sessions_in_state >= reset_after_sessions``), the peak is reset to this
           equity, so the drawdown is 0 and the state goes back to ACTIVE. An escalation
           REDUCING -> HALTED restarts that count.
        3. ``drawdown = 1 - equity / peak``.
        4. HALTED if ``halt_drawdown`` is set and ``drawdown >= halt_drawdown``;
           else REDUCING if ``drawdown >= drawdown_throttle`` (HALTED stays HALTED);
           else, when REDUCING or HALTED, stay there while ``drawdown >= recovery_drawdown``
           (hysteresis); else ACTIVE.

        With ``drawdown_throttle=None`` the state is always ACTIVE (the peak is still
        tracked).
    """
    equity = float(equity)
    if not np.isfinite(equity) or equity < 0.0:
        raise ValueError(f"equity must be finite and >= 0, got {equity}")
    has_prev = prev is not None
    prev_peak = prev.peak if prev is not None else equity
    prev_code = THROTTLE_STATES.index(prev.state) if prev is not None else ACTIVE_CODE
    prev_n = prev.sessions_in_state if prev is not None else 0
    dd_thr, halt, recovery, reset = throttle_params(cfg)
    peak, code, n = throttle_update(
        has_prev, prev_peak, prev_code, prev_n, equity, dd_thr, halt, recovery, reset
    )
    state = THROTTLE_STATES[code]
    if has_prev and peak < max(prev_peak, equity):
        log.info(
            "throttle: %d sessions %s, high-water mark reset from %.2f to %.2f",
            prev_n,
            THROTTLE_STATES[prev_code],
            max(prev_peak, equity),
            equity,
        )
    if code != prev_code:
        log.info(
            "throttle: %s -> %s (drawdown %.4f)",
            THROTTLE_STATES[prev_code],
            state,
            drawdown_from_peak(equity, peak),
        )
    return ThrottleState(peak=peak, state=state, sessions_in_state=n)


def throttle_params(cfg: RiskConfig) -> tuple[float, float, float, int]:
    """The throttle settings as scalars for :func:`py_finance.risk.throttle.throttle_update`.

    Returns ``(drawdown_throttle, halt_drawdown, recovery_drawdown, reset_after_sessions)``
    with NaN for a switched-off threshold and -1 for "never reset".
    """
    return (
        math.nan if cfg.drawdown_throttle is None else float(cfg.drawdown_throttle),
        math.nan if cfg.halt_drawdown is None else float(cfg.halt_drawdown),
        float(cfg.recovery_drawdown),
        -1 if cfg.reset_after_sessions is None else int(cfg.reset_after_sessions),
    )


def throttle_multiplier(state: ThrottleState | str | None, cfg: RiskConfig) -> float:
    """Exposure multiplier of a throttle state.

    Returns 1.0 for ACTIVE (or ``None``), ``cfg.throttle_exposure`` for REDUCING and 0.0 for
    HALTED. Accepts a :class:`ThrottleState` or the state name.
    """
    if state is None:
        return 1.0
    name = state if isinstance(state, str) else state.state
    if name == ACTIVE:
        return 1.0
    if name == REDUCING:
        return float(cfg.throttle_exposure)
    if name == HALTED:
        return 0.0
    raise ValueError(f"throttle state must be one of {THROTTLE_STATES}, got {name!r}")


def throttle_resize(
    held: np.ndarray | Sequence[float] | float,
    sized_with: np.ndarray | Sequence[float] | float,
    multiplier: float,
) -> np.ndarray:
    """Holdings resized because the throttle's multiplier moved since they were sized.

    The drawdown throttle acts on the first fill after the close it trips (or lifts) at,
    also between rebalances: each holding is scaled by ``multiplier / sized_with``, drift
    included, and kept until the next weights. The backtest engine applies exactly this
    to its shares on every session without a new weight for the name; the live loop can
    apply it to the broker's positions.

    Parameters
    ----------
    held
        Shares (or weights) held now, one per name.
    sized_with
        Throttle multiplier each holding was last sized with (1.0 before any throttling;
        0.0 after a HALTED session sold it).
    multiplier
        Throttle multiplier after the latest close (:func:`throttle_multiplier`).

    Returns
    -------
    np.ndarray
        Target holdings, same units as ``held``. A holding sized with 0 (emptied by a halt)
        or with the current multiplier is returned as it is: there is nothing to scale.
    """
    h = np.asarray(held, dtype=np.float64)
    old = np.broadcast_to(np.asarray(sized_with, dtype=np.float64), h.shape)
    mult = float(multiplier)
    if not (math.isfinite(mult) and mult >= 0.0):
        raise ValueError(f"throttle multiplier must be finite and >= 0, got {multiplier}")
    moved = (old > 0.0) & (old != mult)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(moved, h * mult / np.where(moved, old, 1.0), h)


def _require_sectors(sectors: Sequence[str] | None, risk: RiskConfig) -> Sequence[str]:
    if sectors is None:
        raise ConfigError(
            f"risk.max_sector is {risk.max_sector} but no sector map was given; pass the "
            "sector of each symbol or set risk.max_sector to null"
        )
    return sectors


def _row_caps_room(
    arr: np.ndarray,
    codes: np.ndarray | None,
    n_sectors: int,
    max_position: float | None,
    max_sector: float | None,
) -> np.ndarray:
    """Largest factor each row can be scaled by without a total above 1 or a cap broken."""
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(arr.sum(axis=1) > 0.0, 1.0 / arr.sum(axis=1), np.inf)
        if max_position is not None:
            top = arr.max(axis=1, initial=0.0)
            room = np.minimum(room, np.where(top > 0.0, max_position / top, np.inf))
        if max_sector is not None and codes is not None and arr.shape[1]:
            top_sec = _by_sector(arr, codes, n_sectors).max(axis=1, initial=0.0)
            room = np.minimum(room, np.where(top_sec > 0.0, max_sector / top_sec, np.inf))
    return room


def apply_vol_target(
    w: np.ndarray,
    returns: np.ndarray,
    target: float,
    *,
    lookback: int = 63,
    max_leverage: float = 1.0,
    periods_per_year: int = 252,
    sectors: Sequence[str] | None = None,
    max_position: float | None = None,
    max_sector: float | None = None,
) -> np.ndarray:
    """Scale each row so its ex-ante volatility is ``target`` (annualised).

    Parameters
    ----------
    w
        Weights, one row per decision session (2-D) or one row (1-D).
    returns
        Simple returns of the names, same columns; for a 2-D ``w`` one row per row of ``w``
        (row t holds the returns through the close of t), for a 1-D ``w`` the recent history
        (its last ``lookback`` rows are used). NaN counts as 0.
    target
        Annualised volatility target (e.g. 0.15).
    lookback
        Sessions of returns behind the estimate: ``std(R[t-lookback+1 .. t] @ w_t)``.
    max_leverage
        Largest scale (1.0: only ever scale down).
    periods_per_year
        Annualisation.
    sectors, max_position, max_sector
        The scale never lifts a row above a total of 1, a name above ``max_position`` or a
        sector above ``max_sector``.

    Returns
    -------
    np.ndarray
        Scaled weights, same shape. A row whose volatility cannot be estimated (fewer than
        two returns, or zero volatility) is scaled by ``min(1, max_leverage)`` i.e. left
        as it is.
    """
    arr, was_1d, hold = _as_2d(w)
    rets = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0)
    if rets.ndim != 2 or rets.shape[1] != arr.shape[1]:
        raise ValueError("returns must be 2-D with one column per weight column")
    if not was_1d and rets.shape[0] != arr.shape[0]:
        raise ValueError(f"returns must have one row per weight row ({arr.shape[0]})")
    ann = math.sqrt(periods_per_year)
    scale = np.ones(arr.shape[0])
    for t in range(arr.shape[0]):
        row = arr[t]
        if not row.any():
            continue
        end = rets.shape[0] if was_1d else t + 1
        window = rets[max(end - lookback, 0) : end]
        if window.shape[0] < 2:
            continue
        # The book's returns as elementwise products and numpy sums, not ``window @ row``
        # (BLAS: its last bits depend on the kernel the CPU gets).
        vol = float(np.std((window * row).sum(axis=1), ddof=1)) * ann
        if vol > 0.0:
            scale[t] = min(max_leverage, target / vol)
    if max_leverage > 1.0:
        codes, n_sec = (None, 0) if sectors is None else _sector_index(sectors, arr.shape[1])
        room = _row_caps_room(arr, codes, n_sec, max_position, max_sector)
        scale = np.minimum(scale, np.maximum(room, 0.0))
    return _back(arr * scale[:, None], was_1d, hold)


def apply_sector_tilt(
    w: np.ndarray,
    sectors: Sequence[str],
    regimes: Sequence[str] | str,
    tilts: SectorTiltConfig,
    *,
    max_position: float | None = None,
    max_sector: float | None = None,
) -> np.ndarray:
    """Tilt each row toward the sector groups its regime favours.

    Each name's weight is multiplied by its group's tilt in the row's regime and the row is
    rescaled to its previous total (a tilt moves weight between sectors, it adds no
    exposure); then the position and sector caps are applied again, so what a tilt would
    push above a cap is redistributed or stays in cash.

    Parameters
    ----------
    w
        Weights, one row (1-D) or ``session x name`` (2-D).
    sectors
        GICS sector of each column.
    regimes
        Regime of each row (or one for all rows).
    tilts
        Group map and per-regime multipliers.
    max_position, max_sector
        Caps re-applied after tilting (``None``: not applied).

    Returns
    -------
    np.ndarray
        Tilted weights, same shape; a row's total never increases.
    """
    arr, was_1d, hold = _as_2d(w)
    regs = [regimes] * arr.shape[0] if isinstance(regimes, str) else [str(r) for r in regimes]
    if len(regs) != arr.shape[0]:
        raise ValueError(f"regimes must give one regime per row ({arr.shape[0]}), got {len(regs)}")
    sector_list = list(sectors)
    cache: dict[str, np.ndarray] = {}
    mult = np.vstack([cache.setdefault(r, tilts.multipliers(sector_list, r)) for r in regs])
    before = arr.sum(axis=1)
    tilted = arr * mult
    after = tilted.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tilted *= np.where(after > 0.0, before / after, 0.0)[:, None]
    if max_position is not None:
        tilted = cap_positions(tilted, max_position)
    if max_sector is not None:
        tilted = cap_sectors(tilted, sector_list, max_sector, max_position)
    return _back(tilted, was_1d, hold)


def apply_static_overlays(
    W: np.ndarray,
    sectors: Sequence[str] | None,
    regimes: Sequence[str] | str | None,
    risk: RiskConfig,
    policy: RegimePolicy | None,
    *,
    returns: np.ndarray | None = None,
    regime_multipliers: np.ndarray | None = None,
    periods_per_year: int = 252,
) -> np.ndarray:
    """Apply the path-independent overlays to target weights, in ``risk.order``.

    Position cap, sector cap, volatility targeting, regime exposure and regime sector tilts,
    each skipped when switched off (``risk.max_position``, ``risk.max_sector``,
    ``risk.vol_target``, ``policy``, ``risk.sector_tilts`` is ``None``). The drawdown
    throttle depends on the equity path and runs in the engine or the live loop.

    Parameters
    ----------
    W
        Target weights, one row per decision session (2-D; a 1-D row also works).
    sectors
        Sector of each column; required by the sector cap and the tilts.
    regimes
        Regime of each row (known at that row's close); required by ``policy`` and tilts.
    risk
        Caps, vol target, tilts and their order.
    policy
        Regime exposure policy, or ``None``.
    returns
        Names' returns for vol targeting (see :func:`apply_vol_target`).
    regime_multipliers
        Precomputed exposure multiplier per row (e.g. from a data-driven policy); used
        instead of ``policy.row_multipliers(regimes)``.
    periods_per_year
        Annualisation of the volatility target.

    Returns
    -------
    np.ndarray
        Overlaid weights, same shape as ``W``; NaN (no order: keep what is held) where
        ``W`` is NaN.

    Raises
    ------
    DataError
        Before any overlay, for an infinite or negative weight or a row summing above
        ``risk.max_leverage`` (:func:`check_weights`; rows and columns named by number).
    """
    check_weights(W, risk.max_leverage)
    out, was_1d, hold = _as_2d(W)
    sector_capped = False
    for step in risk.order:
        if step == "position_cap" and risk.max_position is not None:
            out = cap_positions(out, risk.max_position)
            if sector_capped and risk.max_sector is not None:
                # The position cap's redistribution knows nothing of sectors: cap them
                # again (that pass never lifts a name above the position cap).
                out = cap_sectors(
                    out, _require_sectors(sectors, risk), risk.max_sector, risk.max_position
                )
        elif step == "sector_cap" and risk.max_sector is not None:
            out = cap_sectors(
                out, _require_sectors(sectors, risk), risk.max_sector, risk.max_position
            )
            sector_capped = True
        elif step == "vol_target" and risk.vol_target is not None:
            if returns is None:
                raise ConfigError(
                    "risk.vol_target needs the names' returns; pass returns or set "
                    "risk.vol_target to null"
                )
            out = apply_vol_target(
                out[0] if was_1d else out,
                returns,
                risk.vol_target,
                lookback=risk.vol_lookback,
                max_leverage=risk.max_leverage,
                periods_per_year=periods_per_year,
                sectors=sectors,
                max_position=risk.max_position,
                max_sector=risk.max_sector,
            ).reshape(out.shape)
        elif step == "regime_exposure" and (policy is not None or regime_multipliers is not None):
            if regime_multipliers is None:
                assert policy is not None
                if regimes is None:
                    raise ConfigError(
                        f"regime policy {policy.name!r} needs a regime per session; pass "
                        "regimes or set the regime policy to null"
                    )
                regs = [regimes] * out.shape[0] if isinstance(regimes, str) else regimes
                regime_multipliers = policy.row_multipliers(regs)
            out = out * np.asarray(regime_multipliers, dtype=np.float64).reshape(-1, 1)
        elif step == "sector_tilt" and risk.sector_tilts is not None:
            if sectors is None or regimes is None:
                raise ConfigError(
                    "risk.sector_tilts needs the sector of each symbol and a regime per "
                    "session; pass them or set risk.sector_tilts to null"
                )
            out = apply_sector_tilt(
                out,
                sectors,
                regimes,
                risk.sector_tilts,
                max_position=risk.max_position,
                max_sector=risk.max_sector,
            )
    return _back(out, was_1d, hold)


def apply_overlays(
    w_row: np.ndarray,
    *,
    sectors: Sequence[str] | None,
    regime: str,
    risk: RiskConfig,
    policy: RegimePolicy | None,
    throttle: ThrottleState | None,
    returns: np.ndarray | None = None,
    regime_multiplier: float | None = None,
) -> np.ndarray:
    """Apply every overlay to one session's target weights (the live loop's entry point).

    The static overlays of :func:`apply_static_overlays` in ``risk.order``, then the
    throttle multiplier (skipped when ``throttle`` or ``risk.drawdown_throttle`` is
    ``None``).

    Parameters
    ----------
    w_row
        Target weights decided at the close of session t (1-D, one per symbol).
    sectors
        Sector of each symbol; required when ``risk.max_sector`` or tilts are set.
    regime
        Market regime known at the close of t.
    risk
        Caps, vol target, tilts, throttle settings.
    policy
        Regime exposure policy, or ``None`` for no regime scaling.
    throttle
        Throttle state after the close of t (from :func:`throttle_step`), or ``None``.
    returns
        Recent returns of the symbols (rows up to t), for vol targeting.
    regime_multiplier
        Exposure multiplier to use instead of ``policy``'s (e.g. a data-driven one).

    Returns
    -------
    np.ndarray
        Weights to trade at t + execution_lag, same shape as ``w_row``; NaN (no order: keep
        what is held) where ``w_row`` is NaN.

    Raises
    ------
    DataError
        Before any overlay, for an infinite or negative weight or a row summing above
        ``risk.max_leverage`` (:func:`check_weights`).
    """
    check_weights(w_row, risk.max_leverage)
    out, was_1d, hold = _as_2d(w_row)
    mult = None if regime_multiplier is None else np.array([regime_multiplier])
    out = apply_static_overlays(
        out if not was_1d else out[0],
        sectors,
        regime,
        risk,
        policy,
        returns=returns,
        regime_multipliers=mult,
    ).reshape(out.shape)
    if throttle is not None and risk.drawdown_throttle is not None:
        out = out * throttle_multiplier(throttle, risk)
    return _back(out, was_1d, hold)
