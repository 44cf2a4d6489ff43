"""Local HTTP servers standing in for Alibaba Cloud SMS and Tencent Cloud SMS, which cannot exist here.

Each checks a request's signature the way the provider documents it (Alibaba Cloud's signature V3,
ACS3-HMAC-SHA256; Tencent Cloud's signature v3, TC3-HMAC-SHA256), refuses a bad one as the provider does,
and answers SendSms with success, throttling or failure as scripted. It fills the registered template in
with the parameters, as the provider would, so a test reads the text the villager would get.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections import deque
from datetime import datetime, UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

from cloud.sms_text import KINDS, provider_template

SKEW_S = 300  # both providers refuse a request timestamp more than five minutes off


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


class ProviderServer:
    """A threaded HTTP server on a free local port; subclasses answer `handle(method, path, headers, body)`."""

    def __init__(self, *, public_url: str, numbered: bool) -> None:
        # per request: "ok", "throttle", "fail" or "invalid" (a refusal that echoes the parameters); "ok" when empty
        self.answers: deque[str] = deque()
        self.sent: list[dict] = []           # accepted messages: phone, template, params, key, text
        self.refused_signatures = 0
        self.requests = 0
        self.raw: list[bytes] = []           # every request as it came over the socket (head + body)
        # the registered templates, by id
        self.templates = {f"T-{kind}": provider_template(kind, numbered=numbered, public_url=public_url)
                          for kind in KINDS}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with server._lock:
                    server.requests += 1
                    server.raw.append(self.requestline.encode() + b"\n" + bytes(self.headers) + body)
                    status, answer = server.handle("POST", self.path, self.headers, body)
                data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict]:
        raise NotImplementedError

    def next_answer(self) -> str:
        return self.answers.popleft() if self.answers else "ok"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def _rfc3986(value: str) -> str:
    """Percent-encoding as Alibaba Cloud's canonical query string uses it (space %20, ~ kept)."""
    return quote(value, safe="-_.~")


