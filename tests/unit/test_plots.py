"""The figures draw what the tests found: each budget's interval on the paired scale is the
paired test's interval in analysis.json, points sit at their models' real parameter counts and
name their budget, history plots count trials in whole numbers against the base rate, the
width-depth panels share one colour scale, and no legend or tick label covers another element.

The report of the stored golden experiment (two budgets, evaluated on test, with baselines) and
synthetic experiments of one and six budgets are drawn; nothing is compared pixel by pixel."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.transforms import Bbox

from finscale.param_budget import short_count
from finscale.report import Report, write_report
from finscale.report.plots import (
    final_figure,
    history_figure,
    scaling_figure,
    width_depth_figure,
)
from finscale.report.plots.history import reference_values
from finscale.report.plots.layout import untangle_ticks
from finscale.report.plots.scaling import PAIRED_LABEL
from finscale.report.plots.views import validation_view

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, dict[str, Any]]:
    """The report of the golden storage (a copy), and its analysis.json."""
    from finscale.hpo import open_for_reading, read_studies
    from finscale.settings import Settings

    tmp = tmp_path_factory.mktemp("golden")
    shutil.copyfile(GOLDEN / "storage.db", tmp / "storage.db")
    settings = Settings(storage_url=f"sqlite:///{tmp / 'storage.db'}", data_dir=tmp / "data",
                        runs_dir=tmp / "runs", device="cpu")  # fmt: skip
    storage = open_for_reading(settings)
    assert storage is not None
    report = write_report(read_studies(storage), tmp / "report", storage="golden",
                          experiment="golden", n_resamples=300, plots=False)  # fmt: skip
    return report, json.loads((tmp / "report" / "analysis.json").read_text())


def _errorbars(ax: Axes) -> ErrorbarContainer:
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    return bars


def _bars(ax: Axes) -> list[tuple[float, float, float, float]]:
    """Each error bar's (x, y, low, high)."""
    bars = _errorbars(ax)
    line, _caps, (segments,) = bars.lines
    xy = line.get_xydata()
    ends = [(float(s[0][1]), float(s[1][1])) for s in segments.get_segments()]
    return [(float(x), float(y), lo, hi) for (x, y), (lo, hi) in zip(xy, ends, strict=True)]


def _overlaps(a: Bbox, b: Bbox) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _assert_legend_covers_nothing(fig: Figure) -> None:
    untangle_ticks(fig)  # draws
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    assert fig.legends, "the figure has a legend"
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        page = fig.bbox
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0, "inside the page"
        for ax in fig.axes:
            # The axes with their tick labels, axis labels and title.
            assert not _overlaps(box, ax.get_tightbbox(renderer)), ax.get_title()


def _assert_ticks_apart(fig: Figure) -> None:
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for ax in fig.axes:
        assert all(t.get_rotation() == 0 for t in ax.get_xticklabels()), "staggered, not tilted"
        boxes = sorted(
            (t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()),
            key=lambda b: b.x0,
        )
        for a, b in itertools.pairwise(boxes):
            assert not _overlaps(a, b), (ax.get_title(), a, b)


def _lowest(references: dict[str, float]) -> str:
    return min(references, key=lambda k: references[k])


# --- the scaling figures ---------------------------------------------------------------------


def test_each_budgets_bar_is_its_paired_test_against_the_best_reference_on_validation(
    golden: tuple[Report, dict[str, Any]],
) -> None:
    report, analysis = golden
    points = analysis["scaling"][0]["points"]
    # The references' validation losses, as the printed tests give them.
    skill = points[0]["skill"]
    losses = {"reference constant": points[0]["base_rate_loss"]} | {
        name: skill["loss"] - t["estimate"] for name, t in skill["vs_baselines"].items()
    }
    best = _lowest(losses)
    assert best == "gbt"  # the shipped golden study: the tree is the bar to beat
    fig = scaling_figure(report.scaling[0])
    paired = fig.axes[0]
    bars = _bars(paired)
    assert len(bars) == len(points) == 2
    for (x, y, low, high), p in zip(bars, points, strict=True):
        test = p["skill"]["vs_baselines"][best]
        assert x == p["param_count"]  # the model's own size, not its budget
        assert y == pytest.approx(test["estimate"], abs=1e-12)
        assert (low, high) == pytest.approx(test["ci95"], abs=1e-12)
        assert high < 0 or low > 0  # the test's verdict (gbt is better) is visible off zero
    labels = [t.get_text() for t in paired.get_xticklabels()]
    assert labels == [
        f"{p['budget']} budget\n{short_count(p['param_count'])} params" for p in points
    ]
    assert labels[1] == "50K budget\n26K params"
    # Every other reference is drawn at its paired distance from the zero line.
    heights = sorted(float(line.get_ydata()[0]) for line in paired.get_lines()[:3])
    assert heights == pytest.approx(sorted(losses[n] - losses[best] for n in losses), abs=1e-8)


