"""Full fetches that name a session close it (KIP-227, as Kafka's FetchManager).

The Java consumer answers a fetch error or a lost connection by sending
(its old session id, epoch INITIAL): "close mine, open a new one". After a
broker restart that id may be unknown or, worse, reissued to another client;
either way the answer must be a new session, never INVALID_FETCH_SESSION_EPOCH
(the Java client would resend the same request forever: MirrorMaker 2's
offset store hung that way after a kafkapy restart).
"""

from __future__ import annotations

import time

from kafkapy.protocol import records
from kafkapy.protocol.error_codes import ErrorCode
from kafkapy.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkapy.testing import BrokerProcess
from tests.server.rawclient import RawClient
from tests.server.test_broker import create_topic, produce

INITIAL, FINAL = 0, -1


def fetch(c: RawClient, session_id: int, epoch: int, topic: str = "reset") -> object:
    parts = [FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)]
    req = FetchRequest(
        max_wait_ms=0,
        min_bytes=0,
        max_bytes=1 << 20,
        session_id=session_id,
        session_epoch=epoch,
        topics=[FetchTopic(topic=topic, partitions=parts)],
    )
    return c.request(req, 11)


def test_full_fetch_naming_a_session_closes_it(kafka_broker: BrokerProcess) -> None:
    with RawClient(kafka_broker.bootstrap) as c, RawClient(kafka_broker.bootstrap) as other:
        assert create_topic(c, "reset") == 0
        produce(c, "reset", records.build_batch([(None, b"v", [], int(time.time() * 1000))]))

        first = fetch(c, 0, INITIAL)
        assert first.error_code == 0 and first.session_id > 0
        # another client's session, a few epochs on
        theirs = fetch(other, 0, INITIAL)
        assert fetch(other, theirs.session_id, 1).error_code == 0

        # (own id, INITIAL): the old session is closed and a new one opened, with the data
        again = fetch(c, first.session_id, INITIAL)
        assert again.error_code == 0 and again.session_id not in (0, first.session_id)
        assert [p.partition_index for t in again.responses for p in t.partitions] == [0]
        assert fetch(c, first.session_id, 1).error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND

        # (an id the broker does not know, INITIAL): a new session, not an error
        unknown = fetch(c, 0x7FFFFFF0 if again.session_id != 0x7FFFFFF0 else 0x7FFFFFF1, INITIAL)
        assert unknown.error_code == 0 and unknown.session_id > 0

        # (id, FINAL): closed, and served without a session
        final = fetch(c, unknown.session_id, FINAL)
        assert final.error_code == 0 and final.session_id == 0
        assert fetch(c, unknown.session_id, 1).error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND

        # the other client's session is untouched
        assert fetch(other, theirs.session_id, 2).error_code == 0


def test_session_ids_are_not_reissued_after_a_restart(kafka_broker: BrokerProcess) -> None:
    with RawClient(kafka_broker.bootstrap) as c:
        assert create_topic(c, "reset") == 0
        before = {fetch(c, 0, INITIAL).session_id for _ in range(5)}
    kafka_broker.restart()
    with RawClient(kafka_broker.bootstrap) as c:
        after = {fetch(c, 0, INITIAL).session_id for _ in range(5)}
    assert not before & after
