package io.exitless.spark;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;

/**
 * Whole-buffer sealing for small payloads, tools and cross-tests (the Python package
 * opens what this seals and the other way round: one format, one implementation).
 */
public final class Sealing {
    private Sealing() {}

    /** The crypto provider exitless-jni was built with ({@code aws-lc}, {@code ring}, ...). */
    public static String provider() throws IOException {
        NativeSeal.check();
        return NativeSeal.provider();
    }

    /** Seals {@code plaintext} as one version-1 stream; {@code key} (32 bytes) is wiped. */
    public static byte[] seal(byte[] key, byte[] context, byte[] plaintext, int segmentSize) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (DataKey k = new DataKey(key); SealedOutputStream s = new SealedOutputStream(out, k, context, segmentSize)) {
            s.write(plaintext);
        }
        return out.toByteArray();
    }

    /** Opens a whole sealed stream; {@code key} (32 bytes) is wiped. */
    public static byte[] open(byte[] key, byte[] context, byte[] sealed) throws IOException {
        try (DataKey k = new DataKey(key);
                InputStream s = new SealedInputStream(new ByteArrayInputStream(sealed), (id, e) -> k, context, null)) {
            return s.readAllBytes();
        }
    }

    /**
     * {@code java -cp exitless-spark.jar io.exitless.spark.Sealing seal CONTEXT SEGMENT_SIZE}
     * or {@code ... open CONTEXT}: stdin is the key (64 hex digits and a newline, kept
     * off the command line), then the bytes; stdout gets the result. Exit status 0,
     * 3 for an integrity error, 4 for a format error, 2 for usage (tests and tools).
     */
    public static void main(String[] args) throws IOException {
        boolean seal = args.length == 3 && args[0].equals("seal");
        if (!seal && !(args.length == 2 && args[0].equals("open"))) {
            System.err.println("usage: Sealing seal CONTEXT SEGMENT_SIZE | Sealing open CONTEXT  (stdin: key hex line, then data)");
            System.exit(2);
        }
        DataInputStream in = new DataInputStream(System.in);
        byte[] line = new byte[65];
        in.readFully(line);
        if (line[64] != '\n') {
            System.err.println("Sealing: stdin must start with the key as 64 hex digits and a newline");
            System.exit(2);
        }
        byte[] key = HexFormat.of().parseHex(new String(line, 0, 64, StandardCharsets.US_ASCII));
        byte[] context = args[1].getBytes(StandardCharsets.UTF_8);
        byte[] data = in.readAllBytes();
        try {
            byte[] out = seal ? seal(key, context, data, Integer.parseInt(args[2])) : open(key, context, data);
            System.out.write(out);
            System.out.flush();
        } catch (SealIntegrityException e) {
            System.err.println(e.getMessage());
            System.exit(3);
        } catch (SealFormatException e) {
            System.err.println(e.getMessage());
            System.exit(4);
        }
    }
}
