"""ESP32 board: MCP23017 expanders for locks/doors/sensors, matrix keypad, LED, buzzer, Wi-Fi, watchdog."""

import asyncio
import time
import machine
import network
import esp32
from jc import pins as P
from jc.hal import Hal, HalError
from jc.lockboard import LockBus, BoardError

# MCP23017 registers (IOCON.BANK = 0)
_IODIRA = 0x00
_GPPUA = 0x0C
_GPIOA = 0x12
_OLATA = 0x14

_KEYMAP = ("123", "456", "789", "*0#")
WDT_MS = 8000
WIFI_WAIT_MS = 15000
GLYPH_FILE = "glyphs.bin"  # the display's glyph file on the flash, copied by `jincun firmware deploy`


def _reset_name():
    names = {"PWRON_RESET": "power", "HARD_RESET": "hard", "WDT_RESET": "watchdog",
             "DEEPSLEEP_RESET": "deepsleep", "SOFT_RESET": "soft"}
    cause = machine.reset_cause()
    for k in names:
        if getattr(machine, k, None) == cause:
            return names[k]
    return "other"


class Esp32Hal(Hal):
    def __init__(self, cfg, log=None):
        self._log = log or (lambda *a: None)
        self.ns = [c["n"] for c in cfg["comps"]]
        locks = cfg.get("locks") or {"bus": "gpio"}
        self.app = None
        self.bus = None
        if locks["bus"] == "rs485":
            # 12 to 32 compartments on KR-CU16 boards (16 locks each) sharing the RS-485 UART
            uart = machine.UART(P.RS485_UART_ID, baudrate=locks.get("baud", 9600), tx=P.RS485_TX, rx=P.RS485_RX)
            try:
                self.bus = LockBus(uart, self.ns, locks.get("model", "kr-cu16"), locks.get("addr", 0),
                                   self._ms, machine.Pin(P.RS485_DE, machine.Pin.OUT, value=0))
            except BoardError as e:
                raise HalError(str(e))
        elif max(self.ns) > P.COMPARTMENTS_PER_BOARD:
            raise HalError("the expander board drives compartments 1..%d" % P.COMPARTMENTS_PER_BOARD)
        self.wifi_cfg = cfg.get("wifi") or {}
        self.i2c = machine.I2C(P.I2C_BUS_ID, scl=machine.Pin(P.I2C_SCL), sda=machine.Pin(P.I2C_SDA),
                               freq=P.I2C_FREQ_HZ)
        self.olat = 0
        self._write16(P.EXP_LOCK_ADDR, _OLATA, 0)  # locks off before the pins become outputs
        self._write16(P.EXP_LOCK_ADDR, _IODIRA, 0x0000)
        self._write16(P.EXP_DOOR_ADDR, _IODIRA, 0xFFFF)
        self._write16(P.EXP_OCC_ADDR, _IODIRA, 0xFFFF)
        self.door_bits = 0
        self.occ_bits = 0
        self.bus_errors = 0
        self.rows = [machine.Pin(g, machine.Pin.OUT, value=1) for g in P.KEYPAD_ROWS]
        self.cols = [machine.Pin(g, machine.Pin.IN) for g in P.KEYPAD_COLS]  # external pull-ups
        self.key_down = None
        self.key_seen = 0
        self.keybuf = ""
        self.led = machine.Pin(P.LED_STATUS, machine.Pin.OUT, value=0)
        self.buzzer = machine.PWM(machine.Pin(P.BUZZER), freq=2700, duty=0)
        if self.bus is None:
            self.de = machine.Pin(P.RS485_DE, machine.Pin.OUT, value=0)
        self.adc = machine.ADC(machine.Pin(P.VSENSE))
        self.adc.atten(machine.ADC.ATTN_11DB)
        self.wlan = network.WLAN(network.STA_IF)
        self.wdt = None
        self.reset = _reset_name()
        self.beep_until = 0
        self.oled = None
        disp = cfg.get("display")
        if disp:
            import ssd1306
            from jc.display import Display, Glyphs, WIDTH, HEIGHT
            try:
                oled = ssd1306.SSD1306_I2C(WIDTH, HEIGHT, self.i2c, disp.get("addr", 0x3C))
            except OSError as e:
                oled = None
                self._log("display", "SSD1306 not answering, running without it:", e)
            if oled is not None:
                try:
                    glyphs = Glyphs(GLYPH_FILE)
                except (OSError, ValueError) as e:
                    glyphs = None
                    self._log("display", "no glyph file, showing English:", e)
                self.oled = Display(oled, glyphs)

    # ---- expanders ----
    def _write16(self, addr, reg, value):
        try:
            self.i2c.writeto_mem(addr, reg, bytes((value & 0xFF, value >> 8)))
        except OSError as e:
            self.bus_errors += 1
            raise HalError("I2C write 0x%02x: %s" % (addr, e))

    def _read16(self, addr, reg):
        b = self.i2c.readfrom_mem(addr, reg, 2)
        return b[0] | (b[1] << 8)

    def sample(self):
        """Read all door and sensor inputs once per tick (two I2C reads instead of one per compartment)."""
        try:
            self.door_bits = self._read16(P.EXP_DOOR_ADDR, _GPIOA)
            occ = self._read16(P.EXP_OCC_ADDR, _GPIOA)
            self.occ_bits = (~occ & 0xFFFF) if P.OCC_ACTIVE_LOW else occ
        except OSError:
            self.bus_errors += 1  # keep the last readings; the debouncer sees no change
        if self.bus is not None:
            self.bus.poll()
        self._scan_keys()
        if self.beep_until and time.ticks_diff(time.ticks_ms(), self.beep_until) >= 0:
            self.buzzer.duty(0)
            self.beep_until = 0

    def _ms(self):
        return self.app.clock.ms() if self.app else 0

    def lock(self, n, on):
        if self.bus is not None:
            if on:
                self.bus.open(n)  # the board times the coil pulse itself
            return
        bit = 1 << (n - 1)
        self.olat = (self.olat | bit) if on else (self.olat & ~bit)
        try:
            self._write16(P.EXP_LOCK_ADDR, _OLATA, self.olat)
        except HalError:
            if on:
                self.olat &= ~bit
            raise

    def all_locks_off(self):
        if self.bus is not None:
            self.bus.opens = []
            return
        self.olat = 0
        self._write16(P.EXP_LOCK_ADDR, _OLATA, 0)

    def door(self, n):
        if self.bus is not None:
            return self.bus.door(n)
        return bool(self.door_bits & (1 << (n - 1)))

    def occ(self, n):
        if self.bus is not None:
            v = self.bus.occupied(n)
            if v is not None:
                return v
        if n > P.COMPARTMENTS_PER_BOARD:
            return None  # no sensor wired: reported as a sensor fault, never guessed
        return bool(self.occ_bits & (1 << (n - 1)))

    # ---- keypad ----
    def _scan_keys(self):
        found = None
        for r, row in enumerate(self.rows):
            row.value(0)
            for c, col in enumerate(self.cols):
                if not col.value():
                    found = _KEYMAP[r][c]
            row.value(1)
        if found is None:
            self.key_down = None
            self.key_seen = 0
        elif found == self.key_down:
            self.key_seen += 1
            if self.key_seen == 3:  # held for three scans: a press, not a bounce
                self.keybuf += found
                self._beep(40)
        else:
            self.key_down = found
            self.key_seen = 1

    def keys(self):
        k = self.keybuf
        self.keybuf = ""
        return k

    def _beep(self, ms):
        self.buzzer.duty(512)
        self.beep_until = time.ticks_add(time.ticks_ms(), ms)

    def show(self, text, led):
        self.led.value(1 if led in ("green", "amber") else 0)
        if led == "red":
            self._beep(200)
        self._log("display", text)
        if self.oled is not None:
            try:
                self.oled.show(text)
            except OSError:
                self.bus_errors += 1  # the locker works without its screen

    # ---- system ----
    async def start(self, app):
        self.app = app
        self.wdt = machine.WDT(timeout=WDT_MS)

    def reboot(self):
        self.all_locks_off()
        machine.reset()

    def heap_max(self, free):
        try:
            # largest free block of the IDF data heap the MicroPython heap grows from
            return max(h[2] for h in esp32.idf_heap_info(esp32.HEAP_DATA))
        except (AttributeError, ValueError):
            return free

    def feed(self):
        if self.wdt:
            self.wdt.feed()

    async def net_up(self):
        if self.wlan.isconnected():
            return True
        self.wlan.active(True)
        try:
            self.wlan.connect(self.wifi_cfg.get("ssid", ""), self.wifi_cfg.get("password", ""))
        except OSError as e:
            self._log("wifi", "connect failed:", e)
            return False
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < WIFI_WAIT_MS:
            if self.wlan.isconnected():
                return True
            await asyncio.sleep_ms(200)
        return False

    def health(self):
        h = {"reset": self.reset}
        try:
            h["rssi"] = self.wlan.status("rssi")
        except (OSError, ValueError):
            pass
        h["vin"] = round(self.adc.read_uv() * P.VSENSE_DIVIDER_RATIO / 1000000, 2)
        try:
            h["temp"] = esp32.mcu_temperature()
        except AttributeError:
            h["temp"] = round((esp32.raw_temperature() - 32) / 1.8, 1)
        return h
