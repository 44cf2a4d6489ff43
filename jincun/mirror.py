"""The event-to-compartment mirror: how a locker event moves the compartment state that gateway and cloud keep.

The firmware's state machine (firmware/jc/compartment.py) decides; its events tell the world. The gateway's
live view (gateway/lockerlink.py) and the cloud's compartment rows (cloud/ingest/lockers.py) both follow the events
through `mirror()`, so the two never read the same event differently. A birth snapshot replaces the mirror
whole. Vectors in tests/vectors/mirror.json are run by both sides; a test also drives the firmware's own
state machine and checks that the mirror of its events lands where the firmware is.
"""

from __future__ import annotations

from typing import Any

FIELDS = ("st", "door", "occ", "ref", "mm")
_REF = object()  # take the event's ref

# (event type, the field that selects the row: lock `why`, alarm `kind`, or None) -> the fields it sets,
# as the firmware's compartment sets them (docs/protocol.md §3.1, §3.2)
TABLE: dict[tuple[str, str | None], dict[str, Any]] = {
    # door closed on a deposit opening with a parcel inside
    # (also how an adopted found parcel is announced: its mismatch is over)
    ("deposit", None): {"st": "occupied", "occ": True, "ref": _REF, "mm": False},
    # door closed on a deposit opening with nothing inside, or on a pickup opening with the parcel gone
    ("deposit_void", None): {"st": "empty", "occ": False, "ref": None, "mm": False},
    ("pickup", None): {"st": "empty", "occ": False, "ref": None, "mm": False},
    # a pulse for a deposit (a gateway command, or a courier PIN typed at the locker) or for a pickup code;
    # a remote open leaves the state alone
    ("lock", "deposit"): {"st": "deposit"},
    ("lock", "courier"): {"st": "deposit"},
    ("lock", "pickup"): {"st": "pickup"},
    # the controller takes a jammed compartment out of service itself
    ("alarm", "lock_jam"): {"st": "fault"},
}


def mirror(evt: dict, cur: dict) -> dict[str, Any]:
    """The compartment fields (`st`, `door`, `occ`, `ref`, `mm`) that event `evt` changes, given the current ones.

    `cur` holds the compartment as mirrored so far, with the fields the caller keeps (a None value counts as
    unknown); a field the caller does not keep is never answered. `mm` is the mismatch mark: the sensor read
    a parcel where the compartment holds none (a found parcel, docs/protocol.md). The answer holds only the
    fields that change; an event that moves nothing gives {}.
    """
    t = evt.get("type")
    if t == "door":
        out: dict[str, Any] = {"door": "open" if evt.get("open") else "closed"}
    elif t == "state":
        # enable/disable, or staff who took a parcel out through a remote open: an emptied compartment
        # holds no parcel ref any more
        out = {"st": evt.get("st")}
        if evt.get("st") == "empty":  # a controller empties a compartment only on an empty reading
            out.update(ref=None, occ=False, mm=False)
    elif t == "alarm" and evt.get("kind") == "sensor_fault":
        # judged after a deposit with the occupancy sensor out of range: the firmware marks it faulty; the
        # same alarm at any other time leaves the state alone
        out = {"st": "fault"} if cur.get("st") == "deposit" and cur.get("door") == "closed" else {}
    elif t == "alarm" and evt.get("kind") == "occupancy_mismatch" and "occ" in evt:
        # the reading that disagreed with the compartment's state; a full one where no parcel is held is a
        # parcel found inside (the controller has already put the compartment in fault)
        out = {"occ": evt["occ"]}
        if evt["occ"] and cur.get("st") != "occupied":
            out["mm"] = True
    else:
        key = evt.get("why") if t == "lock" else evt.get("kind") if t == "alarm" else None
        row = TABLE.get((t, key))  # type: ignore[arg-type]
        out = {k: (evt.get("ref") if v is _REF else v) for k, v in row.items()} if row else {}
    return {k: v for k, v in out.items() if k in cur and cur[k] != v}
