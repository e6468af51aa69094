"""How a ``with`` block ends a sealed writer: normally, it closes (sealing the final
segment); on an exception, it aborts, so a stream cut short never reads back as a
complete one."""

from __future__ import annotations

from typing import Protocol


class _Abortable(Protocol):
    def abort(self) -> None: ...

    def close(self) -> None: ...


class AbortOnError:
    """Mixin for a writer with ``close()`` (seals) and ``abort()`` (closes without
    sealing the final segment): leaving a ``with`` block on an exception aborts it."""

    def __exit__(self: _Abortable, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()
