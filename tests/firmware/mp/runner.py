"""Run test_* functions of one module under MicroPython, each in a fresh empty directory.

usage: micropython runner.py MODULE_DIR MODULE_NAME WORK_DIR
Prints one line per test (PASS/FAIL) and exits 1 if any failed.
"""

import os
import sys


def _rmtree(path):
    for name, kind, *_ in os.ilistdir(path):
        p = path + "/" + name
        if kind == 0x4000:
            _rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def main():
    mod_dir, mod_name, work = sys.argv[1], sys.argv[2], sys.argv[3]
    sys.path.insert(0, mod_dir)
    mod = __import__(mod_name)
    names = sorted(n for n in dir(mod) if n.startswith("test_"))
    only = sys.argv[4] if len(sys.argv) > 4 else None
    failed = 0
    for i, name in enumerate(names):
        if only and name != only:
            continue
        d = "%s/t%d" % (work, i)
        os.mkdir(d)
        os.chdir(d)
        try:
            getattr(mod, name)()
            print("PASS", name)
        except Exception as e:  # report every failure kind, then go on with the next test
            failed += 1
            print("FAIL", name)
            sys.print_exception(e)
        os.chdir(work)
        _rmtree(d)
    print("DONE", len(names), "failed", failed)
    sys.exit(1 if failed else 0)


main()
