"""The architectures of a parameter budget: exact parameter counts, the grid, the extremes.

An architecture is (d_model, n_layers, n_heads, d_ff) with a stable readable id such as
`d64-l48-h2-f4` (f = d_ff / d_model). The grid of a budget holds every architecture of the
search space whose exact parameter count lies within the tolerance around the budget, ordered by
parameter count and then by the dimensions, so the order never depends on how the space was
written down.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from finscale import defaults

# The research system's position table had 10 spare rows; kept so that parameter counts match
# (here, beside the counting, so that the grid imports no torch).
SPARE_POSITIONS = 10

# The research system's final search space (reference §4.1).
DEFAULT_D_MODEL = (64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
DEFAULT_N_LAYERS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 180, 192, 256)
DEFAULT_N_HEADS = (2, 4, 8, 16, 32)
DEFAULT_D_FF_RATIOS = (2, 4)
DEFAULT_TOLERANCE = 0.25

_ARCH_ID = re.compile(r"^d(\d+)-l(\d+)-h(\d+)-(?:f(\d+)|ff(\d+))$")


@dataclass(frozen=True)
class Arch:
    """One architecture and its exact parameter count."""

    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    param_count: int = field(default=0, compare=False)

    @property
    def id(self) -> str:
        ratio, rest = divmod(self.d_ff, self.d_model)
        ff = f"f{ratio}" if rest == 0 else f"ff{self.d_ff}"
        return f"d{self.d_model}-l{self.n_layers}-h{self.n_heads}-{ff}"

    def dims(self) -> dict[str, int]:
        """The four dimensions by their parameter names."""
        return {
            "d_model": self.d_model,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "d_ff": self.d_ff,
        }


def parse_arch_id(arch_id: str) -> Arch:
    """The dimensions named by an id such as `d64-l48-h2-f4` (`ff256` for an absolute d_ff).

    Raises:
        ValueError: the id is not of that form, a dimension is 0 or beyond its maximum
            (`finscale.defaults`), or the width is no multiple of the head count.
    """
    match = _ARCH_ID.match(arch_id)
    if not match:
        raise ValueError(
            f"architecture id {arch_id!r}: expected d<width>-l<layers>-h<heads>-f<ratio>"
        )
    d, layers, heads, ratio, ff = match.groups()
    d_ff = int(d) * int(ratio) if ratio else int(ff)
    arch = Arch(d_model=int(d), n_layers=int(layers), n_heads=int(heads), d_ff=d_ff)
    most = {
        "d_model": defaults.MAX_D_MODEL,
        "n_layers": defaults.MAX_LAYERS,
        "n_heads": defaults.MAX_HEADS,
        "d_ff": defaults.MAX_D_MODEL * defaults.MAX_FF_RATIO,
    }
    for name, value in arch.dims().items():
        if not 1 <= value <= most[name]:
            raise ValueError(
                f"architecture id {arch_id!r}: {name} must be from 1 to {most[name]:,}, "
                f"got {value:,}"
            )
    if arch.d_model % arch.n_heads:
        raise ValueError(
            f"architecture id {arch_id!r}: d_model ({arch.d_model}) must be a multiple of "
            f"n_heads ({arch.n_heads})"
        )
    return arch


def param_count(
    *,
    d_model: int,
    n_layers: int,
    d_ff: int,
    num_features: int,
    context_length: int = defaults.CONTEXT_LENGTH,
    patch_length: int = defaults.PATCH_LENGTH,
    stride: int = defaults.STRIDE,
    revin: bool = False,
) -> int:
    """Exact number of parameters of `PatchTST` (n_heads does not change it).

    patch projection + position table + layers × (attention + 2 norms + feed-forward)
    + final norm + head (+ RevIN's affine).
    """
    d, patches = d_model, (context_length - patch_length) // stride + 1
    embed = patch_length * num_features * d + d
    position = (patches + SPARE_POSITIONS) * d
    attention = 4 * d * d + 4 * d  # in-projection (q, k, v) and out-projection, with biases
    norms = 4 * d  # two LayerNorms per layer
    feed_forward = 2 * d * d_ff + d_ff + d
    head = patches * d + 1
    return (
        embed
        + position
        + n_layers * (attention + norms + feed_forward)
        + 2 * d
        + head
        + (2 * num_features if revin else 0)
    )


@dataclass(frozen=True)
class ArchSpace:
    """The values each dimension may take; d_ff is a multiple of d_model."""

    d_model: tuple[int, ...] = DEFAULT_D_MODEL
    n_layers: tuple[int, ...] = DEFAULT_N_LAYERS
    n_heads: tuple[int, ...] = DEFAULT_N_HEADS
    d_ff_ratio: tuple[int, ...] = DEFAULT_D_FF_RATIOS


def build_grid(
    budget: int,
    *,
    num_features: int,
    space: ArchSpace | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    context_length: int = defaults.CONTEXT_LENGTH,
    patch_length: int = defaults.PATCH_LENGTH,
    stride: int = defaults.STRIDE,
    revin: bool = False,
) -> list[Arch]:
    """Every architecture of `space` within `tolerance` of `budget` parameters.

    Architectures whose width is not divisible by their head count are left out.

    Returns:
        The architectures ordered by parameter count, then d_model, n_layers, n_heads, d_ff.
    """
    low, high = _bounds(budget, tolerance)
    everything = space_archs(
        num_features=num_features,
        space=space,
        context_length=context_length,
        patch_length=patch_length,
        stride=stride,
        revin=revin,
    )
    return [a for a in everything if low <= a.param_count <= high]


def _bounds(budget: int, tolerance: float) -> tuple[int, int]:
    return int(budget * (1 - tolerance)), int(budget * (1 + tolerance))


def space_archs(
    *,
    num_features: int,
    space: ArchSpace | None = None,
    context_length: int = defaults.CONTEXT_LENGTH,
    patch_length: int = defaults.PATCH_LENGTH,
    stride: int = defaults.STRIDE,
    revin: bool = False,
) -> list[Arch]:
    """Every architecture of `space` whatever its size, ordered as `build_grid` orders them."""
    space = space or ArchSpace()
    archs = set()
    for d, layers, heads, ratio in itertools.product(
        space.d_model, space.n_layers, space.n_heads, space.d_ff_ratio
    ):
        if d % heads:
            continue
        count = param_count(
            d_model=d,
            n_layers=layers,
            d_ff=ratio * d,
            num_features=num_features,
            context_length=context_length,
            patch_length=patch_length,
            stride=stride,
            revin=revin,
        )
        archs.add(Arch(d, layers, heads, ratio * d, count))
    return sorted(archs, key=lambda a: (a.param_count, a.d_model, a.n_layers, a.n_heads, a.d_ff))


def nearest_budgets(budget: int, archs: Iterable[Arch], *, tolerance: float) -> list[str]:
    """For a budget without architectures: the budgets nearest to it, below and above, that have
    some (an architecture of `archs` within `tolerance`), as a person writes them (`430K`).
    Empty when the space has no architecture at all."""
    low, high = _bounds(budget, tolerance)
    counts = sorted({a.param_count for a in archs})
    out = []
    below = [c for c in counts if c < low]
    if below:  # the largest budget whose range still reaches down to that count
        out.append(_label_near(below[-1] / (1 - tolerance), below[-1], tolerance, math.floor))
    above = [c for c in counts if c > high]
    if above:  # the smallest budget whose range reaches up to that count
        out.append(_label_near(above[0] / (1 + tolerance), above[0], tolerance, math.ceil))
    return out


def _label_near(target: float, count: int, tolerance: float, rounding: Any) -> str:
    """`target` rounded (down or up) to the fewest significant digits whose budget's range
    still holds `count`."""
    scale, suffix = next(
        ((s, x) for s, x in ((10**9, "B"), (10**6, "M"), (10**3, "K")) if target >= s), (1, "")
    )
    for digits in range(2, 10):
        step = 10 ** (math.floor(math.log10(target / scale)) - digits + 1)
        value = rounding(target / scale / step) * step
        low, high = _bounds(round(value * scale), tolerance)
        if low <= count <= high:
            return f"{float(f'{value:.{digits}g}'):g}{suffix}"
    return str(count)


def find_arch(grid: Iterable[Arch], arch_id: str) -> Arch:
    """The architecture of the grid with this id.

    Raises:
        ValueError: the grid has no such architecture (the message lists the nearest ids).
    """
    archs = list(grid)
    for arch in archs:
        if arch.id == arch_id:
            return arch
    wanted = parse_arch_id(arch_id)
    nearest = sorted(
        archs, key=lambda a: (abs(a.d_model - wanted.d_model), abs(a.n_layers - wanted.n_layers))
    )
    hint = ", ".join(a.id for a in nearest[:5])
    raise ValueError(f"architecture {arch_id!r} is not in the grid (nearest: {hint})")


def extreme_archs(grid: Sequence[Arch]) -> dict[str, Arch]:
    """The corners of a grid, worth trying first so that the sampler sees the whole range.

    - narrowest / widest: the smallest and largest d_model;
    - shallowest / deepest: the fewest and most layers at the middle width;
    - fewest_heads / most_heads: at the middle width.

    The middle width is taken among widths that come in more than one depth, so shallowest and
    deepest always differ (the research system took it among all widths and silently lost two of
    its six extremes). Where a choice remains, 8 heads (else the middle head count) and then the
    grid order decide. An architecture that is extreme twice is listed once, under its first name.
    """
    if not grid:
        return {}
    heads = sorted({a.n_heads for a in grid})
    mid_heads = 8 if 8 in heads else heads[len(heads) // 2]
    widths = sorted({a.d_model for a in grid})
    deep_widths = [d for d in widths if len({a.n_layers for a in grid if a.d_model == d}) > 1]
    candidates = deep_widths or widths
    mid_width = candidates[len(candidates) // 2]
    at_mid = [a for a in grid if a.d_model == mid_width]

    def prefer_mid_heads(archs: list[Arch]) -> Arch:
        return next((a for a in archs if a.n_heads == mid_heads), archs[0])

    depths = [a.n_layers for a in at_mid]
    head_counts = [a.n_heads for a in at_mid]
    corners = {
        "narrowest": prefer_mid_heads([a for a in grid if a.d_model == widths[0]]),
        "widest": prefer_mid_heads([a for a in grid if a.d_model == widths[-1]]),
        "shallowest": prefer_mid_heads([a for a in at_mid if a.n_layers == min(depths)]),
        "deepest": prefer_mid_heads([a for a in at_mid if a.n_layers == max(depths)]),
        "fewest_heads": next(a for a in at_mid if a.n_heads == min(head_counts)),
        "most_heads": next(a for a in at_mid if a.n_heads == max(head_counts)),
    }
    unique: dict[str, Arch] = {}
    for name, arch in corners.items():
        if arch not in unique.values():
            unique[name] = arch
    return unique
