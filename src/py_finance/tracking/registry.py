"""Model logging and the MLflow model registry (versions, aliases, version tags).

Registered models are deployments named ``py-finance-<universe>-h{horizon}``; ``@champion`` is
what live trading loads and only a deliberate promotion moves it; ``@challenger`` is the newest
candidate that passed the gate's absolute checks.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from py_finance.errors import ModelNotFoundError
from py_finance.tracking._mlflow import import_mlflow

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
DEFAULT_REQUIREMENTS = ("lightgbm", "scikit-learn", "pandas", "numpy", "cloudpickle")
# What a sequence model needs on top to load (``py_finance.models.sequence``).
SEQUENCE_REQUIREMENTS = ("torch", "pytorch-lightning")
# Model metadata key: the sessions a window (sequence) model reads per score.
WINDOW_KEY = "py_finance_window"
# mlflow's cap on a model-version tag value.
MAX_VERSION_TAG_LENGTH = 100_000


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Where a logged model lives.

    Attributes
    ----------
    name
        Registered model name, or the logged model's name when it was not registered.
    version
        Registry version (``"3"``), or None when not registered.
    run_id
        Run the model was logged in (None outside a run).
    model_uri
        URI that :func:`mlflow.pyfunc.load_model` accepts (``models:/m-...``).
    """

    name: str
    version: str | None
    run_id: str | None
    model_uri: str


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A registered model loaded by alias, ready to score feature rows.

    Attributes
    ----------
    name, alias, version, run_id
        What was loaded: ``py-finance-bundled-h5@champion`` is version ``version`` from
        run ``run_id``.
    model
        The mlflow pyfunc model.
    feature_names
        Input feature columns in training order (from the model signature, keys left out).
    window
        Sessions of features the model reads per score: 1 for a row model (trees), the
        ``lookback`` of a sequence model, whose input is the panel of the last ``window``
        sessions with its ``(session, symbol)`` keys.
    """

    name: str
    alias: str
    version: str
    run_id: str | None
    model: Any
    feature_names: tuple[str, ...]
    window: int = 1

    def predict(self, df: pd.DataFrame) -> pd.Series:
        """Score rows of features.

        Parameters
        ----------
        df
            Feature rows (e.g. one session x symbols); extra columns are ignored and column
            order does not matter.

        Returns
        -------
        pandas.Series
            float64 scores named ``score``, indexed like ``df``.

        Raises
        ------
        DataError
            When a feature column is missing (the message names it).
        """
        import numpy as np
        import pandas as pd

        from py_finance.tracking.score_model import select_features

        if self.window > 1:
            return self.predict_frame(df)["score"]
        frame = select_features(df, self.feature_names) if self.feature_names else df
        raw = self.model.predict(frame)
        values = np.asarray(raw, dtype=np.float64).reshape(-1)
        return pd.Series(values, index=df.index, name="score")

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Scores of every row, with the MC-dropout ``std`` of a sequence model.

        Parameters
        ----------
        df
            ``(session, symbol)`` feature rows; a sequence model scores each row from the
            window of ``df``'s sessions that ends at it (NaN where it is incomplete).

        Returns
        -------
        pandas.DataFrame
            Indexed like ``df``: ``score``, and ``std`` for a sequence model.
        """
        import numpy as np
        import pandas as pd

        from py_finance.tracking.score_model import ALL_SESSIONS

        if self.window == 1:
            return self.predict(df).to_frame("score")
        out = self._window_output(df, {ALL_SESSIONS: True})
        keyed = out[["score", "std"]].astype(np.float64)
        keyed.index = pd.MultiIndex.from_arrays(
            [pd.DatetimeIndex(out["session"]), out["symbol"].astype(str)],
            names=["session", "symbol"],
        )
        rows = pd.MultiIndex.from_arrays(
            [
                pd.DatetimeIndex(df.index.get_level_values("session")),
                df.index.get_level_values("symbol").astype(str),
            ],
            names=["session", "symbol"],
        )
        return keyed.reindex(rows).set_axis(df.index)

    def score_session(self, df: pd.DataFrame) -> pd.DataFrame:
        """Scores of the last session of ``df``, with their MC-dropout std where given.

        Parameters
        ----------
        df
            ``(session, symbol)`` feature rows; a window model reads the last ``window``
            sessions of them (the live loop passes exactly those).

        Returns
        -------
        pandas.DataFrame
            Indexed by symbol: ``score`` (float64), and for a sequence model ``mean`` and
            ``std`` (MC dropout with the model's seed).

        Raises
        ------
        DataError
            When ``df`` holds fewer sessions than the window or a feature column is missing.
        """
        import pandas as pd

        if self.window > 1:
            out = self._window_output(df, None)
            out.index = pd.Index(out["symbol"].astype(str), name="symbol")
            return out[["score", "mean", "std"]].astype("float64")
        sessions = df.index.get_level_values("session")
        last = df[sessions == sessions.max()]
        scores = self.predict(last)
        scores.index = pd.Index(last.index.get_level_values("symbol"), name="symbol")
        return scores.to_frame("score")

    def _window_output(self, df: pd.DataFrame, params: dict[str, Any] | None) -> pd.DataFrame:
        from py_finance.tracking.score_model import keyed_frame, select_features

        keyed = keyed_frame(df)
        frame = select_features(keyed, ["session", "symbol", *self.feature_names]).copy()
        frame["session"] = frame["session"].astype("datetime64[ns]")
        frame["symbol"] = frame["symbol"].astype(str)
        floats = [c for c in self.feature_names if frame[c].dtype.kind == "f"]
        frame[floats] = frame[floats].astype("float64")
        return self.model.predict(frame, params=params)


