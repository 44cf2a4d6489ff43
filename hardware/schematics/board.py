"""The locker controller board: ESP32-WROOM-32E, power, compartment drivers and field I/O, described in SKiDL.

`ESP32_NETS` is the board's half of the pin contract with firmware/jc/pins.py; `build()` draws the whole board
into a fresh SKiDL circuit and returns it.
"""

import builtins
import math
from dataclasses import dataclass

import skidl
from skidl import POWER, Net

import parts as P

# Compartments wired on this board; a 24-compartment locker adds a lock board on the RS-485 chain.
COMPARTMENTS = 12
# I/O expander ports, per compartment function, in the order the addresses are strapped.
EXPANDER_FUNCTIONS = ("LOCK", "DOOR", "OCC")
EXPANDER_BASE_ADDR = 0x20
I2C_PULLUP = "4.7k"


@dataclass(frozen=True)
class EspNet:
    """One ESP32 GPIO as the board uses it: the net name, its direction seen from the ESP32 and its role."""

    gpio: int
    net: str
    direction: str  # "in", "out", "io"
    role: str = ""  # "adc" for analogue inputs (lock drive is recognised from the wiring itself)


# The board's GPIO map (application pins only; the programming pins GPIO0/1/3 and EN are in PROGRAMMING_NETS).
ESP32_NETS = (
    EspNet(21, "I2C_SDA", "io"),
    EspNet(22, "I2C_SCL", "out"),
    EspNet(32, "EXP_INT", "in"),
    EspNet(17, "RS485_TX", "out"),
    EspNet(16, "RS485_RX", "in"),
    EspNet(4, "RS485_DE", "out"),
    EspNet(26, "LED_STATUS", "out"),
    EspNet(25, "BUZZER", "out"),
    EspNet(35, "VSENSE", "in", "adc"),
    EspNet(13, "KEYPAD_ROW1", "out"),
    EspNet(14, "KEYPAD_ROW2", "out"),
    EspNet(27, "KEYPAD_ROW3", "out"),
    EspNet(33, "KEYPAD_ROW4", "out"),
    EspNet(36, "KEYPAD_COL1", "in"),
    EspNet(39, "KEYPAD_COL2", "in"),
    EspNet(34, "KEYPAD_COL3", "in"),
)
PROGRAMMING_NETS = (EspNet(0, "BOOT", "in"), EspNet(1, "UART0_TXD", "out"), EspNet(3, "UART0_RXD", "in"))


def _nc():
    """The no-connect net of the circuit being built (SKiDL renews it on every reset)."""
    return builtins.default_circuit.NC


def expander_channel(function: str, compartment: int, compartments: int = COMPARTMENTS) -> tuple[int, str]:
    """I2C address and port pin ("GPA0".."GPB7") that carry `function` of compartment 1..N."""
    per_function = math.ceil(compartments / 16)
    index = compartment - 1
    chip = EXPANDER_FUNCTIONS.index(function) * per_function + index // 16
    bit = index % 16
    return EXPANDER_BASE_ADDR + chip, ("GPA%d" % bit if bit < 8 else "GPB%d" % (bit - 8))


