package io.exitless.spark;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.SparkSession;

/**
 * The JVM side of {@code exitless.spark.SealedIO} (python/exitless/spark/sealed_io.py owns
 * the dataset layout: part names, contexts, the sealed manifest): each task seals its part
 * file here, in the executor's JVM, with a data key from the KMS (exitless-jni's KMS
 * core), so no row crosses into Python. A part's stream context is
 * {@code <context>/<write id>/<part name>}. Reading a dataset back is Spark's file scan with
 * {@link SealedHadoopCodec}, which checks each part against the manifest; {@link #readLines}
 * reads lone sealed files.
 */
public final class SealedDatasets {
    private SealedDatasets() {}

    static String partContext(String context, String writeId, String name) {
        String tail = writeId + "/" + name;
        return context.isEmpty() ? tail : context + "/" + tail;
    }

    static String sha256Hex(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Seals each partition of {@code lines} as the part file {@code part-NNNNN.<ext>.exls} in
     * {@code dir} (a path every executor sees), {@code header} (or null) first; returns the
     * part records as JSON objects (name, lines, bytes, sealed_header_sha256).
     */
    public static List<String> writeParts(Dataset<String> lines, String dir, String kmsUri, String context,
            String writeId, String ext, String header, int segmentSize) {
        PartWriter writer = new PartWriter(dir, kmsUri, context, writeId, ext, header, segmentSize);
        return lines.javaRDD().mapPartitionsWithIndex(writer, false).collect();
    }

    private static final class PartWriter
            implements org.apache.spark.api.java.function.Function2<Integer, Iterator<String>, Iterator<String>>,
            Serializable {
        private static final long serialVersionUID = 1L;
        private final String dir;
        private final String kmsUri;
        private final String context;
        private final String writeId;
        private final String ext;
        private final String header;
        private final int segmentSize;

        PartWriter(String dir, String kmsUri, String context, String writeId, String ext, String header, int segmentSize) {
            this.dir = dir;
            this.kmsUri = kmsUri;
            this.context = context;
            this.writeId = writeId;
            this.ext = ext;
            this.header = header;
            this.segmentSize = segmentSize;
        }

        @Override
        public Iterator<String> call(Integer index, Iterator<String> rows) throws IOException {
            String name = String.format("part-%05d.%s.exls", index, ext);
            Path path = Paths.get(dir, name);
            byte[] ctx = partContext(context, writeId, name).getBytes(StandardCharsets.UTF_8);
            long count = 0;
            long bytes = 0;
            byte[] sealedHeader;
            try (DataKey key = Kms.shared(kmsUri).generate()) {
                SealedOutputStream sealed = new SealedOutputStream(Files.newOutputStream(path), key, ctx, segmentSize,
                        true);
                sealedHeader = sealed.header();
                try (OutputStream out = new BufferedOutputStream(sealed, 1 << 20)) {
                    if (header != null) {
                        byte[] b = (header + "\n").getBytes(StandardCharsets.UTF_8);
                        out.write(b);
                        bytes += b.length;
                    }
                    while (rows.hasNext()) {
                        byte[] b = (rows.next() + "\n").getBytes(StandardCharsets.UTF_8);
                        out.write(b);
                        bytes += b.length;
                        count++;
                    }
                }
            }
            String record = "{\"name\": \"" + name + "\", \"lines\": " + count + ", \"bytes\": " + bytes
                    + ", \"sealed_header_sha256\": \"" + sha256Hex(sealedHeader) + "\"}";
            return Collections.singletonList(record).iterator();
        }
    }

    /** One sealed file to read and the context it is bound to. */
    static final class Source implements Serializable {
        private static final long serialVersionUID = 1L;
        final String path;
        final String context;

        Source(String path, String context) {
            this.path = path;
            this.context = context;
        }
    }

    /**
     * The lines of the sealed files {@code sourcesJson} lists (a JSON array of objects with
     * path and context), one task per file, as a {@code Dataset<String>}; {@code skipHeader}
     * drops each file's first line. For lone sealed files: a dataset's parts are read by
     * Spark's file scan with {@link SealedHadoopCodec}, which checks them against the manifest.
     */
    public static Dataset<String> readLines(SparkSession spark, String kmsUri, String sourcesJson, boolean skipHeader)
            throws IOException {
        List<Source> sources = new ArrayList<>();
        for (JsonNode n : new ObjectMapper().readTree(sourcesJson)) {
            sources.add(new Source(n.get("path").asText(), n.get("context").asText()));
        }
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        JavaRDD<String> lines = jsc.parallelize(sources, Math.max(1, sources.size()))
                .flatMap(s -> new LineReader(kmsUri, s, skipHeader));
        return spark.createDataset(lines.rdd(), Encoders.STRING());
    }

    /** The lines of one sealed file, read lazily. */
    static final class LineReader implements Iterator<String> {
        private final boolean skipHeader;
        private final InputStream in;
        private final ByteArrayOutputStream line = new ByteArrayOutputStream(256);
        private String next;
        private boolean done;
        private boolean headerSkipped;

        LineReader(String kmsUri, Source source, boolean skipHeader) throws IOException {
            this.skipHeader = skipHeader;
            Kms kms = Kms.shared(kmsUri);
            InputStream file = Files.newInputStream(Paths.get(source.path));
            this.in = new BufferedInputStream(new SealedInputStream(file, kms.resolver(),
                    source.context.getBytes(StandardCharsets.UTF_8), source.path), 1 << 20);
        }

        /** The next line without its newline, or null at the end (the file then closed). */
        private String readLine() throws IOException {
            line.reset();
            int b;
            while ((b = in.read()) >= 0) {
                if (b == '\n') {
                    return line.toString(StandardCharsets.UTF_8);
                }
                line.write(b);
            }
            in.close();
            if (line.size() > 0) {
                return line.toString(StandardCharsets.UTF_8);
            }
            return null;
        }

        private void advance() throws IOException {
            if (!headerSkipped) {
                headerSkipped = true;
                if (skipHeader && readLine() == null) {
                    done = true;
                    return;
                }
            }
            next = readLine();
            done = next == null;
        }

        @Override
        public boolean hasNext() {
            if (next == null && !done) {
                try {
                    advance();
                } catch (IOException e) {
                    done = true;
                    throw new UncheckedIOException(e);
                }
            }
            return next != null;
        }

        @Override
        public String next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            String s = next;
            next = null;
            return s;
        }
    }
}
