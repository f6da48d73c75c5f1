"""The trainer learns, stops on the validation metric, restores the best epoch, and every
training parameter changes what it does."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from finscale.errors import DivergenceError, OutOfMemoryError
from finscale.model import PatchTST, PatchTSTConfig
from finscale.train import TrainConfig, TrainingData, binary_metrics, lr_at, predict, train
from finscale.train.trainer import train_step

CONTEXT = 10


def _data(rows: int = 900, *, seed: int = 0, noise: float = 0.0) -> TrainingData:
    """Windows whose label is whether feature 0 is positive on their last day: learnable."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 4)).astype("float32")
    n_windows = rows - CONTEXT
    signal = features[CONTEXT - 1 : CONTEXT - 1 + n_windows, 0] + noise * rng.normal(size=n_windows)
    labels = (signal > 0).astype("float32")
    return TrainingData(
        features=features,
        labels=labels,
        context_length=CONTEXT,
        train=np.arange(0, 600),
        val=np.arange(620, n_windows),
    )


MODEL = PatchTSTConfig(
    num_features=4, d_model=16, n_heads=2, n_layers=1, d_ff=32, context_length=CONTEXT,
    patch_length=5, stride=5, dropout=0.0,
)  # fmt: skip
FAST = TrainConfig(learning_rate=3e-3, warmup_steps=2, epochs=6, batch_size=64, patience=100)


def _weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_it_learns_a_learnable_task() -> None:
    _model, result = train(MODEL, replace(FAST, epochs=15), _data())
    assert result.val["auc"] > 0.95
    assert result.val["bce"] < 0.35
    assert result.epochs_run == 15


def test_best_epoch_weights_and_metrics_are_what_it_returns() -> None:
    data = _data(noise=1.5)  # noisy: validation loss turns up while training loss falls
    model, result = train(MODEL, replace(FAST, learning_rate=1e-2, epochs=30, patience=5), data)
    best = result.history[result.best_epoch - 1]
    assert result.value == best["val_bce"] == min(h["val_bce"] for h in result.history)
    assert result.val["auc"] == best["val_auc"]
    assert result.stop_reason == "early_stopping"
    assert result.epochs_run == result.best_epoch + 5
    # The returned model carries the best epoch's weights: evaluating it reproduces the value.
    logits = predict(
        model, torch.as_tensor(data.features), torch.as_tensor(data.val), context_length=CONTEXT
    )
    assert binary_metrics(logits, data.labels[data.val])["bce"] == pytest.approx(
        result.value, rel=1e-5
    )


def test_auc_can_be_the_stopping_metric() -> None:
    _model, result = train(MODEL, replace(FAST, metric="val_auc", epochs=8), _data(noise=1.0))
    assert result.metric == "val_auc"
    assert result.value == max(h["val_auc"] for h in result.history)


def test_the_epoch_callback_sees_every_epoch_and_can_stop_training() -> None:
    seen: list[tuple[int, float]] = []

    class PrunedError(Exception):
        pass

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        seen.append((epoch, metrics["val_bce"]))
        if epoch == 3:
            raise PrunedError

    with pytest.raises(PrunedError):
        train(MODEL, FAST, _data(), on_epoch=on_epoch)
    assert [e for e, _ in seen] == [1, 2, 3]


def test_a_step_callback_stops_training_mid_epoch() -> None:
    # A worker asked to stop raises here: within a step, not at the end of the epoch.
    steps: list[int] = []
    epochs: list[int] = []

    class StopError(Exception):
        pass

    def on_step(step: int) -> None:
        steps.append(step)
        if step == 3:
            raise StopError

    with pytest.raises(StopError):
        train(MODEL, FAST, _data(), on_epoch=lambda e, _m: epochs.append(e), on_step=on_step)
    assert steps == [1, 2, 3]  # 840 windows / 64 = 14 steps an epoch
    assert epochs == []


def test_nan_in_the_data_is_a_divergence_not_a_number() -> None:
    data = _data()
    data.features[100:110] = np.nan
    with pytest.raises(DivergenceError, match=r"training loss became nan in epoch 1"):
        train(MODEL, FAST, data)


