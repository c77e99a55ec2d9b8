"""The scheduled retrain job: fresh data, the pipeline, a decision against the champion.

``scripts/retrain.py`` (weekly cron, docs/live.md) runs, under the project's job lock (never
beside a live run):

1. refresh: ingest from the configured source (incremental for the vendors; the bundled and
   synthetic sources give what they have);
2. skip when nothing changed since the last retrain (same data snapshot, same strategy config):
   the job is safe to rerun;
3. the pipeline: ``dvc repro`` in a DVC checkout (the data snapshot and the stages versioned as
   usual; its promote stage proposes), the stages in process elsewhere;
4. the decision: the candidate against the champion on the same sessions
   (:func:`py_finance.pipeline.evaluation.promote`); it becomes ``@champion`` only when
   ``promotion.retrain_apply`` is true and it passes, else it stays ``@challenger`` for the
   shadow book and a deliberate ``scripts/promote.py --apply``;
5. a line in ``logs/retrain.jsonl`` and a ``retrain`` alert with the decision.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

from py_finance import tracking
from py_finance.config import flatten
from py_finance.errors import PyFinanceError
from py_finance.live.alerts import Alert, Alerter
from py_finance.live.lock import job_lock
from py_finance.pipeline import evaluation, research
from py_finance.pipeline.context import Context

log = logging.getLogger(__name__)

RETRAIN_LOG = Path("logs") / "retrain.jsonl"


def _history(ctx: Context) -> list[dict[str, Any]]:
    path = ctx.root / RETRAIN_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _record(ctx: Context, entry: dict[str, Any]) -> None:
    path = ctx.root / RETRAIN_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, default=str, sort_keys=True) + "\n")


def _is_dvc_checkout(root: Path) -> bool:
    return (root / "dvc.yaml").exists() and (root / ".dvc").is_dir()


def _dvc_repro(ctx: Context) -> None:
    dvc = Path(ctx.root) / ".venv" / "bin" / "dvc"
    cmd = [str(dvc) if dvc.exists() else "dvc", "repro"]
    done = subprocess.run(cmd, cwd=ctx.root, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PyFinanceError(f"dvc repro failed: {' / '.join(tail)}")


def _stages(ctx: Context) -> None:
    for stage in (research.features, research.labels, research.regimes):
        stage(ctx)
    research.train(ctx, progress=False)
    evaluation.backtest(ctx)
    evaluation.report(ctx)


def retrain(ctx: Context, *, alerter: Alerter | None = None, force: bool = False) -> dict[str, Any]:
    """Run the retrain job once (see the module's docstring).

    Parameters
    ----------
    ctx
        The project and its config (``promotion.retrain_apply`` decides whether the job may
        move ``@champion``).
    alerter
        Sends the ``retrain`` alert (None: none).
    force
        Run the pipeline even when data and config are those of the last retrain.

    Returns
    -------
    dict
        ``status`` (``decided`` or ``unchanged``), the data snapshot, the decision of
        :func:`~py_finance.pipeline.evaluation.promote` and who trades after it.
    """
    cfg = ctx.settings.promotion or tracking.PromotionConfig()
    with job_lock(ctx, "retrain"):
        started = dt.datetime.now(dt.UTC)
        dvc = _is_dvc_checkout(ctx.root)
        if dvc:  # the ingest stage refreshes; DVC versions the snapshot and reruns what changed
            _dvc_repro(ctx)
        else:
            research.ingest(ctx)
        snapshot = ctx.store.fingerprint()
        strategy = tracking.promotion.trial_key(
            {k: str(v) for k, v in flatten(ctx.settings.raw).items()}
        )
        last = next((e for e in reversed(_history(ctx)) if e.get("status") == "decided"), None)
        name = ctx.deployment
        if (
            not force
            and last is not None
            and last.get("snapshot") == snapshot
            and last.get("strategy") == strategy
        ):
            tracking.setup(ctx.settings.tracking, ctx.root)
            out: dict[str, Any] = {
                "status": "unchanged",
                "snapshot": snapshot,
                "strategy": strategy,
                "model": name,
                "champion": tracking.get_alias_version(name, tracking.CHAMPION),
                "at": started.isoformat(timespec="seconds"),
            }
            log.info("retrain: data and config as at the last retrain: nothing to do")
            _record(ctx, out)
            return out
        if not dvc:
            _stages(ctx)
        decision = evaluation.promote(ctx, apply=bool(cfg.retrain_apply))
        out = {
            "status": "decided",
            "snapshot": snapshot,
            "strategy": strategy,
            "model": name,
            "candidate_version": decision["candidate_version"],
            "decision": decision["decision"],
            "promoted": decision["promoted"],
            "applied": bool(cfg.retrain_apply),
            "previous_champion": decision["previous_champion"],
            "champion": decision["champion"],
            "challenger": decision["challenger"],
            "reasons": decision["reasons"],
            "at": started.isoformat(timespec="seconds"),
        }
        _record(ctx, out)
    if alerter is not None:
        body = "\n".join(out.get("reasons", [])) or describe(out)
        alerter.send(Alert("retrain", f"retrain: {describe(out)}", body))
    return out


def describe(out: dict[str, Any]) -> str:
    """One line: the decision and who trades after it."""
    if out["status"] == "unchanged":
        return f"{out['model']}: nothing new since the last retrain; champion v{out['champion']}"
    verdict = {
        "promoted": "promoted to @champion",
        "challenger": "@challenger (the champion stays)",
        "rejected": "rejected",
        "champion": "is @champion already (nothing moved)",
    }[out["decision"]]
    champion = f"v{out['champion']}" if out["champion"] else "none"
    return f"{out['model']} v{out['candidate_version']} {verdict}; trading: {champion}"
