"""Config composition (Hydra) and typed settings."""

from py_finance.config.compose import (
    GROUPS,
    Settings,
    build,
    compose,
    conf_dir,
    flatten,
    instantiate,
    load_params,
    project_root,
    resolved_config,
    write_params,
)

__all__ = [
    "GROUPS",
    "Settings",
    "build",
    "compose",
    "conf_dir",
    "flatten",
    "instantiate",
    "load_params",
    "project_root",
    "resolved_config",
    "write_params",
]
