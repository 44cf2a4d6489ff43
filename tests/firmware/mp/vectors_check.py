"""Check jc.proto and jc.digest against tests/vectors/*.json; print one JSON summary line."""

import sys
import json
import binascii
from jc import proto, digest

vec = sys.argv[1]
out = {"payloads": 0, "wire": 0, "topics": 0, "codes": 0, "failures": []}


def payload(c):
    """A case's payload bytes: UTF-8 text, or raw bytes in base64 (payload_b64)."""
    if "payload_b64" in c:
        return binascii.a2b_base64(c["payload_b64"])
    return c["payload"].encode()


for name in ("payloads", "wire"):
    with open(vec + "/" + name + ".json") as f:
        for c in json.load(f)["cases"]:
            got = proto.check(c["kind"], payload(c))
            want = None if c["valid"] else c["error"]
            out[name] += 1
            if got != want:
                out["failures"].append({"case": c["name"], "got": got, "want": want})

with open(vec + "/topics.json") as f:
    for c in json.load(f)["cases"]:
        try:
            got = list(proto.parse_topic(c["topic"]))
        except proto.ProtoError as e:
            got = e.code
        want = c.get("error") or [c["station"], c["locker"], c["kind"]]
        out["topics"] += 1
        if got != want:
            out["failures"].append({"case": c["topic"], "got": got, "want": want})
        if "error" not in c and proto.topic(c["station"], c["locker"], c["kind"]) != c["topic"]:
            out["failures"].append({"case": "build " + c["topic"]})

with open(vec + "/codes.json") as f:
    for c in json.load(f)["cases"]:
        h = digest.code_hash(binascii.unhexlify(c["secret"]), c["code"])
        out["codes"] += 1
        if h != c["h"] or not digest.ct_equal(h, c["h"]) or digest.ct_equal(h, c["h"][:-1] + "0"):
            out["failures"].append({"case": "code " + c["code"], "got": h, "want": c["h"]})

print(json.dumps(out))

# firmware update and courier PINs (sections 3.7 and 4.1), in their own file
try:
    with open(vec + "/fwupdate.json") as f:
        fw = json.load(f)
except OSError:
    fw = None
if fw is not None:
    from jc import update
    out["fwupdate"] = 0
    for c in fw["payloads"]:
        got = proto.check(c["kind"], c["payload"].encode())
        want = None if c["valid"] else c["error"]
        out["fwupdate"] += 1
        if got != want:
            out["failures"].append({"case": c["name"], "got": got, "want": want})
    for c in fw["macs"]:
        m = update.manifest_text(c["files"])
        mac = update.offer_mac(binascii.unhexlify(c["secret"]), c["ver"], m)
        out["fwupdate"] += 1
        if m != c["manifest"] or mac != c["mac"]:
            out["failures"].append({"case": "mac " + c["ver"], "got": [m, mac]})
    for c in fw["pins"]:
        h = digest.pin_hash(binascii.unhexlify(c["secret"]), c["pin"])
        out["fwupdate"] += 1
        if h != c["h"]:
            out["failures"].append({"case": "pin " + c["pin"], "got": h, "want": c["h"]})
    print(json.dumps(out))
