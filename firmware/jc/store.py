"""Atomic small-file storage in flash: write temp + CRC, then os.rename, so a reader sees old or new."""

import os
import struct
import binascii
from jc.errors import JcError

_MAGIC = b"JCS1"
_HDR = "<4sII"  # magic, length, crc32
_HDR_LEN = 12


class StoreError(JcError):
    """Flash storage failed (write error or full disk)."""


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def write(path, data):
    """Replace path with data; a power loss leaves either the old or the new content."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack(_HDR, _MAGIC, len(data), binascii.crc32(data) & 0xFFFFFFFF))
            f.write(data)
        os.rename(tmp, path)
    except OSError as e:
        remove(tmp)
        raise StoreError("write %s: %s" % (path, e))


def read(path):
    """Return the stored bytes, or None if missing; raise StoreError if torn or corrupt."""
    remove(path + ".tmp")  # a leftover temp is an interrupted write: the main file is still whole
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if len(raw) < _HDR_LEN:
        raise StoreError("short file %s" % path)
    magic, n, crc = struct.unpack(_HDR, raw[:_HDR_LEN])
    data = raw[_HDR_LEN:]
    if magic != _MAGIC or n != len(data) or (binascii.crc32(data) & 0xFFFFFFFF) != crc:
        raise StoreError("corrupt file %s" % path)
    return data
