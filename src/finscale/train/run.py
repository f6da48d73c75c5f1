"""Train one architecture on a dataset frame: prepare the windows, train, evaluate."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from finscale.data.labels import Target
from finscale.data.prepare import Prepared, SplitSettings, prepare
from finscale.model.patchtst import PatchTST, PatchTSTConfig
from finscale.train.metrics import binary_metrics
from finscale.train.trainer import (
    EpochCallback,
    TrainConfig,
    TrainingData,
    TrainResult,
    predict,
    train,
)


@dataclass(frozen=True, eq=False)
class Run:
    """A trained model, how its training went, and the data it was trained on."""

    model: PatchTST
    result: TrainResult
    prepared: Prepared
    test: dict[str, float] | None  # test metrics, only when asked for


def train_on_frame(
    frame: pd.DataFrame,
    model_config: PatchTSTConfig,
    config: TrainConfig,
    *,
    horizon: int,
    threshold: float,
    target: Target = "close",
    split: SplitSettings | None = None,
    lookback_rows: int = 0,
    normalize: bool = True,
    on_epoch: EpochCallback | None = None,
    evaluate_test: bool = False,
) -> Run:
    """Prepare windows of `frame`, train `model_config` on them, and evaluate.

    The context length comes from `model_config`; the horizon makes both the labels and the
    split, so they always agree.

    Args:
        frame: the dataset (`Date` then the features).
        model_config: the architecture; its `num_features` must equal the frame's features.
        config: how to train.
        horizon: days ahead that decide the label.
        threshold: rise that makes a positive label.
        target: `close` or `high`.
        split: how to split (chronological by default).
        lookback_rows: the dataset's feature lookback (the default embargo).
        normalize: z-score the features with training statistics.
        on_epoch: called after every epoch (see `train`).
        evaluate_test: also evaluate the best weights on the test windows (never during a
            search: the test split is for the final answer only).

    Raises:
        ValueError: the model's feature count differs from the frame's.
        DataError: a split below its minimum, missing columns.
        TrainingError: divergence or out of memory.
    """
    n_features = frame.shape[1] - 1
    if model_config.num_features != n_features:
        raise ValueError(
            f"the model expects {model_config.num_features} features, the dataset has {n_features}"
        )
    prepared = prepare(
        frame,
        context_length=model_config.context_length,
        horizon=horizon,
        threshold=threshold,
        target=target,
        split=split,
        lookback_rows=lookback_rows,
        normalize=normalize,
    )
    data = TrainingData(
        features=prepared.features,
        labels=prepared.windows.labels,
        context_length=model_config.context_length,
        train=prepared.splits.train,
        val=prepared.splits.val,
    )
    model, result = train(model_config, config, data, on_epoch=on_epoch)
    test = None
    if evaluate_test and len(prepared.splits.test):
        device = next(model.parameters()).device
        logits = predict(
            model,
            torch.as_tensor(prepared.features, device=device),
            torch.as_tensor(prepared.splits.test, device=device),
            context_length=model_config.context_length,
            precision=config.precision,
        )
        test = binary_metrics(logits, prepared.windows.labels[prepared.splits.test])
    return Run(model=model, result=result, prepared=prepared, test=test)
