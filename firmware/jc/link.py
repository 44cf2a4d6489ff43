"""Connectivity: keep one MQTT session up forever, reconnecting with exponential backoff and jitter."""

import binascii
import os
from jc.mqtt import Session, MQTTError


def _jitter(ms):
    """Spread ms over [ms/2, 3ms/2) so many lockers do not reconnect in lock-step."""
    r = int.from_bytes(os.urandom(2), "little") / 65536
    return int(ms * (0.5 + r))


def is_der_b64(v):
    """True for base64 text that decodes to a DER SEQUENCE, as an X.509 certificate is (config check)."""
    if type(v) is not str or not v:
        return False
    try:
        der = binascii.a2b_base64(v)
    except ValueError:
        return False
    return len(der) > 2 and der[0] == 0x30


def tls_context(ca_b64):
    """A client context that trusts only the station's CA (DER, base64, as config.json carries it).

    DER, not PEM: every MicroPython release documents DER for cadata, and the unix port refuses PEM.
    """
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=binascii.a2b_base64(ca_b64))
    return ctx


class Link:
    def __init__(self, app, mcfg, log):
        self.app = app
        self.cfg = mcfg
        self._log = log
        self.base_ms = int(mcfg.get("backoff_min_ms", 500))
        self.max_ms = int(mcfg.get("backoff_max_ms", 30000))
        self.connects = 0
        self.failures = 0
        self.net_down = 0  # attempts skipped because Wi-Fi was down
        # made once: the parsed CA stays in the context for every reconnect
        self.tls = tls_context(mcfg["ca"]) if mcfg.get("tls") else None
        self.hostname = mcfg.get("server_hostname") or mcfg["host"]

    async def run(self):
        backoff = self.base_ms
        c = self.cfg
        while True:
            self.app.net_beat = self.app.clock.ms()
            up = await self.app.hal.net_up()
            s = Session(self.app.on_message, max_packet=self.app.MAX_IN_PACKET, log=self._log)
            if up:
                try:
                    await s.connect(c["host"], c["port"], c["client_id"], c.get("user"), c.get("password"),
                                    c.get("keepalive", 60), will=self.app.will(), tls=self.tls,
                                    server_hostname=self.hostname)
                    self.connects += 1
                    backoff = self.base_ms
                    self._log("link", "connected to", c["host"], c["port"], "over TLS" if s.tls else "")
                    await self.app.serve(s)
                except MQTTError as e:
                    self.failures += 1
                    self._log("link", "mqtt:", e)
                except OSError as e:
                    self.failures += 1
                    self._log("link", "network:", e)
                finally:
                    self.app.session = None
                    await s.disconnect()
            else:
                self.net_down += 1
            wait = _jitter(backoff)
            self._log("link", "retry in", wait, "ms")
            self.app.net_beat = self.app.clock.ms()
            await self.app.clock.sleep_ms(wait)
            backoff = min(backoff * 2, self.max_ms)