def test_same_seed_same_run_on_the_cpu() -> None:
    config = replace(FAST, epochs=3)
    model_a, a = train(replace(MODEL, dropout=0.2), config, _data())
    model_b, b = train(replace(MODEL, dropout=0.2), config, _data())
    assert a.history == b.history
    assert torch.equal(_weights(model_a), _weights(model_b))
    _model_c, c = train(replace(MODEL, dropout=0.2), replace(config, seed=1), _data())
    assert c.history != a.history


# --- every training parameter takes effect ---


def _one_step(
    config: TrainConfig, model_config: PatchTSTConfig = MODEL
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights before and after one epoch of a run with `config` (same initialization)."""
    torch.manual_seed(config.seed)
    before = _weights(PatchTST(model_config))
    model, _ = train(model_config, replace(config, epochs=1), _data())
    return before, _weights(model)


def test_learning_rate_scales_the_update() -> None:
    config = replace(FAST, warmup_steps=0, grad_clip=None, weight_decay=0.0)
    before, small = _one_step(replace(config, learning_rate=1e-4))
    _, large = _one_step(replace(config, learning_rate=1e-3))
    ratio = (large - before).norm() / (small - before).norm()
    assert 5 < ratio < 15


@pytest.mark.slow
def test_weight_decay_shrinks_only_the_matrices() -> None:
    config = replace(FAST, epochs=4)
    plain, _ = train(MODEL, replace(config, weight_decay=0.0), _data())
    decayed, _ = train(MODEL, replace(config, weight_decay=5.0), _data())
    matrices = [n for n, p in plain.named_parameters() if p.dim() >= 2 and n != "position"]
    norm = {n: p.norm().item() for n, p in plain.named_parameters()}
    for name, p in decayed.named_parameters():
        if name in matrices:
            assert p.norm().item() < 0.8 * norm[name], name


def test_warmup_sets_the_learning_rate_of_early_steps() -> None:
    _, short = train(MODEL, replace(FAST, epochs=2, warmup_steps=1), _data())
    _, long = train(MODEL, replace(FAST, epochs=2, warmup_steps=1000), _data())
    # 10 steps per epoch: the last step of epoch 1 is step 9.
    assert long.history[0]["lr"] == pytest.approx(FAST.learning_rate * 10 / 1000)
    expected = lr_at(9, base_lr=FAST.learning_rate, warmup_steps=1, total_steps=20)
    assert short.history[0]["lr"] == pytest.approx(expected)
    assert short.history[0]["lr"] > 10 * long.history[0]["lr"]
    assert long.history[0]["train_loss"] != short.history[0]["train_loss"]


def test_dropout_reaches_the_model() -> None:
    _model, none = train(MODEL, replace(FAST, epochs=2), _data())
    heavy_model, heavy = train(replace(MODEL, dropout=0.5), replace(FAST, epochs=2), _data())
    probabilities = {m.p for m in heavy_model.modules() if hasattr(m, "p")}
    assert probabilities == {0.5, 0.0}  # the head's dropout is its own setting
    assert heavy.history[0]["train_loss"] != none.history[0]["train_loss"]


def test_batch_size_sets_the_number_of_optimizer_steps() -> None:
    _, small = train(MODEL, replace(FAST, epochs=2, batch_size=32), _data())
    _, large = train(MODEL, replace(FAST, epochs=2, batch_size=200), _data())
    assert small.optimizer_steps == 2 * 19  # ceil(600 / 32) per epoch
    assert large.optimizer_steps == 2 * 3


@pytest.mark.parametrize("micro_batch", [32, 48])  # 48: 48 + 48 + 32, weighted by share
def test_accumulation_splits_the_batch_without_changing_the_gradient(micro_batch: int) -> None:
    data = _data()
    features, labels = torch.as_tensor(data.features), torch.as_tensor(data.labels)
    batch = torch.as_tensor(data.train[:128])
    after = {}
    for micro in (128, micro_batch):
        torch.manual_seed(0)
        model = PatchTST(MODEL)
        forwards: list[int] = []
        model.register_forward_hook(lambda _m, _i, out, seen=forwards: seen.append(len(out)))
        sgd = torch.optim.SGD(model.parameters(), lr=1.0)  # the update is the gradient itself
        train_step(
            model, sgd, features, labels, batch, context_length=CONTEXT, micro_batch=micro, lr=1.0
        )
        after[micro] = _weights(model)
        assert sum(forwards) == 128
        assert len(forwards) == -(-128 // micro)
    torch.testing.assert_close(after[micro_batch], after[128], rtol=1e-5, atol=1e-6)


def test_epochs_bound_the_run_and_shape_the_schedule() -> None:
    _, short = train(MODEL, replace(FAST, epochs=3), _data())
    _, long = train(MODEL, replace(FAST, epochs=9), _data())
    assert (short.epochs_run, long.epochs_run) == (3, 9)
    # The cosine decays over the planned run: epoch 3 is the end of one, early in the other.
    assert short.history[2]["lr"] < long.history[2]["lr"]


def test_pos_weight_and_clipping_change_the_update() -> None:
    base = replace(FAST, warmup_steps=0)
    _, plain = _one_step(base)
    _, weighted = _one_step(replace(base, pos_weight=5.0))
    before, clipped = _one_step(replace(base, grad_clip=1e-6))
    assert not torch.allclose(plain, weighted)
    assert (clipped - before).norm() < 0.5 * (plain - before).norm()


BAD_CONFIGS = [
    pytest.param(
        {"micro_batch": 512}, r"need 1 <= micro_batch <= batch_size, got 512 and 256", id="micro"
    ),
    pytest.param({"learning_rate": 0.0}, r"learning_rate must be positive", id="lr"),
    pytest.param({"weight_decay": -1.0}, r"must not be negative", id="wd"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_CONFIGS)
def test_bad_training_configs_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
def test_running_out_of_memory_is_a_typed_error() -> None:
    """A real allocation failure: the process's address space is capped below what the model
    needs."""
    code = """
import resource, sys
import numpy as np
from finscale.errors import OutOfMemoryError
from finscale.model import PatchTSTConfig
from finscale.train import TrainConfig, TrainingData, train
data = TrainingData(features=np.zeros((400, 25), "float32"), labels=np.zeros(340, "float32"),
                    context_length=60, train=np.arange(200), val=np.arange(250, 340))
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
with open("/proc/self/statm") as f:
    size = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (size + 300 * 2**20, hard))
