package memshift;

import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilders;

/**
 * An in-process Neo4j for tests: Bolt on 127.0.0.1:PORT, no HTTP, and no auth unless env
 * {@code NEO4J_HARNESS_AUTH=true} (then Neo4j's own: user neo4j, whose initial password must be
 * changed before use, so every login a test makes is refused — what a wrong password meets).
 *
 * <p>Usage: {@code Neo4jHarness [PORT]}, or env {@code NEO4J_HARNESS_PORT}. Prints exactly
 * {@code NEO4J_READY bolt://127.0.0.1:PORT} on stdout once Bolt accepts connections, and shuts
 * down (deleting its store, kept under java.io.tmpdir) on SIGTERM/SIGINT or when stdin reaches end of file, so a
 * parent that dies without killing it still takes it down.
 */
public final class Neo4jHarness {
    private static final String PORT_ENV = "NEO4J_HARNESS_PORT";
    // Off-heap page cache; test graphs are small and other work shares the machine.
    private static final long PAGE_CACHE_BYTES = 32L * 1024 * 1024;

    public static void main(String[] args) throws InterruptedException {
        int port;
        try {
            port = boltPort(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }
        Neo4j neo4j = Neo4jBuilders.newInProcessBuilder()
                .withDisabledServer()
                .withConfig(GraphDatabaseSettings.auth_enabled, "true".equals(System.getenv("NEO4J_HARNESS_AUTH")))
                .withConfig(GraphDatabaseSettings.pagecache_memory, PAGE_CACHE_BYTES)
                .withConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                .withConfig(GraphDatabaseSettings.udc_enabled, false)
                // Netty's graceful Bolt shutdown otherwise idles ~12 s (measured) before the JVM exits.
                .withConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                .withConfig(GraphDatabaseInternalSettings.netty_server_shutdown_timeout, Duration.ofSeconds(1))
                .withConfig(BoltConnector.enabled, true)
                .withConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            neo4j.close();
            stopped.countDown();
        }, "neo4j-harness-shutdown"));
        watchStdinForEof();

        System.out.println("NEO4J_READY bolt://127.0.0.1:" + neo4j.boltURI().getPort());
        System.out.flush();
        stopped.await();
    }

    private static int boltPort(String[] args) {
        String value = args.length > 0 ? args[0] : System.getenv(PORT_ENV);
        if (value == null || value.isBlank()) {
            throw new IllegalArgumentException("usage: Neo4jHarness PORT (or set " + PORT_ENV + ")");
        }
        try {
            int port = Integer.parseInt(value.trim());
            if (port >= 1 && port <= 65535) return port;
        } catch (NumberFormatException ignored) {
            // Reported below like any other bad value.
        }
        throw new IllegalArgumentException("invalid Bolt port: " + value);
    }

    /** EOF on stdin means the parent is gone or asked us to stop; exiting runs the shutdown hook. */
    private static void watchStdinForEof() {
        Thread watcher = new Thread(() -> {
            try (InputStream in = System.in) {
                byte[] buffer = new byte[256];
                while (in.read(buffer) != -1) {
                    // Input is ignored; only its end matters.
                }
            } catch (IOException ignored) {
                // A broken stdin is as good as a closed one.
            }
            System.exit(0);
        }, "neo4j-harness-stdin");
        watcher.setDaemon(true);
        watcher.start();
    }
}
