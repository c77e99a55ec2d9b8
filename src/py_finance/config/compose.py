"""Compose the Hydra config tree and turn it into typed settings.

``conf/`` is the one source of every parameter. ``params.yaml`` (what DVC stages read) is
composed from it with DVC's own Hydra integration, so ``dvc exp run -S ...`` and
``make params`` produce the same file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from py_finance.config.schema import validate
from py_finance.errors import ConfigError

GROUPS = (
    "data",
    "features",
    "labels",
    "model",
    "portfolio",
    "risk",
    "regime_policy",
    "regimes",
    "backtest",
    "tracking",
    "live",
    "promotion",
)


def project_root() -> Path:
    """The project root.

    ``$PY_FINANCE_ROOT``; else the current directory when it is a py-finance checkout
    (``conf/config.yaml`` and ``dvc.yaml``), so commands act on the checkout they are run
    in even with another checkout's virtualenv; else the checkout this package lives in.
    """
    env = os.environ.get("PY_FINANCE_ROOT")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd()
    if (cwd / "conf" / "config.yaml").exists() and (cwd / "dvc.yaml").exists():
        return cwd.resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "conf" / "config.yaml").exists():
            return parent
    return Path.cwd()


def conf_dir() -> Path:
    """The Hydra config directory (``<root>/conf``)."""
    return project_root() / "conf"


def compose(overrides: Sequence[str] = (), config_dir: Path | None = None) -> Any:
    """Compose ``conf/config.yaml`` with Hydra ``overrides``; returns a resolved DictConfig."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    directory = str((config_dir or conf_dir()).resolve())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with initialize_config_dir(directory, version_base=None):
                cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"cannot compose config from {directory}: {exc}") from exc
    OmegaConf.resolve(cfg)
    validate(cfg, Path(directory))
    return cfg


def write_params(path: Path, overrides: Sequence[str] = (), config_dir: Path | None = None) -> Path:
    """Write ``params.yaml`` exactly as ``dvc exp run`` composes it (DVC's own function)."""
    from dvc.utils.hydra import compose_and_dump

    directory = str((config_dir or conf_dir()).resolve())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compose_and_dump(path, directory, None, "config", directory, list(overrides))
    return path


def load_params(path: str | Path = "params.yaml") -> Any:
    """Load a composed ``params.yaml`` as a DictConfig."""
    from omegaconf import OmegaConf

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p} not found: run `make params` to compose it from conf/")
    return OmegaConf.load(p)


def instantiate(node: Any) -> Any:
    """``hydra.utils.instantiate`` of a ``py_finance`` target, lists as plain containers.

    Only targets inside the ``py_finance`` package may be instantiated from config, so a
    config file cannot execute arbitrary code.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate
    from omegaconf import OmegaConf

    if OmegaConf.is_config(node) and node._get_parent() is not None:
        # Detached and resolved first: Hydra deep-copies a node's whole root config to resolve
        # interpolations, which made composing one stage's settings take most of a second.
        node = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    try:
        return hydra_instantiate(node, _convert_="all", _execution_whitelist_="py_finance.*")
    except (InstantiationException, ValueError, TypeError) as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"invalid config: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed settings of one pipeline configuration."""

    data: Any
    features: Any
    labels: Any
    model_factory: Callable[[], Any]
    model_name: str
    portfolio: Any
    risk: Any
    regime_policy: Any
    regimes: Any
    walk_forward: Any
    backtest: Any
    tracking: Any
    live: Any
    paths: dict[str, str]
    seed: int
    raw: Any  # the DictConfig, for logging
    promotion: Any = None


def build(cfg: Any) -> Settings:
    """Instantiate every group of a composed config into typed settings."""
    from omegaconf import OmegaConf

    missing = [g for g in (*GROUPS, "walk_forward", "paths") if g not in cfg]
    if missing:
        raise ConfigError(f"config lacks groups {missing}")
    validate(cfg)
    model_node = cfg.model

    def model_factory() -> Any:
        return instantiate(model_node)

    model = model_factory()  # validates the model config now, not in the middle of training
    return Settings(
        data=instantiate(cfg.data),
        features=instantiate(cfg.features),
        labels=instantiate(cfg.labels),
        model_factory=model_factory,
        model_name=str(getattr(model, "name", type(model).__name__)),
        portfolio=instantiate(cfg.portfolio),
        risk=instantiate(cfg.risk),
        regime_policy=instantiate(cfg.regime_policy),
        regimes=instantiate(cfg.regimes),
        walk_forward=instantiate(cfg.walk_forward),
        backtest=instantiate(cfg.backtest),
        tracking=instantiate(cfg.tracking),
        live=instantiate(cfg.live),
        paths={str(k): str(v) for k, v in OmegaConf.to_container(cfg.paths).items()},  # type: ignore[union-attr]
        seed=int(cfg.seed),
        raw=cfg,
        promotion=instantiate(cfg.promotion),
    )


def resolved_config(cfg: Any) -> dict[str, Any]:
    """A composed config as plain, resolved containers, the ``hydra`` node left out."""
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items() if k != "hydra"}


def flatten(cfg: Any) -> dict[str, Any]:
    """Flat ``{dotted.key: value}`` view of a config (for MLflow params), ``_target_`` kept."""
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            out[prefix] = node

    walk("", container)
    return out
