"""Network namespaces for the nemesis: one per node, wired to a bridge, cut with nft.

Every node (each broker, etcd, the client) gets its own network namespace with one address on
10.201.0.0/24 and a veth into a hub namespace holding a bridge. Nothing touches the host's own
namespace: no address, route or rule is added there, so traffic stays between the namespaces this
module creates (and removes). A partition is a pair of nft rules in each of the two nodes'
namespaces (drop what goes to, and what comes from, the other address): packets vanish, as in a
real partition, and connections wait on TCP retransmits instead of failing fast.

Names carry the creating process's PID, so two runs never share a namespace.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

SUBNET = "10.201.0"
_CLONE_NEWNET = 0x40000000
_CMD_TIMEOUT = 10.0


def _run(args: list[str], stdin: str | None = None) -> None:
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=_CMD_TIMEOUT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")


def netns_available() -> str | None:
    """None when namespaces, veths, bridges and nft all work here; else why not."""
    name = f"nmprobe{os.getpid()}"
    try:
        _run(["ip", "netns", "add", name])
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return f"ip netns: {e}"
    try:
        _run(["ip", "-n", name, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb"])
        _run(["ip", "netns", "exec", name, "nft", "-f", "-"], stdin="table inet probe { }\n")
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return str(e)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=_CMD_TIMEOUT, check=False)
    return None


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run fn on a new thread that entered namespace `ns`: sockets it opens live there."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {ns}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=target, name=f"netns-{ns}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


@dataclass(slots=True)
class Net:
    """The namespaces of one run: `nodes` maps a node name (b1, etcd, client) to its last address byte."""

    nodes: dict[str, int]
    tag: str = field(default_factory=lambda: f"nm{os.getpid() % 100000}")
    cuts: set[frozenset[str]] = field(default_factory=set)
    created: list[str] = field(default_factory=list)

    @property
    def hub(self) -> str:
        return f"{self.tag}-hub"

    def ns(self, node: str) -> str:
        return f"{self.tag}-{node}"

    def addr(self, node: str) -> str:
        return f"{SUBNET}.{self.nodes[node]}"

    def exec_prefix(self, node: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(node)]

    def create(self) -> Net:
        _run(["ip", "netns", "add", self.hub])
        self.created.append(self.hub)
        _run(["ip", "-n", self.hub, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", self.hub, "link", "set", "br0", "up"])
        for node, byte in self.nodes.items():
            ns = self.ns(node)
            _run(["ip", "netns", "add", ns])
            self.created.append(ns)
            hub_end = f"v{byte}"
            _run(["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", hub_end, "netns", self.hub])
            _run(["ip", "-n", self.hub, "link", "set", hub_end, "master", "br0", "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{self.addr(node)}/24", "dev", "eth0"])
            _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            self._apply(node)
        return self

    def destroy(self) -> None:
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=_CMD_TIMEOUT, check=False)
        self.created.clear()

    # ---------------------------------------------------------------- partitions

    def cut(self, a: str, b: str) -> None:
        """Drop everything between a and b, both ways."""
        if a == b or frozenset((a, b)) in self.cuts:
            return
        self.cuts.add(frozenset((a, b)))
        self._apply(a)
        self._apply(b)

    def isolate(self, node: str, from_nodes: list[str]) -> None:
        for other in from_nodes:
            self.cut(node, other)

    def heal(self) -> None:
        touched = {n for pair in self.cuts for n in pair}
        self.cuts.clear()
        for node in touched:
            self._apply(node)

    def _apply(self, node: str) -> None:
        """Rewrite node's nft table from the current cuts (one atomic `nft -f`)."""
        peers = sorted(self.addr(o) for pair in self.cuts if node in pair for o in pair if o != node)
        rules = ""
        if peers:
            addrs = ", ".join(peers)
            rules = f"    ip saddr {{ {addrs} }} drop\n"
            out = f"    ip daddr {{ {addrs} }} drop\n"
        script = (
            "table inet nemesis\ndelete table inet nemesis\n"
            "table inet nemesis {\n"
            "  chain in {\n    type filter hook input priority 0; policy accept;\n" + rules + "  }\n"
            "  chain out {\n    type filter hook output priority 0; policy accept;\n"
            + (out if peers else "")
            + "  }\n}\n"
        )
        _run(self.exec_prefix(node) + ["nft", "-f", "-"], stdin=script)
