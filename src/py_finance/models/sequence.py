"""Sequence models on PyTorch Lightning: Conv1D + LSTM, a TCN and a Transformer encoder.

All three have MC-dropout uncertainty and follow the estimator contract (``fit(X, y) ->
self``, ``predict(X)``, ``predict_dist(X) -> (mean, std)``) on ``(session, symbol)`` feature
frames. A sample is the window of the last ``lookback`` sessions of one symbol's features
ending at its session; the windows are gathered from one ``session x symbol x feature`` tensor
by index arithmetic on the training device, so there is no Python loop per sample.

This module needs only numpy, pandas, torch and pytorch-lightning, so it runs on machines that
have nothing else of the project installed (``PYTHONPATH=src``).
"""

from __future__ import annotations

import io
import logging
import math
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

ARCHES = ("lstm", "tcn", "transformer")


@dataclass(frozen=True, slots=True)
class SequenceParams:
    """Hyper-parameters of a sequence model (``conf/model/lstm.yaml``, ``tcn.yaml``, ...).

    Parameters
    ----------
    lookback
        Sessions per input window.
    hidden
        LSTM hidden size, TCN channels, or the Transformer's model width.
    conv_channels, kernel_size
        Conv1D front end of the LSTM (channels, kernel); the TCN's kernel size.
    levels
        TCN residual blocks (dilations 1, 2, 4, ...), or Transformer encoder layers.
    heads
        Attention heads of the Transformer (``hidden`` must be a multiple of it).
    dropout
        Dropout rate; also what MC-dropout samples.
    lr, weight_decay
        AdamW settings.
    batch_size, max_epochs, patience
        Training loop; early stopping on validation loss after ``patience`` bad epochs.
    fixed_epochs
        0: stop early as above. ``n > 0``: train exactly ``n`` epochs on every window, with
        no validation slice (the walk-forward's final model, sized by its folds' choice).
    epoch_windows, epoch_fraction
        Training windows drawn (without replacement, afresh each epoch) per epoch: at least
        ``epoch_windows``, or ``epoch_fraction`` of the fold's training windows where that is
        more; ``epoch_windows=0``: all of them. Bounds an epoch's cost on a long history: the
        h-day labels of neighbouring sessions overlap, so one name's windows are near copies
        of each other. Names are not: the fraction keeps an epoch's share of a wide
        universe's cross-sections from shrinking as names are added.
    val_fraction, val_gap
        The last ``val_fraction`` of the training sessions validate; ``val_gap`` sessions
        between the training part and the validation part are dropped (purge: set it to at
        least the label horizon plus the execution lag).
    cross_sectional
        Batches are whole sessions (all symbols of a session together) instead of random
        samples.
    mc_samples
        Stochastic forward passes of :meth:`predict_dist`.
    seed
        Seeds weights, shuffling and dropout: same seed, same predictions on CPU.
    accelerator, devices
        Passed to ``lightning.Trainer`` (``auto`` uses a GPU when there is one).
    """

    lookback: int = 20
    hidden: int = 32
    conv_channels: int = 16
    kernel_size: int = 3
    levels: int = 3
    heads: int = 4
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 512
    max_epochs: int = 20
    patience: int = 3
    fixed_epochs: int = 0
    epoch_windows: int = 0
    epoch_fraction: float = 0.0
    val_fraction: float = 0.15
    val_gap: int = 6
    cross_sectional: bool = False
    mc_samples: int = 30
    seed: int = 42
    accelerator: str = "auto"
    devices: int = 1

    def __post_init__(self) -> None:
        if self.lookback < 1 or self.hidden < 1 or self.kernel_size < 1 or self.levels < 1:
            raise ValueError("lookback, hidden, kernel_size and levels must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.val_fraction < 0.9:
            raise ValueError(f"val_fraction must be in (0, 0.9), got {self.val_fraction}")
        if self.fixed_epochs < 0:
            raise ValueError(f"fixed_epochs must be >= 0, got {self.fixed_epochs}")
        if self.epoch_windows < 0:
            raise ValueError(f"epoch_windows must be >= 0, got {self.epoch_windows}")
        if not 0.0 <= self.epoch_fraction <= 1.0:
            raise ValueError(f"epoch_fraction must be in [0, 1], got {self.epoch_fraction}")
        if self.val_gap < 0 or self.mc_samples < 2:
            raise ValueError("val_gap must be >= 0 and mc_samples >= 2")
        if self.heads < 1 or self.hidden % self.heads:
            raise ValueError(
                f"heads must be >= 1 and divide hidden; got heads={self.heads}, "
                f"hidden={self.hidden}"
            )

    def windows_per_epoch(self, n: int) -> int | None:
        """Windows one epoch draws from ``n`` training windows (``None``: all of them)."""
        if self.epoch_windows == 0:
            return None
        draw = max(self.epoch_windows, math.ceil(self.epoch_fraction * n))
        return draw if draw < n else None


# ----------------------------------------------------------------------------- the panel
@dataclass(frozen=True, slots=True)
class Panel:
    """Features as a dense ``session x symbol x feature`` array with a validity mask."""

    sessions: pd.DatetimeIndex
    symbols: pd.Index
    values: np.ndarray  # float32 [T, N, F], 0 where missing
    valid: np.ndarray  # bool [T, N]

    @classmethod
    def from_frame(cls, X: pd.DataFrame, features: list[str]) -> Panel:
        """Pivot a ``(session, symbol)`` frame into a panel."""
        if not isinstance(X.index, pd.MultiIndex) or list(X.index.names) != ["session", "symbol"]:
            raise ValueError("sequence models need a (session, symbol) MultiIndex on X")
        sess = X.index.get_level_values("session")
        syms = X.index.get_level_values("symbol")
        sessions = pd.DatetimeIndex(sess.unique()).sort_values()
        symbols = pd.Index(syms.unique()).sort_values()
        t = sessions.get_indexer(sess)
        n = symbols.get_indexer(syms)
        values = np.zeros((len(sessions), len(symbols), len(features)), dtype=np.float32)
        block = X[features].to_numpy(dtype=np.float32)
        ok = np.isfinite(block).all(axis=1)
        values[t[ok], n[ok]] = block[ok]
        valid = np.zeros((len(sessions), len(symbols)), dtype=bool)
        valid[t[ok], n[ok]] = True
        return cls(sessions, symbols, values, valid)

    def window_ok(self, lookback: int) -> np.ndarray:
        """True where the last ``lookback`` sessions of a symbol are all present."""
        c = np.cumsum(self.valid, axis=0, dtype=np.int64)
        shifted = np.zeros_like(c)
        shifted[lookback:] = c[:-lookback]
        ok = (c - shifted) == lookback
        ok[: lookback - 1] = False
        return ok

    def positions(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(session, symbol) array positions of the rows of ``X``."""
        t = self.sessions.get_indexer(X.index.get_level_values("session"))
        n = self.symbols.get_indexer(X.index.get_level_values("symbol"))
        return t, n


# ----------------------------------------------------------------------------- networks
def _build_net(arch: str, n_features: int, p: SequenceParams) -> Any:
    import torch
    from torch import nn

    class ConvLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(n_features, p.conv_channels, p.kernel_size)
            self.lstm = nn.LSTM(p.conv_channels, p.hidden, batch_first=True)
            self.drop = nn.Dropout(p.dropout)
            self.head = nn.Linear(p.hidden, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, L, F]
            h = x.transpose(1, 2)
            h = nn.functional.pad(h, (p.kernel_size - 1, 0))  # causal
            h = self.drop(torch.relu(self.conv(h))).transpose(1, 2)
            out, _ = self.lstm(h)
            return self.head(self.drop(out[:, -1])).squeeze(-1)

    class Block(nn.Module):
        def __init__(self, c_in: int, c_out: int, dilation: int) -> None:
            super().__init__()
            self.pad = (p.kernel_size - 1) * dilation
            self.c1 = nn.Conv1d(c_in, c_out, p.kernel_size, dilation=dilation)
            self.c2 = nn.Conv1d(c_out, c_out, p.kernel_size, dilation=dilation)
            self.drop = nn.Dropout(p.dropout)
            self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.drop(torch.relu(self.c1(nn.functional.pad(x, (self.pad, 0)))))
            h = self.drop(torch.relu(self.c2(nn.functional.pad(h, (self.pad, 0)))))
            return torch.relu(h + self.skip(x))

    class TCN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            blocks = [
                Block(n_features if i == 0 else p.hidden, p.hidden, 2**i) for i in range(p.levels)
            ]
            self.blocks = nn.Sequential(*blocks)
            self.drop = nn.Dropout(p.dropout)
            self.head = nn.Linear(p.hidden, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.blocks(x.transpose(1, 2))
            return self.head(self.drop(h[:, :, -1])).squeeze(-1)

    class Encoder(nn.Module):
        """A small Transformer encoder: one token per session of the window.

        Each session's features are projected to ``hidden`` and given a learned position;
        ``levels`` pre-norm encoder layers attend over the window; the last session's token
        is the summary the head reads. No final normalisation: the head sees the residual
        stream's scale, so inputs far from the training data spread the MC-dropout draws
        (a final LayerNorm would normalise that away).
        """

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(n_features, p.hidden)
            self.position = nn.Parameter(torch.zeros(1, p.lookback, p.hidden))
            nn.init.normal_(self.position, std=0.02)
            layer = nn.TransformerEncoderLayer(
                p.hidden,
                p.heads,
                dim_feedforward=2 * p.hidden,
                dropout=p.dropout,
                batch_first=True,
                norm_first=True,
            )
            self.encoder = nn.TransformerEncoder(layer, p.levels, enable_nested_tensor=False)
            self.drop = nn.Dropout(p.dropout)
            self.head = nn.Linear(p.hidden, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, L, F]
            h = self.drop(self.embed(x) + self.position[:, -x.shape[1] :])
            h = self.encoder(h)
            return self.head(self.drop(h[:, -1])).squeeze(-1)

    if arch == "lstm":
        return ConvLSTM()
    if arch == "tcn":
        return TCN()
    if arch == "transformer":
        return Encoder()
    raise ValueError(f"unknown architecture {arch!r}; one of {ARCHES}")


def _gather(panel: Any, t: Any, n: Any, lookback: int) -> Any:
    """Windows ``[B, lookback, F]`` ending at sessions ``t`` of symbols ``n`` (torch)."""
    import torch

    offsets = torch.arange(-lookback + 1, 1, device=panel.device)
    return panel[t[:, None] + offsets[None, :], n[:, None]]


def _lightning_module(net: Any, panel: Any, p: SequenceParams) -> Any:
    import pytorch_lightning as pl
    import torch

    class WindowRegressor(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("panel", panel, persistent=False)

        def _loss(self, batch: Any) -> Any:
            t, n, y = batch
            pred = self.net(_gather(self.panel, t, n, p.lookback))
            return torch.nn.functional.mse_loss(pred, y)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = self._loss(batch)
            self.log("train_loss", loss, prog_bar=False, batch_size=len(batch[0]))
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> Any:
            loss = self._loss(batch)
            self.log("val_loss", loss, prog_bar=False, batch_size=len(batch[0]))
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.AdamW(self.parameters(), lr=p.lr, weight_decay=p.weight_decay)

    return WindowRegressor()


class _SessionBatches:
    """Batch sampler yielding all samples of one session per batch, sessions shuffled."""

    def __init__(self, t: np.ndarray, seed: int, shuffle: bool) -> None:
        order = np.argsort(t, kind="stable")
        bounds = np.flatnonzero(np.diff(t[order])) + 1
        self.groups = np.split(order, bounds)
        self.rng = np.random.default_rng(seed)
        self.shuffle = shuffle

    def __iter__(self) -> Any:
        idx = self.rng.permutation(len(self.groups)) if self.shuffle else range(len(self.groups))
        for i in idx:
            yield self.groups[i].tolist()

    def __len__(self) -> int:
        return len(self.groups)


def _loader(
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray], p: SequenceParams, shuffle: bool
) -> Any:
    import torch
    from torch.utils.data import (
        BatchSampler,
        DataLoader,
        RandomSampler,
        SequentialSampler,
        TensorDataset,
    )

    t, n, y = arrays
    ds = TensorDataset(
        torch.as_tensor(t, dtype=torch.long),
        torch.as_tensor(n, dtype=torch.long),
        torch.as_tensor(y, dtype=torch.float32),
    )
    # Batches are drawn as index lists and sliced from the tensors in one go
    # (``batch_size=None`` + a batch sampler): no per-sample Python call.
    sampler: Any
    if p.cross_sectional:
        sampler = _SessionBatches(t, p.seed, shuffle)
    else:
        gen = torch.Generator().manual_seed(p.seed)
        base: Any = SequentialSampler(ds)
        if shuffle:
            base = RandomSampler(ds, num_samples=p.windows_per_epoch(len(ds)), generator=gen)
        sampler = BatchSampler(base, p.batch_size, drop_last=False)
    return DataLoader(ds, sampler=sampler, batch_size=None)


def window_datamodule(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    p: SequenceParams,
) -> Any:
    """A ``LightningDataModule`` serving ``(session, symbol, target)`` index batches.

    The windows themselves are gathered inside the model from the panel tensor on the
    training device; the loaders move only three small index tensors per batch.
    """
    import pytorch_lightning as pl

    class WindowDataModule(pl.LightningDataModule):
        def train_dataloader(self) -> Any:
            return _loader(train, p, shuffle=True)

        def val_dataloader(self) -> Any:
            return [] if val is None else _loader(val, p, shuffle=False)

    return WindowDataModule()


def _quiet_lightning() -> None:
    """Keep Lightning's banners and hints out of pipeline logs (warnings still show)."""
    import warnings

    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


# ----------------------------------------------------------------------------- estimator
class SequenceModel:
    """A Lightning sequence regressor behind the estimator contract.

    Parameters
    ----------
    arch
        ``lstm`` (Conv1D front end + LSTM), ``tcn`` or ``transformer``.
    **params
        :class:`SequenceParams` fields.
    """

    name = "sequence"

    def __init__(self, arch: str = "lstm", **params: Any) -> None:
        if arch not in ARCHES:
            raise ValueError(f"unknown architecture {arch!r}; one of {ARCHES}")
        self.arch = arch
        self.params = SequenceParams(**params)
        self.name = arch

    @property
    def context_sessions(self) -> int:
        """Sessions of history a prediction needs before its own session."""
        return self.params.lookback - 1

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters (for logging)."""
        return {"arch": self.arch, **asdict(self.params)}

    #: What a fit chooses (``fit_record_``) and :meth:`sized` fixes: the walk-forward grows
    #: its final model to the median of its folds' choices.
    size_key: ClassVar[str] = "n_epochs"

    @property
    def chooses_own_size(self) -> bool:
        """Whether a fit picks its epochs by early stopping (not :meth:`sized`)."""
        return not self.params.fixed_epochs

    def sized(self, n_epochs: int) -> SequenceModel:
        """An unfitted copy that trains exactly ``n_epochs`` epochs on every window."""
        params = {**asdict(self.params), "fixed_epochs": max(1, int(n_epochs))}
        return SequenceModel(self.arch, **params)

    # -- fitting
    def fit(self, X: pd.DataFrame, y: pd.Series | np.ndarray) -> SequenceModel:
        """Fit on a ``(session, symbol)`` feature frame and its target."""
        import pytorch_lightning as pl
        import torch
        from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

        p = self.params
        _quiet_lightning()
        pl.seed_everything(p.seed, workers=True, verbose=False)
        self.feature_names_ = list(X.columns)
        raw = X[self.feature_names_].to_numpy(dtype=np.float64)
        self.mean_ = np.nanmean(raw, axis=0).astype(np.float32)
        std = np.nanstd(raw, axis=0).astype(np.float32)
        self.std_ = np.where(std > 0, std, 1.0).astype(np.float32)
        panel = self._panel(X)
        target = np.asarray(y, dtype=np.float32)
        t, n = panel.positions(X)
        keep = panel.window_ok(p.lookback)[t, n] & np.isfinite(target)
        t, n, target = t[keep], n[keep], target[keep]
        if len(t) < 100:
            raise ValueError(f"only {len(t)} complete training windows; need at least 100")
        net = _build_net(self.arch, len(self.feature_names_), p)
        module = _lightning_module(net, torch.as_tensor(panel.values), p)
        if p.fixed_epochs:  # sized by the folds' choice: every window, no validation
            data = window_datamodule((t, n, target), None, p)
            trainer = pl.Trainer(
                max_epochs=p.fixed_epochs,
                accelerator=p.accelerator,
                devices=p.devices,
                deterministic=True,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                limit_val_batches=0,
            )
            trainer.fit(module, datamodule=data)
            self.best_val_loss_ = float("nan")
            self.epochs_ = int(trainer.current_epoch)
            self.fit_record_ = {"n_epochs": p.fixed_epochs, "epochs_run": self.epochs_}
            self.net_ = module.net.cpu().eval()
            self.n_train_windows_ = len(t)
            return self
        # purged validation slice: the last sessions, after a gap
        uniq = np.unique(t)
        n_val = max(1, round(len(uniq) * p.val_fraction))
        val_start = uniq[len(uniq) - n_val]
        train_end = val_start - p.val_gap
        tr = t < train_end
        va = t >= val_start
        if tr.sum() == 0 or va.sum() == 0:
            raise ValueError("training window too short for the validation slice and gap")
        data = window_datamodule((t[tr], n[tr], target[tr]), (t[va], n[va], target[va]), p)
        with tempfile.TemporaryDirectory(prefix="pf-seq-") as tmp:
            ckpt = ModelCheckpoint(dirpath=tmp, monitor="val_loss", mode="min", save_top_k=1)
            trainer = pl.Trainer(
                max_epochs=p.max_epochs,
                accelerator=p.accelerator,
                devices=p.devices,
                deterministic=True,
                callbacks=[EarlyStopping("val_loss", patience=p.patience, mode="min"), ckpt],
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                default_root_dir=tmp,
            )
            trainer.fit(module, datamodule=data)
            best_epoch = int(trainer.current_epoch) - 1
            if ckpt.best_model_path:
                state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)
                module.load_state_dict(state["state_dict"], strict=False)
                best_epoch = int(state.get("epoch", best_epoch))
            self.best_val_loss_ = float(ckpt.best_model_score or np.nan)
            self.epochs_ = int(trainer.current_epoch)
        # What early stopping chose (the walk-forward logs it per fold): the epochs of the
        # kept weights, and the epochs run before the validation loss stopped improving.
        self.fit_record_ = {"n_epochs": best_epoch + 1, "epochs_run": self.epochs_}
        self.net_ = module.net.cpu().eval()
        self.n_train_windows_ = int(tr.sum())
        return self

    def _panel(self, X: pd.DataFrame) -> Panel:
        z = (X[self.feature_names_].astype("float32") - self.mean_) / self.std_
        return Panel.from_frame(z, self.feature_names_)

    # -- prediction
    def _forward(self, X: pd.DataFrame, passes: int, stochastic: bool) -> np.ndarray:
        import torch

        p = self.params
        panel = self._panel(X)
        t, n = panel.positions(X)
        ok = panel.window_ok(p.lookback)[t, n]
        out = np.full((passes, len(X)), np.nan, dtype=np.float64)
        if not ok.any():
            return out
        net = self.net_
        net.train(stochastic)  # dropout on only for MC sampling
        values = torch.as_tensor(panel.values)
        tt = torch.as_tensor(t[ok], dtype=torch.long)
        nn_ = torch.as_tensor(n[ok], dtype=torch.long)
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(p.seed)
        try:
            with torch.no_grad():
                for k in range(passes):
                    preds = []
                    for s in range(0, len(tt), 8192):
                        windows = _gather(values, tt[s : s + 8192], nn_[s : s + 8192], p.lookback)
                        preds.append(net(windows))
                    out[k, ok] = torch.cat(preds).numpy()
        finally:
            net.eval()
            torch.random.set_rng_state(gen_state)
        return out

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Deterministic scores (dropout off); NaN where a row lacks ``lookback`` sessions."""
        return self._forward(X, 1, stochastic=False)[0]

    def predict_dist(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """MC-dropout mean and std over ``mc_samples`` stochastic passes."""
        draws = self._forward(X, self.params.mc_samples, stochastic=True)
        return draws.mean(axis=0), draws.std(axis=0, ddof=1)

    # -- pickling: weights as bytes, the network rebuilt on load
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        net = state.pop("net_", None)
        if net is not None:
            import torch

            buf = io.BytesIO()
            torch.save(net.state_dict(), buf)
            state["net_state_"] = buf.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.pop("net_state_", None)
        self.__dict__.update(state)
        if blob is not None:
            import torch

            net = _build_net(self.arch, len(self.feature_names_), self.params)
            net.load_state_dict(torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True))
            self.net_ = net.eval()


class LSTMModel(SequenceModel):
    """Conv1D front end + LSTM (``conf/model/lstm.yaml``)."""

    def __init__(self, **params: Any) -> None:
        super().__init__("lstm", **params)


class TCNModel(SequenceModel):
    """Temporal convolutional network (``conf/model/tcn.yaml``)."""

    def __init__(self, **params: Any) -> None:
        super().__init__("tcn", **params)


class TransformerModel(SequenceModel):
    """Transformer encoder over the lookback window (``conf/model/transformer.yaml``)."""

    def __init__(self, **params: Any) -> None:
        super().__init__("transformer", **params)
