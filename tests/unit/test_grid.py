"""Exact parameter counts, the budget grids, their order and their extremes."""

from __future__ import annotations

import random

import pytest
import torch

from finscale.model import (
    Arch,
    ArchSpace,
    PatchTST,
    PatchTSTConfig,
    budget_label,
    build_grid,
    extreme_archs,
    find_arch,
    param_count,
    parse_arch_id,
    parse_budget,
)

BUDGETS = {"2M": 80, "20M": 75, "200M": 125, "2B": 75}


def _built_count(arch: Arch, *, features: int = 25, device: str = "cpu", **kwargs: int) -> int:
    with torch.device(device):
        model = PatchTST(PatchTSTConfig(num_features=features, **arch.dims(), **kwargs))
    return model.num_parameters()


@pytest.mark.parametrize(("budget", "size"), BUDGETS.items())
@pytest.mark.parametrize("features", [25, 20])
def test_default_grids_hold_the_reference_counts(budget: str, size: int, features: int) -> None:
    grid = build_grid(parse_budget(budget), num_features=features)
    assert len(grid) == size
    assert len({a.id for a in grid}) == size


@pytest.mark.slow
@pytest.mark.parametrize("budget", ["2M", "20M"])
def test_count_equals_the_built_model_for_every_architecture(budget: str) -> None:
    for arch in build_grid(parse_budget(budget), num_features=25):
        assert _built_count(arch) == arch.param_count, arch.id


# 2B's grid takes seconds to build: checked in the whole suite, 200M in the quick loop.
@pytest.mark.parametrize("budget", ["200M", pytest.param("2B", marks=pytest.mark.slow)])
def test_count_equals_a_meta_model_for_a_sample_of_large_grids(budget: str) -> None:
    grid = build_grid(parse_budget(budget), num_features=25)
    for arch in [*random.Random(budget).sample(grid, 12), grid[0], grid[-1]]:
        assert _built_count(arch, device="meta") == arch.param_count, arch.id


@pytest.mark.parametrize("extra", [{"revin": True}, {"context_length": 80}, {"stride": 10}])
def test_count_follows_the_other_shape_settings(extra: dict[str, int]) -> None:
    arch = parse_arch_id("d96-l3-h4-f2")
    count = param_count(d_model=96, n_layers=3, d_ff=192, num_features=33, **extra)
    assert count == _built_count(arch, features=33, **extra)


@pytest.mark.parametrize(
    ("budget", "index", "arch_id", "count"),
    [  # the research system's arch_idx → architecture (reference §4.3)
        ("2M", 60, "d64-l48-h2-f4", 2_417_473),
        ("20M", 73, "d128-l180-h16-f2", 23_882_881),
        ("200M", 46, "d384-l96-h4-f4", 170_457_985),
        ("2B", 52, "d1024-l256-h8-f2", 2_150_659_073),
    ],
)
def test_order_matches_the_research_systems_indices(
    budget: str, index: int, arch_id: str, count: int
) -> None:
    arch = build_grid(parse_budget(budget), num_features=25)[index]
    assert (arch.id, arch.param_count) == (arch_id, count)


@pytest.mark.parametrize(
    ("d_model", "n_heads", "n_layers", "d_ff", "expected"),
    [  # the fixed budget configs of reference §3.4 (20 features, patch 10, stride 10)
        (192, 6, 4, 768, 1_822_657),
        (512, 8, 6, 2048, 19_029_505),
        (1024, 16, 16, 4096, 201_769_985),
        (2304, 24, 32, 9216, 2_039_908_609),
    ],
)
def test_counts_match_the_reference_configs(
    d_model: int, n_heads: int, n_layers: int, d_ff: int, expected: int
) -> None:
    assert (
        param_count(d_model=d_model, n_layers=n_layers, d_ff=d_ff, num_features=20, stride=10)
        == expected
    )


def test_grid_order_does_not_depend_on_how_the_space_is_written() -> None:
    space = ArchSpace()
    shuffled = ArchSpace(
        *(tuple(random.Random(i).sample(v, len(v))) for i, v in enumerate(vars(space).values()))
    )
    assert build_grid(20_000_000, num_features=25, space=shuffled) == build_grid(
        20_000_000, num_features=25
    )