def default_requirements() -> list[str]:
    """Return pinned pip requirements of the libraries a pickled model needs to load.

    Returns
    -------
    list[str]
        ``name==version`` for the installed lightgbm, scikit-learn, pandas, numpy and
        cloudpickle (those not installed are left out). Read locally: no network.
    """
    return _pins(DEFAULT_REQUIREMENTS)


def _pins(packages: tuple[str, ...]) -> list[str]:
    pins = []
    for package in packages:
        try:
            pins.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def log_model(
    model: object,
    *,
    name: str = "model",
    feature_names: list[str],
    input_example: pd.DataFrame,
    pip_requirements: list[str] | None = None,
    registered_model_name: str | None = None,
) -> ModelRef:
    """Log a fitted model as an MLflow pyfunc, optionally as a new registry version.

    Parameters
    ----------
    model
        Fitted object with ``predict(X: DataFrame) -> array`` of one score per row.
    name
        Name of the logged model (artifact name).
    feature_names
        Columns ``model`` was fitted on, in order; the pyfunc selects them from its input.
    input_example
        A few rows of features; stored with the model and used, with its prediction, to
        infer the signature.
    pip_requirements
        Requirements recorded with the model; :func:`default_requirements` by default.
        Always explicit, so mlflow never infers them (which imports and may call out).
    registered_model_name
        Register the model under this name (``py-finance-bundled-h5``) as a new version.

    Returns
    -------
    ModelRef
        The logged model; ``version`` is the new registry version when registered.
    """
    mlflow = import_mlflow()
    from mlflow.models import infer_signature

    from py_finance.tracking.score_model import (
        ALL_SESSIONS,
        ScoreModel,
        WindowScoreModel,
        keyed_frame,
        select_features,
    )

    window = int(getattr(model, "context_sessions", 0) or 0) + 1
    wrapper: Any
    if window > 1:
        # A sequence model scores a name from the window of sessions ending at its row: its
        # input is that panel with the (session, symbol) keys as columns (the signature says
        # so), the example the last ``window`` sessions of ``input_example``.
        wrapper = WindowScoreModel(model, feature_names, window)
        keyed = keyed_frame(input_example)
        sessions = _sorted_unique(keyed["session"])
        keyed = keyed[keyed["session"] >= sessions[-min(window, len(sessions))]]
        example = select_features(keyed, ["session", "symbol", *feature_names]).copy()
        example["session"] = example["session"].astype("datetime64[ns]")
        example["symbol"] = example["symbol"].astype(str)
        example = example.sort_values(["session", "symbol"]).reset_index(drop=True)
    else:
        wrapper = ScoreModel(model, feature_names)
        example = select_features(input_example, feature_names).copy()
    # Floats are recorded as float64 so float32 feature frames also pass schema enforcement
    # (float32 -> float64 is a safe upcast; the reverse is refused by mlflow).
    floats = [c for c in example.columns if example[c].dtype.kind == "f"]
    example[floats] = example[floats].astype("float64")
    if window > 1:
        output = wrapper.score(example, all_sessions=len(example["session"].unique()) < window)
        signature = infer_signature(example, output, params={ALL_SESSIONS: False})
        requirements = [*default_requirements(), *_pins(SEQUENCE_REQUIREMENTS)]
    else:
        signature = infer_signature(example, wrapper.score(example))
        requirements = default_requirements()

    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=wrapper,
        signature=signature,
        input_example=example,
        pip_requirements=requirements if pip_requirements is None else pip_requirements,
        registered_model_name=registered_model_name,
        metadata={WINDOW_KEY: window},
    )
    version = info.registered_model_version
    ref = ModelRef(
        name=registered_model_name or name,
        version=None if version is None else str(version),
        run_id=info.run_id,
        model_uri=info.model_uri,
    )
    log.info("logged model %s (version %s) from run %s", ref.name, ref.version, ref.run_id)
    return ref


