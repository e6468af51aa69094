package io.exitless.spark;

import java.io.IOException;

/** The bytes are not an exitless sealed stream, or use a version or algorithm this build does not read. */
public class SealFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    public SealFormatException(String message) {
        super(message);
    }

    public SealFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
