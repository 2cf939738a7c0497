import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.retry.ExponentialBackoffRetry;

/**
 * The sidecar users write today: Curator's CuratorCache mirroring a subtree
 * into Redis as PREFIX + path. Writes go through one pipelined connection
 * (batches of whatever is queued), replies are drained by a second thread.
 *
 * Usage: CuratorSidecar <zk connect> <root> <redis port> <prefix>
 * Prints "initialized <ms since start> <keys>" once the initial tree is in Redis.
 */
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
        CuratorCache cache = CuratorCache.build(client, root);
        CuratorCacheListener listener = CuratorCacheListener.builder()
            .forCreatesAndChanges((oldNode, node) -> put(queue, new byte[][] {SET, key(prefix, node), data(node)}))
            .forDeletes(node -> put(queue, new byte[][] {DEL, key(prefix, node)}))
            .forInitialized(() -> put(queue, new byte[][] {new byte[0]}))
            .build();
        cache.listenable().addListener(listener);
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
