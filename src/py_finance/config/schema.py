"""Structured-config schemas of every config group, registered in Hydra's ConfigStore.

Each group node names the class it configures in ``_target_``; its schema is a dataclass
derived from that class: the fields of a dataclass target (``RiskConfig``), the
hyper-parameters of a model (``SequenceParams`` for the sequence models, the ``defaults`` of
the boosted models plus the other parameters a sweep may tune). Scalars keep their types
(``int``, ``float``, ``bool``, ``str``, optional or in lists and string-keyed dicts); anything
richer is checked by the target itself. :func:`validate` merges every node of a composed
config onto its schema, so a wrong type or an unknown key fails with the key's full name
before any work starts; :func:`register` stores the schemas in Hydra's ConfigStore as
``schema/<group>/<option>`` (and the top level as ``schema``), for Hydra apps and tools
that want to extend them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

from py_finance.errors import ConfigError

_SCALARS: tuple[type, ...] = (bool, int, float, str)

# Targets whose keyword arguments are the fields of another dataclass.
_PARAMS_OF = {
    "py_finance.models.sequence.LSTMModel": "py_finance.models.sequence.SequenceParams",
    "py_finance.models.sequence.TCNModel": "py_finance.models.sequence.SequenceParams",
    "py_finance.models.sequence.TransformerModel": "py_finance.models.sequence.SequenceParams",
    "py_finance.models.sequence.SequenceModel": "py_finance.models.sequence.SequenceParams",
}

# Hyper-parameters of the boosted models beyond their ``defaults`` that a sweep may set
# (they go straight to the library's regressor).
_EXTRA_BOOSTER_PARAMS: dict[str, dict[str, type]] = {
    "lightgbm": {
        "max_depth": int,
        "min_split_gain": float,
        "min_child_weight": float,
        "reg_alpha": float,
        "max_bin": int,
        "boosting_type": str,
        "objective": str,
        "feature_fraction_bynode": float,
        "extra_trees": bool,
        "path_smooth": float,
    },
    "xgboost": {
        "gamma": float,
        "reg_alpha": float,
        "max_leaves": int,
        "max_bin": int,
        "colsample_bylevel": float,
        "colsample_bynode": float,
        "objective": str,
        "grow_policy": str,
        "min_split_loss": float,
    },
}


@dataclasses.dataclass
class PathsSchema:
    """Output locations, relative to the project root."""

    store: str = "data/store"
    features: str = "data/features"
    models: str = "data/models"
    backtest: str = "data/backtest"
    reports: str = "reports"
    promotion: str = "data/promotion"


# Top-level keys that are not config groups.
TOP_LEVEL = ("seed", "walk_forward", "paths", "models", "matrix")


@dataclasses.dataclass
class MatrixSchema:
    """Models and horizons of the DVC matrix pipeline."""

    models: list[str] = dataclasses.field(default_factory=lambda: ["lightgbm", "xgboost"])
    horizons: list[int] = dataclasses.field(default_factory=lambda: [1, 5, 20])


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = typing.get_args(tp)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(rest) < len(args):
            return True, rest[0]
    return False, tp


def _omegaconf_type(tp: Any) -> Any:
    """The annotation OmegaConf can check for ``tp``; ``Any`` when it cannot."""
    optional, inner = _is_optional(tp)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    out: Any = Any
    if inner in _SCALARS:
        out = inner
    elif origin in (list, tuple) and args and args[0] in _SCALARS:
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            out = list[args[0]]  # type: ignore[valid-type]
    elif origin is dict and len(args) == 2 and args[0] is str and args[1] in _SCALARS:
        out = dict[str, args[1]]  # type: ignore[valid-type]
    if out is Any:
        return Any
    return Optional[out] if optional else out  # noqa: UP045 (OmegaConf reads typing.Optional)


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    if not module.startswith("py_finance"):
        raise ConfigError(f"_target_ {path!r} is outside the py_finance package")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"_target_ {path!r} cannot be imported: {exc}") from exc


def _fields_of(cls: type) -> list[tuple[str, Any]] | None:
    """``[(name, annotation)]`` of what ``cls(**kwargs)`` accepts; None when open-ended."""
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return [(f.name, hints.get(f.name, Any)) for f in dataclasses.fields(cls) if f.init]
    defaults = getattr(cls, "defaults", None)
    if isinstance(defaults, Mapping):  # the boosted models: **params over class defaults
        extra = _EXTRA_BOOSTER_PARAMS.get(str(getattr(cls, "name", "")), {})
        known = [(k, type(v) if type(v) in _SCALARS else Any) for k, v in defaults.items()]
        return known + [(k, t) for k, t in extra.items() if k not in defaults]
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    return [(n, hints.get(n, Any)) for n in sig.parameters]


@functools.cache
def schema_for(target: str) -> type | None:
    """The schema dataclass of a ``_target_``; None when its keyword arguments are open-ended.

    Parameters
    ----------
    target
        Dotted path of a class inside ``py_finance``.

    Returns
    -------
    type or None
        A dataclass with ``_target_`` and one field per accepted keyword argument, typed as
        OmegaConf can check it; required fields default to ``MISSING``.
    """
    from omegaconf import MISSING

    cls = _import(_PARAMS_OF.get(target, target))
    fields = _fields_of(cls)
    if fields is None:
        return None
    spec: list[tuple[str, Any, Any]] = [
        ("_target_", str, dataclasses.field(default=target)),
    ]
    for name, annotation in fields:
        tp = _omegaconf_type(annotation)
        default = None if _is_optional(tp)[0] or tp is Any else MISSING
        spec.append((name, tp, dataclasses.field(default=default)))
    return dataclasses.make_dataclass(f"{target.rpartition('.')[2]}Schema", spec)


def _groups(config_dir: Path) -> list[str]:
    return sorted(p.name for p in config_dir.iterdir() if p.is_dir() and p.name != "hydra")


def register(config_dir: Path | None = None) -> list[str]:
    """Store the schema of every option of every group in Hydra's ConfigStore.

    Parameters
    ----------
    config_dir
        The Hydra config directory; ``conf/`` of the project by default.

    Returns
    -------
    list[str]
        The names stored, ``schema/<group>/<option>`` (plus ``schema/paths``).
    """
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from py_finance.config.compose import conf_dir

    directory = config_dir or conf_dir()
    cs = ConfigStore.instance()
    stored = []
    for group in _groups(directory):
        for path in sorted((directory / group).glob("*.yaml")):
            node = OmegaConf.load(path)
            target = node.get("_target_") if isinstance(node, Mapping) else None
            schema = schema_for(str(target)) if target else None
            if schema is not None:
                cs.store(group=f"schema/{group}", name=path.stem, node=schema)
                stored.append(f"schema/{group}/{path.stem}")
    cs.store(group="schema", name="paths", node=PathsSchema)
    cs.store(group="schema", name="matrix", node=MatrixSchema)
    stored += ["schema/paths", "schema/matrix"]
    return stored


def _check(node: Any, schema: type, key: str) -> None:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as exc:
        inner = getattr(exc, "full_key", "") or getattr(exc, "key", "") or ""
        full = f"{key}.{inner}" if inner else key
        message = str(exc).split("\n")[0]
        raise ConfigError(f"config key {full!r}: {message} (schema {schema.__name__})") from None


def validate(cfg: Any, config_dir: Path | None = None) -> None:
    """Check a composed config against the schemas; raise naming the first bad key.

    Parameters
    ----------
    cfg
        A composed config (DictConfig or mapping), e.g. from ``compose()`` or ``params.yaml``.
    config_dir
        The Hydra config directory, whose group folders are the allowed top-level keys.

    Raises
    ------
    ConfigError
        On an unknown top-level key, an unknown key inside a group, a value of the wrong
        type, or a ``_target_`` outside ``py_finance``; the message names the key
        (``'model.num_leaves'``).
    """
    from omegaconf import DictConfig, OmegaConf

    from py_finance.config.compose import GROUPS, conf_dir

    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))
    directory = config_dir or conf_dir()
    allowed = {*GROUPS, *TOP_LEVEL, *(_groups(directory) if directory.is_dir() else ())}
    for key in node:
        if key not in allowed:
            raise ConfigError(
                f"config key {key!r} is unknown: top-level keys are {sorted(allowed)}"
            )
    seed = node.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ConfigError(f"config key 'seed' must be an integer, got {seed!r}")
    if "paths" in node:
        _check(node.paths, PathsSchema, "paths")
    if "matrix" in node:
        _check(node.matrix, MatrixSchema, "matrix")
        missing = [m for m in node.matrix.models if m not in (node.get("models") or {})]
        if missing:
            raise ConfigError(
                f"config key 'matrix.models' lists {missing} but 'models' has no such entry: "
                "add `- model@models.<name>: <name>` to conf/config.yaml defaults"
            )
    for key in node:
        _check_targets(node[key], str(key))


def _check_targets(node: Any, key: str) -> None:
    """Check ``node`` against its target's schema, and every nested node with a target."""
    from omegaconf import DictConfig

    if not isinstance(node, DictConfig):
        return
    if "_target_" in node:
        schema = schema_for(str(node["_target_"]))
        if schema is not None:
            _check(node, schema, key)
    for child in node:
        name = str(child)
        _check_targets(node[name], f"{key}.{name}")
