"""The transform's geometry, sans-I/O (protocols/img/geometry.py)."""

from __future__ import annotations

import pytest

from protocols.img import geometry
from protocols.img.params import parse_params


@pytest.mark.parametrize(("gravity", "rotate", "expected"), [
    ("no", 0, "no"), ("no", 90, "we"), ("ea", 90, "no"), ("so", 90, "ea"), ("we", 90, "so"),
    ("no", 180, "so"), ("ea", 180, "we"), ("no", 270, "ea"), ("we", 270, "no"),
    ("ce", 90, "ce"), ("sm", 270, "sm"),
])
def test_a_result_gravity_seen_from_the_unrotated_source(
    gravity: str, rotate: int, expected: str,
) -> None:
    assert geometry.source_gravity(gravity, rotate) == expected


@pytest.mark.parametrize(("query", "size"), [
    ("", (4000, 3000)),
    ("w=400", (400, 300)),
    ("h=300&w=300", (300, 225)),
    ("w=300&h=300&fit=cover", (300, 300)),
    ("w=300&h=300&fit=pad", (300, 300)),
    ("w=300&h=100&fit=fill", (300, 100)),
    ("w=5000&h=100&fit=crop", (4000, 100)),
    ("w=400&h=100&fit=fill&rotate=90", (400, 100)),
    ("rotate=270", (3000, 4000)),
    ("w=300&rotate=90", (300, 400)),
])
def test_planned_size(query: str, size: tuple[int, int]) -> None:
    assert geometry.planned_size(4000, 3000, parse_params(query)) == size


def test_upright_size_follows_exif_orientation() -> None:
    assert geometry.upright_size(40, 30, 1) == (40, 30)
    assert geometry.upright_size(40, 30, 6) == (30, 40)
    assert geometry.upright_size(40, 30, 3) == (40, 30)


@pytest.mark.parametrize(("gravity", "offset"), [
    ("ce", (30, 15)), ("sm", (30, 15)), ("no", (30, 0)), ("so", (30, 30)),
    ("we", (0, 15)), ("ea", (60, 15)),
])
def test_placement(gravity: str, offset: tuple[int, int]) -> None:
    assert geometry.placement((40, 20), (100, 50), gravity) == offset


@pytest.mark.parametrize(("size", "gravity", "interest"), [
    ((400, 200), "we", "low"), ((400, 200), "ea", "high"), ((400, 200), "no", "centre"),
    ((200, 400), "no", "low"), ((200, 400), "so", "high"), ((200, 400), "we", "centre"),
    ((400, 200), "sm", "attention"), ((400, 200), "ce", "centre"),
])
def test_cover_cuts_along_the_axis_that_overflows(
    size: tuple[int, int], gravity: str, interest: str,
) -> None:
    assert geometry.cover_interest(*size, (100, 100), gravity) == interest
