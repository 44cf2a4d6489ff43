"""Notifier adapters for the SMS providers counties use: Alibaba Cloud SMS and Tencent Cloud SMS.

Both send a registered template (sms_text.TEMPLATES) with its parameters under the county's registered
signature; the provider fills the template in, so the villager reads exactly `Message.text`. Keys come from
settings and stay inside the SDK clients; neither they nor a template parameter (which carries the code) is
written to a log: the SDKs' own loggers, which print whole requests at DEBUG, are held at INFO.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

from alibabacloud_dysmsapi20170525.client import Client as AliyunClient
from alibabacloud_tea_openapi import utils_models as aliyun_models
from darabonba.exceptions import RetryError
from darabonba.runtime import RuntimeOptions
from requests import RequestException
from Tea.exceptions import TeaException, UnretryableException
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models as tencent_models
from tencentcloud.sms.v20210111 import sms_client

from .errors import NotifierError, NotifierThrottled
from .sms_text import PARAMS, Message

# the SDKs' loggers print request bodies (and so the codes) at DEBUG, whatever the cloud's log level
_SDK_LOGGERS = ("tencentcloud_sdk_common", "darabonba-core", "alibabacloud_tea_openapi")

ALIYUN_ENDPOINT = "https://dysmsapi.aliyuncs.com"
TENCENT_ENDPOINT = "https://sms.tencentcloudapi.com"
# answers that mean "later", not "never": a per-number or per-account rate limit
ALIYUN_THROTTLED = ("isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL", "isv.MONTH_LIMIT_CONTROL", "Throttling")
TENCENT_THROTTLED = ("LimitExceeded", "RequestLimitExceeded")


def _quiet_sdk_loggers() -> None:
    """Hold the SDKs' loggers above DEBUG, so a DEBUG cloud log never holds a request body."""
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def _endpoint(url: str) -> tuple[str, str]:
    """(scheme, host[:port]) of an endpoint URL; a bare host means HTTPS."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"SMS endpoint {url!r} is not an http(s) URL")
    return parts.scheme, parts.netloc


def _template(templates: dict[str, str], message: Message | None) -> str:
    """The provider's template id for this message (a message without a kind cannot be sent by template)."""
    if message is None or message.kind not in templates:
        raise NotifierError(f"no provider template for SMS kind {message.kind if message else None!r}")
    return templates[message.kind]


def _refusal(code: str, throttled: tuple[str, ...], text: str) -> NotifierError:
    """The error for a provider's answer: NotifierThrottled for a rate limit (`throttled` codes or their
    sub-codes), NotifierError for the rest."""
    limited = any(code == p or code.startswith(p + ".") for p in throttled)
    return (NotifierThrottled if limited else NotifierError)(text)


def _scrub(text: str, message: Message) -> str:
    """A provider's error text, cut short and without the message's parameters (a provider may echo them):
    it goes to the log and the outbox row."""
    for value in sorted(message.params.values(), key=len, reverse=True):
        if len(value) >= 3:
            text = text.replace(value, "***")
    return text[:200]


class AliyunNotifier:
    """Sends through Alibaba Cloud SMS (dysmsapi 2017-05-25 SendSms), signed ACS3-HMAC-SHA256 by the SDK."""

    def __init__(self, *, access_key_id: str, access_key_secret: str, signature: str, templates: dict[str, str],
                 endpoint: str = ALIYUN_ENDPOINT, timeout: float = 10.0) -> None:
        _quiet_sdk_loggers()
        scheme, host = _endpoint(endpoint)
        self._client = AliyunClient(aliyun_models.Config(
            access_key_id=access_key_id, access_key_secret=access_key_secret, endpoint=host, protocol=scheme,
            read_timeout=int(timeout * 1000), connect_timeout=int(timeout * 1000)))
        self._signature = signature
        self._templates = dict(templates)

    def send(self, phone: str, text: str, message: Message | None = None) -> None:
        template = _template(self._templates, message)
        assert message is not None  # _template refuses a message without a kind
        form = {"PhoneNumbers": phone, "SignName": self._signature, "TemplateCode": template,
                "TemplateParam": json.dumps({k: message.params[k] for k in PARAMS[message.kind]}, ensure_ascii=False)}
        if message.key:
            form["OutId"] = message.key
        # SendSms as the SDK's send_sms_with_options makes it, but with the parameters in the signed form body
        # (RPC operations take either): in the query they would sit in a URL, and the code with them
        params = aliyun_models.Params(action="SendSms", version="2017-05-25", protocol="HTTPS", pathname="/",
                                     method="POST", auth_type="AK", style="RPC", req_body_type="formData",
                                     body_type="json")
        try:
            body = self._client.call_api(params, aliyun_models.OpenApiRequest(body=form), RuntimeOptions()).get("body")
        except TeaException as exc:
            code = str(getattr(exc, "code", None) or type(exc).__name__)
            raise _refusal(code, ALIYUN_THROTTLED, f"Alibaba Cloud SMS refused: {code}: "
                           + _scrub(str(getattr(exc, "message", "")), message)) from None
        except (UnretryableException, RetryError, RequestException, OSError) as exc:
            raise NotifierError(f"Alibaba Cloud SMS unreachable: {type(exc).__name__}") from None
        code = str((body or {}).get("Code"))
        if code != "OK":
            raise _refusal(code, ALIYUN_THROTTLED, f"Alibaba Cloud SMS answered {code}: "
                           + _scrub(str((body or {}).get("Message", "")), message))


class TencentNotifier:
    """Sends through Tencent Cloud SMS (2021-01-11 SendSms), signed TC3-HMAC-SHA256 by the SDK."""

    def __init__(self, *, secret_id: str, secret_key: str, app_id: str, signature: str, templates: dict[str, str],
                 region: str = "ap-guangzhou", endpoint: str = TENCENT_ENDPOINT, timeout: float = 10.0) -> None:
        _quiet_sdk_loggers()
        scheme, host = _endpoint(endpoint)
        profile = ClientProfile(httpProfile=HttpProfile(protocol=scheme, endpoint=host, reqTimeout=int(timeout) or 1))
        self._client = sms_client.SmsClient(credential.Credential(secret_id, secret_key), region, profile)
        self._app_id = app_id
        self._signature = signature
        self._templates = dict(templates)

    def send(self, phone: str, text: str, message: Message | None = None) -> None:
        template = _template(self._templates, message)
        assert message is not None  # _template refuses a message without a kind
        req = tencent_models.SendSmsRequest()
        req.PhoneNumberSet = [phone if phone.startswith("+") else f"+86{phone}"]
        req.SmsSdkAppId = self._app_id
        req.SignName = self._signature
        req.TemplateId = template
        req.TemplateParamSet = [message.params[k] for k in PARAMS[message.kind]]
        if message.key:
            req.SessionContext = message.key
        try:
            resp = self._client.SendSms(req)
        except TencentCloudSDKException as exc:
            code = exc.get_code() or "ClientError"
            raise _refusal(code, TENCENT_THROTTLED, f"Tencent Cloud SMS refused: {code}: "
                           + _scrub(str(exc.get_message()), message)) from None
        status = (resp.SendStatusSet or [None])[0]
        if status is None:
            raise NotifierError("Tencent Cloud SMS answered without a send status")
        if status.Code != "Ok":
            raise _refusal(status.Code or "", TENCENT_THROTTLED, f"Tencent Cloud SMS answered {status.Code}: "
                           + _scrub(str(status.Message or ""), message))
