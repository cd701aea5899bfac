"""Smoke test of `scripts/bench tiered` (scripts/bench_tiered.py) with a tiny load, so the script keeps
working: SeaweedFS and a directory as object stores, one round of 3 MB in 256 KiB segments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka")
pytest.importorskip("botocore")

REPO = Path(__file__).resolve().parent.parent


def test_bench_tiered_smoke() -> None:
    from kafkapy.testing import S3ServerStartError, weed_binary

    try:
        weed_binary()
    except S3ServerStartError as exc:
        pytest.skip(str(exc))
    args = ["--mb", "3", "--segment-mb", "0.25", "--repeats", "1", "--stores", "s3,dir"]
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench"), "tiered", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("| consume MB/s from offset 0, remote |") for line in lines)
    rounds = json.loads(lines[-1])
    for store in ("s3", "dir"):
        (figures,) = rounds[store]
        # every closed byte was copied (the broker's RemoteCopyBytes agrees) and read back from the store
        assert figures["copy_metric_mb"] == pytest.approx(figures["closed_mb"])
        assert figures["closed_mb"] > 2
        assert figures["consumed_mb"] > 2
        for key in ("copy_mb_s", "consume_local_mb_s", "consume_remote_mb_s", "produce_tiered_mb_s"):
            assert figures[key] > 0
