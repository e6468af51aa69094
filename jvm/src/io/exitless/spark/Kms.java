package io.exitless.spark;

import java.io.IOException;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A KMS opened from its URI ({@code local:PATH} or {@code pkcs11:module=...;token=...;pin-env=VAR},
 * docs/KMS.md) in exitless-jni's KMS core (native/kms), the same wrapping as the Python
 * package's {@code exitless.kms}: files either side seals, the other opens.
 *
 * <p>{@link #shared} keeps one open KMS per URI in a JVM (a PKCS#11 token logs in once
 * per process), for codecs that Hadoop and Spark create per file.
 */
public final class Kms implements AutoCloseable {
    private static final ConcurrentHashMap<String, Kms> SHARED = new ConcurrentHashMap<>();

    private final String uri;
    private long handle;

    private Kms(String uri, long handle) {
        this.uri = uri;
        this.handle = handle;
    }

    /** Opens the KMS {@code uri}; the caller closes it. */
    public static Kms open(String uri) throws IOException {
        NativeSeal.check();
        if (uri == null || uri.isEmpty()) {
            throw new KmsException("exitless: no KMS URI (set exitless.kms, e.g. local:/etc/exitless/keyring.json)");
        }
        return new Kms(uri, NativeSeal.kmsOpen(uri));
    }

    /** The KMS {@code uri}, opened once in this JVM and kept open. */
    public static Kms shared(String uri) throws IOException {
        Kms kms = SHARED.get(uri);
        if (kms != null) {
            return kms;
        }
        synchronized (SHARED) {
            kms = SHARED.get(uri);
            if (kms == null) {
                kms = open(uri);
                SHARED.put(uri, kms);
            }
            return kms;
        }
    }

    private long live() throws IOException {
        if (handle == 0) {
            throw new IOException("exitless: the KMS " + uri + " is closed");
        }
        return handle;
    }

    /** The data key inside {@code envelope} (a sealed file's version-2 header carries it). */
    public synchronized DataKey unwrap(byte[] envelope) throws IOException {
        if (envelope == null) {
            throw new SealFormatException("exitless: the stream has no key envelope (format version 1):"
                    + " it was not sealed through a KMS");
        }
        return new DataKey(NativeSeal.kmsUnwrap(live(), envelope));
    }

    /** A fresh random data key wrapped under the KMS's current key (its envelope and key id travel with it). */
    public synchronized DataKey generate() throws IOException {
        return new DataKey(NativeSeal.kmsGenerate(live()));
    }

    /** A resolver that unwraps each stream's key from its envelope and wipes it after use. */
    public KeyResolver resolver() {
        return new KeyResolver() {
            @Override
            public DataKey resolve(byte[] keyId, byte[] envelope) throws IOException {
                return unwrap(envelope);
            }

            @Override
            public void release(DataKey key) {
                key.close();
            }
        };
    }

    public String uri() {
        return uri;
    }

    @Override
    public synchronized void close() {
        long h = handle;
        handle = 0;
        NativeSeal.kmsFree(h);
    }

    @Override
    public String toString() {
        return "Kms(" + uri + ")";
    }
}
