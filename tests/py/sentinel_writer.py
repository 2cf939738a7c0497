"""INCRs a counter on the master that redis-py's Sentinel client finds by
asking the group's members as Sentinels; prints every acknowledged value.

Usage: sentinel_writer.py GROUP KEY PORT...   (members on 127.0.0.1)
"""

import sys
import time

from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel


def main():
    group, key, ports = sys.argv[1], sys.argv[2], sys.argv[3:]
    members = [("127.0.0.1", int(port)) for port in ports]
    # No retries with backoff (redis-py's default waits seconds): every
    # failure goes back to the Sentinels at once, as a timing test needs.
    options = dict(socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    sentinel = Sentinel(members, sentinel_kwargs=options, **options)
    master = sentinel.master_for(group, **options)
    while True:
        try:
            print(master.incr(key), flush=True)
        except Exception as error:  # every failure: ask the Sentinels again
            print(f"{type(error).__name__}: {error}", file=sys.stderr, flush=True)
            time.sleep(0.005)


if __name__ == "__main__":
    main()
