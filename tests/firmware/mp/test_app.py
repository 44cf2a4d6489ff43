"""The whole app on a simulated clock and board: an hour without Wi-Fi, watchdog, courier PINs, safe mode."""

import asyncio
import binascii
import hashlib
from check import eq, true
from jc import bootstate
from jc.app import App
from jc.clock import VirtualClock
from jc.hal import Hal
from jc.digest import code_hash, pin_hash
from jc.update import manifest_text, offer_mac

SECRET = "9fd687cc5e1918da74cb849b2370293069abc311a49d4f4b7772006b898ad859"
KEY = binascii.unhexlify(SECRET)


class Board(Hal):
    """A scripted board on the virtual clock: doors spring open when pulsed; a person acts on a schedule."""

    def __init__(self, clock, ns):
        self.clock = clock
        self.coils = {n: False for n in ns}
        self.doors = {n: False for n in ns}
        self.occupied = {n: False for n in ns}
        self.max_on = 0
        self.script = []  # [at_ms, fn]
        self.keybuf = ""
        self.feeds = 0
        self.wifi = False
        self.events = []
        self.text = ""
        self.reboots = []  # clock.ms() of each reboot asked for

    def sample(self):
        now = self.clock.ms()
        while self.script and self.script[0][0] <= now:
            self.script.pop(0)[1](self)

    def lock(self, n, on):
        self.coils[n] = on
        self.max_on = max(self.max_on, sum(1 for v in self.coils.values() if v))
        if on:
            self.doors[n] = True

    def all_locks_off(self):
        for n in self.coils:
            self.coils[n] = False

    def door(self, n):
        return self.doors[n]

    def occ(self, n):
        return self.occupied[n]

    def keys(self):
        k, self.keybuf = self.keybuf, ""
        return k

    def show(self, text, led):
        self.text = text

    def feed(self):
        self.feeds += 1

    async def net_up(self):
        return self.wifi

    def record(self, evt):
        self.events.append(evt)

    def reboot(self):
        self.reboots.append(self.clock.ms())


def cfg(**kw):
    c = {"station": "s1", "locker": "l1", "secret": SECRET,
         "mqtt": {"host": "127.0.0.1", "port": 1, "client_id": "s1-l1", "backoff_max_ms": 30000},
         "comps": [{"n": 1, "size": "S"}, {"n": 2, "size": "M"}, {"n": 3, "size": "L"}], "tele_s": 60,
         "tick_ms": 50}
    c.update(kw)
    return c


def run_for(app, clock, ms, tasks):
    async def main():
        ts = [asyncio.create_task(t) for t in tasks]
        await clock.run(until_ms=ms)
        for t in ts:
            t.cancel()
        await asyncio.sleep_ms(0)
    asyncio.run(main())


def types(board):
    return [e["type"] for e in board.events]


def test_an_hour_without_wifi_keeps_everything():
    clock = VirtualClock()
    board = Board(clock, (1, 2, 3))
    app = App(cfg(), board, log=lambda *a: None, clock=clock)
    app.start()
    app.comps[2].st = "occupied"
    app.comps[2].ref = "p-2"
    board.occupied[2] = True
    app.vault.put(code_hash(KEY, "424242"), [2], 7200, 0)

    def take(b):
        b.occupied[2] = False
        b.doors[2] = False
    board.script = [[600000, lambda b: setattr(b, "keybuf", "424242#")], [605000, take]]
    run_for(app, clock, 3600 * 1000,
            [app.hw_task(), app.tele_task(), app._net_task(), app.wdt_task()])
    # the villager collected offline: pickup recorded, code used up
    true("pickup" in types(board), types(board))
    eq(app.comps[2].st, "empty")
    eq(app.vault.count(), 0)
    evts = [r for r in app.outbox.recs if r.kind == 1]
    eq([r.seq for r in evts], list(range(1, app.seq + 1)))  # every event kept, in order
    # telemetry taken every minute and kept within the outbox bound, nothing dropped
    true(55 <= app.outbox.count() - len(evts) <= 60, app.outbox.count())
    eq(app.outbox.drops(), 0)
    # reconnect attempts backed off to the cap with jitter: not hundreds, not one
    n = app.link.net_down
    true(60 <= n <= 260, n)
    eq(app.link.connects, 0)
    # the watchdog was fed throughout (no reboot), never starved
    true(board.feeds >= 3500, board.feeds)
    eq(app.n["wdt_starved"], 0)
    eq(board.max_on, 1)


def test_watchdog_starves_when_the_hardware_loop_hangs():
    clock = VirtualClock()
    board = Board(clock, (1,))
    app = App(cfg(comps=[{"n": 1, "size": "S"}]), board, log=lambda *a: None, clock=clock)
    app.start()
    # the network loop is alive but no hardware loop runs
    run_for(app, clock, 60 * 1000, [app._net_task(), app.wdt_task()])
    true(board.feeds <= 3, board.feeds)
    true(app.n["wdt_starved"] >= 55, app.n["wdt_starved"])


