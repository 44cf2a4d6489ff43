"""The firmware's verdicts under MicroPython: one `TOPIC BASE64` line in, one verdict line out, until EOF."""

import sys
import binascii
from jc import proto



def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        topic, _, b64 = line.strip().partition(" ")
        try:
            kind = proto.parse_topic(topic)[2]
            code = proto.check(kind, binascii.a2b_base64(b64))
        except proto.ProtoError as e:
            code = e.code
        print(code or "ok")


if __name__ == "__main__":
    main()
