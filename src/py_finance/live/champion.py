"""The champion the live loop trades, checked against the local config and the store.

A registered version carries the resolved config of the backtest that earned it and the
names it was trained on (:mod:`py_finance.tracking.deployment`). The loop trades it only with
those settings: a trading setting of the local config that differs is a refusal naming both
values, unless the user overrides it explicitly; a store that holds names outside a closed
universe (the bundled names, an explicit symbol list) the champion was trained on is a refusal
too: they came from elsewhere, and the store no longer describes the champion's universe.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from py_finance import tracking
from py_finance.config import resolved_config
from py_finance.errors import PyFinanceError
from py_finance.pipeline.context import Context
from py_finance.tracking.deployment import (
    config_differences,
    describe_differences,
    flat,
    recorded_config,
    recorded_symbols,
)

log = logging.getLogger(__name__)


class ChampionMismatch(PyFinanceError):
    """The champion was evaluated with other settings or another universe: nothing traded."""


def check_champion(
    ctx: Context, model: Any, symbols: Sequence[str], *, override: bool = False
) -> list[dict[str, str]]:
    """Refuse a champion whose recorded settings or universe differ from the local ones.

    Parameters
    ----------
    ctx
        The local config and store.
    model
        The loaded champion (:class:`~py_finance.tracking.LoadedModel`).
    symbols
        The names the store holds as of the run's knowledge time.
    override
        Trade the local settings where they differ (``--override``): the differences are
        returned (for the daily log) and warned about instead of refused.

    Returns
    -------
    list of dict
        ``{"key", "champion", "local"}`` for each overridden trading setting ([] when equal).

    Raises
    ------
    ChampionMismatch
        A setting differs (without ``override``), or the store holds names outside the
        champion's universe; one line that names both values.
    """
    tags = tracking.get_version_tags(model.name, model.version)
    who = f"{model.name} v{model.version}"
    recorded = recorded_config(tags)
    if recorded is None:
        raise ChampionMismatch(
            f"{who} carries no recorded config (registered before deployments recorded one): "
            "retrain and promote a new version (make run, then scripts/promote.py --apply)"
        )
    trained_on = recorded_symbols(tags)
    data = recorded.get("data") or {}
    # A closed universe (the bundled names, or an explicit symbol list) cannot gain names: one
    # that appears came from elsewhere (another source's files ingested into this store). An
    # open one (a membership file, a vendor's or the synthetic index) gains members as they
    # list, and the model scores them as it scored every name it saw join before.
    closed = data.get("source") == "bundled" or bool(data.get("symbols"))
    if trained_on is not None and closed:
        outside = sorted(set(map(str, symbols)) - set(trained_on))
        if outside:
            shown = ", ".join(outside[:5]) + (
                f" and {len(outside) - 5} more" if len(outside) > 5 else ""
            )
            raise ChampionMismatch(
                f"the store holds {len(outside)} name(s) outside the universe {who} was "
                f"trained on ({shown}): trade a champion of this universe (retrain, then "
                "scripts/promote.py --apply) or restore the store it was trained on"
            )
    diffs = config_differences(flat(recorded), flat(resolved_config(ctx.settings.raw)))
    if not diffs:
        return []
    text = describe_differences(diffs)
    if not override:
        raise ChampionMismatch(
            f"{who} was evaluated with {text}: set the local config back "
            "(conf/, `make params`) or pass --override to trade the local settings"
        )
    log.warning("trading %s with local settings it was not evaluated with: %s", who, text)
    return [{"key": k, "champion": a, "local": b} for k, a, b in diffs]
