import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;

/**
 * The benchmark's load side, the same for zksync and the sidecar.
 *   populate <zk> <root> <dirs> <leaves per dir> <value bytes>   create a tree, pipelined
 *   lag <zk> <root> <redis port> <prefix> <writes>               write -> keyspace notification lag
 *   writer <zk> <root> <per second> <seconds> [value bytes]      steady updates (values: the counter,
 *                                                                padded with 'v' to value bytes)
 *   touch <zk> <root> <dirs> <leaves per dir> <count> <tag> <value bytes>
 *                                                                new data for `count` leaves of a populated
 *                                                                tree, spread evenly, pipelined (values: tag-i,
 *                                                                padded); prints their paths
 */
public final class BenchTool {
    public static void main(String[] args) throws Exception {
        ZooKeeper zk = connect(args[1]);
        switch (args[0]) {
            case "populate" -> populate(zk, args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]),
                Integer.parseInt(args[5]));
            case "lag" -> lag(zk, args[2], Integer.parseInt(args[3]), args[4], Integer.parseInt(args[5]));
            case "writer" -> writer(zk, args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]),
                args.length > 5 ? Integer.parseInt(args[5]) : 0);
            case "touch" -> touch(zk, args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]),
                Integer.parseInt(args[5]), args[6], Integer.parseInt(args[7]));
            default -> throw new IllegalArgumentException(args[0]);
        }
        zk.close();
    }

    static ZooKeeper connect(String connect) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(connect, 10_000, event -> {
            if (event.getState() == org.apache.zookeeper.Watcher.Event.KeeperState.SyncConnected) connected.countDown();
        });
        connected.await();
        return zk;
    }

    static void createIfAbsent(ZooKeeper zk, String path) throws Exception {
        try {
            zk.create(path, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        } catch (KeeperException.NodeExistsException e) {
            // fine
        }
    }

    static void populate(ZooKeeper zk, String root, int dirs, int leaves, int size) throws Exception {
        String[] parts = root.substring(1).split("/");
        String p = "";
        for (String part : parts) createIfAbsent(zk, p += "/" + part);
        byte[] value = new byte[size];
        Arrays.fill(value, (byte) 'v');
        Semaphore inFlight = new Semaphore(2000);
        long started = System.nanoTime();
        long total = (long) dirs * leaves, step = Math.max(100_000, total / 10);
        for (int d = 0; d < dirs; d++) {
            if (d > 0 && (long) d * leaves / step != (long) (d - 1) * leaves / step) {
                System.err.printf("populate: %d of %d leaves sent, %d s%n", (long) d * leaves, total,
                    (System.nanoTime() - started) / 1_000_000_000);
            }
            createIfAbsent(zk, root + "/d" + d);
            for (int l = 0; l < leaves; l++) {
                inFlight.acquire();
                zk.create(root + "/d" + d + "/n" + l, value, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT,
                    (rc, path, ctx, name) -> inFlight.release(), null);
            }
        }
        inFlight.acquire(2000);
        System.err.printf("populated %d znodes in %d ms%n", dirs * (leaves + 1) + 1,
            (System.nanoTime() - started) / 1_000_000);
    }

    /** Writes one znode at a time; measures from setData's acknowledgement to the key's notification. */
    static void lag(ZooKeeper zk, String root, int port, String prefix, int writes) throws Exception {
        String dir = root + "/lag";
        createIfAbsent(zk, root);
        createIfAbsent(zk, dir);
        int keys = 100;
        for (int i = 0; i < keys; i++) createIfAbsent(zk, dir + "/k" + i);
        LinkedBlockingQueue<long[]> notes = new LinkedBlockingQueue<>();
        Resp sub = new Resp(port);
        sub.call("PSUBSCRIBE", "__keyspace@0__:" + prefix + dir + "/*");
        Thread reader = new Thread(() -> {
            try {
                while (true) {
                    Object[] message = (Object[]) sub.read();
                    long now = System.nanoTime();
                    String channel = new String((byte[]) message[2], StandardCharsets.UTF_8);
                    int k = Integer.parseInt(channel.substring(channel.lastIndexOf("/k") + 2));
                    notes.put(new long[] {k, now});
                }
            } catch (Exception e) {
                // closed
            }
        });
        reader.setDaemon(true);
        reader.start();
        Thread.sleep(1500); // the mirror takes the new znodes in
        notes.clear();
        List<Long> lags = new ArrayList<>();
        int lost = 0;
        // The first quarter warms up both JVMs (this one's JIT, ZooKeeper's)
        // and is not counted.
        int warmup = writes / 4;
        for (int i = -warmup; i < writes; i++) {
            int k = Math.floorMod(i, keys);
            zk.setData(dir + "/k" + k, Integer.toString(i).getBytes(StandardCharsets.US_ASCII), -1);
            long acked = System.nanoTime();
            long[] note;
            do {
                note = notes.poll(2, TimeUnit.SECONDS);
            } while (note != null && note[0] != k);
            if (note == null) {
                if (i >= 0) lost++;
                continue;
            }
            if (i >= 0) lags.add(Math.max(0, note[1] - acked));
            Thread.sleep(2);
        }
        lags.sort(Long::compare);
        System.out.printf("%.3f %.3f %d%n", lags.get(lags.size() / 2) / 1e6, lags.get(lags.size() * 99 / 100) / 1e6,
            lost);
        sub.close();
    }

    /** New data for `count` leaves spread evenly over the tree `populate` made. */
    static void touch(ZooKeeper zk, String root, int dirs, int leaves, int count, String tag, int size)
            throws Exception {
        long total = (long) dirs * leaves;
        Semaphore inFlight = new Semaphore(2000);
        int[] failed = {0};
        StringBuilder paths = new StringBuilder();
        for (int i = 0; i < count; i++) {
            long leaf = i * total / count;
            String path = root + "/d" + leaf / leaves + "/n" + leaf % leaves;
            paths.append(path).append('\n');
            inFlight.acquire();
            zk.setData(path, padded(tag + "-" + i, size), -1, (rc, p, ctx, stat) -> {
                if (rc != 0) synchronized (failed) { failed[0]++; }
                inFlight.release();
            }, null);
        }
        inFlight.acquire(2000);
        if (failed[0] > 0) throw new IllegalStateException(failed[0] + " setData calls failed");
        System.out.print(paths);
    }

    /** `text` followed by 'v's up to `size` bytes (never cut). */
    static byte[] padded(String text, int size) {
        StringBuilder value = new StringBuilder(text);
        while (value.length() < size) value.append('v');
        return value.toString().getBytes(StandardCharsets.US_ASCII);
    }

    static void writer(ZooKeeper zk, String root, int perSecond, int seconds, int size) throws Exception {
        String dir = root + "/w";
        createIfAbsent(zk, root);
        createIfAbsent(zk, dir);
        for (int i = 0; i < 1000; i++) createIfAbsent(zk, dir + "/k" + i);
        long started = System.nanoTime();
        long total = (long) perSecond * seconds;
        for (long i = 0; i < total; i++) {
            long due = started + i * 1_000_000_000L / perSecond;
            long wait = due - System.nanoTime();
            if (wait > 0) Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
            zk.setData(dir + "/k" + (i % 1000), padded(Long.toString(i), size), -1, (rc, path, ctx, stat) -> {}, null);
        }
    }
}
