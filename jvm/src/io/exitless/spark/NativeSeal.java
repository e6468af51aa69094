package io.exitless.spark;

import java.io.File;
import java.io.IOException;
import java.net.URISyntaxException;
import java.security.CodeSource;

/**
 * The JNI entry points of exitless-jni (native/jni), the one implementation of the
 * sealed stream format. Handles are owned by {@link DataKey}, {@link SealedOutputStream}
 * and {@link SealedInputStream}, which use each only under their monitor while it is
 * non-zero: that is the safety argument of the native side.
 *
 * <p>The library is found, in order: the system property {@code exitless.jni.library}
 * (a path), {@code libexitless_jni.so} beside the jar this class came from (the Python
 * package ships both in {@code exitless/spark/jvm/}), then {@code java.library.path}.
 */
final class NativeSeal {
    /** Bytes each sealed segment adds (the AEAD tag). */
    static final int TAG_LEN = 16;
    /** The header bytes to read before asking {@link #declaredHeaderLen}. */
    static final int HEADER_PROBE_LEN = 72;

    private static final Throwable LOAD_FAILURE = load();

    private NativeSeal() {}

    private static Throwable load() {
        try {
            String explicit = System.getProperty("exitless.jni.library");
            if (explicit != null && !explicit.isEmpty()) {
                System.load(new File(explicit).getAbsolutePath());
                return null;
            }
            File beside = besideJar();
            if (beside != null && beside.isFile()) {
                System.load(beside.getAbsolutePath());
                return null;
            }
            System.loadLibrary("exitless_jni");
            return null;
        } catch (Throwable t) {
            return t;
        }
    }

    private static File besideJar() {
        try {
            CodeSource source = NativeSeal.class.getProtectionDomain().getCodeSource();
            if (source == null) {
                return null;
            }
            File jar = new File(source.getLocation().toURI());
            return new File(jar.getParentFile(), "libexitless_jni.so");
        } catch (URISyntaxException | SecurityException | IllegalArgumentException e) {
            return null;
        }
    }

    /** Fails with a clear message when exitless-jni could not be loaded. */
    static void check() throws IOException {
        if (LOAD_FAILURE != null) {
            throw new IOException(
                    "exitless: the native library libexitless_jni.so could not be loaded (set -Dexitless.jni.library"
                            + " or put it beside exitless-spark.jar): " + LOAD_FAILURE,
                    LOAD_FAILURE);
        }
    }

    static native String provider();

    static native long keyNew(byte[] key) throws IOException;

    static native void keyFree(long key);

    static native long sealerNew(long key, byte[] context, int segmentSize, boolean withEnvelope) throws IOException;

    static native byte[] sealerHeader(long sealer) throws IOException;

    static native int seal(long sealer, long index, boolean last, byte[] buf, int plaintextLen) throws IOException;

    static native void sealerFree(long sealer);

    static native int declaredHeaderLen(byte[] start, int len) throws IOException;

    static native byte[] headerEnvelope(byte[] start, int len) throws IOException;

    static native byte[] headerKeyId(byte[] start, int len) throws IOException;

    static native int headerLen(byte[] start, int len) throws IOException;

    static native long openerNew(long key, byte[] start, int len, byte[] context) throws IOException;

    static native long openerLayout(long opener) throws IOException;

    static native int open(long opener, long index, boolean last, byte[] buf, int sealedLen) throws IOException;

    static native void openerFree(long opener);

    static native byte[] keyEnvelope(long key) throws IOException;

    static native long kmsOpen(String uri) throws IOException;

    static native void kmsFree(long kms);

    static native long kmsUnwrap(long kms, byte[] envelope) throws IOException;

    static native long kmsGenerate(long kms) throws IOException;
}
