package io.exitless.spark;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.hadoop.conf.Configurable;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.io.compress.CompressionCodec;
import org.apache.hadoop.io.compress.CompressionInputStream;
import org.apache.hadoop.io.compress.CompressionOutputStream;
import org.apache.hadoop.io.compress.Compressor;
import org.apache.hadoop.io.compress.Decompressor;
import org.apache.spark.rdd.InputFileBlockHolder;

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
    /** A dataset write's id: each file's context is {@code <context>/<write id>/<file name>}. */
    public static final String DATASET_WRITE = "exitless.dataset.write";
    /** The write's parts (JSON: name → sealed_header_sha256, bytes, lines), checked per file. */
    public static final String DATASET_PARTS = "exitless.dataset.parts";
    /** Whether each part starts with a header line (not in the manifest's line count). */
    public static final String DATASET_HEADER = "exitless.dataset.header";

    private Configuration conf;
    private String partsJson;
    private JsonNode parts;

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
            return new Output(new SealedOutputStream(out, key, context(), segmentSize, true));
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
        String write = conf == null ? null : conf.get(DATASET_WRITE);
        if (write == null) {
            return new Input(new SealedInputStream(in, kms().resolver(), context(), null));
        }
        // A part of a SealedIO dataset: bound to its name in the write, checked against the manifest.
        String name = currentFileName();
        JsonNode part = parts().get(name);
        if (part == null) {
            throw new SealIntegrityException("exitless: " + name + " is not a part of dataset write " + write);
        }
        String context = conf.get(CONTEXT, "");
        byte[] ctx = SealedDatasets.partContext(context, write, name).getBytes(StandardCharsets.UTF_8);
        SealedInputStream sealed = new SealedInputStream(in, kms().resolver(), ctx, name);
        sealed.expectHeaderSha256(part.get("sealed_header_sha256").asText(), "part " + name
                + " is not the part that dataset write " + write + " produced (its sealed header differs from the"
                + " manifest's record): a part from another write of this dataset or from another dataset, or a"
                + " manifest rolled back to another write");
        long lines = part.get("lines").asLong() + (conf.getBoolean(DATASET_HEADER, false) ? 1 : 0);
        return new Input(new CountedInput(sealed, name, part.get("bytes").asLong(), lines));
    }

    /** The manifest's parts, parsed once per codec. */
    private JsonNode parts() throws IOException {
        String json = conf.get(DATASET_PARTS, "{}");
        if (!json.equals(partsJson)) {
            parts = new ObjectMapper().readTree(json);
            partsJson = json;
        }
        return parts;
    }

    /** The name of the file Spark's file scan is reading in this thread (set before it opens the file). */
    private static String currentFileName() throws IOException {
        String path = InputFileBlockHolder.getInputFilePath().toString();
        if (path.isEmpty()) {
            throw new IOException("exitless: " + DATASET_WRITE + " is set but this read is not a Spark file scan,"
                    + " so the part's name is unknown");
        }
        String last = path.substring(path.lastIndexOf('/') + 1);
        return URLDecoder.decode(last, StandardCharsets.UTF_8);
    }

    /** Counts the plaintext bytes and lines of a part and checks them against the manifest at its end. */
    private static final class CountedInput extends InputStream {
        private final InputStream in;
        private final String name;
        private final long wantBytes;
        private final long wantLines;
        private long bytes;
        private long lines;
        private boolean checked;

        CountedInput(InputStream in, String name, long wantBytes, long wantLines) {
            this.in = in;
            this.name = name;
            this.wantBytes = wantBytes;
            this.wantLines = wantLines;
        }

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            int n = read(one, 0, 1);
            return n < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = in.read(b, off, len);
            if (n < 0) {
                check();
                return -1;
            }
            bytes += n;
            for (int i = off; i < off + n; i++) {
                if (b[i] == '\n') {
                    lines++;
                }
            }
            return n;
        }

        private void check() throws SealIntegrityException {
            if (checked) {
                return;
            }
            checked = true;
            if (bytes != wantBytes) {
                throw new SealIntegrityException("exitless: " + name + ": " + bytes
                        + " plaintext bytes, the manifest says " + wantBytes);
            }
            if (lines != wantLines) {
                throw new SealIntegrityException("exitless: " + name + ": " + lines
                        + " lines, the manifest says " + wantLines);
            }
        }

        @Override
        public void close() throws IOException {
            in.close();
        }
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
        private final InputStream sealed;

        Input(InputStream sealed) throws IOException {
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
