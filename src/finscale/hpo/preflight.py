"""Everything a spec's studies need, checked for all of them before any starts: `finscale
check`, and the first step of `finscale run` and `finscale render`.

Per study: a budget with architectures (else the nearest budgets that have some), the dataset
registered and its file present (the version the spec pins, or the one a stored study is pinned
to), and, where the study is already stored, the same search definition and the same code.
Once for the spec: the storage reachable. Every problem is collected, so one check lists them
all; nothing is created (the storage is opened for reading only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from finscale.errors import FinscaleError, SpecError
from finscale.hpo.inputs import feature_count, study_grid
from finscale.model import Arch
from finscale.settings import Settings
from finscale.spec import StudySpec
from finscale.tiers import dataset_kind


@dataclass(frozen=True)
class StudyCheck:
    """What one study of the spec would run, and what stands in its way."""

    name: str
    budget: str
    dataset: str
    num_features: int | None  # None: neither the data nor the dataset's kind says
    grid: tuple[Arch, ...]
    stored: str  # "new", "stored" (the same search), or "" when the storage was not read
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpecCheck:
    """The check of a whole spec."""

    path: Path
    studies: tuple[StudyCheck, ...]
    storage: str  # the storage's URL, shown without a password, and what was found there
    problems: tuple[str, ...] = field(default=())  # the spec's own (the storage)

    @property
    def all_problems(self) -> list[str]:
        return [*self.problems, *(f"study {s.name}: {p}" for s in self.studies for p in s.problems)]

    @property
    def ok(self) -> bool:
        return not self.all_problems


def _features(spec: StudySpec, settings: Settings | None) -> tuple[int | None, str]:
    """The study's feature count and the problem with its data ("" when none). With `settings`
    None the data is not looked at: the count comes from the dataset's kind (`render` knows no
    data folder)."""
    from finscale.data.manifest import find_dataset

    kind_count: int | None
    try:
        kind_count = dataset_kind(spec.data.dataset).num_features
    except ValueError:
        kind_count = None
    if settings is None:
        return kind_count, ""
    try:
        entry = find_dataset(settings.data_dir, spec.data.dataset, sha256=spec.data.sha256)
    except FinscaleError as e:
        return kind_count, str(e)
    return feature_count(entry), ""


def check_study(spec: StudySpec, settings: Settings | None) -> StudyCheck:
    """One study's grid and data (`settings` None: the grid alone, from the dataset's kind)."""
    num_features, data_problem = _features(spec, settings)
    problems = [data_problem] if data_problem else []
    grid: list[Arch] = []
    if num_features is not None:
        try:
            grid = study_grid(spec, num_features=num_features)
        except SpecError as e:
            problems.insert(0, str(e).removeprefix(f"study {spec.name}: "))
    return StudyCheck(
        name=spec.name,
        budget=spec.budget,
        dataset=spec.data.dataset,
        num_features=num_features,
        grid=tuple(grid),
        stored="",
        problems=tuple(problems),
    )


def check_inputs(specs: Sequence[StudySpec], settings: Settings) -> None:
    """What `run` checks before it creates anything: every study's grid and data, all at once.

    Raises:
        SpecError: one line per problem, of every study (exit 2).
    """
    problems = [
        f"study {c.name}: {p}"
        for s in specs
        for c in [check_study(s, settings)]
        for p in c.problems
    ]
    if problems:
        raise SpecError("\n".join(problems))


def check_grids(specs: Sequence[StudySpec]) -> list[str]:
    """Every study's budget against its dataset kind's feature count, without data or storage:
    what `render` checks before it writes a Job."""
    return [
        f"study {c.name}: {p}" for s in specs for c in [check_study(s, None)] for p in c.problems
    ]


def check_specs(path: Path, specs: Sequence[StudySpec], settings: Settings) -> SpecCheck:
    """Every study of the spec at `path`, then the storage (read only) and the studies in it."""
    studies = [check_study(s, settings) for s in specs]
    storage, problems, stored = _storage(specs, studies, settings)
    checked = tuple(
        dataclasses.replace(c, stored=state, problems=c.problems + found)
        for c in studies
        for state, found in [stored.get(c.name, ("", ()))]
    )
    return SpecCheck(path=path, studies=checked, storage=storage, problems=tuple(problems))


def _storage(
    specs: Sequence[StudySpec], studies: Sequence[StudyCheck], settings: Settings
) -> tuple[str, list[str], dict[str, tuple[str, tuple[str, ...]]]]:
    """The storage's line, its problem, and per study ("new" or "stored", its problems)."""
    from finscale.hpo.fit import check_stored_spec
    from finscale.hpo.storage import display_url, open_for_reading
    from finscale.hpo.study import Code, check_code
    from finscale.identity import code_sha256
    from finscale.records import ATTR_CODE_SHA256, ATTR_DATASET_SHA256

    shown = display_url(settings.storage_url)
    fast = settings.model_copy(update={"storage_deadline_s": min(settings.storage_deadline_s, 15)})
    try:
        storage = open_for_reading(fast)
    except FinscaleError as e:
        return shown, [f"storage {shown}: {e}"], {}
    if storage is None:
        return f"{shown}: no studies yet (created by the first run)", [], {}
    names = {s.study_name for s in storage.get_all_studies()}
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    code = Code(code_sha256(), allow_change=settings.allow_code_change)
    for spec, check in zip(specs, studies, strict=True):
        if spec.name not in names:
            out[spec.name] = ("new", ())
            continue
        attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(spec.name))
        problems: list[str] = []
        pinned = attrs.get(ATTR_DATASET_SHA256)
        if check.num_features is not None and pinned and not check.problems:
            try:
                check_stored_spec(
                    spec, attrs, dataset_sha256=str(pinned), num_features=check.num_features,
                    url=storage.url, doing="run",
                )  # fmt: skip
                check_code(spec.name, attrs.get(ATTR_CODE_SHA256), code, url=storage.url)
            except FinscaleError as e:
                text = str(e).replace("\n", "; ")
                problems.append(text.removeprefix(f"study {spec.name} in "))
        out[spec.name] = ("stored", tuple(problems))
    stored = sum(1 for state, _ in out.values() if state == "stored")
    return f"{shown}: reachable, {stored} of {len(specs)} studies stored", [], out
