"""The cloud's one error tree; foreign errors are translated into these at the edge."""

from __future__ import annotations


class CloudError(Exception):
    """Base of every error the cloud raises on purpose."""


class ItemRejected(CloudError):
    """An ingest item cannot be applied; `code` is the wire error, `detail` the human reason."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail

    @property
    def wire(self) -> str:
        """The `error` string sent back to the gateway."""
        return str(self)


class BatchRejected(CloudError):
    """The whole batch is refused (nothing applied); carries the HTTP status to answer with."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class NotFound(CloudError):
    """A requested entity does not exist."""


class Conflict(CloudError):
    """An entity exists already with different content."""


class NotifierError(CloudError):
    """The SMS carrier did not accept a message."""


class NotifierThrottled(NotifierError):
    """The SMS provider asked to send later (a rate limit on the number or the account)."""


class CommandRefused(CloudError):
    """A command (or another staff action) is not allowed; carries the HTTP status to answer with, and
    optionally the key of its words in the table (jincun/i18n.py, `err.<key>`) with their arguments."""

    def __init__(self, status_code: int, detail: str, *, key: str | None = None, **args: object) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.key = key
        self.args_ = args
