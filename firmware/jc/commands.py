"""The App's command handling: cmd and eack messages from the gateway, their acks, and what each op does.

A part of `jc.app.App` (mixed into it). A command id seen before is answered from memory (`cmd_memory`).
"""

import asyncio
import json
from jc import const as K
from jc import proto
from jc.mqtt import MQTTError

MAX_PENDING_ACKS = 16
# what safe mode refuses: updates, and remote commands that move a lock or change a compartment; the vault
# still takes and drops codes, so pickups go on
SAFE_REFUSED = (K.OP_FW_OFFER, K.OP_DEPOSIT, K.OP_OPEN, K.OP_DISABLE, K.OP_ENABLE, K.OP_COURIER_PUT,
                K.OP_ADOPT)


class Commands:
    """Incoming messages; state: cmd_memory, acks_pending (set up by App.__init__)."""

    def on_message(self, topic, payload):
        try:
            self._dispatch(topic, payload)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            # a handler bug must not take the receive loop down with it
            self.n["handler_errors"] += 1
            self._log("app", "message handler failed:", repr(e))

    def _dispatch(self, topic, payload):
        try:
            _, _, kind = proto.parse_topic(topic)
        except proto.ProtoError:
            self.n["bad_topics"] += 1
            self._log("app", "message on unexpected topic dropped")
            return
        if kind == K.EACK:
            self._on_eack(payload)
        elif kind == K.CMD:
            self._on_cmd(payload)
        else:
            self.n["bad_topics"] += 1

    def _reject(self, kind, payload, e):
        self.n["rejected_payloads"] += 1
        self._log("app", "rejected", kind, "payload:", e.code, e.detail, "(%d bytes)" % len(payload))

    def _on_eack(self, payload):
        try:
            o = proto.validate(K.EACK, payload)
        except proto.ProtoError as e:
            self._reject(K.EACK, payload, e)
            return
        self.n["eacks"] += 1
        if self.outbox.ack(o["boot"], o["seq"]):
            self.last_eack_ms = self.clock.ms()
        self.wake.set()

    def _remembered(self, cid):
        for i, a in self.cmd_memory:
            if i == cid:
                return a
        return None

    def _on_cmd(self, payload):
        try:
            o = proto.validate(K.CMD, payload)
        except proto.ProtoError as e:
            self._reject(K.CMD, payload, e)
            self._answer_bad(payload, e)
            return
        if o["op"] == K.OP_FW_CHUNK:
            if self.safe:
                self.n["fw_stale_chunks"] += 1  # safe mode takes no update
                return
            self._on_chunk(o)  # answered by the next fwreq, not by an ack; not remembered
            return
        cid = o["id"]
        prev = self._remembered(cid)
        if prev is not None:
            self.n["dup_cmds"] += 1
            self._send_ack(prev)
            return
        self.n["cmds"] += 1
        err = self._execute(o)
        ack = proto.enc_ack(cid, err is None, err)
        self.cmd_memory.append((cid, ack))
        if len(self.cmd_memory) > K.CMD_MEMORY:
            self.cmd_memory.pop(0)
        self._send_ack(ack)

    def _answer_bad(self, payload, e):
        """A rejected command that still names a usable id gets a negative ack so the sender is not left waiting."""
        if e.code != K.E_BAD_FIELD:
            return
        try:
            o = json.loads(payload)
        except ValueError:
            return
        cid = o.get("id")
        if proto.is_cmd_id(cid):
            err = K.ERR_UNKNOWN_OP if o.get("op") not in K.OPS else K.ERR_BAD_REQUEST
            self._send_ack(proto.enc_ack(cid, False, err))

    def _send_ack(self, ack):
        s = self.session
        if s is None or not s.alive:
            return
        if self.acks_pending >= MAX_PENDING_ACKS:
            self.n["acks_dropped"] += 1  # the sender retries; a repeated id is answered from memory
            return
        self.acks_pending += 1
        asyncio.create_task(self._publish_ack(s, ack))

    async def _publish_ack(self, s, ack):
        try:
            await s.publish(self.t[K.ACK], ack, 1)
        except MQTTError as e:
            self._log("app", "ack not sent:", e)
        finally:
            self.acks_pending -= 1

    def _execute(self, o):
        op = o["op"]
        now = self.clock.ms()
        if self.safe and op in SAFE_REFUSED:
            return K.ERR_BUSY  # safe mode: no update, nothing that moves a lock or changes a compartment
        if op == K.OP_FW_OFFER:
            return self._fw_offer(o)
        if op == K.OP_FW_ABORT:
            self.upd.abort(o["ver"])
            return None
        if op == K.OP_ADOPT:
            c = self.comps.get(o["c"])
            if c is None:
                return K.ERR_NO_SUCH_COMP
            err = c.adopt(o["ref"])
            if err:
                return err
            self.emit(K.T_DEPOSIT, {"c": c.n, "ref": c.ref})  # confirmed by the sensor, as a deposit is
            return None
        if op in (K.OP_DEPOSIT, K.OP_OPEN, K.OP_DISABLE, K.OP_ENABLE):
            c = self.comps.get(o["c"])
            if c is None:
                return K.ERR_NO_SUCH_COMP
            if op == K.OP_DEPOSIT or op == K.OP_OPEN:
                why = "deposit" if op == K.OP_DEPOSIT else "remote"
                err = c.request(why, o.get("ref"))
                if err:
                    return err
                self.driver.pulse(c.n)
                self.emit(K.T_LOCK, {"c": c.n, "why": why})
                if op == K.OP_OPEN:
                    self._log("app", "remote open of", c.n, "by", o["by"], "why", o["why"])
                return None
            err = c.disable() if op == K.OP_DISABLE else c.enable()
            if err:
                return err
            self.emit(K.T_STATE, {"c": c.n, "st": c.st})
            return None
        if op == K.OP_CODE_PUT:
            for n in o["cs"]:
                if n not in self.comps:
                    return K.ERR_NO_SUCH_COMP
            return self.vault.put(o["h"], o["cs"], o["exp"], now)
        if op == K.OP_COURIER_PUT:
            deps = [[d["c"], d["ref"]] for d in o["deps"]]
            for n, _ in deps:
                if n not in self.comps:
                    return K.ERR_NO_SUCH_COMP
            return self.vault.put_courier(o["h"], deps, o["exp"], now)
        if op == K.OP_CODE_DEL:
            self.vault.delete(o["h"], now)
            return None
        if op == K.OP_TIME:
            self.clock.set_wall(o["ts"])
            return None
        if op == K.OP_REBIRTH:
            self.want_birth = True
            # the gateway asks after a seq gap: send every unacknowledged event again, oldest first, now
            for r in self.outbox.recs:
                r.sent = False
            self.last_eack_ms = self.clock.ms()
            self.wake.set()
            return None
        return K.ERR_UNKNOWN_OP
