"""Explain the promotion gate's decision on a candidate; `--apply` makes it @champion if it passes.

.venv/bin/python scripts/promote.py                    # explain (the same as --dry-run)
.venv/bin/python scripts/promote.py --apply            # promote the workspace's candidate
.venv/bin/python scripts/promote.py --apply --version 3   # promote a registered version
.venv/bin/python scripts/promote.py --has-champion     # exit 0 when a champion exists, else 1
.venv/bin/python scripts/promote.py --from-shadow      # challenger's shadow track vs the champion

The candidate is judged on its own out-of-sample figures (Sharpe, DSR over the trials of its
research question, drawdown, length) and against the deployment's current champion on the
same sessions (a paired test of the Sharpe difference). Experiments and the pipeline only
propose (@challenger); @champion moves only here with --apply (or in a retrain job configured
to), after the comparison is shown. Each --apply is appended to logs/promotions.jsonl.
"""

from __future__ import annotations

import argparse
import logging
import math

from py_finance.config import build, load_params
from py_finance.errors import cli_errors
from py_finance.pipeline.cli import setup_logging


def explain(out: dict, cfg) -> str:
    ev = out["evidence"]
    verdict = {
        "promoted": "PROMOTE to @champion",
        "challenger": "@challenger (champion unchanged)",
        "rejected": "REJECT (champion unchanged)",
        "champion": "is @champion already (nothing moved)",
    }.get(out.get("decision", ""), "PROMOTE" if out["promoted"] else "REJECT")
    lines = [
        f"candidate {out['model']} v{out['candidate_version']} ({cfg.candidate} backtest): "
        f"{verdict}",
        "",
        "checks:",
        *[f"  {r}" for r in out["reasons"]],
        "",
        "figures (out of sample):",
        f"  sessions {ev['n_sessions']}, sharpe {ev['sharpe']:.3f} "
        f"(benchmark {ev['benchmark_sharpe']:.3f}), max drawdown {ev['max_drawdown']:.1%}",
        f"  PSR {ev['psr']:.4f}: probability that the true Sharpe is above 0 (one trial)",
        f"  DSR {ev['dsr']:.4f}: the same, against the best Sharpe that {ev['n_trials']} "
        f"skill-less trials would show by chance ({ev['expected_max_sharpe']:.3f} annualised)",
    ]
    vs = out.get("vs_champion")
    if vs:
        lines += [
            "",
            f"against champion v{vs['champion_version']} on the same {vs['n_sessions']} "
            f"sessions ({vs['first']} to {vs['last']}"
            + (
                f", the last {vs['rescored_sessions']} re-scored from its model"
                if vs["rescored_sessions"]
                else ""
            )
            + "):",
            f"  sharpe {vs['sharpe']:.3f} vs {vs['champion_sharpe']:.3f}: difference "
            f"{vs['difference']:+.3f}, standard error {vs['std_error']:.3f} (z {vs['z']:+.2f}; "
            f"paired HAC test of Ledoit and Wolf 2008), required: {cfg.vs_champion} at "
            f"{cfg.vs_champion_confidence:.0%}",
        ]
    else:
        lines += ["", "no champion yet for this deployment: nothing to compare with"]
    if out.get("proposes_only") and out.get("decision") == "challenger":
        lines.append(
            "  proposes only (" + "; ".join(out["proposes_only"]) + "): "
            "`scripts/promote.py --apply` makes it @champion if it passes"
        )
    best = ev.get("best_trial_sharpe", math.nan)
    if best is not None and math.isfinite(best):
        lines.append(f"  best raw sharpe among the recorded trials {best:.3f}")
    recheck = out.get("champion_recheck")
    if recheck:
        verdict = (
            "still passes"
            if recheck["passed"]
            else ("fails: @champion removed" if recheck["demoted"] else "fails")
        )
        lines += [
            "",
            f"champion v{recheck['version']} re-checked over {recheck['n_trials_now']} trials "
            f"(promoted over {recheck['n_trials_then']}): {verdict}",
            *[f"  {r}" for r in recheck["reasons"]],
        ]
    lines += [
        "",
        f"@champion before: {out['previous_champion'] or 'none'}; "
        f"after: {out['champion'] or 'none (live trading has no model)'}",
    ]
    if out.get("dry_run"):
        lines.append(
            "dry run: nothing was changed in the registry (`--apply` to act on this decision)"
        )
    return "\n".join(lines)


