"""Portfolio construction: scores -> target weights."""

from py_finance.portfolio.config import WEIGHTINGS, PortfolioConfig
from py_finance.portfolio.topk import topk_weights, trailing_volatility

__all__ = ["WEIGHTINGS", "PortfolioConfig", "topk_weights", "trailing_volatility"]
