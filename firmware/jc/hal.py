"""Hardware port: what the application needs from a board. hal_esp32 and hal_sim implement it."""

from jc.errors import JcError


class HalError(JcError):
    """The board could not be driven (bus error, missing device)."""


class Hal:
    """Interface; every method is non-blocking and called from the hardware task."""

    async def start(self, app):
        """Bring up the board; app gives access to snapshots for diagnostics."""

    def sample(self):
        """Read all inputs once; called at the start of every hardware tick."""

    def lock(self, n, on):
        """Energise (on=True) or release the lock coil of compartment n."""
        raise NotImplementedError

    def all_locks_off(self):
        raise NotImplementedError

    def door(self, n):
        """Raw door switch: True when open."""
        raise NotImplementedError

    def occ(self, n):
        """Raw occupancy sensor: True/False, or None when the sensor reads out of range."""
        raise NotImplementedError

    def keys(self):
        """Keys pressed since the last call, as a string of 0-9 * #."""
        raise NotImplementedError

    def show(self, text, led):
        """Show text on the display and set the status LED ('off', 'green', 'red', 'amber')."""

    def feed(self):
        """Feed the watchdog."""

    async def net_up(self):
        """Make sure the network link (Wi-Fi) is up; return True when it is."""
        return True

    def health(self):
        """Board health for telemetry: rssi, vin, temp, reset."""
        return {}

    def heap_max(self, free):
        """Largest free heap block; ports that cannot tell report the free total."""
        return free

    def reboot(self):
        """Restart the controller (after a firmware update or a failed self-test)."""
        raise NotImplementedError

    def record(self, evt):
        """Called for every event created (the simulator keeps a ledger)."""
