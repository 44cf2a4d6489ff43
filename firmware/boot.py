"""ESP32 boot: make every lock output low before anything else runs (fail-secure)."""

import machine
from jc import pins as P


def _locks_off():
    # The gate pulldowns already hold the locks off while the expander pins are inputs;
    # this drives the latches low and only then turns the pins into outputs.
    try:
        i2c = machine.I2C(P.I2C_BUS_ID, scl=machine.Pin(P.I2C_SCL), sda=machine.Pin(P.I2C_SDA), freq=100000)
        i2c.writeto_mem(P.EXP_LOCK_ADDR, 0x14, b"\x00\x00")  # OLATA/OLATB
        i2c.writeto_mem(P.EXP_LOCK_ADDR, 0x00, b"\x00\x00")  # IODIRA/IODIRB: outputs
    except OSError as e:
        print("boot: lock expander not answering:", e)
    machine.Pin(P.RS485_DE, machine.Pin.OUT, value=0)  # RS-485 driver off


_locks_off()
