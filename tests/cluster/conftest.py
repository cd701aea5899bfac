"""The inter-broker listener the failover tests run over: PLAINTEXT, and SASL_SSL (PLAIN, TLS,
the StandardAuthorizer with the broker user as super user; interop/secure_cluster.py `plain`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from interop.certs import Pki, make_pki
from interop.secure_cluster import SecureBrokers

INTER_BROKER = ("plaintext", "sasl_ssl")


@pytest.fixture(scope="session")
def inter_broker_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("inter-broker-pki"), clients=())


@pytest.fixture(params=INTER_BROKER)
def inter_broker(
    request: pytest.FixtureRequest, inter_broker_pki: Pki
) -> Callable[[int], tuple[int, dict[str, str]]] | None:
    """LocalCluster's `per_broker` (None: one PLAINTEXT listener)."""
    return None if request.param == "plaintext" else SecureBrokers("plain", inter_broker_pki)
