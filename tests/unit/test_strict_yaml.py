"""Specs read as YAML 1.2 would read them, refusing what YAML 1.1 reads by surprise."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from finscale.errors import SpecError
from finscale.spec.overrides import parse_assignments
from finscale.spec.strict_yaml import MAX_BYTES, parse_yaml, read_spec_text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a: yes", {"a": "yes"}),  # text, as in YAML 1.2 (YAML 1.1: True)
        ("a: off", {"a": "off"}),
        ("a: true", {"a": True}),
        ("a: 1e-4", {"a": 1e-4}),  # a number (YAML 1.1: the string '1e-4')
        ("a: 2015-02-30", {"a": "2015-02-30"}),  # dates stay text for their field to parse
        ("a: 0", {"a": 0}),
        ("a: 10", {"a": 10}),
        ("a: '010'", {"a": "010"}),  # quoted: text
        ("a: ~", {"a": None}),
    ],
)
def test_values_read_as_yaml_1_2_reads_them(text: str, value: object) -> None:
    assert parse_yaml(text, "s.yaml") == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: 2\na: 3", r"s\.yaml: a \(line 3\): given twice \(first on line 1\)"),
        ("x:\n  a: 010", r"s\.yaml: x\.a \(line 2\): '010' has a leading zero"),
        ("a: 1:30", r"s\.yaml: a \(line 1\): '1:30' is a base-60 number in YAML 1\.1 \(90\)"),
        ("b: &b {c: 1}\na: {<<: *b}", r"merge keys \(<<\) are not accepted"),
        ("a: !!python/object:os.system x", r"the tag !!python/object:os\.system is not accepted"),
        ("a: !!binary aGk=", r"the tag !!binary is not accepted"),
        ("a: " + "[" * 40 + "]" * 40, r"nested deeper than 32 levels"),
        ("a: [1", r"s\.yaml: not valid YAML"),
    ],
)
def test_ambiguous_or_unsafe_yaml_is_refused_naming_field_line_and_value(
    text: str, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        parse_yaml(text, "s.yaml")


def test_a_quoted_value_is_cut_short_in_the_message() -> None:
    with pytest.raises(SpecError) as raised:
        parse_yaml("a: 0" + "1" * 100_000, "s.yaml")
    assert len(str(raised.value)) < 400
    assert "… (100,003 characters)" in str(raised.value)  # the repr, quotes included


def test_only_a_small_regular_file_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_BYTES)
    with pytest.raises(SpecError, match=r"big\.yaml: larger than 64 KiB"):
        read_spec_text(big)
    with pytest.raises(SpecError, match=r"is a folder, not a spec file"):
        read_spec_text(tmp_path)
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(SpecError, match=r"zero\.yaml: not a regular file \(a character device\)"):
        read_spec_text(link)


def test_set_values_are_read_as_strictly_as_a_spec() -> None:
    assert parse_assignments(["split.val_start=2015-01-01", "model.revin=no"]) == {
        "split": {"val_start": "2015-01-01"},
        "model": {"revin": "no"},
    }
    with pytest.raises(SpecError, match=r"--set 'n_trials=010': n_trials \(line 1\): '010' has"):
        parse_assignments(["n_trials=010"])
    assert date.fromisoformat(parse_assignments(["d=2015-01-01"])["d"]) == date(2015, 1, 1)
