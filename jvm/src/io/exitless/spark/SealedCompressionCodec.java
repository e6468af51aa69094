package io.exitless.spark;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

import org.apache.spark.SparkConf;
import org.apache.spark.TaskContext;
import org.apache.spark.io.CompressionCodec;
import org.apache.spark.io.LZ4CompressionCodec;
import org.apache.spark.io.LZFCompressionCodec;
import org.apache.spark.io.SnappyCompressionCodec;
import org.apache.spark.io.ZStdCompressionCodec;

/**
 * Spark's block codec with sealing ({@code spark.io.compression.codec}): each block
 * stream (shuffle output, sort and shuffle spills, broadcast pieces, RDD and cached
 * blocks, checkpoints) is compressed as Spark would ({@code spark.exitless.codec}:
 * {@code lz4} by default, {@code zstd}, {@code snappy}, {@code lzf}, or {@code none}),
 * then sealed as one exitless stream under the application's key (see
 * {@link ExitlessPlugin}). Reading a tampered, truncated or spliced block throws
 * {@link SealIntegrityException}, an {@code IOException}: Spark fails the task (a fetch
 * failure for a shuffle block, which recomputes its map output), never computing on it.
 *
 * <p>Not in Spark's list of codecs whose streams concatenate, so Spark never splices
 * two sealed streams into one (it merges spills by reading and rewriting them).
 */
public final class SealedCompressionCodec implements CompressionCodec {
    /** The compression under the seal. */
    public static final String INNER_CODEC = "spark.exitless.codec";
    /** Ciphertext segment size of block streams (bytes, 1 KiB to 16 MiB; default 64 KiB). */
    public static final String SEGMENT_SIZE = "spark.exitless.segmentSize";

    /** Binds block streams to this use: a stream sealed for another purpose does not open here. */
    private static final byte[] CONTEXT = "exitless spark block v1".getBytes(StandardCharsets.US_ASCII);

    private final CompressionCodec inner;
    private final int segmentSize;

    public SealedCompressionCodec(SparkConf conf) {
        String name = conf.get(INNER_CODEC, "lz4").toLowerCase(Locale.ROOT);
        switch (name) {
            case "lz4":
                inner = new LZ4CompressionCodec(conf);
                break;
            case "zstd":
                inner = new ZStdCompressionCodec(conf);
                break;
            case "snappy":
                inner = new SnappyCompressionCodec(conf);
                break;
            case "lzf":
                inner = new LZFCompressionCodec(conf);
                break;
            case "none":
                inner = null;
                break;
            default:
                throw new IllegalArgumentException("exitless: " + INNER_CODEC + "=" + name
                        + " is not a codec exitless seals; choose lz4, zstd, snappy, lzf or none");
        }
        segmentSize = conf.getInt(SEGMENT_SIZE, 64 * 1024);
        if (segmentSize < 1024 || segmentSize > 16 * 1024 * 1024) {
            throw new IllegalArgumentException("exitless: " + SEGMENT_SIZE + "=" + segmentSize
                    + " is outside 1024 to 16777216 bytes");
        }
    }

    /** The compression under the seal ({@code none}: null). */
    public CompressionCodec inner() {
        return inner;
    }

    @Override
    public OutputStream compressedOutputStream(OutputStream s) {
        OutputStream sealed;
        try {
            sealed = new SealedOutputStream(s, BlockKeys.current(), CONTEXT, segmentSize);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return inner == null ? sealed : inner.compressedOutputStream(sealed);
    }

    @Override
    public InputStream compressedInputStream(InputStream s) {
        InputStream opened = new SealedInputStream(s, (id, envelope) -> BlockKeys.current(), CONTEXT, origin());
        return inner == null ? opened : inner.compressedInputStream(opened);
    }

    /** Which task reads, for error messages (Spark's own fetch failure names a shuffle block). */
    private static String origin() {
        TaskContext task = TaskContext.get();
        if (task == null) {
            return "a Spark block read outside a task";
        }
        return "a Spark block read by stage " + task.stageId() + "." + task.stageAttemptNumber()
                + ", partition " + task.partitionId() + ", task " + task.taskAttemptId();
    }
}
