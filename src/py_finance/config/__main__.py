"""``python -m py_finance.config [OUT] [OVERRIDES...]``: compose params.yaml from conf/."""

from __future__ import annotations

import sys
from pathlib import Path

from py_finance.config import write_params
from py_finance.errors import cli_errors


@cli_errors
def main(argv: list[str]) -> None:
    """Write the composed config to ``argv[0]`` (default ``params.yaml``)."""
    out = Path(argv[0]) if argv else Path("params.yaml")
    write_params(out, overrides=argv[1:])
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