def test_courier_pin_opens_assigned_deposits_once():
    clock = VirtualClock()
    board = Board(clock, (1, 2, 3))
    app = App(cfg(), board, log=lambda *a: None, clock=clock)
    app.start()
    eq(app._execute({"op": "courier_put", "h": pin_hash(KEY, "12345678"),
                     "deps": [{"c": 1, "ref": "p-a"}, {"c": 3, "ref": "p-b"}], "exp": 3600}), None)
    eq(app._execute({"op": "courier_put", "h": pin_hash(KEY, "87654321"),
                     "deps": [{"c": 9, "ref": "p-x"}], "exp": 3600}), "no_such_compartment")

    def fill(b):
        b.occupied[1] = True
        b.doors[1] = False
        b.doors[3] = False  # compartment 3 closed with nothing inside
    board.script = [[500, lambda b: setattr(b, "keybuf", "123456#")],  # a pickup code is not a PIN
                    [2000, lambda b: setattr(b, "keybuf", "12345678#")], [4000, fill],
                    [8000, lambda b: setattr(b, "keybuf", "12345678#")]]
    run_for(app, clock, 10000, [app.hw_task()])
    ev = board.events
    eq([e["cs"] for e in ev if e["type"] == "courier"], [[1, 3]])
    eq(sorted(e["c"] for e in ev if e["type"] == "lock"), [1, 3])
    true(all(e["why"] == "courier" for e in ev if e["type"] == "lock"))
    eq([(e["c"], e["ref"]) for e in ev if e["type"] == "deposit"], [(1, "p-a")])
    eq([(e["c"], e["ref"]) for e in ev if e["type"] == "deposit_void"], [(3, "p-b")])
    eq(app.comps[1].st, "occupied")
    eq(app.comps[3].st, "empty")
    eq([e["fails"] for e in ev if e["type"] == "code_bad"], [1, 1])  # the PIN reset the count; reused, it is wrong
    eq(app.vault.count(), 0)


def test_failed_boots_lead_to_safe_mode_and_back():
    for i in range(bootstate.SAFE_AFTER):
        st, safe = bootstate.on_boot("", "0.1.0")
        eq(safe, False)
    st, safe = bootstate.on_boot("", "0.1.0")
    eq(safe, True)
    clock = VirtualClock()
    board = Board(clock, (1, 2, 3))
    app = App(cfg(), board, log=lambda *a: None, clock=clock, boot=st, safe=True)
    app.start()
    true("Safe" in board.text)
    eq(app._execute({"id": "c1", "op": "deposit", "c": 1, "ref": "p-1"}), "busy")
    eq(app._execute({"id": "c2", "op": "time", "ts": 1764355200}), None)
    true(b'"safe":true' in app.birth())
    # healthy again: the record is cleared so the next boot runs the full firmware
    app.bootrec["fails"] = 0
    app._save_boot()
    eq(bootstate.on_boot("", "0.1.0")[1], False)


def test_trial_set_is_rolled_back_after_an_unconfirmed_boot():
    st = bootstate.load("", "0.1.0")
    st.update({"set": "app1", "ver": "0.2.0", "prev": "", "prev_ver": "0.1.0", "trial": True, "tries": 0})
    bootstate.save("", st)
    st, safe = bootstate.on_boot("", "0.1.0")  # the trial boot
    eq((st["set"], st["trial"], st["tries"], safe), ("app1", True, 1, False))
    eq(bootstate.app_path("", st), "app1")
    st, safe = bootstate.on_boot("", "0.1.0")  # it never confirmed: back to the factory set
    eq((st["set"], st["ver"], st["trial"]), ("", "0.1.0", False))
    eq(st["report"], ["rolled_back", "0.2.0"])
    eq(st["bad"], "app1")
    eq(bootstate.app_path("", st), None)


def test_update_staged_while_the_boot_is_judged_good_is_kept():
    # the new set arrives shortly after power-on: the running boot is judged good (healthy_s) while the staged
    # set waits for its 'staged' event to leave (the station's network is down), just before the reboot
    new = {"jc/const.py": b'FW = "0.2.0"\n'}
    files = [{"path": p, "size": len(d), "sha256": binascii.hexlify(hashlib.sha256(d).digest()).decode()}
             for p, d in new.items()]

    def deliver(app, board):
        def offer(b):
            eq(app._fw_offer({"ver": "0.2.0", "files": files, "mac": offer_mac(KEY, "0.2.0", manifest_text(files))}),
               None)
            for p, d in new.items():
                app._on_chunk({"ver": "0.2.0", "file": p, "off": 0, "data": binascii.b2a_base64(d).decode().strip()})
            true(app.upd.done)
        board.script = [[58000, offer]]
    app, board, safe = _power_on(66000, before=deliver)
    eq(app.healthy, True)
    eq(len(board.reboots), 1)
    true(board.reboots[0] > 60000, board.reboots)  # the boot turned good between the install and the reboot
    st, safe = bootstate.on_boot("", "0.1.0")  # the next boot runs the staged set on trial
    eq((st["set"], st["ver"], st["trial"], st["prev"], st["prev_ver"]), ("app1", "0.2.0", True, "", "0.1.0"))
    eq(bootstate.app_path("", st), "app1")


