"""`jincun bench firmware` runs the firmware under MicroPython and reports every figure (no timing assertions)."""

from bench import firmware


def test_bench_reports_every_figure():
    res = firmware.run(codes=50, steady=200, total=600, rounds=3)
    for k in ("code_check_us_p99", "heap_steady_b", "heap_growth_b", "mpy_bytes", "outbox_events_per_s"):
        assert isinstance(res[k], int) and res[k] >= 0, k
    assert res["events"] >= 600 and res["outbox_left"] == 0  # every event went through and was acknowledged
    assert res["mpy_bytes"] > 0 and res["goals"]["heap_steady_b"] == 65536
    assert len(res["code_check_us_p99_rounds"]) == 3
    # a real TLS session was up while the heap was measured
    assert res["tls_session"] is True and res["tls_connect_ms"] >= 0
    assert 0 < res["heap_tls_b"] < res["heap_steady_tls_b"] and res["heap_free_tls_bytes"] > 0