def register_logged_model(name: str, run_id: str, model_uri: str) -> ModelRef:
    """Register the model a run logged as a version of ``name`` (the promotion path only).

    Idempotent: when a version of ``name`` already comes from ``run_id``, that version is
    returned instead of a new one, so promoting the same backtest twice registers it once.

    Parameters
    ----------
    name
        Registered model name, e.g. ``py-finance-bundled-h5``.
    run_id
        The run that logged the model (the candidate backtest run).
    model_uri
        The logged model's URI (``models:/m-...``, as :func:`log_model` returned it).

    Returns
    -------
    ModelRef
        The version.
    """
    mlflow = import_mlflow()
    known = version_of_run(name, run_id)
    if known is not None:
        return ModelRef(name, known, run_id, model_uri)
    mv = mlflow.register_model(model_uri, name)
    log.info("registered %s version %s from run %s", name, mv.version, run_id)
    return ModelRef(name=name, version=str(mv.version), run_id=run_id, model_uri=model_uri)


def version_of_run(name: str, run_id: str) -> str | None:
    """The version of ``name`` registered from ``run_id``, or None."""
    escaped = name.replace("'", "\\'")
    for version in _client().search_model_versions(f"name = '{escaped}'"):
        if version.name == name and version.run_id == run_id:
            return str(version.version)
    return None


def set_alias(name: str, alias: str, version: str | int) -> None:
    """Point ``name@alias`` at ``version`` (moving it if it pointed elsewhere).

    Parameters
    ----------
    name
        Registered model name.
    alias
        Alias, e.g. ``champion``.
    version
        Existing version of ``name``.
    """
    _client().set_registered_model_alias(name, alias, str(version))


def get_alias_version(name: str, alias: str) -> str | None:
    """Return the version ``name@alias`` points at, or None when model or alias is missing.

    Parameters
    ----------
    name
        Registered model name.
    alias
        Alias, e.g. ``champion``.

    Returns
    -------
    str or None
        The version, e.g. ``"3"``.
    """
    version = _version_by_alias(name, alias)
    return None if version is None else str(version.version)


def set_version_tags(name: str, version: str | int, tags: Mapping[str, Any]) -> None:
    """Set tags on a model version; values are stringified.

    Parameters
    ----------
    name
        Registered model name.
    version
        Version to tag.
    tags
        Tag name to value.
    """
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(
            name, str(version), str(key), str(value)[:MAX_VERSION_TAG_LENGTH]
        )


def get_version_tags(name: str, version: str | int) -> dict[str, str]:
    """Return the tags of a model version.

    Parameters
    ----------
    name
        Registered model name.
    version
        Version.

    Returns
    -------
    dict[str, str]
        Tag name to value.
    """
    return dict(_client().get_model_version(name, str(version)).tags)


