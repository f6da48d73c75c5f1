"""Reading a spec file: an experiment, or one study spec (what a Job's ConfigMap holds)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from finscale.errors import SpecError
from finscale.spec.base import describe_errors
from finscale.spec.experiment import ExperimentSpec
from finscale.spec.strict_yaml import parse_yaml, read_spec_text
from finscale.spec.study import StudySpec


def load_spec(path: Path) -> ExperimentSpec | StudySpec:
    """Read an experiment spec, or a single study spec (what a Job's ConfigMap holds).

    The file is read strictly (`finscale.spec.strict_yaml`): a regular file of bounded size,
    no key twice, no YAML 1.1 reading that surprises.

    Raises:
        SpecError: the file is missing, not a regular file, too large, not YAML, ambiguous, or
            does not validate; the message names the file, the field path and the value.
    """
    data = parse_yaml(read_spec_text(path), str(path))
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of spec fields, got {type(data).__name__}")
    model: type[ExperimentSpec] | type[StudySpec] = (
        StudySpec if "budget" in data else ExperimentSpec
    )
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise SpecError(describe_errors(e, str(path))) from None


def load_studies(path: Path) -> list[StudySpec]:
    """Every study of a spec file: an experiment's cells, or the one study spec.

    Raises:
        SpecError: see `load_spec`.
    """
    spec = load_spec(path)
    return spec.expand() if isinstance(spec, ExperimentSpec) else [spec]


def load_study(path: Path, name: str | None = None) -> StudySpec:
    """The study `name` of a spec file (an experiment, or one study spec).

    Raises:
        SpecError: a bad file, no such study, or no name given for an experiment of several.
    """
    spec = load_spec(path)
    if isinstance(spec, StudySpec):
        if name is not None and name != spec.name:
            raise SpecError(f"{path}: holds study {spec.name!r}, not {name!r}")
        return spec
    if name is None:
        studies = spec.expand()
        if len(studies) == 1:
            return studies[0]
        raise SpecError(
            f"{path}: experiment {spec.name} has {len(studies)} studies; name one with --study"
        )
    return spec.study(name)


def select_studies(studies: list[StudySpec], names: list[str] | None) -> list[StudySpec]:
    """The studies named (all when none), in the spec's order.

    Raises:
        SpecError: a name that is none of the studies (the message lists them).
    """
    if not names:
        return studies
    unknown = sorted(set(names) - {s.name for s in studies})
    if unknown:
        raise SpecError(f"no study {unknown[0]!r}; studies: {[s.name for s in studies]}")
    return [s for s in studies if s.name in names]
