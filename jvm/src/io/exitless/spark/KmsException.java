package io.exitless.spark;

import java.io.IOException;

/**
 * The KMS could not open, unwrap or wrap: a bad URI or keyring, a token that refuses,
 * or a data key that does not unwrap (wrong KMS key, modified envelope). The message
 * names the keyring, token or key id, never a key or PIN.
 */
public class KmsException extends IOException {
    private static final long serialVersionUID = 1L;

    public KmsException(String message) {
        super(message);
    }
}