class AliyunSms(ProviderServer):
    """Alibaba Cloud SMS (dysmsapi, 2017-05-25): SendSms, signature V3 (ACS3-HMAC-SHA256)."""

    # documented: these headers must be signed (content-type too when the request has one)
    MUST_SIGN = {"host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce",
                 "x-acs-version"}

    def __init__(self, *, key_id: str, secret: str, sign_name: str, public_url: str) -> None:
        super().__init__(public_url=public_url, numbered=False)
        self.key_id, self.secret, self.sign_name = key_id, secret, sign_name
        self._nonces: set[str] = set()

    def _signature_ok(self, method: str, path: str, headers, body: bytes) -> bool:
        auth = headers.get("Authorization") or ""
        m = re.fullmatch(r"ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{64})", auth)
        if not m or m.group(1) != self.key_id:
            return False
        signed = m.group(2).split(";")
        lower = {k.lower(): v for k, v in headers.items()}
        if signed != sorted(signed) or not self.MUST_SIGN <= set(signed):
            return False
        if "content-type" in lower and "content-type" not in signed:
            return False
        if any(h.startswith("x-acs-") and h not in signed and h != "x-acs-signature" for h in lower):
            return False
        if lower.get("x-acs-content-sha256") != _sha256(body):
            return False
        try:
            at = datetime.strptime(lower["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except (KeyError, ValueError):
            return False
        nonce = lower.get("x-acs-signature-nonce", "")
        if abs(time.time() - at.timestamp()) > SKEW_S or not nonce or nonce in self._nonces:
            return False  # too old, or a replay
        url = urlsplit(path)
        pairs = sorted((_rfc3986(k), _rfc3986(v)) for k, v in parse_qsl(url.query, keep_blank_values=True))
        canonical = "\n".join([
            method, url.path or "/", "&".join(f"{k}={v}" for k, v in pairs),
            "".join(f"{h}:{lower.get(h, '').strip()}\n" for h in signed), ";".join(signed), _sha256(body)])
        to_sign = "ACS3-HMAC-SHA256\n" + _sha256(canonical.encode("utf-8"))
        if not hmac.compare_digest(hmac.new(self.secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest(),
                                   m.group(3)):
            return False
        self._nonces.add(nonce)
        return True

    def handle(self, method, path, headers, body):
        request_id = str(uuid.uuid4()).upper()
        if not self._signature_ok(method, path, headers, body):
            self.refused_signatures += 1
            return 400, {"RequestId": request_id, "Code": "SignatureDoesNotMatch",
                         "Message": "Specified signature does not match our calculation."}
        if (headers.get("x-acs-action"), headers.get("x-acs-version")) != ("SendSms", "2017-05-25"):
            return 400, {"RequestId": request_id, "Code": "InvalidAction.NotFound", "Message": "no such action"}
        form = dict(parse_qsl(urlsplit(path).query)) | dict(parse_qsl(body.decode("utf-8")))
        template = self.templates.get(form.get("TemplateCode", ""))
        if form.get("SignName") != self.sign_name or template is None:
            return 200, {"RequestId": request_id, "Code": "isv.SMS_TEMPLATE_ILLEGAL",
                         "Message": "模板不合法(不存在或被拉黑)"}
        answer = self.next_answer()
        if answer == "throttle":
            return 200, {"RequestId": request_id, "Code": "isv.BUSINESS_LIMIT_CONTROL",
                         "Message": "触发分钟级流控Permits:1"}
        if answer == "fail":
            return 200, {"RequestId": request_id, "Code": "isp.SYSTEM_ERROR", "Message": "系统错误"}
        if answer == "invalid":
            return 200, {"RequestId": request_id, "Code": "isv.INVALID_PARAMETERS",
                         "Message": f"参数异常 TemplateParam={form['TemplateParam']}"}
        params = json.loads(form["TemplateParam"])
        text = f"【{form['SignName']}】" + re.sub(r"\$\{(\w+)\}", lambda g: params[g.group(1)], template)
        self.sent.append({"phone": form["PhoneNumbers"], "template": form["TemplateCode"], "params": params,
                          "key": form.get("OutId"), "text": text})
        return 200, {"RequestId": request_id, "Code": "OK", "Message": "OK", "BizId": uuid.uuid4().hex[:20]}


class TencentSms(ProviderServer):
    """Tencent Cloud SMS (2021-01-11): SendSms, signature v3 (TC3-HMAC-SHA256)."""

    SERVICE = "sms"

    def __init__(self, *, secret_id: str, secret_key: str, app_id: str, sign_name: str, public_url: str) -> None:
        super().__init__(public_url=public_url, numbered=True)
        self.secret_id, self.secret_key, self.app_id, self.sign_name = secret_id, secret_key, app_id, sign_name

    def _signature_ok(self, method: str, path: str, headers, body: bytes) -> bool:
        auth = headers.get("Authorization") or ""
        m = re.fullmatch(r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/(\w+)/tc3_request, "
                         r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", auth)
        if not m or m.group(1) != self.secret_id or m.group(3) != self.SERVICE:
            return False
        try:
            stamp = int(headers.get("X-TC-Timestamp") or "")
        except ValueError:
            return False
        date = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d")
        if abs(time.time() - stamp) > SKEW_S or date != m.group(2):
            return False
        signed = m.group(4).split(";")
        if not {"content-type", "host"} <= set(signed):
            return False
        lower = {k.lower(): v for k, v in headers.items()}
        url = urlsplit(path)
        canonical = "\n".join([method, url.path or "/", url.query,
                               "".join(f"{h}:{lower.get(h, '').strip().lower()}\n" for h in signed),
                               ";".join(signed), _sha256(body)])
        scope = f"{date}/{self.SERVICE}/tc3_request"
        to_sign = f"TC3-HMAC-SHA256\n{stamp}\n{scope}\n{_sha256(canonical.encode('utf-8'))}"
        key = _hmac(_hmac(_hmac(("TC3" + self.secret_key).encode("utf-8"), date), self.SERVICE), "tc3_request")
        return hmac.compare_digest(hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest(), m.group(5))

    def handle(self, method, path, headers, body):
        request_id = str(uuid.uuid4())
        if not self._signature_ok(method, path, headers, body):
            self.refused_signatures += 1
            return 200, {"Response": {"Error": {"Code": "AuthFailure.SignatureFailure",
                                                "Message": "The provided credentials could not be validated."},
                                      "RequestId": request_id}}
        if (headers.get("X-TC-Action"), headers.get("X-TC-Version")) != ("SendSms", "2021-01-11"):
            return 200, {"Response": {"Error": {"Code": "InvalidAction", "Message": "no such action"},
                                      "RequestId": request_id}}
        req = json.loads(body)
        template = self.templates.get(req.get("TemplateId", ""))
        if req.get("SmsSdkAppId") != self.app_id or req.get("SignName") != self.sign_name or template is None:
            return 200, {"Response": {"Error": {"Code": "FailedOperation.TemplateIncorrectOrUnapproved",
                                                "Message": "template is not approved"}, "RequestId": request_id}}
        phone = req["PhoneNumberSet"][0]
        status = {"SerialNo": uuid.uuid4().hex, "PhoneNumber": phone, "Fee": 1,
                  "SessionContext": req.get("SessionContext", ""), "IsoCode": "CN"}
        answer = self.next_answer()
        if answer == "throttle":
            status |= {"Fee": 0, "Code": "LimitExceeded.PhoneNumberThirtySecondLimit",
                       "Message": "单个手机号30秒内下发短信条数超过设定的上限"}
        elif answer == "fail":
            status |= {"Fee": 0, "Code": "InternalError.Timeout", "Message": "请求下发短信超时"}
        elif answer == "invalid":
            status |= {"Fee": 0, "Code": "InvalidParameterValue.TemplateParameterFormatError",
                       "Message": f"模板参数格式错误 {req.get('TemplateParamSet')}"}
        else:
            values = req.get("TemplateParamSet") or []
            text = f"【{req['SignName']}】" + re.sub(r"\{(\d+)\}", lambda g: values[int(g.group(1)) - 1], template)
            self.sent.append({"phone": phone, "template": req["TemplateId"], "params": values,
                              "key": req.get("SessionContext"), "text": text})
            status |= {"Code": "Ok", "Message": "send success"}
        return 200, {"Response": {"SendStatusSet": [status], "RequestId": request_id}}