def test_the_test_split_figure_shows_the_final_models_paired_tests(
    golden: tuple[Report, dict[str, Any]],
) -> None:
    report, analysis = golden
    models = analysis["final"][0]["models"]
    losses = {name: b["test_bce"] for name, b in models[0]["baselines"].items()}
    best = _lowest(losses)
    assert best == "gbt"
    fig = final_figure(report.finals[0])
    bars = _bars(fig.axes[0])
    for (x, y, low, high), m in zip(bars, models, strict=True):
        test = m["vs_baselines"][best]
        assert x == m["param_count"]
        assert y == pytest.approx(test["estimate"], abs=1e-12)
        assert (low, high) == pytest.approx(test["ci95"], abs=1e-12)
    assert "test windows" in str(fig.get_suptitle())
    _assert_legend_covers_nothing(fig)


@pytest.mark.parametrize("split", ["validation", "test"])
def test_the_slope_panel_draws_the_printed_slope_and_its_interval(
    golden: tuple[Report, dict[str, Any]], split: str
) -> None:
    report, analysis = golden
    if split == "validation":
        fig, printed = scaling_figure(report.scaling[0]), analysis["scaling"][0]
        sizes = [p["point_params"] for p in printed["points"]]
    else:
        fig, printed = final_figure(report.finals[0]), analysis["final"][0]
        sizes = [m["param_count"] for m in printed["models"]]
    panel = fig.axes[1]
    squares = next(line for line in panel.get_lines() if line.get_marker() == "s")
    assert list(squares.get_xdata()) == pytest.approx(sizes)
    line = next(line for line in panel.get_lines() if line.get_label().startswith("slope"))
    x, y = line.get_xdata(), line.get_ydata()
    assert (y[-1] - y[0]) / (np.log10(x[-1]) - np.log10(x[0])) == pytest.approx(
        printed["slope_per_decade"]
    )
    (fan,) = [c for c in panel.collections if isinstance(c, PolyCollection)]
    vertices = fan.get_paths()[0].vertices
    right = vertices[np.isclose(vertices[:, 0], x[-1])]
    spread = right[:, 1].max() - right[:, 1].min()
    centre = np.mean(np.log10(sizes))
    low, high = printed["slope_ci95"]
    # The fan's spread between the centre and any size is the interval of the slope times
    # the decades between them: the interval of a difference, not of a level.
    assert spread == pytest.approx((high - low) * (np.log10(x[-1]) - centre))


def test_legends_cover_no_data_and_ticks_do_not_collide(
    golden: tuple[Report, dict[str, Any]], tmp_path: Path
) -> None:
    report, _ = golden
    for fig in (
        scaling_figure(report.scaling[0]),
        width_depth_figure(_cells(report), report.studies),
        history_figure(report.studies[0], reference_values(report.studies[0], report.scaling)),
    ):
        if fig.legends:
            _assert_legend_covers_nothing(fig)
        untangle_ticks(fig)
        _assert_ticks_apart(fig)


def _cells(report: Report) -> Any:
    import pandas as pd

    from finscale.report.architecture import width_depth

    return width_depth(pd.read_csv(report.out / "trials.csv"))


