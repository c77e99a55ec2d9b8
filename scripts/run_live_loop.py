"""Daily live loop: trade the `@champion` model for the latest closed session.

Run after the close (cron: see docs/live.md). Trailing `key=value` arguments are Hydra
overrides. The overlay flags build the Regime-Aware strategy exactly as the backtest script
does (position and sector caps always; each flag adds one overlay); without any of them the
composed config (params.yaml) is traded as it is.

Exit status: 0 traded, skipped or halted; 2 refused or an error to act on (one line);
3 degraded: orders the broker did not confirm (run again for the same session to send
those it never got); 1 an unexpected failure. A failure after the session is known is also
in the day's log and alerted (with the unconfirmed orders of a degraded run); a refusal
(gates, confirmation, a past session without --dry-run) writes no log.
`--halt` stops all trading in one command: it cancels open orders at the broker and makes
every later run send nothing until `--resume`; it always says whether the halt is in force,
and exits 2 naming the orders the broker did not cancel (they may still fill).
Secret values of the environment (API keys, passwords, webhooks) are masked on stdout and
stderr, in log records, daily logs and alerts.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from py_finance.config import build, compose, load_params
from py_finance.errors import PyFinanceError, cli_errors
from py_finance.pipeline.cli import setup_logging
from py_finance.pipeline.context import Context

OVERLAY_FLAGS = ("regime_aware", "vol_scaling", "drawdown_throttle", "sector_tilts")
EXIT_DEGRADED = 3


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--broker",
        choices=["paper", "alpaca_paper", "alpaca_live"],
        default=None,
        help="broker to trade on (default: live.broker of the config, paper)",
    )
    p.add_argument("--dry-run", action="store_true", help="plan and log orders, send nothing")
    p.add_argument(
        "--skip-if-logged",
        action="store_true",
        help="do nothing if this session already has a good (non dry-run) daily log",
    )
    p.add_argument("--regime-aware", action="store_true", help="regime exposure multipliers")
    p.add_argument("--vol-scaling", action="store_true", help="volatility targeting")
    p.add_argument("--drawdown-throttle", action="store_true", help="15%% drawdown throttle")
    p.add_argument("--sector-tilts", action="store_true", help="regime sector tilts")
    p.add_argument(
        "--enable-alerts",
        action="store_true",
        help="email/Slack alerts (settings and secrets from the environment or .env)",
    )
    p.add_argument(
        "--as-of",
        default=None,
        help="knowledge time, tz-aware ISO (default: now); replays a past session. "
        "'last-session': the close of the store's last session",
    )
    p.add_argument(
        "--horizon",
        type=int,
        choices=[1, 5, 20],
        default=None,
        help="label horizon of the champion to trade (default: the config's)",
    )
    p.add_argument(
        "--confirm-live",
        action="store_true",
        help="confirm the live account for --broker alpaca_live (or PY_FINANCE_CONFIRM_LIVE=yes)",
    )
    p.add_argument(
        "--readiness-track",
        choices=["all", "paper", "alpaca_paper"],
        default="all",
        help="paper track whose readiness gates --broker alpaca_live needs: both paper "
        "brokers' logs (default), or one of them",
    )
    p.add_argument(
        "--override",
        action="store_true",
        help="trade the local config's settings where they differ from those the champion "
        "was evaluated with (without it, a difference is refused, naming both values)",
    )
    stop = p.add_mutually_exclusive_group()
    stop.add_argument(
        "--halt",
        metavar="REASON",
        default=None,
        help="stop trading: cancel open orders, refuse to trade until --resume",
    )
    stop.add_argument("--resume", action="store_true", help="lift a --halt")
    p.add_argument("--params", default="params.yaml", help="composed config (params.yaml)")
    p.add_argument("--root", default=".", help="project root")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. portfolio.top_k=5")
    return p.parse_args(argv)


def overlay_overrides(args: argparse.Namespace) -> list[str]:
    """Hydra overrides of the seed's overlay flags (none when no flag is given)."""
    if not any(getattr(args, flag) for flag in OVERLAY_FLAGS):
        return []
    from py_finance.pipeline.runner import overlay_overrides as overrides

    return overrides(**{flag: getattr(args, flag) for flag in OVERLAY_FLAGS})


def _as_of(text: str | None, ctx: Context) -> pd.Timestamp | None:
    if text is None:
        return None
    if text == "last-session":
        from py_finance.data.calendar import session_closes

        bars = ctx.store.wide("adj_close", None, None, None, pd.Timestamp.now(tz="UTC"))
        if bars.empty:
            raise PyFinanceError("the store is empty: run ingest first (make run)")
        return pd.Timestamp(session_closes(bars.index[-1:], ctx.settings.data.calendar)[0])
    try:
        return pd.Timestamp(text)
    except ValueError as exc:
        raise PyFinanceError(f"--as-of {text!r} is not a date/time") from exc


