"""Read-your-writes through redis-py's RedisCluster: ZKSYNC.PUSH and
ZKSYNC.DELETE sent to a random node (their keys are derived from the path,
so they declare none and the client cannot route them; the node answers ASK
when the key lives elsewhere and the client follows it), then GET of the
mirrored key through the cluster client's ordinary routing. Prints
"ok N redirected R" or the first stale read, and exits 1 on it.

Usage: cluster_ryw.py PORT ROOT COUNT   (a node on 127.0.0.1)
"""

import sys

from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry


def main():
    port, root, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    # No retries: a stale read must show, not be retried away.
    rc = RedisCluster(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0), socket_timeout=5)
    nodes = rc.get_primaries()
    redirected = 0
    for i in range(count):
        path = f"{root}/ryw-{i}"
        key = f"zk:{path}"
        value = f"value-{i}"
        node = nodes[i % len(nodes)]
        if rc.keyslot(key) not in node_slots(rc, node):
            redirected += 1
        rc.execute_command("ZKSYNC.PUSH", path, value, target_nodes=node)
        got = rc.get(key)
        if got != value.encode():
            print(f"stale read after PUSH of {path}: {got!r}", flush=True)
            sys.exit(1)
        rc.execute_command("ZKSYNC.DELETE", path, target_nodes=nodes[(i + 1) % len(nodes)])
        got = rc.get(key)
        if got is not None:
            print(f"stale read after DELETE of {path}: {got!r}", flush=True)
            sys.exit(1)
    print(f"ok {count} redirected {redirected}", flush=True)


def node_slots(rc, node):
    slots = set()
    for slot, holders in rc.nodes_manager.slots_cache.items():
        if holders and holders[0].name == node.name:
            slots.add(slot)
    return slots


if __name__ == "__main__":
    main()
