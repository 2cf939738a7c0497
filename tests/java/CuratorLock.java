import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.data.Stat;

/**
 * Apache Curator's InterProcessMutex on a lock path, the other side of
 * zksync's locks in the tests and in bench/locks. Modes:
 *   contend <connect> <lockPath> <count> <holdMs>   take the lock count times, hold holdMs each;
 *                                                   a line "HELD <start_us> <end_us> <czxid>" per holding
 *                                                   (epoch microseconds), then "DONE"
 *   latency <connect> <lockPath> <count>            uncontended acquire+release after 50 warm-ups:
 *                                                   "p50_us", "p99_us", "mean_us"
 *   throughput <connect> <lockPath> <clients> <s>   clients sessions loop acquire+release on one path:
 *                                                   "acquisitions", "per_sec"
 *   hold <connect> <lockPath>                       "HELD <czxid>", holds until stdin closes or reads
 *                                                   "release", then "RELEASED"; "CANCELLED" if that
 *                                                   comes while still waiting for the lock
 * Every mode first prints "READY" once connected, so that callers can tell
 * when it starts contending (a JVM takes most of a second to get there).
 */
public final class CuratorLock {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) usage();
        switch (args[0]) {
            case "contend" -> contend(args[1], args[2], Integer.parseInt(args[3]), Long.parseLong(args[4]));
            case "latency" -> latency(args[1], args[2], Integer.parseInt(args[3]));
            case "throughput" -> throughput(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]));
            case "hold" -> hold(args[1], args[2]);
            default -> usage();
        }
    }

    static void usage() {
        System.err.println("usage: CuratorLock contend|latency|throughput|hold <connect> <lockPath> ...");
        System.exit(2);
    }

    /** A session of its own, connected. */
    static CuratorFramework connect(String connect) throws InterruptedException {
        CuratorFramework client = CuratorFrameworkFactory.builder()
            .connectString(connect)
            .sessionTimeoutMs(10_000)
            .connectionTimeoutMs(10_000)
            .retryPolicy(new ExponentialBackoffRetry(100, 3))
            .build();
        client.start();
        if (!client.blockUntilConnected(20, TimeUnit.SECONDS)) {
            throw new IllegalStateException("no connection to ZooKeeper at " + connect);
        }
        return client;
    }

    static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static void ready() {
        say("READY");
    }

    static long epochMicros() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000;
    }

    /** InterProcessMutex with its own lock node's path in reach (Curator keeps it protected). */
    static final class Mutex extends InterProcessMutex {
        Mutex(CuratorFramework client, String path) {
            super(client, path);
        }

        String ownNode() {
            return getLockPath();
        }
    }

    /** The sequence number after "lock-", as Curator's StandardLockInternalsDriver sorts. */
    static long sequence(String node) {
        int at = node.lastIndexOf("lock-");
        if (at < 0) return Long.MAX_VALUE;
        try {
            return Long.parseLong(node.substring(at + "lock-".length()));
        } catch (NumberFormatException e) {
            return Long.MAX_VALUE;
        }
    }

    /**
     * The czxid of the holder's znode, the lowest sequence among the
     * participants, which must be our own: a participant that sorts below it
     * would be a second holder (e.g. a child named other than Curator expects).
     */
    static long holderCzxid(CuratorFramework client, Mutex mutex) throws Exception {
        List<String> nodes = new ArrayList<>(mutex.getParticipantNodes());
        nodes.sort(Comparator.comparingLong(CuratorLock::sequence));
        String lowest = nodes.isEmpty() ? null : nodes.get(0);
        if (lowest == null || !lowest.equals(mutex.ownNode())) {
            throw new IllegalStateException("holding, but the lowest participant is " + lowest
                + ", not our own " + mutex.ownNode() + " (participants " + nodes + ")");
        }
        Stat stat = client.checkExists().forPath(lowest);
        if (stat == null) throw new IllegalStateException("our lock node " + lowest + " is gone while held");
        return stat.getCzxid();
    }

    static void contend(String connect, String path, int count, long holdMs) throws Exception {
        try (CuratorFramework client = connect(connect)) {
            Mutex mutex = new Mutex(client, path);
            ready();
            for (int i = 0; i < count; i++) {
                mutex.acquire();
                long start = epochMicros();
                long czxid = holderCzxid(client, mutex);
                Thread.sleep(holdMs);
                long end = epochMicros();
                mutex.release();
                say("HELD " + start + " " + end + " " + czxid);
            }
            say("DONE");
        }
    }

    static void latency(String connect, String path, int count) throws Exception {
        try (CuratorFramework client = connect(connect)) {
            InterProcessMutex mutex = new InterProcessMutex(client, path);
            ready();
            for (int i = 0; i < 50; i++) {
                mutex.acquire();
                mutex.release();
            }
            long[] micros = new long[count];
            for (int i = 0; i < count; i++) {
                long started = System.nanoTime();
                mutex.acquire();
                mutex.release();
                micros[i] = (System.nanoTime() - started) / 1_000;
            }
            Arrays.sort(micros);
            say("p50_us " + micros[count * 50 / 100]);
            say("p99_us " + micros[Math.min(count - 1, count * 99 / 100)]);
            say(String.format("mean_us %.1f", Arrays.stream(micros).average().orElse(0)));
        }
    }

    static void throughput(String connect, String path, int clients, int seconds) throws Exception {
        List<CuratorFramework> sessions = new ArrayList<>();
        for (int i = 0; i < clients; i++) sessions.add(connect(connect));
        ready();
        LongAdder acquisitions = new LongAdder();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        CountDownLatch go = new CountDownLatch(1);
        List<Thread> threads = new ArrayList<>();
        long[] deadline = new long[1];
        for (CuratorFramework client : sessions) {
            InterProcessMutex mutex = new InterProcessMutex(client, path);
            Thread thread = new Thread(() -> {
                try {
                    go.await();
                    while (System.nanoTime() < deadline[0]) {
                        mutex.acquire();
                        acquisitions.increment();
                        mutex.release();
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                }
            });
            thread.start();
            threads.add(thread);
        }
        long started = System.nanoTime();
        deadline[0] = started + TimeUnit.SECONDS.toNanos(seconds);
        // The latch publishes the deadline to the threads.
        go.countDown();
        for (Thread thread : threads) thread.join();
        double elapsed = (System.nanoTime() - started) / 1e9;
        for (CuratorFramework client : sessions) client.close();
        if (failure.get() != null) throw new IllegalStateException("a client failed", failure.get());
        say("acquisitions " + acquisitions.sum());
        say(String.format("per_sec %.1f", acquisitions.sum() / elapsed));
    }

    static void hold(String connect, String path) throws Exception {
        try (CuratorFramework client = connect(connect)) {
            Mutex mutex = new Mutex(client, path);
            CountDownLatch letGo = new CountDownLatch(1);
            boolean[] held = new boolean[1];
            boolean[] cancelled = new boolean[1];
            Object state = new Object();
            Thread stdin = new Thread(() -> {
                awaitRelease();
                synchronized (state) {
                    if (!held[0]) {
                        // Still queued: acquire() cannot be interrupted, but
                        // closing the session takes our node out of the queue.
                        cancelled[0] = true;
                        client.close();
                        say("CANCELLED");
                        System.exit(0);
                    }
                }
                letGo.countDown();
            });
            stdin.setDaemon(true);
            stdin.start();
            ready();
            try {
                mutex.acquire();
            } catch (Exception e) {
                synchronized (state) {
                    // The cancelling thread is about to exit the process.
                    if (cancelled[0]) Thread.sleep(Long.MAX_VALUE);
                }
                throw e;
            }
            synchronized (state) {
                held[0] = true;
                say("HELD " + holderCzxid(client, mutex));
            }
            letGo.await();
            mutex.release();
            say("RELEASED");
        }
    }

    /** Returns once stdin closes or reads "release"; anything else is ignored. */
    static void awaitRelease() {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try {
            String line;
            while ((line = in.readLine()) != null && !line.trim().equals("release")) {
                // not for us
            }
        } catch (java.io.IOException e) {
            // A broken stdin is a closed one.
        }
    }
}
