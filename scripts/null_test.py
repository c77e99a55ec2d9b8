"""Null test of the promotion gate (see py_finance.nulltest and docs/platform.md).

.venv/bin/python scripts/null_test.py --kind null     # must promote nothing
.venv/bin/python scripts/null_test.py --kind planted  # must promote
"""

from py_finance.nulltest import main

if __name__ == "__main__":
    main()
