"""SMS through Alibaba Cloud and Tencent Cloud: each official SDK against a local server that checks its
signature as the provider documents it; the outbox retries throttled and failed sends, sends each once."""

from __future__ import annotations

import logging
import time

import pytest
from cloudkit import STATION, STATION_KEY, Cloud, TestClient, birth, code_record, empty_comps, evt, make_settings
from cloudkit import parcel_record, register
from smsproviders import AliyunSms, TencentSms

from cloud import migrate, sms
from cloud.app import create_app
from cloud.counters import Counters
from cloud.errors import NotifierError, NotifierThrottled
from cloud.models import Notification
from cloud.settings import Settings
from cloud.sms_providers import AliyunNotifier, TencentNotifier
from cloud.sms_text import KINDS, Style, units
from cloud.storage import make_engine, make_sessionmaker

PUBLIC = "https://jc.example.cn"
SIGN = "进村"
STYLE = Style(signature=SIGN, public_url=PUBLIC)
KEY_ID, SECRET = "LTAI5tJincunTestKeyId", "aliyun-secret-Zk3Q9mW2pL7xR4vN8bT1"
TC_ID, TC_KEY, APP = "AKIDjincuntestsecretid0123456789", "tencent-secret-Jx8Kq2Lm5Np7Rs9Tv1Wy", "1400006666"
TEMPLATES = {kind: f"T-{kind}" for kind in KINDS}


def aliyun_server() -> AliyunSms:
    return AliyunSms(key_id=KEY_ID, secret=SECRET, sign_name=SIGN, public_url=PUBLIC)


def tencent_server() -> TencentSms:
    return TencentSms(secret_id=TC_ID, secret_key=TC_KEY, app_id=APP, sign_name=SIGN, public_url=PUBLIC)


def notifier_for(server, *, secret: str | None = None):
    if isinstance(server, AliyunSms):
        return AliyunNotifier(access_key_id=KEY_ID, access_key_secret=secret or SECRET, signature=SIGN,
                              templates=TEMPLATES, endpoint=server.endpoint, timeout=5)
    return TencentNotifier(secret_id=TC_ID, secret_key=secret or TC_KEY, app_id=APP, signature=SIGN,
                           templates=TEMPLATES, endpoint=server.endpoint, timeout=5)


SERVERS = {"aliyun": aliyun_server, "tencent": tencent_server}


@pytest.mark.parametrize("provider", SERVERS)
def test_sdk_request_is_signed_as_the_provider_checks_it(provider):
    msg = STYLE.pickup(carrier="顺丰速运", station="冯家村便民店", locker="l3", c=12, code="730518")
    with SERVERS[provider]() as server:
        notifier_for(server).send("13800138000", msg.text, msg)
        assert server.refused_signatures == 0 and len(server.sent) == 1
        got = server.sent[0]
        # the provider's rendering of the registered template is the text the outbox shows
        assert got["text"] == msg.text == "【进村】顺丰速运包裹已到冯家村便民店 3号柜 12号格口，取件码 730518，查件 https://jc.example.cn/m"
        assert got["template"] == "T-pickup" and got["phone"].endswith("13800138000")
        # a wrong secret gives a signature the provider refuses
        with pytest.raises(NotifierError) as refused:
            notifier_for(server, secret="not-the-secret-at-all-0000").send("13800138000", msg.text, msg)
        assert not isinstance(refused.value, NotifierThrottled)
        assert server.refused_signatures == 1 and len(server.sent) == 1
    # the code travels in the signed body, never in a URL
    assert all(b"730518" not in raw.split(b"\n", 1)[0] for raw in server.raw)


@pytest.mark.parametrize("provider", SERVERS)
def test_throttling_and_failure_are_told_apart(provider):
    msg = STYLE.otp(code="104729", minutes=5)
    with SERVERS[provider]() as server:
        notifier = notifier_for(server)
        server.answers.extend(["throttle", "fail", "invalid"])
        with pytest.raises(NotifierThrottled):
            notifier.send("13800138000", msg.text, msg)
        with pytest.raises(NotifierError) as failed:
            notifier.send("13800138000", msg.text, msg)
        assert not isinstance(failed.value, NotifierThrottled)
        # a refusal that echoes the parameters loses the code before it reaches a log or the outbox
        with pytest.raises(NotifierError) as echoed:
            notifier.send("13800138000", msg.text, msg)
        assert "***" in str(echoed.value) and "104729" not in str(echoed.value)
        assert server.sent == []
    with pytest.raises(NotifierError, match="unreachable|ClientNetworkError|refused"):
        notifier_for(server).send("13800138000", msg.text, msg)  # the server is gone


