package io.exitless.spark;

import java.io.IOException;

/** Finds the data key of a stream being opened, from its header's key id and envelope. */
@FunctionalInterface
public interface KeyResolver {
    /**
     * The data key for a stream whose header records {@code keyId} (16 bytes) and
     * {@code envelope} (the wrapped data key of format version 2, or null for version 1).
     * The stream hands the key back to {@link #release} once it has derived its own key.
     */
    DataKey resolve(byte[] keyId, byte[] envelope) throws IOException;

    /** Called once the stream no longer needs {@code key}: a resolver that made it for this stream wipes it here. */
    default void release(DataKey key) {}
}
