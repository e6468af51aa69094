package io.exitless.spark;

import java.io.IOException;
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
 * executor plugin asks the driver for it over Spark's RPC when the executor starts
 * (before its first task). The key is never in SparkConf (a driver plugin's extra conf
 * would be), so it never reaches logs, the event log or the UI. Both wipe it at shutdown.
 */
public final class ExitlessPlugin implements SparkPlugin {
    /** The message an executor plugin sends to get the key. */
    static final String KEY_REQUEST = "exitless.block-key.v1";

    @Override
    public DriverPlugin driverPlugin() {
        return new Driver();
    }

    @Override
    public ExecutorPlugin executorPlugin() {
        return new Executor();
    }

    static final class Driver implements DriverPlugin {
        @Override
        public Map<String, String> init(SparkContext sc, PluginContext ctx) {
            try {
                BlockKeys.generate();
            } catch (IOException e) {
                throw new IllegalStateException("exitless: could not make the application's block key: " + e.getMessage(), e);
            }
            return Collections.emptyMap();
        }

        @Override
        public Object receive(Object message) {
            if (KEY_REQUEST.equals(message)) {
                return BlockKeys.export();
            }
            throw new IllegalArgumentException("exitless: unknown plugin message");
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