@pytest.mark.parametrize("provider", SERVERS)
def test_outbox_retries_throttled_and_failed_sends_and_sends_each_once(provider, db_url, caplog):
    caplog.set_level(logging.DEBUG)
    engine = make_engine(db_url)
    messages = [STYLE.pickup(carrier="中通快递", station="冯家村便民店", locker="l1", c=n, code=f"51{n:04d}")
                for n in (1, 2, 3, 4)]
    try:
        migrate.upgrade(engine)
        factory = make_sessionmaker(engine)
        with factory() as session:
            for n, msg in enumerate(messages):
                session.add(Notification(**sms.queued(f"1380013800{n}", msg, ref=f"p-{n}")))
            session.commit()
        counters = Counters()
        with SERVERS[provider]() as server:
            notifier = notifier_for(server)
            server.answers.extend(["ok", "throttle", "fail"])
            assert sms.deliver_pending(factory, notifier, counters) == 2   # 1st and 4th go, 2nd and 3rd wait
            with factory() as session:
                rows = {r.ref: r for r in session.query(Notification)}
                assert [(rows[f"p-{n}"].status, rows[f"p-{n}"].attempts) for n in range(4)] == \
                    [("sent", 1), ("queued", 1), ("queued", 1), ("sent", 1)]
                assert "LimitExceeded" in rows["p-1"].last_error or "LIMIT" in rows["p-1"].last_error
            assert counters.get("sms_throttled") == 1 and counters.get("sms_errors") == 2
            assert sms.deliver_pending(factory, notifier, counters) == 2   # the retry round
            assert sms.deliver_pending(factory, notifier, counters) == 0   # nothing left, nothing again
            with factory() as session:
                assert {r.status for r in session.query(Notification)} == {"sent"}
                ids = {r.ref: str(r.id) for r in session.query(Notification)}
        # each message reached the provider once, with the text the outbox holds
        assert sorted(s["key"] for s in server.sent) == sorted(ids.values())
        assert sorted(s["text"] for s in server.sent) == sorted(m.text for m in messages)
        assert server.refused_signatures == 0 and counters.get("sms_sent") == 4
    finally:
        engine.dispose()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (SECRET, TC_KEY, *(m.params["code"] for m in messages), *(f"1380013800{n}" for n in range(4))):
        assert secret not in logged  # nor a whole phone number (the failed sends are logged)


def provider_settings(provider: str, db_url: str, server, **extra) -> Settings:
    keys = ({"sms_access_key_id": KEY_ID, "sms_access_key_secret": SECRET} if provider == "aliyun" else
            {"sms_access_key_id": TC_ID, "sms_access_key_secret": TC_KEY, "sms_app_id": APP})
    return make_settings(db_url, sms_adapter=provider, sms_endpoint=server.endpoint, sms_templates=TEMPLATES,
                         sms_signature=SIGN, public_url=PUBLIC, sms_retry_seconds=0.2, **keys, **extra)


@pytest.mark.parametrize("provider", SERVERS)
def test_code_sms_from_the_cloud_through_the_provider(provider, db_url, caplog):
    caplog.set_level(logging.DEBUG)
    with SERVERS[provider]() as server:
        server.answers.append("throttle")
        settings = provider_settings(provider, db_url, server)
        with TestClient(create_app(settings)) as client:
            register(client, STATION, STATION_KEY, "临泽镇冯家村党群服务中心便民快递服务站", {"l1": 4})
            cloud = Cloud(client=client, settings=settings)
            resp = cloud.ingest([parcel_record(1, "p-sms", c=2, carrier="SF"), birth(0, empty_comps(4)),
                                 evt(1, "deposit", c=2, ref="p-sms"), code_record(2, "p-sms", "555666")])
            assert resp.json()["applied"] == 4
            deadline = time.monotonic() + 20
            while cloud.admin_get("/api/v1/notifications")[0]["status"] != "sent":
                assert time.monotonic() < deadline, "the throttled SMS was never sent"
                time.sleep(0.1)
            outbox = cloud.admin_get("/api/v1/notifications")
            assert outbox[0]["attempts"] == 2 and cloud.counters()["sms_throttled"] == 1
    assert len(server.sent) == 1 and server.refused_signatures == 0
    text = server.sent[0]["text"]
    assert text == outbox[0]["text"] and units(text) <= 70
    assert text.startswith("【进村】顺丰速运包裹已到冯家村") and " 1号柜 2号格口，取件码 555666，查件 https://jc.example.cn/m" in text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "555666" not in logged and SECRET not in logged and TC_KEY not in logged
    assert SECRET not in repr(settings) and TC_KEY not in repr(settings)


def test_provider_settings_are_checked_at_start(tmp_path):
    db_url = f"sqlite:///{tmp_path}/cloud.db"
    with pytest.raises(ValueError, match="JINCUN_SMS_ACCESS_KEY_ID.*JINCUN_SMS_ACCESS_KEY_SECRET.*JINCUN_PUBLIC_URL"):
        make_settings(db_url, sms_adapter="aliyun", sms_templates=TEMPLATES)
    with pytest.raises(ValueError, match="JINCUN_SMS_APP_ID"):
        make_settings(db_url, sms_adapter="tencent", sms_access_key_id=TC_ID, sms_access_key_secret=TC_KEY,
                      sms_templates=TEMPLATES, public_url=PUBLIC)
    with pytest.raises(ValueError, match="missing otp"):
        make_settings(db_url, sms_adapter="aliyun", sms_access_key_id=KEY_ID, sms_access_key_secret=SECRET,
                      sms_templates={k: v for k, v in TEMPLATES.items() if k != "otp"}, public_url=PUBLIC)
    with pytest.raises(ValueError, match="one segment holds 70"):
        make_settings(db_url, public_url="https://jincun-parcel-lockers.linze-county.zhangye.gansu.gov.cn/village")
