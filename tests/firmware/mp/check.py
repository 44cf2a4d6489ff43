"""Tiny assertion helpers for the MicroPython test modules."""


def eq(a, b, msg=""):
    if a != b:
        raise AssertionError("%r != %r %s" % (a, b, msg))


def true(x, msg=""):
    if not x:
        raise AssertionError("expected true: %s" % msg)


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return e
    raise AssertionError("%s not raised" % exc.__name__)
