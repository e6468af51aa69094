package io.exitless.spark;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

import org.apache.hadoop.conf.Configurable;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.io.compress.CompressionCodec;
import org.apache.hadoop.io.compress.CompressionInputStream;
import org.apache.hadoop.io.compress.CompressionOutputStream;
import org.apache.hadoop.io.compress.Compressor;
import org.apache.hadoop.io.compress.Decompressor;

/**
 * Sealed files for Hadoop and Spark's file sources, by extension ({@code .exls}):
 * registered in {@code io.compression.codecs}, it lets {@code spark.read.csv/json/text}
 * open sealed files (format version 2: each file's data key unwrapped from its own
 * header's envelope through the KMS) and {@code df.write.option("compression", <this
 * class>)} write them, one fresh data key per file, wrapped by the KMS.
 *
 * <p>Hadoop configuration (Spark: {@code spark.hadoop.*}, or a reader/writer option):
 * {@code exitless.kms} (the KMS URI, required), {@code exitless.context} (the stream
 * context every file is bound to; default empty), {@code exitless.segment.size}
 * (ciphertext segment size, default 64 KiB). Not splittable: a sealed file is read by
 * one task, start to end, so its truncation is always seen.
 */
public final class SealedHadoopCodec implements CompressionCodec, Configurable {
    public static final String EXTENSION = ".exls";
    public static final String KMS = "exitless.kms";
    public static final String CONTEXT = "exitless.context";
    public static final String SEGMENT_SIZE = "exitless.segment.size";

    private Configuration conf;

    @Override
    public void setConf(Configuration conf) {
        this.conf = conf;
    }

    @Override
    public Configuration getConf() {
        return conf;
    }

    private Kms kms() throws IOException {
        String uri = conf == null ? null : conf.get(KMS);
        if (uri == null || uri.isEmpty()) {
            throw new KmsException("exitless: " + KMS + " is not set: the sealed file codec needs the KMS URI"
                    + " (spark.hadoop." + KMS + ", or exitless.spark.configure(..., kms=URI))");
        }
        return Kms.shared(uri);
    }

    private byte[] context() {
        return (conf == null ? "" : conf.get(CONTEXT, "")).getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public CompressionOutputStream createOutputStream(OutputStream out) throws IOException {
        int segmentSize = conf == null ? 65536 : conf.getInt(SEGMENT_SIZE, 65536);
        try (DataKey key = kms().generate()) {
            return new Output(new SealedOutputStream(out, key, context(), segmentSize, key.keyId(), key.envelope()));
        }
    }

    @Override
    public CompressionOutputStream createOutputStream(OutputStream out, Compressor compressor) throws IOException {
        return createOutputStream(out);
    }

    @Override
    public Class<? extends Compressor> getCompressorType() {
        return null;
    }

    @Override
    public Compressor createCompressor() {
        return null;
    }

    @Override
    public CompressionInputStream createInputStream(InputStream in) throws IOException {
        return new Input(new SealedInputStream(in, kms().resolver(), context(), null));
    }

    @Override
    public CompressionInputStream createInputStream(InputStream in, Decompressor decompressor) throws IOException {
        return createInputStream(in);
    }

    @Override
    public Class<? extends Decompressor> getDecompressorType() {
        return null;
    }

    @Override
    public Decompressor createDecompressor() {
        return null;
    }

    @Override
    public String getDefaultExtension() {
        return EXTENSION;
    }

    /** Hadoop's stream shape around a sealed output stream: {@code finish} seals the final segment. */
    private static final class Output extends CompressionOutputStream {
        private final SealedOutputStream sealed;

        Output(SealedOutputStream sealed) {
            super(sealed);
            this.sealed = sealed;
        }

        @Override
        public void write(int b) throws IOException {
            sealed.write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            sealed.write(b, off, len);
        }

        @Override
        public void finish() throws IOException {
            // The final segment is sealed at close, which Hadoop's writers call right after.
        }

        @Override
        public void resetState() {
            throw new UnsupportedOperationException("exitless: a sealed stream cannot restart");
        }

        @Override
        public void close() throws IOException {
            sealed.close();
        }
    }

    /** Hadoop's stream shape around a sealed input stream (not seekable, not resettable). */
    private static final class Input extends CompressionInputStream {
        private final SealedInputStream sealed;

        Input(SealedInputStream sealed) throws IOException {
            super(sealed);
            this.sealed = sealed;
        }

        @Override
        public int read() throws IOException {
            return sealed.read();
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            return sealed.read(b, off, len);
        }

        @Override
        public void resetState() {
            throw new UnsupportedOperationException("exitless: a sealed stream cannot restart");
        }

        @Override
        public void close() throws IOException {
            sealed.close();
        }
    }
}