def get_version_metrics(name: str, version: str | int) -> dict[str, float]:
    """Return the metrics of the run that produced a model version.

    Parameters
    ----------
    name
        Registered model name.
    version
        Version.

    Returns
    -------
    dict[str, float]
        Latest value of each metric of the version's run; empty when it has no run.
    """
    client = _client()
    run_id = client.get_model_version(name, str(version)).run_id
    if not run_id:
        return {}
    return dict(client.get_run(run_id).data.metrics)


def latest_version(name: str) -> str | None:
    """Return the highest version of a registered model, or None when it has none.

    Parameters
    ----------
    name
        Registered model name.

    Returns
    -------
    str or None
        The newest version number.
    """
    escaped = name.replace("'", "\\'")
    versions = _client().search_model_versions(f"name = '{escaped}'")
    numbers = [int(v.version) for v in versions if v.name == name]
    return str(max(numbers)) if numbers else None


def read_run_frame(run_id: str, artifact: str) -> pd.DataFrame:
    """A Parquet artifact of a run as a frame (downloaded to a temporary folder)."""
    import tempfile

    from py_finance.tracking.compare import _download_frame

    with tempfile.TemporaryDirectory(prefix="py-finance-artifact-") as tmp:
        return _download_frame(run_id, artifact, Path(tmp))


def get_run(run_id: str) -> Any:
    """The MLflow run ``run_id`` (its info, params, metrics and tags)."""
    return _client().get_run(run_id)


def version_run_id(name: str, version: str | int) -> str | None:
    """The run a model version was registered from (None when it has none)."""
    return _client().get_model_version(name, str(version)).run_id or None


def load_model(name: str, alias: str = CHAMPION, *, version: str | None = None) -> LoadedModel:
    """Load the version that ``name@alias`` points at.

    Parameters
    ----------
    name
        Registered model name, e.g. ``py-finance-bundled-h5``.
    alias
        Alias to load; live trading loads ``champion``.
    version
        Load this version instead of the alias's (``alias`` is then only a label).

    Returns
    -------
    LoadedModel
        The pyfunc with its version, run and feature names.

    Raises
    ------
    ModelNotFoundError
        When the registered model or the alias does not exist.
    """
    mlflow = import_mlflow()
    found = (
        _version_by_alias(name, alias)
        if version is None
        else _client().get_model_version(name, str(version))
    )
    if found is None:
        raise ModelNotFoundError(
            f"no model '{name}@{alias}' in the registry at {mlflow.get_registry_uri()}: "
            "run `make run` (or `dvc repro`) to train and promote one"
        )
    version = str(found.version)
    # Load by number, not by alias, so a promotion in between cannot mix two versions.
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    schema = pyfunc.metadata.get_input_schema()
    window = int((pyfunc.metadata.metadata or {}).get(WINDOW_KEY, 1))
    names = tuple(schema.input_names()) if schema is not None and schema.has_input_names() else ()
    features = tuple(n for n in names if n not in ("session", "symbol")) if window > 1 else names
    log.info("loaded %s@%s = version %s (run %s)", name, alias, version, found.run_id)
    return LoadedModel(
        name=name,
        alias=alias,
        version=version,
        run_id=found.run_id or None,
        model=pyfunc,
        feature_names=features,
        window=window,
    )


def _sorted_unique(values: Any) -> Any:
    """The distinct values of a column, sorted (sessions of a model input)."""
    import numpy as np

    return np.sort(np.asarray(values.unique()))


def _client() -> Any:
    return import_mlflow().MlflowClient()


def _version_by_alias(name: str, alias: str) -> Any:
    import_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import (
        INVALID_PARAMETER_VALUE,
        RESOURCE_DOES_NOT_EXIST,
        ErrorCode,
    )

    absent = {
        ErrorCode.Name(RESOURCE_DOES_NOT_EXIST),
        ErrorCode.Name(INVALID_PARAMETER_VALUE),
    }
    try:
        return _client().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in absent:
            return None
        raise
