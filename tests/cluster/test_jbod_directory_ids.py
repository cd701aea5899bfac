"""A clustered broker's directory ids with several log dirs (KIP-858 in etcd): each dir gets its own
meta.properties and `directory.id`; the broker's id in its registration and `broker-dirs/<id>` is
theirs joined in log.dirs order (one dir: that dir's id, as before); a copied dir (same id twice)
refuses the start; losing one dir changes the broker's id."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kafkapy.cluster.etcd_metadata import _check_meta_properties, _directory_ids
from kafkapy.cluster.metadata import MetadataError

CLUSTER = "jbod-cluster-id-000000"


def _props(d: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (d / "meta.properties").read_text().splitlines() if "=" in line)


def test_one_dir_keeps_its_single_id(tmp_path: Path) -> None:
    one = _directory_ids([tmp_path / "a"], CLUSTER, 1)
    assert "," not in one and one == _props(tmp_path / "a")["directory.id"]
    assert _directory_ids([tmp_path / "a"], CLUSTER, 1) == one  # stable across restarts


def test_several_dirs_each_with_its_own_id(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ids = _directory_ids([a, b], CLUSTER, 1)
    assert ids == f"{_props(a)['directory.id']},{_props(b)['directory.id']}"
    assert _props(a)["directory.id"] != _props(b)["directory.id"]
    assert _props(b)["cluster.id"] == CLUSTER and _props(b)["node.id"] == "1"
    assert _directory_ids([a, b], CLUSTER, 1) == ids
    # a dir emptied (a disk replaced): a new id for it, so the broker's id changes
    shutil.rmtree(b)
    again = _directory_ids([a, b], CLUSTER, 1)
    assert again.split(",")[0] == ids.split(",")[0] and again != ids


def test_a_copied_dir_refuses_the_start(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _check_meta_properties(a, CLUSTER, 1)
    shutil.copytree(a, b)
    with pytest.raises(MetadataError, match=r"share a directory\.id"):
        _directory_ids([a, b], CLUSTER, 1)


def test_a_dir_of_another_broker_refuses_the_start(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _check_meta_properties(b, CLUSTER, 2)
    with pytest.raises(MetadataError, match="belongs to broker 2"):
        _directory_ids([a, b], CLUSTER, 1)
