"""Whether a broker has caught up as a follower: the `caught_up` check of /readyz.

A restarted broker is ready for the next step of a rolling restart once every
partition it follows, whose leader is alive, has taken it back into the ISR
(what an operator otherwise waits for with UnderReplicatedPartitions == 0).
"""

from __future__ import annotations

from kafkapy.cluster.view import ClusterView


def out_of_sync(view: ClusterView, node_id: int, examples: int = 3) -> tuple[int, list[str]]:
    """(how many, up to `examples` names) of the partitions `node_id` follows whose live leader has
    not got it in the ISR; replicas being removed by a reassignment do not count."""
    count, names = 0, list[str]()
    for topic in view.topics():
        for p in topic.partitions:
            if (
                p.leader in (node_id, -1)
                or node_id not in p.replicas
                or node_id in p.isr
                or node_id in p.removing_replicas
                or view.broker_info(p.leader) is None
            ):
                continue
            count += 1
            if len(names) < examples:
                names.append(f"{topic.name}-{p.index}")
    return count, names
