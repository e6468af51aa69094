package io.exitless.spark;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Arrays;

/**
 * Opens an exitless sealed stream (docs/FORMAT.md) read from another stream, one
 * segment at a time: only authenticated plaintext is ever returned. A segment counts as
 * the final one when the bytes end inside its slot or right after it (one byte of
 * lookahead), so a stream cut at a segment boundary fails as truncated, and bytes after
 * a final segment cannot exist. Errors are {@link SealIntegrityException} (tampered,
 * truncated, reordered, spliced, wrong key or context) or {@link SealFormatException}
 * (not a sealed stream); after one, the stream stays failed.
 */
public final class SealedInputStream extends InputStream {
    private final InputStream in;
    private final KeyResolver keys;
    private final byte[] context;
    private final String origin;
    private byte[] segment;
    private long opener;
    private int segmentSize;
    private int headerLen;
    private long index;
    private int pos;
    private int limit;
    private int carried;
    private byte lookahead;
    private boolean last;
    private boolean closed;
    private IOException failure;

    /**
     * Reads the stream sealed under the key {@code keys} gives for its header, bound to
     * {@code context}. {@code origin} names what is read in error messages (a file, a
     * Spark task), or null.
     */
    public SealedInputStream(InputStream in, KeyResolver keys, byte[] context, String origin) {
        if (in == null || keys == null || context == null) {
            throw new IllegalArgumentException("exitless: SealedInputStream needs an input stream, keys and a context");
        }
        this.in = in;
        this.keys = keys;
        this.context = context.clone();
        this.origin = origin;
    }

    private String expectedHeaderSha256;
    private String headerMismatch;

    /**
     * Before any key is resolved, check that the stream's sealed header (all its bytes)
     * has this SHA-256 (lowercase hex); otherwise fail with {@code mismatch}.
     */
    public synchronized void expectHeaderSha256(String sha256Hex, String mismatch) {
        this.expectedHeaderSha256 = sha256Hex;
        this.headerMismatch = mismatch;
    }

    private String where() {
        return origin == null ? "" : " (" + origin + ")";
    }

    /** Reads until {@code buf[off..end)} is full or the input ends; returns the bytes read. */
    private int fill(byte[] buf, int off, int end) throws IOException {
        int at = off;
        while (at < end) {
            int n = in.read(buf, at, end - at);
            if (n < 0) {
                break;
            }
            at += n;
        }
        return at - off;
    }

    private void start() throws IOException {
        NativeSeal.check();
        byte[] probe = new byte[NativeSeal.HEADER_PROBE_LEN];
        int n = fill(probe, 0, probe.length);
        int declared = NativeSeal.declaredHeaderLen(probe, n);
        if (declared > n) {
            probe = Arrays.copyOf(probe, declared);
            n += fill(probe, n, declared);
        }
        try {
            if (expectedHeaderSha256 != null) {
                int len = Math.min(NativeSeal.headerLen(probe, n), n);
                String got = SealedDatasets.sha256Hex(Arrays.copyOf(probe, len));
                if (!MessageDigest.isEqual(got.getBytes(StandardCharsets.US_ASCII),
                        expectedHeaderSha256.getBytes(StandardCharsets.US_ASCII))) {
                    throw new SealIntegrityException("exitless: " + (origin == null ? "" : origin + ": ") + headerMismatch);
                }
            }
            byte[] envelope = NativeSeal.headerEnvelope(probe, n);
            byte[] keyId = NativeSeal.headerKeyId(probe, n);
            DataKey key = keys.resolve(keyId, envelope);
            try {
                opener = key.newOpener(probe, n, context);
            } finally {
                keys.release(key);
            }
        } catch (SealIntegrityException e) {
            throw new SealIntegrityException(e.getMessage() + where(), e);
        } catch (SealFormatException e) {
            throw new SealFormatException(e.getMessage() + where(), e);
        }
        long layout = NativeSeal.openerLayout(opener);
        segmentSize = (int) (layout >>> 32);
        headerLen = (int) layout;
        segment = new byte[segmentSize];
        carried = n - headerLen;
        System.arraycopy(probe, headerLen, segment, 0, carried);
    }

    /** Reads, authenticates and decrypts the next segment into the buffer. */
    private void nextSegment() throws IOException {
        if (opener == 0) {
            start();
        } else {
            index++;
            if (carried == 1) {
                segment[0] = lookahead;
            }
        }
        int slot = index == 0 ? segmentSize - headerLen : segmentSize;
        int got = carried + fill(segment, carried, slot);
        carried = 0;
        if (got < slot) {
            last = true;
        } else {
            int next = in.read();
            if (next < 0) {
                last = true;
            } else {
                carried = 1;
                // The lookahead byte goes to the next segment's slot once this one is consumed.
                lookahead = (byte) next;
            }
        }
        try {
            limit = NativeSeal.open(opener, index, last, segment, got);
        } catch (SealIntegrityException e) {
            throw new SealIntegrityException(e.getMessage() + where(), e);
        }
        pos = 0;
    }

    /** True when the buffer is empty and more plaintext may follow. */
    private boolean refill() throws IOException {
        if (closed) {
            throw new IOException("exitless: read from a closed sealed stream" + where());
        }
        if (failure != null) {
            throw new IOException("exitless: an earlier read of this sealed stream failed" + where(), failure);
        }
        while (pos == limit) {
            if (opener != 0 && last) {
                return false;
            }
            try {
                nextSegment();
            } catch (IOException | RuntimeException e) {
                failure = e instanceof IOException ? (IOException) e : new IOException(e);
                if (segment != null) {
                    Arrays.fill(segment, (byte) 0);
                }
                throw e;
            }
        }
        return true;
    }

    @Override
    public synchronized int read() throws IOException {
        if (!refill()) {
            return -1;
        }
        return segment[pos++] & 0xff;
    }

    @Override
    public synchronized int read(byte[] b, int off, int len) throws IOException {
        if (off < 0 || len < 0 || len > b.length - off) {
            throw new IndexOutOfBoundsException("exitless: read(" + off + ", " + len + ") on an array of " + b.length);
        }
        if (len == 0) {
            return 0;
        }
        if (!refill()) {
            return -1;
        }
        int n = Math.min(len, limit - pos);
        System.arraycopy(segment, pos, b, off, n);
        pos += n;
        return n;
    }

    @Override
    public synchronized int available() {
        return limit - pos;
    }

    /** Frees the stream key and closes the underlying stream. Idempotent. */
    @Override
    public synchronized void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        NativeSeal.openerFree(opener);
        opener = 0;
        if (segment != null) {
            Arrays.fill(segment, (byte) 0);
        }
        in.close();
    }
}
