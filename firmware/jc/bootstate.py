"""Boot record in flash: which app file set runs, whether it is on trial, and how many boots failed.

main.py reads it before anything else is imported, so this module imports nothing from jc.
File `boot.json` (written as temp + rename, so a reader sees the old or the new record):
  set       folder of the running app set ("" = the factory files beside main.py)
  ver       its version
  prev/prev_ver  the set kept for rollback
  trial     the set has not passed its self-test yet
  tries     boots of the set while on trial
  fails     boots that did not reach a healthy main loop (cleared once healthy)
  report    [result, ver] for the app to send as an `fw` event, or null
  bad       a rolled-back set folder for the app to delete
"""

import json
import os

NAME = "boot.json"
SAFE_AFTER = 3  # more failed boots than this in a row start safe mode


def _default(ver):
    return {"set": "", "ver": ver, "prev": "", "prev_ver": "", "trial": False, "tries": 0, "fails": 0,
            "report": None, "bad": ""}


def load(root, ver):
    """The boot record, or a fresh one for the factory set when missing or unreadable."""
    try:
        os.remove(root + NAME + ".tmp")  # an interrupted save: the main file still holds the last record
    except OSError:
        pass
    try:
        with open(root + NAME) as f:
            st = json.load(f)
        if type(st) is not dict:
            raise ValueError("not an object")
    except (OSError, ValueError):
        return _default(ver)
    d = _default(ver)
    for k in d:
        if k in st:
            d[k] = st[k]
    return d


def save(root, st):
    tmp = root + NAME + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(st))
    os.rename(tmp, root + NAME)


def on_boot(root, ver):
    """Count this boot, roll a set back that failed its trial, and return (record, safe_mode)."""
    st = load(root, ver)
    st["fails"] += 1
    if st["trial"]:
        if st["tries"] >= 1:
            # the trial boot never confirmed itself: go back to the kept set
            st["report"] = ["rolled_back", st["ver"]]
            st["bad"] = st["set"]
            st["set"], st["ver"] = st["prev"], st["prev_ver"]
            st["prev"], st["prev_ver"] = "", ""
            st["trial"] = False
            st["tries"] = 0
            st["fails"] = 1
        else:
            st["tries"] += 1
    save(root, st)
    safe = not st["trial"] and st["fails"] > SAFE_AFTER
    return st, safe


def app_path(root, st):
    """Folder to put first on sys.path, or None for the factory set."""
    if not st["set"]:
        return None
    return root + st["set"]
