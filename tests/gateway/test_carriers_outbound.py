"""The carrier table as the station reads it, and the outbound rules: the sender's ID tail, the postage."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, parse_config
from gateway.outbound import fee_cents, id_tail
from gwkit import make_config
from jincun import carriers


@pytest.mark.parametrize("name, code", [
    ("中通", "ZTO"), ("中通快递", "ZTO"), ("zto", "ZTO"), (" ZTO ", "ZTO"), ("中国邮政", "EMS"), ("邮政", "EMS"),
    ("EMS", "EMS"), ("China Post", "EMS"), ("顺丰", "SF"), ("极兔", "JT"), ("J&T", "JT"), ("韵达", "YUNDA"),
    ("京东", "JD"), ("申通", "STO"), ("圆通", "YTO"), ("db", "DB"), ("某某快运", "某某快运"), ("", None), (None, None)])
def test_every_name_people_write_maps_to_one_code(name, code):
    assert carriers.code_of(name) == code


def test_each_code_has_names_and_unknown_codes_show_as_they_are():
    assert len(set(carriers.CODES)) == len(carriers.CODES) == 8
    for code in carriers.CODES:
        assert carriers.code_of(code) == code
        assert carriers.code_of(carriers.display(code)) == code
        assert carriers.code_of(carriers.display(code, "en")) == code
    assert carriers.display("DB") == "DB" and carriers.display(None) == "—"


def test_an_older_station_file_naming_carriers_in_chinese_is_read_as_codes(tmp_path):
    data = make_config(tmp_path, 1883).model_dump(mode="json")
    pin_hash = data["terminal"]["users"][0]["pin_hash"]
    data["terminal"] = {"carriers": ["中国邮政", "顺丰", "中通"], "fees": {"顺丰": {"first_kg_cents": 1200}},
                        "users": [{"id": "c-1", "name": "王", "role": "courier", "carrier": "中通",
                                   "pin_hash": pin_hash}]}
    term = parse_config(data).terminal
    assert term.carriers == ["EMS", "SF", "ZTO"] and list(term.fees) == ["SF"]
    assert [u.carrier for u in term.users] == ["ZTO"]
    assert fee_cents(term, "顺丰", 1000, "")[0] == 1200 == fee_cents(term, "SF", 1000, "")[0]
    data["terminal"]["carriers"] = ["某某快运"]
    with pytest.raises(ConfigError, match="unknown carrier"):
        parse_config(data)


@pytest.mark.parametrize("number, tail", [
    ("11010519491231002X", "002X"), ("11010519491231002x", "002X"), ("440524188001010014", "0014"),
    ("110105491231002", "1002"), ("110105194912310021", None), ("1101051949123100", None), ("", None),
    ("1101051949123100２X", None), ("abcdefghijklmnopqr", None)])
def test_an_id_number_is_checked_and_only_its_last_4_characters_leave(number, tail):
    assert id_tail(number) == tail
