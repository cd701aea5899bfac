"""Which addresses a client is given: those of the listener it connected to.

Kafka answers Metadata, DescribeCluster and FindCoordinator with each broker's
endpoint on the listener the request came in on (the host-plus-container
set-up: `INSIDE://kafka:9092` for containers, `OUTSIDE://localhost:29092` for
the host). A broker without an endpoint on that listener is left out, and a
coordinator there is not available. A request made in-process (no
connection) gets the first advertised listener.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkapy.cluster.inter_broker import inter_broker_security
from kafkapy.cluster.metadata import BrokerInfo, Endpoint
from kafkapy.config import ConfigError

if TYPE_CHECKING:
    from kafkapy.server.broker import Broker
    from kafkapy.server.handler import RequestContext


def advertised_broker(broker: Broker) -> BrokerInfo:
    """This broker as it registers: every advertised endpoint, host/port the inter-broker one.

    Raises StartupError with Kafka's message when the inter-broker listener is not usable.
    """
    from kafkapy.server.broker import StartupError

    config = broker.config
    try:
        inter, _ = config.inter_broker_listener()
        inter_broker_security(config)
        endpoints = {
            a.name: Endpoint(a.host, a.port, config.listener_security_protocol(a.name)) for a in broker.advertised
        }
    except ConfigError as e:
        raise StartupError(e.message) from None
    mine = endpoints[inter]  # inter_broker_listener checked it is advertised
    return BrokerInfo(config.effective_node_id, mine.host, mine.port, config.broker_rack, endpoints)


def client_listener(ctx: RequestContext) -> str | None:
    """The listener the request came in on (None: in-process, the first advertised listener)."""
    if ctx.conn is not None:
        return ctx.conn.listener_name
    return next(iter(ctx.state.advertised.endpoints), None)


def endpoint_for(ctx: RequestContext, broker: BrokerInfo) -> Endpoint | None:
    """Where this request's client reaches `broker`; None when it has no endpoint on that listener."""
    return broker.endpoint(client_listener(ctx))


def visible_brokers(ctx: RequestContext, brokers: list[BrokerInfo]) -> list[tuple[BrokerInfo, Endpoint]]:
    """`brokers` that have an endpoint on this request's listener, with that endpoint."""
    listener = client_listener(ctx)
    result = []
    for b in brokers:
        e = b.endpoint(listener)
        if e is not None:
            result.append((b, e))
    return result
