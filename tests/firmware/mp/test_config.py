"""config.json is validated at start-up with an error that names the bad key."""

from check import eq, raises
from jc.app import check_config, ConfigError


def good():
    return {"station": "lz-fengjia-01", "locker": "l1", "secret": "ab" * 32,
            "mqtt": {"host": "127.0.0.1", "port": 1883, "user": "l1", "password": "x", "client_id": "lz-l1",
                     "keepalive": 30},
            "comps": [{"n": 1, "size": "S"}, {"n": 2, "size": "L"}], "tele_s": 60}


def test_good_config_passes():
    eq(check_config(good()), None)


def _bad(mutate, key):
    c = good()
    mutate(c)
    e = raises(ConfigError, check_config, c)
    if key not in str(e):
        raise AssertionError("%r does not name %s" % (str(e), key))


def test_bad_values_are_named():
    _bad(lambda c: c.pop("secret"), "secret")
    _bad(lambda c: c.update(secret="ab" * 31), "secret")
    _bad(lambda c: c.update(station="Bad Station"), "station")
    _bad(lambda c: c["mqtt"].update(port=0), "mqtt.port")
    _bad(lambda c: c["mqtt"].pop("host"), "mqtt.host")
    _bad(lambda c: c.update(comps=[]), "comps")
    _bad(lambda c: c["comps"].append({"n": 1, "size": "M"}), "comps[].n")
    _bad(lambda c: c["comps"].append({"n": 3, "size": "XL"}), "comps[].size")
    _bad(lambda c: c.update(tele_s=0), "tele_s")


def test_tls_keys_are_checked():
    _bad(lambda c: c["mqtt"].update(tls=True), "mqtt.ca")
    _bad(lambda c: c["mqtt"].update(tls=True, ca="not base64!"), "mqtt.ca")
    _bad(lambda c: c["mqtt"].update(tls=True, ca="aGVsbG8="), "mqtt.ca")  # base64, but no DER certificate
    _bad(lambda c: c["mqtt"].update(tls="yes"), "mqtt.tls")
    _bad(lambda c: c["mqtt"].update(tls=True, ca="MIIBAA==", server_hostname=5), "mqtt.server_hostname")
    c = good()
    c["mqtt"].update(tls=True, ca="MIIBAA==", server_hostname="192.168.4.1")
    eq(check_config(c), None)


def test_a_ca_that_does_not_parse_is_refused_by_the_tls_context():
    from jc.link import tls_context
    raises(ValueError, tls_context, "MIIBAA==")