class _Board:
    """Builds the board block by block; each method is one sheet of the schematic."""

    def __init__(self, compartments: int):
        self.n = compartments
        self.gnd = Net("GND")
        self.v33 = Net("+3V3")
        self.vin_raw = Net("VIN_RAW")
        self.vin = Net("VIN")  # protected 12-24 V rail, also the lock rail
        for net in (self.gnd, self.v33, self.vin):
            net.drive = POWER
        self.esp_net = {e.net: Net(e.net) for e in ESP32_NETS + PROGRAMMING_NETS}

    def r(self, value, a, b):
        return P.make(P.RESISTOR, P.resistor(value), value, a=a, b=b)

    def c(self, order, value, a, b):
        return P.make(P.CAPACITOR, order, value, a=a, b=b)

    def pullup(self, net, value="10k"):
        return self.r(value, self.v33, net)

    # --- power ---------------------------------------------------------------------------------------------
    def power(self):
        P.sheet = "power"
        v_fused = self.vin_raw
        v_term, gate, boot, sw, fb, rt, ss = (
            Net(n) for n in ("VIN_TERM", "QREV_G", "BUCK_BOOT", "BUCK_SW", "BUCK_FB", "BUCK_RT", "BUCK_SS")
        )
        P.make(P.connector(["VIN", "GND"], description="12-24 V DC input"), P.screw_terminal(2), "PWR_IN",
               VIN=v_term, GND=self.gnd)
        P.make(P.FUSE, P.F_PTC, "2.5A PTC", a=v_term, b=v_fused)
        # Bidirectional TVS: clamps surges both ways without conducting on a reversed supply.
        P.make(P.TVS_BIDIR, P.D_TVS_IN, "SMBJ33CA", a=v_fused, b=self.gnd)
        # Reverse-polarity P-MOSFET: body diode starts it, gate pulled to GND, zener clamps Vgs at 12 V.
        P.make(P.PMOS, P.Q_PMOS, "AOD4185", D=v_fused, S=self.vin, G=gate)
        self.r("100k", gate, self.gnd)
        P.make(P.DIODE, P.D_ZENER, "12V", K=self.vin, A=gate)
        P.make(P.CAP_POLAR, P.C_BULK, "100u/50V", pos=self.vin, neg=self.gnd)
        self.c(P.C_10U_50V, "10u/50V", self.vin, self.gnd)
        # 3.3 V buck: FB 0.75 V * (1 + 34k/10k) = 3.30 V; RT 49.9k ~ 500 kHz; SS 10n ~ 1.5 ms soft start.
        P.make(P.LMR16030, P.U_BUCK, "LMR16030", VIN=self.vin, EN=self.vin, GND=self.gnd, PAD=self.gnd,
               BOOT=boot, SW=sw, FB=fb, RT=rt, SS=ss)
        self.c(P.C_100N, "100n", boot, sw)
        P.make(P.DIODE, P.D_SCHOTTKY, "SS34", K=sw, A=self.gnd)
        P.make(P.INDUCTOR, P.L_BUCK, "10u", a=sw, b=self.v33)
        self.r("34k", self.v33, fb)
        self.r("10k", fb, self.gnd)
        self.r("49.9k", rt, self.gnd)
        self.c(P.C_10N, "10n", ss, self.gnd)
        for _ in range(2):
            self.c(P.C_22U, "22u", self.v33, self.gnd)
        # Supply monitor: 100k/10k divider -> 30 V reads 2.73 V on an ADC1 input-only pin.
        vsense = self.esp_net["VSENSE"]
        self.r("100k", self.vin, vsense)
        self.r("10k", vsense, self.gnd)
        self.c(P.C_100N, "100n", vsense, self.gnd)

    # --- ESP32, reset and programming ----------------------------------------------------------------------
    def mcu(self):
        P.sheet = "mcu"
        en, dtr, rts, qa_b, qb_b = (Net(n) for n in ("EN", "DTR", "RTS", "QA_B", "QB_B"))
        boot = self.esp_net["BOOT"]
        esp = P.make(P.ESP32, P.U_ESP32, "ESP32-WROOM-32E")
        esp["3V3"] += self.v33
        for g in ("GND1", "GND2", "GND3", "EPAD"):
            esp[g] += self.gnd
        esp["EN"] += en
        used = set()
        pin_type = {"in": skidl.Pin.types.INPUT, "out": skidl.Pin.types.OUTPUT, "io": skidl.Pin.types.BIDIR}
        for e in ESP32_NETS + PROGRAMMING_NETS:
            # Type each GPIO by its use so ERC catches two outputs fighting on one net.
            pin = esp[P.ESP32_GPIO_PIN[e.gpio]]
            pin.func = pin_type[e.direction]
            pin += self.esp_net[e.net]
            used.add(e.gpio)
        for gpio, pin in P.ESP32_GPIO_PIN.items():
            if gpio not in used and gpio not in range(6, 12):
                esp[pin] += _nc()
        for pin in ("IO6", "IO7", "IO8", "IO9", "IO10", "IO11", "NC"):
            esp[pin] += _nc()
        self.c(P.C_10U, "10u", self.v33, self.gnd)
        self.c(P.C_100N, "100n", self.v33, self.gnd)
        # EN: RC delay so the supply settles before the chip starts.
        self.pullup(en)
        self.c(P.C_1U, "1u", en, self.gnd)
        self.pullup(boot)
        P.make(P.BUTTON, P.SW_TACT, "RESET", a=en, b=self.gnd)
        P.make(P.BUTTON, P.SW_TACT, "BOOT", a=boot, b=self.gnd)
        # Auto-reset: DTR/RTS of the USB-UART adapter pull EN and GPIO0 through two cross-coupled NPNs.
        self.r("10k", dtr, qa_b)
        P.make(P.NPN, P.Q_NPN, "MMBT3904", B=qa_b, E=rts, C=en)
        self.r("10k", rts, qb_b)
        P.make(P.NPN, P.Q_NPN, "MMBT3904", B=qb_b, E=dtr, C=boot)
        P.make(P.connector(["GND", "3V3", "TXD0", "RXD0", "DTR", "RTS"], description="UART programming header"),
               P.pin_header(6), "PROG", GND=self.gnd, **{"3V3": self.v33}, TXD0=self.esp_net["UART0_TXD"],
               RXD0=self.esp_net["UART0_RXD"], DTR=dtr, RTS=rts)

    # --- I2C bus, expanders, display header ----------------------------------------------------------------
    def expanders(self):
        P.sheet = "expanders"
        sda, scl, intr = self.esp_net["I2C_SDA"], self.esp_net["I2C_SCL"], self.esp_net["EXP_INT"]
        self.pullup(sda, I2C_PULLUP)
        self.pullup(scl, I2C_PULLUP)
        self.pullup(intr)
        exp_reset = Net("EXP_RESET")
        self.pullup(exp_reset)
        self.c(P.C_100N, "100n", exp_reset, self.gnd)
        self.chips = {}
        per_function = math.ceil(self.n / 16)
        for f_index, function in enumerate(EXPANDER_FUNCTIONS):
            for j in range(per_function):
                addr = EXPANDER_BASE_ADDR + f_index * per_function + j
                chip = P.make(P.MCP23017, P.U_MCP23017, f"MCP23017@0x{addr:02X}", VDD=self.v33, VSS=self.gnd,
                              SDA=sda, SCL=scl, RESET=exp_reset)
                for bit, pin in enumerate(("A0", "A1", "A2")):
                    chip[pin] += self.v33 if (addr >> bit) & 1 else self.gnd
                for pin in ("NC1", "NC2"):
                    chip[pin] += _nc()
                # Lock outputs raise no interrupts; door and sensor chips share one open-drain line.
                for pin in ("INTA", "INTB"):
                    chip[pin] += _nc() if function == "LOCK" else intr
                self.c(P.C_100N, "100n", self.v33, self.gnd)
                self.chips[addr] = chip
        used = set()
        for k in range(1, self.n + 1):
            for function in EXPANDER_FUNCTIONS:
                used.add(expander_channel(function, k, self.n))
        for addr, chip in self.chips.items():
            for port in [f"GPA{i}" for i in range(8)] + [f"GPB{i}" for i in range(8)]:
                if (addr, port) not in used:
                    chip[port] += _nc()
        P.make(P.connector(["GND", "VCC", "SCL", "SDA"], description="SSD1306 OLED display header"),
               P.pin_header(4), "OLED", GND=self.gnd, VCC=self.v33, SCL=scl, SDA=sda)

    def expander_pin(self, function, k):
        addr, port = expander_channel(function, k, self.n)
        return self.chips[addr][port]

    # --- one compartment: lock driver, door switch, occupancy sensor ---------------------------------------
    def compartment(self, k):
        P.sheet = f"compartment{k}"
        drv, gate, lock_n, door_in, door, occ_in, occ = (
            Net(f"{n}{k}") for n in ("LOCK_DRV", "LOCK_G", "LOCK_N", "DOOR_IN", "DOOR", "OCC_IN", "OCC")
        )
        for function, net in (("LOCK", drv), ("DOOR", door), ("OCC", occ)):
            pin = self.expander_pin(function, k)
            pin += net
        # Low-side lock switch; the 100k pulldown keeps it off while the expander pins float after reset.
        self.r("100", drv, gate)
        self.r("100k", gate, self.gnd)
        P.make(P.NMOS, P.Q_NMOS, "SI2318CDS", G=gate, S=self.gnd, D=lock_n)
        P.make(P.DIODE, P.D_FLYBACK, "SS110", K=self.vin, A=lock_n)
        # Field inputs: pull-up at the connector, ESD clamp, then 1k/100n low-pass against bounce and noise.
        for field, filtered in ((door_in, door), (occ_in, occ)):
            self.pullup(field)
            P.make(P.ESD, P.D_ESD, "PESD3V3", io=field, gnd=self.gnd)
            self.r("1k", field, filtered)
            self.c(P.C_100N, "100n", filtered, self.gnd)
        P.make(P.connector(["LOCK+", "LOCK-", "DOOR", "GND", "3V3", "SENSE"], description=f"Compartment {k}"),
               P.jst_xh(6), f"C{k}", **{"LOCK+": self.vin, "LOCK-": lock_n, "DOOR": door_in, "GND": self.gnd,
                                       "3V3": self.v33, "SENSE": occ_in})

    # --- keypad, RS-485, LED, buzzer -----------------------------------------------------------------------
    def field_io(self):
        P.sheet = "field_io"
        rows = [self.esp_net[f"KEYPAD_ROW{i}"] for i in range(1, 5)]
        cols = [self.esp_net[f"KEYPAD_COL{i}"] for i in range(1, 4)]
        # GPIO34-39 have no internal pull-ups: the columns get external ones.
        for col in cols:
            self.pullup(col)
        names = ["ROW1", "ROW2", "ROW3", "ROW4", "COL1", "COL2", "COL3", "GND"]
        P.make(P.connector(names, description="4x3 keypad"), P.jst_xh(8), "KEYPAD",
               **dict(zip(names, rows + cols + [self.gnd])))
        for net in rows + cols:
            P.make(P.ESD, P.D_ESD, "PESD3V3", io=net, gnd=self.gnd)

        tx, rx, de = self.esp_net["RS485_TX"], self.esp_net["RS485_RX"], self.esp_net["RS485_DE"]
        a, b, term = Net("RS485_A"), Net("RS485_B"), Net("RS485_TERM")
        P.make(P.SP3485, P.U_SP3485, "SP3485", RO=rx, DI=tx, DE=de, GND=self.gnd, VCC=self.v33, A=a, B=b,
               **{"~RE": de})
        self.c(P.C_100N, "100n", self.v33, self.gnd)
        self.pullup(rx)  # RO floats while the receiver is disabled
        self.r("10k", de, self.gnd)  # driver off until the firmware claims the bus
        # Fail-safe bias holds an idle bus at A > B; termination is fitted only at the chain's end.
        self.r("680", self.v33, a)
        self.r("680", b, self.gnd)
        self.r("120", a, term)
        P.make(P.connector(["1", "2"], description="RS-485 termination jumper"), P.pin_header(2), "TERM",
               **{"1": term, "2": b})
        P.make(P.TVS_RS485, P.D_SM712, "SM712", io1=a, io2=b, gnd=self.gnd)
        for side in ("IN", "OUT"):
            P.make(P.connector(["VIN", "GND", "A", "B"], description=f"RS-485 chain {side.lower()}"),
                   P.screw_terminal(4), f"RS485_{side}", VIN=self.vin, GND=self.gnd, A=a, B=b)

        led_a = Net("LED_A")
        self.r("330", self.esp_net["LED_STATUS"], led_a)
        P.make(P.LED, P.D_LED, "green", A=led_a, K=self.gnd)

        base, bz_n = Net("BZ_BASE"), Net("BZ_N")
        self.r("1k", self.esp_net["BUZZER"], base)
        self.r("10k", base, self.gnd)
        P.make(P.NPN, P.Q_NPN, "MMBT3904", B=base, E=self.gnd, C=bz_n)
        P.make(P.BUZZER, P.BZ_MAGNETIC, "MLT-8530", pos=self.v33, neg=bz_n)
        P.make(P.DIODE, P.D_SIGNAL, "1N4148W", K=self.v33, A=bz_n)


def build(compartments: int = COMPARTMENTS):
    """Reset SKiDL's default circuit, draw the board into it and return it."""
    skidl.reset()
    board = _Board(compartments)
    board.power()
    board.mcu()
    board.expanders()
    for k in range(1, compartments + 1):
        board.compartment(k)
    board.field_io()
    return builtins.default_circuit
