package io.exitless.spark;

import java.io.IOException;
import java.util.Base64;
import java.util.Collections;
import java.util.Map;

import org.apache.spark.SparkContext;
import org.apache.spark.api.plugin.DriverPlugin;
import org.apache.spark.api.plugin.ExecutorPlugin;
import org.apache.spark.api.plugin.PluginContext;
import org.apache.spark.api.plugin.SparkPlugin;

/**
 * Gives every JVM of an application its block key ({@code spark.plugins}). The driver
 * plugin makes one random key when the application starts (before any task); each
 * executor plugin gets it when the executor starts (before its first task), one of two
 * ways:
 * <ul>
 * <li>by default, it asks the driver over Spark's RPC. The key is never in SparkConf (a
 * driver plugin's extra conf would be), so it never reaches logs, the event log or the UI;
 * <li>with {@code spark.exitless.blockKey.kms} (a KMS URI the executors reach themselves,
 * e.g. in an enclave after attestation), the driver has the KMS make and wrap the key; only
 * its envelope (the wrapped key) travels, in the plugin's extra conf, and each executor
 * unwraps it through the KMS.
 * </ul>
 * Both wipe the key at shutdown.
 */
public final class ExitlessPlugin implements SparkPlugin {
    /** The message an executor plugin sends to get the key. */
    static final String KEY_REQUEST = "exitless.block-key.v1";
    /** The KMS that wraps the block key, when executors unwrap it themselves. */
    public static final String BLOCK_KEY_KMS = "spark.exitless.blockKey.kms";
    private static final String ENVELOPE = "envelope";

    @Override
    public DriverPlugin driverPlugin() {
        return new Driver();
    }

    @Override
    public ExecutorPlugin executorPlugin() {
        return new Executor();
    }

    static final class Driver implements DriverPlugin {
        private boolean viaKms;

        @Override
        public Map<String, String> init(SparkContext sc, PluginContext ctx) {
            String kms = sc.conf().get(BLOCK_KEY_KMS, "");
            try {
                if (kms.isEmpty()) {
                    BlockKeys.generate();
                    return Collections.emptyMap();
                }
                viaKms = true;
                DataKey key = Kms.shared(kms).generate();
                String envelope = Base64.getEncoder().encodeToString(key.envelope());
                BlockKeys.installKey(key);
                return Collections.singletonMap(ENVELOPE, envelope);
            } catch (IOException e) {
                throw new IllegalStateException("exitless: could not make the application's block key: " + e.getMessage(), e);
            }
        }

        @Override
        public Object receive(Object message) {
            if (KEY_REQUEST.equals(message) && !viaKms) {
                return BlockKeys.export();
            }
            throw new IllegalArgumentException(viaKms
                    ? "exitless: executors unwrap the block key through the KMS (" + BLOCK_KEY_KMS + "); the driver hands out none"
                    : "exitless: unknown plugin message");
        }

        @Override
        public void shutdown() {
            BlockKeys.wipe();
        }
    }

    static final class Executor implements ExecutorPlugin {
        @Override
        public void init(PluginContext ctx, Map<String, String> extraConf) {
            if (BlockKeys.present()) {
                return; // local mode: the driver, in this JVM, made it
            }
            String envelope = extraConf == null ? null : extraConf.get(ENVELOPE);
            if (envelope != null) {
                String kms = ctx.conf().get(BLOCK_KEY_KMS, "");
                try {
                    BlockKeys.installKey(Kms.shared(kms).unwrap(Base64.getDecoder().decode(envelope)));
                    return;
                } catch (IOException | IllegalArgumentException e) {
                    throw new IllegalStateException("exitless: could not unwrap the application's block key through "
                            + kms + ": " + e.getMessage(), e);
                }
            }
            try {
                Object reply = ctx.ask(KEY_REQUEST);
                if (!(reply instanceof byte[])) {
                    throw new IllegalStateException("exitless: the driver sent no block key");
                }
                BlockKeys.install((byte[]) reply);
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException("exitless: could not get the application's block key from the driver: "
                        + e.getMessage(), e);
            }
        }

        @Override
        public void shutdown() {
            BlockKeys.wipe();
        }
    }
}
