"""EtcdClient, Lease and start_etcd against a real etcd process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kafkapy.cluster.etcd import (
    Compare,
    EtcdClient,
    EtcdCompacted,
    EtcdUnavailable,
    KeyValue,
    Lease,
    Op,
    WatchEvent,
    _JsonSplitter,
    prefix_range_end,
)
from kafkapy.cluster.etcd_server import EtcdServer, etcd_binary, start_etcd

T = TypeVar("T")

try:
    etcd_binary()
except FileNotFoundError as e:  # pragma: no cover
    pytest.skip(str(e), allow_module_level=True)


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = start_etcd(tmp_path_factory.mktemp("etcd") / "data")
    yield server
    server.stop()


def run(fn: Callable[[EtcdClient], Awaitable[T]], server: EtcdServer, *, timeout: float = 5.0) -> T:
    async def body() -> T:
        client = await EtcdClient.connect(server.url, timeout=timeout)
        try:
            return await fn(client)
        finally:
            await client.close()

    return asyncio.run(body())


def compact(server: EtcdServer, revision: int) -> None:
    req = urllib.request.Request(
        f"http://{server.endpoint}/v3/kv/compaction",
        data=json.dumps({"revision": str(revision)}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200


async def collect(agen: Any, n: int, timeout: float) -> list[WatchEvent]:
    """The first n events of a watch (batches flattened)."""
    out: list[WatchEvent] = []

    async def go() -> None:
        async for batch in agen:
            out.extend(batch)
            if len(out) >= n:
                return

    await asyncio.wait_for(go(), timeout)
    return out


# ------------------------------------------------------------------ KV


def test_prefix_range_end() -> None:
    assert prefix_range_end(b"/a/") == b"/a0"
    assert prefix_range_end(b"a\xff") == b"b"
    assert prefix_range_end(b"\xff\xff") == b"\0"
    assert prefix_range_end(b"") == b"\0"


def test_put_get_prefix_delete(etcd: EtcdServer) -> None:
    async def body(c: EtcdClient) -> None:
        r1 = await c.put(b"/kv/b", b"2")
        r2 = await c.put(b"/kv/a", b"1")
        await c.put(b"/kv0", b"outside")  # shares the text "/kv" but not the prefix "/kv/"
        await c.put(b"/kv/a", b"1bis")
        assert r2 == r1 + 1
        kv = await c.get(b"/kv/a")
        assert kv is not None
        assert (kv.key, kv.value, kv.create_revision, kv.version, kv.lease) == (b"/kv/a", b"1bis", r2, 2, 0)
        assert kv.mod_revision == r2 + 2
        assert await c.get(b"/kv/missing") is None

        kvs, rev = await c.get_prefix(b"/kv/")
        assert [(k.key, k.value) for k in kvs] == [(b"/kv/a", b"1bis"), (b"/kv/b", b"2")]
        assert rev == kv.mod_revision  # snapshot revision = latest write

        await c.put(b"/kv/empty", b"")
        empty = await c.get(b"/kv/empty")
        assert empty is not None and empty.value == b""
        binary = bytes(range(256))
        await c.put(b"/kv/bin\xff", binary)
        got = await c.get(b"/kv/bin\xff")
        assert got is not None and got.value == binary

        assert await c.delete(b"/kv/b") == 1
        assert await c.delete(b"/kv/b") == 0
        assert await c.delete(b"/kv/", prefix=True) == 3
        assert (await c.get_prefix(b"/kv/"))[0] == []
        assert (await c.get(b"/kv0")) is not None

    run(body, etcd)


def test_concurrent_callers(etcd: EtcdServer) -> None:
    async def body(c: EtcdClient) -> None:
        revs = await asyncio.gather(*(c.put(b"/conc/%03d" % i, b"%d" % i) for i in range(200)))
        assert len(set(revs)) == 200
        values = await asyncio.gather(*(c.get(b"/conc/%03d" % i) for i in range(200)))
        assert [v.value if v else None for v in values] == [b"%d" % i for i in range(200)]
        kvs, _ = await c.get_prefix(b"/conc/")
        assert [kv.key for kv in kvs] == [b"/conc/%03d" % i for i in range(200)]

    run(body, etcd)


def test_put_get_round_trip_median(etcd: EtcdServer) -> None:
    async def body(c: EtcdClient) -> float:
        times = []
        for i in range(300):
            t0 = time.perf_counter()
            await c.put(b"/rtt", b"%d" % i)
            kv = await c.get(b"/rtt")
            times.append(time.perf_counter() - t0)
            assert kv is not None and kv.value == b"%d" % i
        return statistics.median(times)

    median = run(body, etcd)
    print(f"put+get round trip median: {median * 1000:.2f} ms")
    assert median < 0.05


# ------------------------------------------------------------------ txn


def test_txn_create_if_absent(etcd: EtcdServer) -> None:
    async def body(c: EtcdClient) -> None:
        key = b"/txn/id"
        first = await c.txn([Compare.create_revision(key, "=", 0)], [Op.put(key, b"A")], [Op.get(key)])
        assert first.succeeded and first.responses == [[]]
        second = await c.txn([Compare.create_revision(key, "=", 0)], [Op.put(key, b"B")], [Op.get(key)])
        assert not second.succeeded
        assert second.revision == first.revision  # nothing written
        [[kv]] = second.responses
        assert kv.value == b"A" and kv.create_revision == first.revision

    run(body, etcd)


def test_txn_mod_revision_cas_loses_to_concurrent_writer(etcd: EtcdServer) -> None:
    async def body(c: EtcdClient) -> None:
        key = b"/txn/cas"
        await c.put(key, b"v1")
        seen = await c.get(key)
        assert seen is not None
        other = await EtcdClient.connect(etcd.url)  # a concurrent writer
        try:
            await other.put(key, b"theirs")
        finally:
            await other.close()
        res = await c.txn([Compare.mod_revision(key, "=", seen.mod_revision)], [Op.put(key, b"mine")], [Op.get(key)])
        assert not res.succeeded
        assert res.responses[0][0].value == b"theirs"
        fresh = res.responses[0][0]
        res = await c.txn([Compare.mod_revision(key, "=", fresh.mod_revision)], [Op.put(key, b"mine")], [Op.get(key)])
        assert res.succeeded
        kv = await c.get(key)
        assert kv is not None and kv.value == b"mine" and kv.mod_revision == res.revision

    run(body, etcd)


def test_txn_each_compare_kind(etcd: EtcdServer) -> None:
    async def body(c: EtcdClient) -> None:
        k = b"/txn/kinds"
        await c.put(k, b"m")
        await c.put(k, b"m")  # version 2
        kv = await c.get(k)
        assert kv is not None

        async def holds(cmp: Compare) -> bool:
            return (await c.txn([cmp], [], [])).succeeded

        assert await holds(Compare.value(k, "=", b"m"))
        assert not await holds(Compare.value(k, "!=", b"m"))
        assert await holds(Compare.value(k, ">", b"a"))
        assert await holds(Compare.value(k, "<", b"z"))
        assert await holds(Compare.version(k, "=", 2))
        assert not await holds(Compare.version(k, ">", 2))
        assert await holds(Compare.mod_revision(k, "=", kv.mod_revision))
        assert await holds(Compare.create_revision(k, "<", kv.mod_revision))
        assert not await holds(Compare.create_revision(k, "=", 0))
        assert await holds(Compare.lease(k, "=", 0))
        lease = await c.lease_grant(10)
        await c.put(k, b"m", lease=lease)
        assert await holds(Compare.lease(k, "=", lease))
        assert not await holds(Compare.lease(k, "!=", lease))
        await c.lease_revoke(lease)
        assert await c.get(k) is None
        with pytest.raises(ValueError):
            Compare.value(k, "==", b"m")

        # several compares and ops, both branches
        res = await c.txn(
            [Compare.create_revision(b"/tk/x", "=", 0), Compare.create_revision(b"/tk/y", "=", 0)],
            [Op.put(b"/tk/x", b"1"), Op.put(b"/tk/y", b"2"), Op.get(b"/tk/", prefix=True)],
        )
        assert res.succeeded
        assert res.responses[:2] == [[], []]
        assert [(kv.key, kv.value) for kv in res.responses[2]] == [(b"/tk/x", b"1"), (b"/tk/y", b"2")]
        res = await c.txn(
            [Compare.value(b"/tk/x", "=", b"0")], [Op.put(b"/tk/x", b"no")], [Op.delete(b"/tk/", prefix=True)]
        )
        assert not res.succeeded and res.responses == [[]]
        assert (await c.get_prefix(b"/tk/"))[0] == []

    run(body, etcd)


# ------------------------------------------------------------------ leases


def test_lease_revoke_deletes_key(etcd: EtcdServer) -> None:
    async def body(c: EtcdClient) -> None:
        lease = await Lease.grant(c, 5)
        assert lease.alive
        await c.put(b"/lease/a", b"x", lease=lease.id)
        kv = await c.get(b"/lease/a")
        assert kv is not None and kv.lease == lease.id
        assert 0 < await c.lease_keepalive_once(lease.id) <= 5
        await lease.revoke()
        assert not lease.alive
        assert await c.get(b"/lease/a") is None
        assert await c.lease_keepalive_once(lease.id) <= 0
        await c.lease_revoke(lease.id)  # already gone: no error

    run(body, etcd)


def test_lease_kept_alive_then_expires_when_keepalive_stops(etcd: EtcdServer) -> None:
    async def body(c: EtcdClient) -> None:
        lost: list[int] = []
        lease = await Lease.grant(c, 2, on_lost=lambda: lost.append(1))
        await c.put(b"/lease/b", b"x", lease=lease.id)
        _, rev = await c.get_prefix(b"/lease/b")
        await asyncio.sleep(4.0)  # twice the TTL: only the keepalives keep it
        assert await c.get(b"/lease/b") is not None and lease.alive
        assert lease._task is not None
        lease._task.cancel()  # no more keepalives
        t0 = time.monotonic()
        events = await collect(c.watch_prefix(b"/lease/b", rev + 1), 1, timeout=6.0)
        assert [e.type for e in events] == ["DELETE"]
        assert time.monotonic() - t0 < 4.0
        assert await c.get(b"/lease/b") is None
        assert await c.lease_keepalive_once(lease.id) <= 0
        assert lost == []  # the task was cancelled, not failed

    run(body, etcd)


def test_lease_on_lost_when_lease_revoked_elsewhere(etcd: EtcdServer) -> None:
    async def body(c: EtcdClient) -> None:
        lost: list[float] = []
        lease = await Lease.grant(c, 3, on_lost=lambda: lost.append(time.monotonic()))
        await c.put(b"/lease/c", b"x", lease=lease.id)
        t0 = time.monotonic()
        await c.lease_revoke(lease.id)  # behind the Lease's back
        while not lost and time.monotonic() - t0 < 5:
            await asyncio.sleep(0.05)
        assert len(lost) == 1 and lost[0] - t0 <= 1.5  # next keepalive (every ttl/3) answers TTL 0
        assert not lease.alive
        await asyncio.sleep(1.2)
        assert len(lost) == 1  # once
        assert await c.get(b"/lease/c") is None

    run(body, etcd)


def test_lease_on_lost_when_etcd_unresponsive(tmp_path: Path) -> None:
    server = start_etcd(tmp_path / "etcd")
    try:

        async def body(c: EtcdClient) -> None:
            lost: list[float] = []
            lease = await Lease.grant(c, 2, on_lost=lambda: lost.append(time.monotonic()))
            await c.put(b"/lease/d", b"x", lease=lease.id)
            os.kill(server.pid, signal.SIGSTOP)
            await asyncio.sleep(0.1)  # SIGSTOP reaches etcd's threads asynchronously: let them all stop
            t0 = time.monotonic()
            try:
                with pytest.raises(EtcdUnavailable):  # a call is bounded by the client timeout
                    await c.get(b"/lease/d")
                assert time.monotonic() - t0 < 1.5
                while not lost and time.monotonic() - t0 < 8:
                    await asyncio.sleep(0.05)
            finally:
                os.kill(server.pid, signal.SIGCONT)
            assert len(lost) == 1 and 1.0 <= lost[0] - t0 < 4.5  # TTL after the last good keepalive
            assert not lease.alive
            deadline = time.monotonic() + 5
            while await c.get(b"/lease/d") is not None:  # etcd expires it once running again
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)

        run(body, server, timeout=1.0)
    finally:
        server.stop()


# ------------------------------------------------------------------ watch


def test_watch_from_past_revision_in_order(etcd: EtcdServer) -> None:
    async def body(c: EtcdClient) -> None:
        r1 = await c.put(b"/w/a", b"1")
        r2 = await c.put(b"/w/b", b"2")
        r3 = await c.delete(b"/w/a") and (await c.get_prefix(b"/w/"))[1]
        await c.put(b"/wx", b"not under /w/")
        agen = c.watch_prefix(b"/w/", r1)
        first = await collect(agen, 3, timeout=5)  # all before the watch started
        r4 = await c.put(b"/w/a", b"4")
        res = await c.txn([], [Op.put(b"/w/c", b"5"), Op.delete(b"/w/b")])
        more = await collect(agen, 3, timeout=5)
        await agen.aclose()
        events = first + more
        assert [(e.type, e.kv.key, e.kv.value) for e in events] == [
            ("PUT", b"/w/a", b"1"),
            ("PUT", b"/w/b", b"2"),
            ("DELETE", b"/w/a", b""),
            ("PUT", b"/w/a", b"4"),
            ("PUT", b"/w/c", b"5"),
            ("DELETE", b"/w/b", b""),
        ]
        assert [e.kv.mod_revision for e in events] == [r1, r2, r3, r4, res.revision, res.revision]
        assert events[3].kv.create_revision == r4 and events[3].kv.version == 1

    run(body, etcd)


def test_watch_from_now_and_large_batches(etcd: EtcdServer) -> None:
    async def body(c: EtcdClient) -> None:
        await c.put(b"/wn/old", b"x")
        agen = c.watch_prefix(b"/wn/", 0)  # 0: only changes from now on
        pending = asyncio.ensure_future(collect(agen, 300, timeout=10))
        await asyncio.sleep(0.2)  # let the watch be created
        big = b"v" * 5000
        res = await c.txn([], [Op.put(b"/wn/%03d" % i, big) for i in range(100)])
        for i in range(200):
            await c.put(b"/wn/s%03d" % i, b"%d" % i)
        events = await pending
        await agen.aclose()
        assert b"/wn/old" not in {e.kv.key for e in events}
        assert [e.kv.mod_revision for e in events[:100]] == [res.revision] * 100
        assert all(e.kv.value == big for e in events[:100])
        assert [e.kv.value for e in events[100:]] == [b"%d" % i for i in range(200)]

    run(body, etcd)


def test_json_splitter_reassembles_any_chunking() -> None:
    objs = [{"result": {"n": i, "s": "é" * i}} for i in range(20)]
    stream = b"".join(
        json.dumps(o, ensure_ascii=False).encode() + (b"\n" if i % 3 else b"") for i, o in enumerate(objs)
    )
    for size in (1, 2, 7, 64, len(stream)):
        sp = _JsonSplitter()
        out: list[object] = []
        for i in range(0, len(stream), size):
            out += sp.feed(stream[i : i + size])
        out += sp.finish()
        assert out == objs, size


def test_watch_compacted_revision_raises(etcd: EtcdServer) -> None:
    async def body(c: EtcdClient) -> None:
        r1 = await c.put(b"/wc/a", b"1")
        r2 = await c.put(b"/wc/a", b"2")
        compact(etcd, r2)
        with pytest.raises(EtcdCompacted) as info:
            await collect(c.watch_prefix(b"/wc/", r1), 1, timeout=5)
        assert info.value.compact_revision == r2
        events = await collect(c.watch_prefix(b"/wc/", r2), 1, timeout=5)
        assert events[0].kv.value == b"2"

    run(body, etcd)


def test_watch_survives_etcd_restart(tmp_path: Path) -> None:
    t0 = time.monotonic()
    server = start_etcd(tmp_path / "etcd")
    startup = time.monotonic() - t0
    print(f"etcd start-up: {startup * 1000:.0f} ms")
    assert startup < 2.0
    port = int(server.endpoint.rsplit(":", 1)[1])
    try:

        async def body(c: EtcdClient) -> None:
            nonlocal server
            start = await c.put(b"/r/0", b"0")
            got: list[WatchEvent] = []

            async def watcher() -> None:
                async for batch in c.watch_prefix(b"/r/", start):
                    got.extend(batch)

            task = asyncio.create_task(watcher())
            for i in range(1, 4):
                await c.put(b"/r/%d" % i, b"%d" % i)
            while len(got) < 4:
                await asyncio.sleep(0.02)
            server.stop()
            await asyncio.sleep(0.3)  # the watcher finds etcd gone and retries
            assert not task.done()
            server = start_etcd(tmp_path / "etcd", port=port)
            # the same client: its pooled connections died with the old process
            for i in range(4, 7):
                await c.put(b"/r/%d" % i, b"%d" % i)
            await c.delete(b"/r/1")
            deadline = time.monotonic() + 10
            while len(got) < 8 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            task.cancel()
            assert [(e.type, e.kv.key) for e in got] == [("PUT", b"/r/%d" % i) for i in range(7)] + [
                ("DELETE", b"/r/1")
            ]
            revs = [e.kv.mod_revision for e in got]
            assert revs == sorted(revs) and len(set(revs)) == 8  # no loss, no duplicate

        run(body, server)
    finally:
        server.stop()


# ------------------------------------------------------------------ endpoints


def test_unavailable_fast_on_closed_port(etcd: EtcdServer) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once the socket is closed

    async def body() -> None:
        t0 = time.monotonic()
        with pytest.raises(EtcdUnavailable):
            await EtcdClient.connect(f"etcd://127.0.0.1:{closed}", timeout=5.0)
        assert time.monotonic() - t0 < 1.0
        # with a live endpoint after the dead one, calls go to the live one
        c = await EtcdClient.connect(f"etcd://127.0.0.1:{closed},{etcd.endpoint}", timeout=5.0)
        try:
            rev = await c.put(b"/ep/a", b"1")
            kv = await c.get(b"/ep/a")
            assert kv is not None and kv.mod_revision == rev
        finally:
            await c.close()
        c = await EtcdClient.connect([f"127.0.0.1:{closed}", etcd.url])
        await c.close()

    asyncio.run(body())


def test_kv_from_json_defaults() -> None:
    assert KeyValue.from_json({"key": "YQ=="}) == KeyValue(b"a", b"", 0, 0, 0, 0)