def test_grid_respects_the_callers_space_and_tolerance() -> None:
    space = ArchSpace(
        d_model=(16, 32, 48), n_layers=(1, 2, 3, 4), n_heads=(2, 4), d_ff_ratio=(2, 4)
    )
    grid = build_grid(50_000, num_features=25, space=space, tolerance=0.1)
    assert grid
    assert all(45_000 <= a.param_count <= 55_000 for a in grid)
    assert {a.d_model for a in grid} <= {16, 32, 48}
    counts = [a.param_count for a in grid]
    assert counts == sorted(counts)


def test_widths_not_divisible_by_heads_are_left_out() -> None:
    space = ArchSpace(d_model=(48,), n_layers=(2,), n_heads=(4, 32), d_ff_ratio=(2,))
    assert [a.n_heads for a in build_grid(60_000, num_features=25, space=space, tolerance=1.0)] == [
        4
    ]


@pytest.mark.parametrize("budget", list(BUDGETS))
def test_all_six_extremes_exist(budget: str) -> None:
    grid = build_grid(parse_budget(budget), num_features=25)
    extremes = extreme_archs(grid)
    assert list(extremes) == [
        "narrowest",
        "widest",
        "shallowest",
        "deepest",
        "fewest_heads",
        "most_heads",
    ]
    assert len(set(extremes.values())) == 6
    widths = [a.d_model for a in grid]
    assert extremes["narrowest"].d_model == min(widths)
    assert extremes["widest"].d_model == max(widths)
    mid = extremes["shallowest"].d_model
    depths_at_mid = [a.n_layers for a in grid if a.d_model == mid]
    assert extremes["shallowest"].n_layers == min(depths_at_mid) < max(depths_at_mid)
    assert extremes["deepest"].n_layers == max(depths_at_mid)
    assert extremes["fewest_heads"].n_heads == 2
    assert extremes["most_heads"].n_heads == 32
    assert all(a in grid for a in extremes.values())


def test_2m_extremes_recover_the_two_the_research_system_lost() -> None:
    extremes = extreme_archs(build_grid(2_000_000, num_features=25))
    assert extremes["narrowest"].id == "d64-l32-h8-f4"
    assert extremes["widest"].id == "d384-l2-h8-f2"
    # The original's middle width (192) had no architecture at the grid's global shallowest
    # and deepest depths, so these two were dropped; at the middle width's own depths they exist.
    assert (extremes["shallowest"].id, extremes["deepest"].id) == ("d192-l4-h8-f4", "d192-l8-h8-f2")


def test_an_empty_grid_has_no_extremes() -> None:
    assert extreme_archs([]) == {}


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("2M", 2_000_000),
        ("20m", 20_000_000),
        ("2B", 2_000_000_000),
        ("50K", 50_000),
        ("1.5M", 1_500_000),
        ("800000", 800_000),
        (7, 7),
    ],
)
def test_budgets_parse(text: str | int, count: int) -> None:
    assert parse_budget(text) == count


@pytest.mark.parametrize("text", ["", "2X", "-1M", "M", "0"])
def test_bad_budgets_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="budget"):
        parse_budget(text)


@pytest.mark.parametrize(
    ("count", "label"), [(2_000_000, "2M"), (50_000, "50K"), (2_000_000_000, "2B"), (1_500, "1500")]
)
def test_budget_labels(count: int, label: str) -> None:
    assert budget_label(count) == label


def test_ids_round_trip() -> None:
    for arch in build_grid(20_000_000, num_features=25):
        assert parse_arch_id(arch.id).dims() == arch.dims()
    assert parse_arch_id("d96-l3-h4-ff100").d_ff == 100
    assert Arch(96, 3, 4, 100).id == "d96-l3-h4-ff100"


def test_unknown_architecture_lists_the_nearest() -> None:
    grid = build_grid(2_000_000, num_features=25)
    assert find_arch(grid, "d64-l48-h2-f4").param_count == 2_417_473
    with pytest.raises(ValueError, match=r"'d64-l40-h2-f4' is not in the grid \(nearest: d64-"):
        find_arch(grid, "d64-l40-h2-f4")
    with pytest.raises(ValueError, match="expected d<width>-l<layers>-h<heads>-f<ratio>"):
        find_arch(grid, "big")
