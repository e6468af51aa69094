""":func:`open_kms`: a KMS from its URI, ``local:PATH`` or ``pkcs11:...`` (docs/KMS.md)."""

from __future__ import annotations

from .base import Kms, KmsConfigError
from .local import LocalKms
from .pkcs11 import Pkcs11Kms


def open_kms(uri: str) -> Kms:
    """Opens a KMS from a URI:

    - ``local:PATH`` — a :class:`LocalKms` keyring (which must exist; create one
      with :meth:`LocalKms.init`). PATH is taken literally.
    - ``pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=LABEL;pin-env=VAR``
      (or ``pin-file=PATH`` for a 0600 file holding the PIN) — a
      :class:`Pkcs11Kms`. A PIN written in the URI is refused.
    """
    if not isinstance(uri, str):
        raise TypeError(f"a KMS URI is a str, not {type(uri).__name__}")
    if uri.startswith("local:"):
        path = uri[len("local:") :]
        if not path:
            raise KmsConfigError("'local:' needs a keyring path, e.g. local:/etc/exitless/keyring.json")
        return LocalKms(path)
    if uri.startswith("pkcs11:"):
        return Pkcs11Kms.from_uri(uri)
    scheme = uri.partition(":")[0] if ":" in uri else uri[:20]
    raise KmsConfigError(f"unknown KMS URI scheme {scheme!r} (known: local:, pkcs11:)")
