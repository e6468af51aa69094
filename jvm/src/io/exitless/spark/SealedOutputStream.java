package io.exitless.spark;

import java.io.IOException;
import java.io.OutputStream;
import java.util.Arrays;

/**
 * Seals what is written to it as one exitless stream (docs/FORMAT.md) onto another
 * stream: the header, then each segment as it fills. A segment is sealed only when the
 * next byte arrives or at {@link #close}, which seals the final one, so the reader can
 * tell a truncated stream from a whole one. {@link #flush} never seals a partial
 * segment (the format allows a short segment only at the end).
 *
 * <p>A write that fails leaves the stream failed: {@link #close} then reports the
 * failure again and seals no final segment, so the partial stream never reads as whole.
 * Not thread-safe for concurrent writers (no {@code OutputStream} is), but a close from
 * another thread is safe: it waits for the write in progress.
 */
public final class SealedOutputStream extends OutputStream {
    private final OutputStream out;
    private final byte[] segment;
    private final int segmentSize;
    private byte[] header;
    private long sealer;
    private long index;
    private int filled;
    private boolean headerWritten;
    private IOException failure;
    private boolean closed;

    /**
     * A stream sealed under {@code key}, bound to {@code context} (the reader must pass the
     * same bytes): format version 2 carrying the key's envelope ({@code withEnvelope}, for a
     * key a KMS made: a reader needs only the KMS), else version 1.
     */
    public SealedOutputStream(OutputStream out, DataKey key, byte[] context, int segmentSize, boolean withEnvelope)
            throws IOException {
        if (out == null || key == null || context == null) {
            throw new IllegalArgumentException("exitless: SealedOutputStream needs an output stream, a key and a context");
        }
        this.out = out;
        this.segmentSize = segmentSize;
        this.sealer = key.newSealer(context, segmentSize, withEnvelope);
        try {
            this.header = NativeSeal.sealerHeader(sealer);
        } catch (IOException | RuntimeException e) {
            NativeSeal.sealerFree(sealer);
            sealer = 0;
            throw e;
        }
        this.segment = new byte[segmentSize];
    }

    /** Version 1 stream with no key id. */
    public SealedOutputStream(OutputStream out, DataKey key, byte[] context, int segmentSize) throws IOException {
        this(out, key, context, segmentSize, false);
    }

    /** The stream's sealed header (what the manifest of a sealed dataset records the digest of). */
    public byte[] header() {
        return header.clone();
    }

    private int capacity() {
        return index == 0 ? segmentSize - header.length - NativeSeal.TAG_LEN : segmentSize - NativeSeal.TAG_LEN;
    }

    private void ensureWritable() throws IOException {
        if (failure != null) {
            throw new IOException("exitless: an earlier write of this sealed stream failed", failure);
        }
        if (closed) {
            throw new IOException("exitless: write to a closed sealed stream");
        }
    }

    @Override
    public void write(int b) throws IOException {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public synchronized void write(byte[] b, int off, int len) throws IOException {
        if (off < 0 || len < 0 || len > b.length - off) {
            throw new IndexOutOfBoundsException("exitless: write(" + off + ", " + len + ") on an array of " + b.length);
        }
        ensureWritable();
        try {
            while (len > 0) {
                int room = capacity() - filled;
                if (room == 0) {
                    emit(false);
                    index++;
                    filled = 0;
                    room = capacity();
                }
                int n = Math.min(room, len);
                System.arraycopy(b, off, segment, filled, n);
                filled += n;
                off += n;
                len -= n;
            }
        } catch (IOException | RuntimeException e) {
            failure = e instanceof IOException ? (IOException) e : new IOException(e);
            throw e;
        }
    }

    /** Seals the segment in the buffer and writes it (with the header before segment 0). */
    private void emit(boolean last) throws IOException {
        int sealed = NativeSeal.seal(sealer, index, last, segment, filled);
        if (!headerWritten) {
            out.write(header);
            headerWritten = true;
        }
        out.write(segment, 0, sealed);
    }

    /** Flushes the sealed segments written so far (a partial segment stays buffered). */
    @Override
    public synchronized void flush() throws IOException {
        if (closed) {
            return;
        }
        ensureWritable();
        out.flush();
    }

    /** Seals the final segment, then closes the underlying stream. Idempotent. */
    @Override
    public synchronized void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        IOException first = null;
        try {
            if (failure != null) {
                throw new IOException("exitless: a write of this sealed stream failed; it was not finished", failure);
            }
            emit(true);
            out.flush();
        } catch (IOException e) {
            first = e;
        } finally {
            NativeSeal.sealerFree(sealer);
            sealer = 0;
            Arrays.fill(segment, (byte) 0);
            try {
                out.close();
            } catch (IOException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
