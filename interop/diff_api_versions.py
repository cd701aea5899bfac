"""ApiVersions (18) as Apache Kafka 4.3.1 and 4.4.0 answer it on a broker listener: every API key with
its min and max version, the supported features and the finalized feature levels. Recorded against a
fresh one-node KRaft broker of each release (golden files, one per release) and compared with
kafkapy's answer by interop/test_api_versions_reference.py, which needs no JVM.

    python -m interop.diff_api_versions record   # both releases: golden_kafka/api_versions_<release>.json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from interop._common import load_golden, record_golden
from kafkapy.protocol.api import APIS
from kafkapy.protocol.messages.api_versions_request import ApiVersionsRequest
from tests.server.rawclient import RawClient

GOLDEN_DIR = Path(__file__).resolve().parent / "golden_kafka"
# None: interop/java's pinned release; "4.4.0": interop/java44's (interop/apache_kafka.py start_kafka)
RELEASES: dict[str, str | None] = {"4.3.1": None, "4.4.0": "4.4.0"}
# Kafka's finalized features reach ApiVersions from the metadata log shortly after the broker is ready
SETTLE_S = 1.0
# API keys Kafka has and kafkapy's generated codec index (kafkapy/protocol/api.py) does not name yet
EXTRA_NAMES = {
    88: "StreamsGroupHeartbeat",
    89: "StreamsGroupDescribe",
    90: "DescribeShareGroupOffsets",
    91: "AlterShareGroupOffsets",
    92: "DeleteShareGroupOffsets",
    93: "StreamsGroupTopologyDescriptionUpdate",
    94: "UnregisterController",
}


def api_name(key: int) -> str:
    for spec in APIS:
        if spec.api_key == key:
            return spec.name
    return EXTRA_NAMES.get(key, f"ApiKey{key}")


def golden_path(release: str) -> Path:
    return GOLDEN_DIR / f"api_versions_{release}.json"


def run(bootstrap: str) -> dict[str, Any]:
    """One ApiVersions v4 request (v3 leaves out the supported features whose min version is 0,
    KAFKA-17011), its answer in a stable form."""
    with RawClient(bootstrap) as c:
        resp = c.request(
            ApiVersionsRequest(client_software_name="kafkapy-api-versions", client_software_version="1"), 4
        )
    return {
        "error_code": resp.error_code,
        "api_keys": {
            str(a.api_key): [a.min_version, a.max_version] for a in sorted(resp.api_keys, key=lambda a: a.api_key)
        },
        "supported_features": {f.name: [f.min_version, f.max_version] for f in resp.supported_features},
        "finalized_features": {f.name: [f.min_version_level, f.max_version_level] for f in resp.finalized_features},
        "finalized_features_epoch_set": resp.finalized_features_epoch >= 0,
    }


def served(answer: dict[str, Any]) -> dict[int, tuple[int, int]]:
    """API key -> (min, max) of a `run` answer."""
    return {int(k): (int(v[0]), int(v[1])) for k, v in answer["api_keys"].items()}


def record() -> list[Path]:
    return [
        record_golden(golden_path(release), f"api-versions-{release}-", run, settle=SETTLE_S, release=which)
        for release, which in RELEASES.items()
    ]


def load(release: str) -> dict[str, Any]:
    return load_golden(golden_path(release), meta=False)


if __name__ == "__main__":
    if sys.argv[1:] == ["record"]:
        for path in record():
            print(path)
    else:
        print(__doc__)
