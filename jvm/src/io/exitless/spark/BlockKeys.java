package io.exitless.spark;

import java.io.IOException;
import java.security.SecureRandom;
import java.util.Arrays;

/**
 * The application's block key in this JVM: made on the driver by {@link ExitlessPlugin}
 * (one random 32-byte key per application) and either fetched by each executor's plugin
 * over Spark's RPC (authenticated and encrypted with {@code spark.authenticate} and
 * {@code spark.network.crypto.enabled}) or, with a KMS, wrapped by it and unwrapped by
 * each executor itself. Never put in SparkConf in plaintext, nor in logs, the event log
 * or the UI; wiped when the application ends.
 */
final class BlockKeys {
    private static DataKey key;
    /** The driver's copy of the key bytes, to answer executors; null elsewhere. */
    private static byte[] driverCopy;

    private BlockKeys() {}

    /** Driver: a fresh key for a new application (replacing a previous one in this JVM). */
    static synchronized void generate() throws IOException {
        wipe();
        byte[] bytes = new byte[DataKey.LENGTH];
        new SecureRandom().nextBytes(bytes);
        driverCopy = bytes.clone();
        key = new DataKey(bytes);
    }

    /** Driver: a copy of the key for an executor that asked (sent over Spark's RPC). */
    static synchronized byte[] export() {
        if (driverCopy == null) {
            throw new IllegalStateException("exitless: no application key on this driver");
        }
        return driverCopy.clone();
    }

    /** Installs a key a KMS made or unwrapped (the KMS way: no copy is kept to hand out). */
    static synchronized void installKey(DataKey made) {
        wipe();
        key = made;
    }

    /** Executor: installs the key the driver sent, and wipes the array. */
    static synchronized void install(byte[] bytes) throws IOException {
        if (key != null) {
            key.close();
        }
        key = new DataKey(bytes);
    }

    /** True when this JVM holds a key (the driver's, or an executor's after install). */
    static synchronized boolean present() {
        return key != null && key.isOpen();
    }

    /** The application key, or an IOException saying why there is none. */
    static synchronized DataKey current() throws IOException {
        if (key == null || !key.isOpen()) {
            throw new IOException("exitless: no application key in this JVM: the exitless plugin"
                    + " (spark.plugins=" + ExitlessPlugin.class.getName() + ") is not running, or the application ended;"
                    + " exitless.spark.configure() sets it up");
        }
        return key;
    }

    /** Wipes the key (application end). */
    static synchronized void wipe() {
        if (key != null) {
            key.close();
            key = null;
        }
        if (driverCopy != null) {
            Arrays.fill(driverCopy, (byte) 0);
            driverCopy = null;
        }
    }
}
