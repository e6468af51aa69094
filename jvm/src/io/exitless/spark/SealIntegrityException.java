package io.exitless.spark;

import java.io.IOException;

/**
 * Sealed bytes failed authentication: tampered, truncated, reordered or spliced data,
 * or the wrong key or context. No plaintext of the failing segment was returned. An
 * {@link IOException}, so Spark treats the block as corrupt (a fetch failure for
 * shuffle blocks, which recomputes the map output) and never computes on it.
 */
public class SealIntegrityException extends IOException {
    private static final long serialVersionUID = 1L;

    public SealIntegrityException(String message) {
        super(message);
    }

    public SealIntegrityException(String message, Throwable cause) {
        super(message, cause);
    }
}
