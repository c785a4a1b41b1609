"""Tests for cluster.placement's data model: JSON, validation errors, partition_of, diffs."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from cluster.placement import (
    Layout,
    LayoutDiff,
    LayoutError,
    NodeSpec,
    PartitionMove,
    compute_layout,
    diff_layouts,
    owners,
    partition_of,
)
from tests.unit.placement_support import make_nodes

# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    nodes = [*make_nodes(5, zones=["a", "b", "c", "a", "b"]), NodeSpec("gw", "c", 0)]
    layout = compute_layout(nodes, 3, partition_bits=6)
    data = layout.to_json()
    text = json.dumps(data)
    restored = Layout.from_json(json.loads(text))
    assert restored == layout
    assert restored.to_json() == data
    # Stable serialisation: same layout -> byte-identical JSON, whatever the input order.
    again = compute_layout(list(reversed(nodes)), 3, partition_bits=6)
    assert json.dumps(again.to_json()) == text
    assert list(data) == ["version", "partition_bits", "replication_factor", "nodes", "assignment"]
    assert data["nodes"][0] == {"id": "gw", "zone": "c", "capacity": 0}


def test_round_tripped_layout_works_as_previous() -> None:
    nodes = make_nodes(4)
    layout = compute_layout(nodes, 3)
    restored = Layout.from_json(json.loads(json.dumps(layout.to_json())))
    assert compute_layout(nodes, 3, previous=restored).assignment == layout.assignment


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("assignment"),
        lambda d: d.update(assignment=d["assignment"][:-1]),
        lambda d: d.update(assignment="nope"),
        lambda d: d["assignment"].__setitem__(0, ["n00", "n00", "n01"]),
        lambda d: d["assignment"].__setitem__(0, ["n00", "n01"]),
        lambda d: d["assignment"].__setitem__(0, ["n00", "n01", "ghost"]),
        lambda d: d["assignment"].__setitem__(0, ["n00", "n01", 3]),
        lambda d: d["nodes"].append({"id": "n00", "zone": "z", "capacity": 1}),
        lambda d: d["nodes"].append({"id": "x", "zone": "z"}),
        lambda d: d["nodes"].__setitem__(2, {"id": "n02", "zone": "z2", "capacity": 0}),
        lambda d: d.update(replication_factor=0),
        lambda d: d.update(partition_bits=11),
        lambda d: d.update(version="1"),
    ],
)
def test_from_json_rejects_malformed(mutate: Callable[[dict[str, Any]], object]) -> None:
    data = json.loads(json.dumps(compute_layout(make_nodes(3), 3, partition_bits=2).to_json()))
    mutate(data)
    with pytest.raises(LayoutError):
        Layout.from_json(data)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_no_storage_node_is_an_error() -> None:
    with pytest.raises(LayoutError, match="no storage node"):
        compute_layout([], 3)
    with pytest.raises(LayoutError, match="no storage node"):
        compute_layout([NodeSpec("gw1", "a", 0), NodeSpec("gw2", "b", 0)], 3)


@pytest.mark.parametrize("rf", [0, -1])
def test_bad_replication_factor(rf: int) -> None:
    with pytest.raises(LayoutError, match="replication_factor"):
        compute_layout(make_nodes(3), rf)


@pytest.mark.parametrize("bits", [-1, 11, 16])
def test_bad_partition_bits(bits: int) -> None:
    with pytest.raises(LayoutError, match="partition_bits"):
        compute_layout(make_nodes(3), 3, partition_bits=bits)


def test_duplicate_node_ids() -> None:
    with pytest.raises(LayoutError, match="duplicate"):
        compute_layout([NodeSpec("a", "z1", 1), NodeSpec("a", "z2", 1)], 1)


@pytest.mark.parametrize(
    ("node_id", "zone", "capacity"),
    [("", "z", 1), ("a", "", 1), ("a", "z", -1), ("a", "z", 1.5), ("a", "z", True)],
)
def test_bad_node_spec(node_id: str, zone: str, capacity: int) -> None:
    with pytest.raises(LayoutError):
        NodeSpec(node_id, zone, capacity)


def test_layout_constructor_validates() -> None:
    nodes = (NodeSpec("a", "z", 1), NodeSpec("b", "z", 1))
    ok = Layout(1, 1, 2, nodes, (("a", "b"), ("b", "a")))
    assert ok.num_partitions == 2
    with pytest.raises(LayoutError):
        Layout(1, 1, 2, nodes, (("a", "b"),))
    with pytest.raises(LayoutError):
        Layout(1, 1, 2, nodes, (("a", "a"), ("b", "a")))
    with pytest.raises(LayoutError):
        Layout(1, 1, 2, nodes, (("a", "c"), ("b", "a")))


# --------------------------------------------------------------------------------------------
# partition_of / owners
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "bits", "expected"),
    [
        ("00", 8, 0),
        ("ff", 8, 255),
        ("80", 8, 128),
        ("7f", 8, 127),
        ("01", 8, 1),
        ("FF", 8, 255),
        ("0000", 10, 0),
        ("003f", 10, 0),
        ("0040", 10, 1),
        ("ffc0", 10, 1023),
        ("ffff", 10, 1023),
        ("8000", 10, 512),
        ("7fff", 1, 0),
        ("8000", 1, 1),
        ("ffff", 0, 0),
        ("a0", 4, 10),
    ],
)
def test_partition_of_boundaries(prefix: str, bits: int, expected: int) -> None:
    chunk_id = prefix + "0" * (64 - len(prefix))
    assert partition_of(chunk_id, bits) == expected
    chunk_id = prefix + "f" * (64 - len(prefix))
    assert partition_of(chunk_id, bits) == expected


def test_partition_of_matches_sha256_leading_bits() -> None:
    for i in range(200):
        digest = hashlib.sha256(str(i).encode()).digest()
        hex_id = digest.hex()
        assert partition_of(hex_id, 8) == digest[0]
        assert partition_of(hex_id, 10) == int.from_bytes(digest[:2], "big") >> 6
        # Splitting partitions: a finer partition lies inside its coarse parent.
        assert partition_of(hex_id, 10) >> 2 == partition_of(hex_id, 8)


@pytest.mark.parametrize("bad", ["", "xyz", "0x12ab", "12 34", "g" * 64, "1_2_3_4"])
def test_partition_of_rejects_non_hex(bad: str) -> None:
    with pytest.raises(ValueError, match="hex string"):
        partition_of(bad, 8)


def test_partition_of_rejects_too_short_and_bad_bits() -> None:
    with pytest.raises(ValueError, match="too short"):
        partition_of("f", 8)
    assert partition_of("f", 4) == 15
    with pytest.raises(LayoutError):
        partition_of("ff" * 32, 11)


def test_owners() -> None:
    nodes = make_nodes(5)
    layout = compute_layout(nodes, 3)
    seen: Counter[str] = Counter()
    for i in range(2000):
        hex_id = hashlib.sha256(i.to_bytes(4, "big")).hexdigest()
        result = owners(layout, hex_id)
        assert result == layout.assignment[partition_of(hex_id, 8)]
        assert result == layout.owners(hex_id)
        assert len(set(result)) == 3
        seen.update(result)
    # Equal nodes share the load: 6000 replicas, ~1200 each.
    assert all(1000 <= c <= 1400 for c in seen.values()), seen


# --------------------------------------------------------------------------------------------
# diff_layouts
# --------------------------------------------------------------------------------------------


def test_diff_layouts_fields() -> None:
    old = compute_layout(make_nodes(3), 2, partition_bits=4)
    nodes = make_nodes(4)
    new = compute_layout(nodes, 2, partition_bits=4, previous=old)
    diff = diff_layouts(old, new)
    assert isinstance(diff, LayoutDiff)
    assert (diff.old_version, diff.new_version) == (1, 2)
    assert diff.moved_replicas == sum(len(m.added_nodes) for m in diff.moves)
    assert diff.partitions_changed == tuple(m.partition for m in diff.moves)
    assert list(diff.partitions_changed) == sorted(diff.partitions_changed)
    assert sum(diff.counts_before.values()) == sum(diff.counts_after.values()) == 32
    assert diff.total_replicas == 32
    assert diff.counts_after["n03"] == 8
    for move in diff.moves:
        assert isinstance(move, PartitionMove)
        partition, removed, added = move  # plain tuple shape
        assert set(old.assignment[partition]) - set(removed) | set(added) == set(
            new.assignment[partition]
        )
        assert removed == tuple(sorted(removed))
    for p in set(range(16)) - set(diff.partitions_changed):
        assert set(old.assignment[p]) == set(new.assignment[p])
    data = json.loads(json.dumps(diff.to_json()))
    assert data["moved_replicas"] == diff.moved_replicas
    assert len(data["moves"]) == len(diff.moves)


def test_diff_of_identical_layouts_is_empty() -> None:
    layout = compute_layout(make_nodes(4), 3)
    diff = diff_layouts(layout, layout)
    assert diff.moves == ()
    assert diff.moved_replicas == 0
    assert diff.counts_before == diff.counts_after
