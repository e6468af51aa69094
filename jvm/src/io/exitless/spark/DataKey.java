package io.exitless.spark;

import java.io.IOException;
import java.util.Arrays;

/**
 * A 32-byte data key held in native memory (exitless-jni), wiped by {@link #close}.
 * The bytes never come back to Java and are never printed.
 */
public final class DataKey implements AutoCloseable {
    /** Length of a data key in bytes. */
    public static final int LENGTH = 32;

    private long handle;

    /** Takes the key bytes into native memory and wipes {@code key} (the caller's copy). */
    public DataKey(byte[] key) throws IOException {
        NativeSeal.check();
        try {
            if (key == null || key.length != LENGTH) {
                throw new IllegalArgumentException("exitless: a data key is exactly 32 bytes");
            }
            handle = NativeSeal.keyNew(key);
        } finally {
            if (key != null) {
                Arrays.fill(key, (byte) 0);
            }
        }
    }

    /** Takes ownership of a native key handle (from the KMS). */
    DataKey(long handle) {
        this.handle = handle;
    }

    /** The key envelope (the wrapped data key) a KMS made with this key, or null. Not secret. */
    synchronized byte[] envelope() throws IOException {
        return NativeSeal.keyEnvelope(live());
    }

    private long live() throws IOException {
        if (handle == 0) {
            throw new IOException("exitless: the data key was wiped (the application ended or the key was closed)");
        }
        return handle;
    }

    /**
     * A native sealer for a new stream (fresh salt and nonce prefix); {@code withEnvelope}:
     * format version 2, carrying this key's envelope and key id (a key a KMS made).
     */
    synchronized long newSealer(byte[] context, int segmentSize, boolean withEnvelope) throws IOException {
        return NativeSeal.sealerNew(live(), context, segmentSize, withEnvelope);
    }

    /** A native opener for the stream whose first {@code len} bytes are in {@code start}. */
    synchronized long newOpener(byte[] start, int len, byte[] context) throws IOException {
        return NativeSeal.openerNew(live(), start, len, context);
    }

    /** True until {@link #close}. */
    public synchronized boolean isOpen() {
        return handle != 0;
    }

    /** Wipes and frees the key; streams already open keep their derived keys until they close. */
    @Override
    public synchronized void close() {
        long h = handle;
        handle = 0;
        NativeSeal.keyFree(h);
    }

    @Override
    public String toString() {
        return "DataKey(<secret>)";
    }
}