def test_torn_boot_record_falls_back_to_factory():
    with open("boot.json", "w") as f:
        f.write('{"set": "app1", "tri')
    st, safe = bootstate.on_boot("", "0.1.0")
    eq(st["set"], "")
    eq(safe, False)


def _power_on(ms, script=(), healthy_s=60, before=None):
    """One boot of the controller with the station's network down, cut off after ms (a power cut)."""
    st, safe = bootstate.on_boot("", "0.1.0")
    clock = VirtualClock()
    board = Board(clock, (1, 2, 3))
    board.occupied[2] = _parcel_inside()
    app = App(cfg(healthy_s=healthy_s), board, log=lambda *a: None, clock=clock, boot=st, safe=safe)
    if before:
        before(app, board)
    board.script = board.script + list(script)
    run_for(app, clock, ms, [app.run()])  # every task the controller starts, as main.py runs it
    return app, board, safe


def _parcel_inside():
    try:
        with open("parcel") as f:
            return f.read() == "1"
    except OSError:
        return False


def _deposit_and_code(app, board):
    def order(b):  # once the sensors have settled
        eq(app._execute({"id": "c1", "op": "deposit", "c": 2, "ref": "p-2"}), None)
        eq(app._execute({"id": "c2", "op": "code_put", "h": code_hash(KEY, "424242"), "cs": [2], "exp": 7200}),
           None)

    def put(b):
        b.occupied[2] = True
        b.doors[2] = False
        with open("parcel", "w") as f:  # what is physically inside outlives the controller
            f.write("1")
    board.script = [[1000, order], [1500, put]]


def test_power_cuts_with_the_broker_down_never_stop_a_pickup():
    # the parcel goes in while the network is up, then the station's broker goes down and the power is cut
    # again and again, each time before the boot could count as good
    app, board, safe = _power_on(5000, before=_deposit_and_code)
    board.script = []
    eq(app.comps[2].st, "occupied")
    boots = [safe]
    for _ in range(bootstate.SAFE_AFTER - 1):
        app, board, safe = _power_on(10000)
        boots.append(safe)
    eq(boots, [False] * bootstate.SAFE_AFTER)

    # in safe mode: remote commands that move locks and updates are refused, a code still opens the parcel
    def take(b):
        b.occupied[2] = False
        b.doors[2] = False
    script = [[2000, lambda b: setattr(b, "keybuf", "424242#")], [4000, take]]

    def check_refusals(app, board):
        eq(app.safe, True)
        eq(app._execute({"id": "c3", "op": "deposit", "c": 1, "ref": "p-9"}), "busy")
        eq(app._execute({"id": "c4", "op": "open", "c": 2, "by": "ops", "why": "test"}), "busy")
        eq(app._execute({"id": "c5", "op": "fw_offer", "ver": "0.2.0", "mac": "0" * 64, "msize": 10}), "busy")
    shown = []
    script.insert(0, [1500, lambda b: shown.append(b.text)])
    app, board, safe = _power_on(70000, script=script, before=check_refusals)
    true("Safe" in shown[0], shown)
    eq(safe, True)
    true(board.max_on == 1 and "pickup" in types(board), types(board))
    eq([(e["c"], e["ref"]) for e in board.events if e["type"] == "pickup"], [(2, "p-2")])
    eq(app.comps[2].st, "empty")
    eq(app.vault.count(), 0)
    # 60 s of local health, with the broker still down: the boot is good and safe mode is over
    eq(app.safe, False)
    eq(bootstate.load("", "0.1.0")["fails"], 0)
    eq(app.link.connects, 0)
    eq(bootstate.on_boot("", "0.1.0")[1], False)


def test_boots_that_run_well_offline_are_good_boots():
    for _ in range(bootstate.SAFE_AFTER + 3):
        app, board, safe = _power_on(61000)
        eq(safe, False)
        eq(app.healthy, True)
        eq(app.link.connects, 0)
    eq(bootstate.load("", "0.1.0")["fails"], 0)


def test_a_boot_whose_outbox_cannot_be_written_is_not_good():
    def break_outbox(app, board):
        def cut(b):
            app.outbox.path = "no/such/folder"  # the flash refuses writes from now on
        board.script = [[1000, cut]]
    app, board, safe = _power_on(70000, before=break_outbox)
    eq(app.healthy, False)
    eq(bootstate.load("", "0.1.0")["fails"], 1)