@cli_errors
def main(argv: list[str]) -> None:
    args = parse_args(argv)
    root = Path(args.root).resolve()
    from dotenv import load_dotenv

    from py_finance.live.alerts import secrets_from_env
    from py_finance.live.redaction import install_output_redaction

    load_dotenv(root / ".env", override=False)
    # Before logging is set up, so its handler writes through the masked stderr too.
    install_output_redaction(secrets_from_env(os.environ))
    setup_logging()
    overrides = [*overlay_overrides(args), *args.overrides]
    if args.horizon is not None:
        overrides.append(f"labels=h{args.horizon}")
    try:
        if overrides:
            from py_finance.pipeline.experiment import check_command_line

            # One line naming the override, with "Did you mean" for a near key.
            check_command_line(overrides)
        cfg = compose(overrides) if overrides else load_params(root / args.params)
        ctx = Context(build(cfg), root)
    except PyFinanceError as exc:
        if args.halt is None:
            raise
        # The halt file's place is in the config: without one, nothing was written.
        print(f"trading is NOT halted: the config could not be read ({exc})")
        raise PyFinanceError(f"trading is NOT halted: {exc}") from None
    from py_finance.live import control
    from py_finance.live.loop import run_live_day

    broker = args.broker or ctx.settings.live.broker
    if args.halt is not None:
        halted = control.halt(ctx, broker, args.halt)
        print(halted.describe())
        if not halted.in_force:
            raise PyFinanceError(f"trading is NOT halted: {halted.error}")
        if halted.canceled is None:
            raise PyFinanceError(
                f"the halt is in force, but cancelling {broker}'s open orders failed: "
                f"{halted.error}; run --halt again once the broker answers"
            )
        return
    if args.resume:
        print("trading resumed" if control.resume(ctx) else "trading was not halted")
        return
    if broker == "alpaca_paper":
        from py_finance.live.brokers.alpaca import api_keys

        # Missing keys first, before any data check. Live money is refused by its readiness
        # gates before anything else: that refusal needs no keys and is the one that matters.
        api_keys(paper=True)
    from py_finance.live.lock import job_lock

    # Never beside the retrain job (it may move @champion): wait for it to end.
    with job_lock(ctx, "live", wait_s=ctx.settings.live.lock_wait_s, shared=True):
        result = run_live_day(
            ctx,
            dry_run=args.dry_run,
            as_of=_as_of(args.as_of, ctx),
            skip_if_logged=args.skip_if_logged,
            broker=broker,
            enable_alerts=args.enable_alerts,
            confirm_live=args.confirm_live,
            override=args.override,
            readiness_track=args.readiness_track,
        )
    if result.status == "halted":
        print(f"{result.session}: trading is halted ({control.halt_path(ctx)}); nothing sent")
        return
    if result.skipped:
        why = "market closed today; " if result.status == "closed" else ""
        print(f"{why}{result.session}: already logged at {result.log_path}; skipped")
        return
    p = result.payload
    weights = ", ".join(f"{k} {v:.1%}" for k, v in sorted(p["target_weights"].items()))
    print(
        f"{p['session']} ({'dry run' if p['dry_run'] else p['broker']}): {result.status}, "
        f"{p['model_name']} v{p['model_version']}, regime {p['regime']}, "
        f"risk {p['risk_state']}, {len(p['orders'])} orders, equity {p['equity']:,.2f}\n"
        f"  weights: {weights}\n  log: {result.log_path}"
    )
    shadow = p.get("shadow") or {}
    if "target_weights" in shadow:
        book = ", ".join(f"{k} {v:.1%}" for k, v in sorted(shadow["target_weights"].items()))
        print(
            f"  shadow: challenger {p['model_name']} v{shadow['version']} (nothing sent), "
            f"equity {shadow['equity']:,.2f}, weights: {book}"
        )
    elif shadow.get("error"):
        print(f"  shadow: not traded ({shadow['error']})")
    if p.get("data", {}).get("survivorship_biased"):
        print("  note: the bundled universe is 20 of today's large caps (survivorship bias)")
    halt_file = control.halt_path(ctx)
    if p.get("dry_run") and halt_file.exists():
        said = halt_file.read_text(encoding="utf-8").strip().split(" ", 1)
        reason = said[1] if len(said) > 1 else "no reason given"
        print(
            f"  note: trading is halted ({halt_file}: {reason}): a run without --dry-run "
            "sends nothing until --resume"
        )
    if result.status == "degraded":
        sys.stdout.flush()
        why = next(e for e in reversed(p["errors"]) if e.startswith("degraded:"))
        print(f"error: {p['session']}: {why}", file=sys.stderr)
        raise SystemExit(EXIT_DEGRADED)


if __name__ == "__main__":
    main(sys.argv[1:])
