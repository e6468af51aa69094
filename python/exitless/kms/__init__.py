"""Envelope encryption: data keys wrapped by a key-management service (KMS).

Every sealed file is encrypted under its own random 32-byte data key
(:class:`exitless.Key`). The data key is stored next to the data only in *wrapped*
form (:class:`WrappedKey`): encrypted under a long-lived **primary key** that lives
in a KMS. :func:`open_kms` opens one from a URI; :func:`open_sealed` writes and reads
sealed files that carry their wrapped data key in the header (format version 2,
docs/FORMAT.md section 9), so a reader needs only the KMS. The byte layouts, the URI
syntax and what is checked where are in docs/KMS.md.

The modules, each importing only those above it:

- :mod:`~exitless.kms.base`: the :class:`Kms` interface, :class:`WrappedKey`,
  :class:`KeyInfo`, the errors, the helpers both backends share, :func:`open_sealed`.
- :mod:`~exitless.kms.local`: :class:`LocalKms` (``local:PATH``), primary keys in a
  0600 JSON keyring; AES-256-GCM wrapping (scheme 1). Imports ``cryptography`` on use.
- :mod:`~exitless.kms.pkcs11`: :class:`Pkcs11Kms` (``pkcs11:...``), primary keys
  inside a PKCS#11 token; CKM_AES_KEY_WRAP, RFC 3394 (scheme 2); the ``pkcs11:`` URI
  syntax. Imports ``python-pkcs11`` on use.
- :mod:`~exitless.kms.uri`: :func:`open_kms`, the one place that knows both backends.

Key bytes never appear in a ``repr``, a log line or an exception message: errors
name primary keys by their 16-byte key id (hex) only.
"""

from __future__ import annotations

from .base import (
    KEY_ID_LEN,
    SCHEME_LOCAL_AES_GCM,
    SCHEME_PKCS11_AES_KEY_WRAP,
    WRAP_AAD_PREFIX,
    InsecureKeyringError,
    KeyInfo,
    KeyringFormatError,
    Kms,
    KmsConfigError,
    KmsError,
    UnwrapError,
    WrappedKey,
    WrappedKeyFormatError,
    open_sealed,
)
from .local import KEYRING_FORMAT as KEYRING_FORMAT
from .local import KEYRING_MAX as KEYRING_MAX
from .local import KEYRING_VERSION as KEYRING_VERSION
from .local import LocalKms
from .pkcs11 import DEFAULT_SOFTHSM2_MODULE as DEFAULT_SOFTHSM2_MODULE
from .pkcs11 import PIN_FILE_MAX as PIN_FILE_MAX
from .pkcs11 import PKCS11_LABEL_PREFIX as PKCS11_LABEL_PREFIX
from .pkcs11 import Pkcs11Kms
from .uri import open_kms

# The names of ``import *``; the module constants above are reachable by name, as before.
__all__ = [
    "KEY_ID_LEN",
    "SCHEME_LOCAL_AES_GCM",
    "SCHEME_PKCS11_AES_KEY_WRAP",
    "WRAP_AAD_PREFIX",
    "InsecureKeyringError",
    "KeyInfo",
    "KeyringFormatError",
    "Kms",
    "KmsConfigError",
    "KmsError",
    "LocalKms",
    "Pkcs11Kms",
    "UnwrapError",
    "WrappedKey",
    "WrappedKeyFormatError",
    "open_kms",
    "open_sealed",
]