def explain_shadow(out: dict, applied: bool) -> str:
    if out.get("challenger") in (None, out.get("previous_champion")):
        return f"{out['model']}: " + "; ".join(out["reasons"])
    verdict = (
        "PROMOTE to @champion"
        if out["promoted"]
        else ("passes: `--apply` promotes it" if out.get("passes") else "KEEP the champion")
    )
    lines = [
        f"challenger {out['model']} v{out['challenger']} on its shadow track "
        f"({out['shadow_sessions']} sessions) against champion v{out['previous_champion']}: "
        f"{verdict}",
        *[f"  {r}" for r in out["reasons"]],
        f"@champion after: v{out['champion']}" if out.get("champion") else "",
    ]
    if not applied:
        lines.append("dry run: nothing was changed in the registry")
    return "\n".join(line for line in lines if line)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    from pathlib import Path

    from py_finance.pipeline.context import Context
    from py_finance.pipeline.evaluation import promote

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="composed config (params.yaml)")
    parser.add_argument("--root", default=".", help="project root the paths are relative to")
    parser.add_argument(
        "--dry-run", action="store_true", help="decide and explain only (the default)"
    )
    parser.add_argument(
        "--apply",
        action="store_true",
        help="make the candidate @champion if it passes the gate and the comparison",
    )
    parser.add_argument(
        "--version",
        default=None,
        help="judge this registered version of the deployment instead of the workspace's "
        "candidate (the last backtest)",
    )
    parser.add_argument(
        "--from-shadow",
        action="store_true",
        help="judge @challenger on its shadow-trading track against the champion's live track "
        "(the paper logs; promotion.min_shadow_sessions sessions at least); with --apply, "
        "promote it when it passes",
    )
    parser.add_argument(
        "--broker",
        default="paper",
        choices=["paper", "alpaca_paper", "alpaca_live"],
        help="whose daily logs hold the shadow track (--from-shadow)",
    )
    parser.add_argument(
        "--has-champion",
        action="store_true",
        help="only report whether @champion exists for the configured horizon (exit 0 or 1)",
    )
    args = parser.parse_args(argv)
    setup_logging(logging.WARNING)
    root = Path(args.root).resolve()
    params = Path(args.params)
    ctx = Context(build(load_params(params if params.is_absolute() else root / params)), root)
    if args.has_champion:
        from py_finance import tracking

        tracking.setup(ctx.settings.tracking, root)
        name = ctx.deployment
        version = tracking.get_alias_version(name, tracking.CHAMPION)
        if version is None:
            print(
                f"no champion: {name} has no @champion (the promotion gate promoted nothing; "
                f"see {ctx.path('promotion', f'h{ctx.horizon}.json')} or "
                "`scripts/promote.py --dry-run`)"
            )
            raise SystemExit(1)
        print(f"{name}@champion is version {version}")
        return
    if args.apply and args.dry_run:
        parser.error("--apply and --dry-run exclude each other")
    if args.from_shadow:
        from py_finance.live.shadow import promote_from_shadow

        shadow = promote_from_shadow(ctx, apply=args.apply, broker=args.broker)
        print(explain_shadow(shadow, args.apply))
        return
    out = promote(ctx, dry_run=not args.apply, apply=args.apply, version=args.version)
    print(explain(out, ctx.settings.promotion))


if __name__ == "__main__":
    main()
