import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.TreeCache;
import org.apache.curator.retry.ExponentialBackoffRetry;

/**
 * The sidecar users write today: a Curator cache recipe mirroring a subtree
 * into Redis as PREFIX + path. Writes go through one pipelined connection
 * (batches of whatever is queued), replies are drained by a second thread.
 *
 * The recipe is TreeCache, not CuratorCache. The Curator this runs on is
 * Debian bookworm's 5.4.0, whose CuratorCache counts its outstanding reads
 * in a java.util.concurrent.Phaser, which takes at most 65,535 parties.
 * CuratorCache loads the tree level by level, so on a level wider than that
 * (the 100,000 leaves of the 100k bench tree) every further register() throws
 * "IllegalStateException: Attempt to register more than 65535 parties". The
 * cache only logs that (through slf4j, which prints nothing without a
 * binding), skips the node, and still reports initialized: it held 65,635 of
 * 100,101 znodes and never fetched the rest (CURATOR-690, fixed in Curator
 * 5.6.0, which Debian does not ship). Its rebuild after a reconnection
 * re-reads every cached node through the same Phaser at once. TreeCache,
 * deprecated in favour of CuratorCache but shipped and maintained in 5.x,
 * counts with an AtomicLong; it is what a user on this Curator switches to
 * when the tree outgrows CuratorCache. On the 10k tree both take the same
 * time and give the same lag.
 *
 * Usage: CuratorSidecar <zk connect> <root> <redis port> <prefix>
 * Prints "initialized <ms since start> <keys>" once the initial tree is in Redis.
 */
@SuppressWarnings("deprecation") // TreeCache: see above
public final class CuratorSidecar {
    private static final byte[] SET = "SET".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] DEL = "DEL".getBytes(StandardCharsets.US_ASCII);

    public static void main(String[] args) throws Exception {
        long started = System.nanoTime();
        String connect = args[0], root = args[1], prefix = args[3];
        int port = Integer.parseInt(args[2]);
        Resp redis = new Resp(port);
        Resp replies = redis;
        LinkedBlockingQueue<byte[][]> queue = new LinkedBlockingQueue<>();
        LinkedBlockingQueue<Boolean> flushed = new LinkedBlockingQueue<>();
        final long[] sent = {0};
        final long[] received = {0};

        Thread writer = new Thread(() -> {
            List<byte[][]> batch = new ArrayList<>();
            try {
                while (true) {
                    batch.add(queue.take());
                    queue.drainTo(batch, 10_000);
                    for (byte[][] command : batch) {
                        if (command.length == 1) {
                            flushed.put(Boolean.TRUE); // initialization marker: everything before is sent
                            continue;
                        }
                        redis.send(command);
                        synchronized (sent) { sent[0]++; }
                    }
                    redis.flush();
                    batch.clear();
                }
            } catch (Exception e) {
                e.printStackTrace();
                System.exit(1);
            }
        });
        writer.setDaemon(true);
        writer.start();
        Thread reader = new Thread(() -> {
            try {
                while (true) {
                    replies.read();
                    synchronized (received) { received[0]++; received.notifyAll(); }
                }
            } catch (Exception e) {
                System.exit(0);
            }
        });
        reader.setDaemon(true);
        reader.start();

        CuratorFramework client = CuratorFrameworkFactory.newClient(connect, 6000, 3000,
            new ExponentialBackoffRetry(100, 10));
        client.start();
        TreeCache cache = TreeCache.newBuilder(client, root).build();
        cache.getListenable().addListener((c, event) -> {
            switch (event.getType()) {
                case NODE_ADDED, NODE_UPDATED ->
                    put(queue, new byte[][] {SET, key(prefix, event.getData()), data(event.getData())});
                case NODE_REMOVED -> put(queue, new byte[][] {DEL, key(prefix, event.getData())});
                case INITIALIZED -> put(queue, new byte[][] {new byte[0]}); // the initial tree has been read
                default -> System.err.println("sidecar: " + event.getType()); // connection suspended, lost, ...
            }
        });
        // Errors of the recipe reach stderr whatever slf4j binding is on the class path.
        cache.getUnhandledErrorListenable().addListener((message, e) -> {
            System.err.println("sidecar: TreeCache error: " + message);
            if (e != null) e.printStackTrace();
        });
        cache.start();

        flushed.take();
        long target;
        synchronized (sent) { target = sent[0]; }
        synchronized (received) {
            while (received[0] < target) received.wait();
        }
        long ms = (System.nanoTime() - started) / 1_000_000;
        System.out.println("initialized " + ms + " " + target);
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }

    private static byte[] key(String prefix, ChildData node) {
        return (prefix + node.getPath()).getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] data(ChildData node) {
        return node.getData() == null ? new byte[0] : node.getData();
    }

    private static void put(LinkedBlockingQueue<byte[][]> queue, byte[][] command) {
        try {
            queue.put(command);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
