"""The gateway's error tree: every failure a caller may handle is a GatewayError."""


class GatewayError(Exception):
    """Base of every gateway error."""


class ConfigError(GatewayError):
    """station.json is missing or invalid."""


class ProtocolError(GatewayError):
    """A topic or payload broke the wire contract; `code` is the vector error category."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class OutboxError(GatewayError):
    """The outbox could not take or give records."""


class OutboxFull(OutboxError):
    """The outbox and its memory overflow are both full; the caller must retry later."""


class Unstorable(GatewayError):
    """A write held text the station database cannot store (a lone surrogate): the input is at fault, and
    sending it again cannot help."""


class LockerError(GatewayError):
    """A locker is unknown, offline or refused a command."""


class LockerOffline(LockerError):
    """The locker is not connected."""


class BrokerError(LockerError):
    """The station broker refused, dropped or broke the locker link's MQTT session."""


class BrokerRefused(BrokerError):
    """The broker answered CONNECT with a non-zero return code (4: bad user name or password, 5: not
    authorised), or refused a subscription."""

    def __init__(self, msg: str, code: int | None = None) -> None:
        super().__init__(msg)
        self.code = code


class CommandTimeout(LockerError):
    """The locker did not ack a command in time."""


class CommandRejected(LockerError):
    """The locker acked a command with ok=false."""

    def __init__(self, err: str) -> None:
        super().__init__(err)
        self.err = err


class DepositError(GatewayError):
    """A deposit could not be started."""


class NoCompartment(DepositError):
    """No free compartment of the requested size (or larger)."""


class LockerRetired(DepositError):
    """The locker named for a deposit was retired in the cloud: it takes no new parcels."""


class NoFoundParcel(DepositError):
    """The compartment named holds no found parcel (or one is being registered already)."""


class UnknownParcel(DepositError):
    """No parcel with this ref."""


class UplinkError(GatewayError):
    """The cloud did not answer a request with 2xx; `status` is the HTTP status, None for a network error."""

    def __init__(self, msg: str, status: int | None = None) -> None:
        super().__init__(msg)
        self.status = status