@pytest.fixture(scope="module")
def six_budgets(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """Six budgets a factor 2-2.5 apart, one horizon, window predictions stored."""
    from finscale.hpo.read import read_studies
    from tests.unit import test_report as synth

    tmp = tmp_path_factory.mktemp("six")
    url, storage = synth._storage(tmp)
    budgets = {"20K": 20_000, "50K": 50_000, "100K": 100_000, "200K": 200_000,
               "400K": 400_000, "1M": 1_000_000}  # fmt: skip
    saved = dict(synth.BUDGETS)
    synth.BUDGETS.update(budgets)
    try:
        synth.synthetic_experiment(storage, alpha=0.05, budgets=tuple(budgets), horizons=(1,),
                                   trials=4)  # fmt: skip
    finally:
        synth.BUDGETS.clear()
        synth.BUDGETS.update(saved)
    return write_report(read_studies(storage), tmp / "r", storage=url, n_resamples=100,
                        plots=False)  # fmt: skip


def test_six_budgets_stay_readable(six_budgets: Report) -> None:
    answer = six_budgets.scaling[0]
    fig = scaling_figure(answer)
    bars = _bars(fig.axes[0])
    assert [b[0] for b in bars] == [p.param_count for p in answer.points]
    for (_, y, low, high), p in zip(bars, answer.points, strict=True):
        assert p.skill is not None  # no baselines stored: the base rate is the reference
        assert (y, low, high) == pytest.approx(
            (p.skill.vs_base_rate.mean, *p.skill.vs_base_rate.ci95)
        )
    _assert_legend_covers_nothing(fig)
    _assert_ticks_apart(fig)


def test_one_budget_draws_its_paired_panel_alone(tmp_path: Path) -> None:
    from finscale.hpo.read import read_studies
    from tests.unit import test_report as synth

    url, storage = synth._storage(tmp_path)
    synth.synthetic_experiment(storage, alpha=0.1, budgets=("50K",), horizons=(1,), trials=3)
    report = write_report(read_studies(storage), tmp_path / "r", storage=url, n_resamples=50,
                          plots=False)  # fmt: skip
    answer = report.scaling[0]
    assert answer.scaling is None
    fig = scaling_figure(answer)
    assert len(fig.axes) == 1
    ((x, _, low, high),) = _bars(fig.axes[0])
    assert x == answer.points[0].param_count
    assert math.isfinite(low) and math.isfinite(high)
    _assert_legend_covers_nothing(fig)


def test_the_paired_view_needs_window_predictions(
    golden: tuple[Report, dict[str, Any]],
) -> None:
    import dataclasses

    report, _ = golden
    answer = report.scaling[0]
    without = dataclasses.replace(
        answer, points=[dataclasses.replace(p, skill=None) for p in answer.points]
    )
    assert validation_view(without) is None
    fig = scaling_figure(without)
    assert len(fig.axes) == 1 and not any(
        isinstance(c, ErrorbarContainer) for c in fig.axes[0].containers
    )
    assert PAIRED_LABEL  # the label of the bars a figure with tests shows


# --- history and width-depth -----------------------------------------------------------------


def test_history_counts_trials_in_whole_numbers_against_the_base_rate(
    golden: tuple[Report, dict[str, Any]],
) -> None:
    report, analysis = golden
    for study, point in zip(report.studies, analysis["scaling"][0]["points"], strict=True):
        assert point["study"] == study.name
        fig = history_figure(study, reference_values(study, report.scaling))
        (ax,) = fig.axes
        fig.canvas.draw()
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
        levels = {
            line.get_label().split(" (")[0]: float(line.get_ydata()[0])
            for line in ax.get_lines()
            if len(set(line.get_ydata())) == 1 and "(" in str(line.get_label())
        }
        assert levels["reference constant"] == pytest.approx(point["base_rate_loss"])
        assert set(levels) == {"reference constant", "logistic", "gbt"}


def test_the_width_depth_panels_share_one_colour_scale(
    golden: tuple[Report, dict[str, Any]],
) -> None:
    report, analysis = golden
    cells = analysis["width_depth"]
    fig = width_depth_figure(_cells(report), report.studies)
    images = [i for ax in fig.axes for i in ax.get_images() if isinstance(i, AxesImage)]
    assert len(images) == 2
    norms = {id(i.norm) for i in images}
    assert len(norms) == 1
    norm = images[0].norm
    assert (norm.vmin, norm.vmax) == pytest.approx(
        (min(c["best"] for c in cells), max(c["best"] for c in cells))
    )
    assert len(fig.axes) == 3  # two panels and one colour bar
