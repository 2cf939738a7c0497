"""The Python sidecar: kazoo's TreeCache recipe mirroring a subtree into Redis.

The counterpart of CuratorSidecar.java for users on Python: kazoo (from PyPI,
pinned in bench/requirements.txt) watches the subtree with its TreeCache (a
port of Curator's: a data and a child watch per znode, re-read on each
event), and every change becomes a SET or DEL of PREFIX + path through
redis-py. The cache's listener only queues the command; a writer thread sends
whatever is queued as one pipeline (up to 10,000 commands, no MULTI) and
reads the replies, so Redis round trips overlap the cache's reads.

Usage: kazoo_sidecar.py <zk connect> <root> <redis port> <prefix>
Prints "initialized <ms since start> <keys>" once the initial tree is in
Redis (the cache's INITIALIZED event, and every write queued before it
answered by Redis), as CuratorSidecar does.
"""

import time

STARTED = time.monotonic()  # before the imports: the interpreter's start is excluded, as the JVM's is

# pylint: disable=wrong-import-position
import logging
import queue
import sys
import threading

import redis
from kazoo.client import KazooClient
from kazoo.recipe.cache import TreeCache, TreeEvent

INITIALIZED = object()  # queued after the initial tree's writes


def writer(client, commands, on_initialized):
    """Sends what is queued, a pipeline at a time; calls `on_initialized` with
    the number of commands sent once those before the marker are answered."""
    written = 0
    while True:
        batch = [commands.get()]
        try:
            while len(batch) < 10_000:
                batch.append(commands.get_nowait())
        except queue.Empty:
            pass
        pipe = client.pipeline(transaction=False)
        marker = False
        for command in batch:
            if command is INITIALIZED:
                marker = True
                continue
            pipe.execute_command(*command)
        if len(pipe):
            written += len(pipe)
            pipe.execute()
        if marker:
            on_initialized(written)


def main():
    connect, root, port, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="sidecar: %(name)s: %(message)s")
    commands = queue.SimpleQueue()
    written = []
    done = threading.Event()

    def on_initialized(count):
        written.append(count)
        done.set()

    redis_client = redis.Redis(host="127.0.0.1", port=port)
    threading.Thread(target=writer, args=(redis_client, commands, on_initialized), daemon=True).start()

    zk = KazooClient(hosts=connect, timeout=6.0)
    zk.start()
    cache = TreeCache(zk, root)

    def on_event(event):
        kind = event.event_type
        if kind in (TreeEvent.NODE_ADDED, TreeEvent.NODE_UPDATED):
            node = event.event_data
            commands.put(("SET", prefix + node.path, node.data or b""))
        elif kind == TreeEvent.NODE_REMOVED:
            commands.put(("DEL", prefix + event.event_data.path))
        elif kind == TreeEvent.INITIALIZED:
            commands.put(INITIALIZED)
        else:  # connection suspended, reconnected, lost
            print(f"sidecar: event {kind}", file=sys.stderr, flush=True)

    def on_error(error):
        print(f"sidecar: TreeCache error: {error!r}", file=sys.stderr, flush=True)

    cache.listen(on_event)
    cache.listen_fault(on_error)
    cache.start()
    done.wait()
    ms = int((time.monotonic() - STARTED) * 1000)
    print(f"initialized {ms} {written[0]}", flush=True)
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main()