try:
    train(PatchTSTConfig(num_features=25, d_model=1024, n_heads=8, n_layers=8, d_ff=4096),
          TrainConfig(epochs=1, batch_size=128), data)
except OutOfMemoryError as e:
    print("OOM:", e)
    sys.exit(0)
sys.exit(1)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OOM: training 1024x8: out of memory" in result.stdout
    assert issubclass(OutOfMemoryError, Exception)


# --- the schedule ---


def test_schedule_warms_up_decays_and_floors() -> None:
    kwargs = {"base_lr": 1.0, "warmup_steps": 10, "total_steps": 110, "min_lr_ratio": 0.1}
    assert lr_at(0, **kwargs) == pytest.approx(0.1)  # 1. warm-up, linear
    assert lr_at(4, **kwargs) == pytest.approx(0.5)
    assert lr_at(9, **kwargs) == pytest.approx(1.0)
    assert lr_at(10, **kwargs) == pytest.approx(1.0)  # 2. cosine from the peak
    assert lr_at(60, **kwargs) == pytest.approx(0.55)  # half way: the mean of peak and floor
    assert lr_at(109, **kwargs) == pytest.approx(0.1, abs=1e-3)
    assert lr_at(110, **kwargs) == 0.1  # 3. floor
    assert lr_at(10_000, **kwargs) == 0.1
    assert lr_at(0, base_lr=1.0, warmup_steps=0, total_steps=10) == 1.0


@pytest.mark.slow
def test_bf16_autocast_trains() -> None:
    """The bf16 path (CUDA's) runs on the CPU too: same loop, lower precision."""
    _model, result = train(MODEL, replace(FAST, epochs=4, precision="bf16"), _data())
    assert result.val["auc"] > 0.8


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one() -> None:
    _m, eager = train(MODEL, replace(FAST, epochs=2), _data())
    _m, compiled = train(MODEL, replace(FAST, epochs=2, compile=True), _data())
    assert compiled.history[-1]["val_bce"] == pytest.approx(eager.history[-1]["val_bce"], rel=1e-3)
