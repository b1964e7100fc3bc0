"""Notifications: tell people about new tickets and escalations, without ever
slowing scoring down.

Channels are configured in YAML (``--notify FILE``):

```yaml
channels:
  - {name: ops-hook, type: webhook, url: "https://hooks.example/riskwatch"}
  - {name: finance-wecom, type: wecom, key: "${WECOM_FINANCE_KEY}"}                  # 企业微信群机器人
  - {name: legal-dingtalk, type: dingtalk, token: "${DT_TOKEN}", secret: "${DT_SECRET}"}  # 钉钉, signed
  - {name: head-feishu, type: feishu, token: "${FEISHU_TOKEN}", secret: "${FEISHU_SECRET}"}  # 飞书, signed
  - {name: mail, type: email, host: smtp.jcgroup.example, port: 587, starttls: true,
     user: riskwatch, password: "${SMTP_PASSWORD}", sender: riskwatch@jcgroup.example, to: [compliance@jcgroup.example]}
routes:            # the first route whose domains and severities match; an empty list matches all
  - {domains: [finance], severities: [high, critical], channels: [finance-wecom, mail]}
  - {domains: [], severities: [], channels: [ops-hook]}
```

``${NAME}`` is read from the environment, so secrets stay out of the file.
Messages go through a bounded queue to one sender thread; each send is retried
with exponential backoff (tenacity); a message that still fails is logged and
counted in ``riskwatch_notification_failures_total{channel}``. A full queue
drops the message, counted the same way: scoring never waits on a chat robot.

Message formats follow each robot's documentation: WeCom ``markdown``;
DingTalk ``markdown`` with the ``timestamp``/``sign`` query (HMAC-SHA256 of
``timestamp\\nsecret`` keyed by the secret, base64, URL-encoded); Feishu
``text`` with ``timestamp``/``sign`` in the body (HMAC-SHA256 keyed by
``timestamp\\nsecret`` over an empty message, base64).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import queue
import re
import smtplib
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Callable, Literal

import msgspec
import orjson
import yaml

__all__ = ["Notice", "Notifier", "announce", "dingtalk_sign", "escalated_notice", "feishu_sign", "load_config", "opened_notice"]

log = logging.getLogger("riskwatch.notify")

WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
DINGTALK_URL = "https://oapi.dingtalk.com/robot/send"
FEISHU_URL = "https://open.feishu.cn/open-apis/bot/v2/hook/"


class Channel(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    type: Literal["webhook", "wecom", "dingtalk", "feishu", "email"]
    url: str | None = None  # the robot's endpoint (defaults to the vendor's); a webhook's target
    key: str | None = None  # wecom
    token: str | None = None  # dingtalk access_token, feishu hook token
    secret: str | None = None  # dingtalk / feishu signing secret
    host: str | None = None
    port: int = 25
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    sender: str | None = None
    to: list[str] = []
    timeout: float = 10.0


class Route(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    channels: list[str]
    domains: list[str] = []
    severities: list[str] = []
    events: list[str] = []  # opened / escalated; empty: both


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    channels: list[Channel]
    routes: list[Route]


@dataclass
class Notice:
    """What happened to which ticket."""

    event: Literal["opened", "escalated"]
    title: str
    message: str
    risk_id: str
    severity: str
    domain: str
    org_id: str | None
    owner: str
    ticket_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        head = {"opened": "新预警 / New alert", "escalated": "逾期升级 / Escalated"}[self.event]
        lines = [f"【riskwatch {head}】{self.title}", f"风险 / Risk: {self.risk_id}  等级 / Severity: {self.severity}",
                 f"单位 / Org: {self.org_id or '—'}  责任岗位 / Owner: {self.owner}", self.message]
        if self.ticket_id is not None:
            lines.append(f"工单 / Ticket: #{self.ticket_id}")
        if self.extra.get("to"):
            lines.append(f"升级至 / Escalated to: {self.extra['to']}")
        return "\n".join(lines)


def opened_notice(alert) -> Notice:
    """The notice for a ticket opened for an alert."""
    return Notice("opened", alert.title, alert.message, alert.risk_id, alert.severity, alert.domain, alert.org_id,
                  alert.owner)


def escalated_notice(done: dict) -> Notice:
    """The notice for one escalation (an item of ``SqlTicketStore.escalate``)."""
    return Notice("escalated", done["title"], done["message"], done["risk_id"], done["severity"], done["domain"],
                  done["org_id"], done["owner"], done["ticket_id"], {"to": done["to"], "level": done["level"]})


def announce(metrics, notifier, opened=(), escalated=()) -> None:
    """Count and notify new tickets (alerts) and escalations (``SqlTicketStore.escalate``
    items): the same for the embedded runner, the worker and serve."""
    for alert in opened:
        if metrics is not None:
            metrics.tickets_opened.labels(alert.risk_id, alert.severity).inc()
        if notifier is not None:
            notifier.notify(opened_notice(alert))
    for done in escalated:
        if metrics is not None:
            metrics.tickets_escalated.labels(str(done["level"]), done["severity"]).inc()
        if notifier is not None:
            notifier.notify(escalated_notice(done))


_ENV = re.compile(r"\$\{([A-Z0-9_]+)\}")


def load_config(path: Path) -> Config:
    """Read the YAML, fill ``${NAME}`` from the environment, validate. Errors name the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: {err}") from err
    missing: set[str] = set()

    def fill(value: Any) -> Any:  # in values only: a comment may mention ${NAME}
        if isinstance(value, str):
            missing.update(m for m in _ENV.findall(value) if m not in os.environ)
            return _ENV.sub(lambda m: os.environ.get(m.group(1), ""), value)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    data = fill(data)
    if missing:
        raise ValueError(f"{path}: environment variables not set: {', '.join(sorted(missing))}")
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as err:
        raise ValueError(f"{path}: {err}") from err
    names = {c.name for c in config.channels}
    for route in config.routes:
        unknown = set(route.channels) - names
        if unknown:
            raise ValueError(f"{path}: a route names unknown channels: {', '.join(sorted(unknown))}")
    return config


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature (URL-encoded), for the ``sign`` query parameter."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's signature, for the ``sign`` body field."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _post(url: str, body: dict, timeout: float) -> None:
    import urllib.request

    request = urllib.request.Request(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = response.read()
    # the robots answer 200 with an error code in the body when they refuse a message
    try:
        data = orjson.loads(reply) if reply else {}
    except orjson.JSONDecodeError:
        return
    code = data.get("errcode", data.get("code", data.get("StatusCode", 0))) if isinstance(data, dict) else 0
    if code not in (0, None):
        raise RuntimeError(f"refused: {data}")


def send(channel: Channel, notice: Notice, now: Callable[[], float] = time.time) -> None:
    """Deliver one notice on one channel (raises on failure)."""
    text = notice.text()
    if channel.type == "webhook":
        _post(channel.url or "", {"event": notice.event, "ticket_id": notice.ticket_id, "risk_id": notice.risk_id,
                                  "severity": notice.severity, "domain": notice.domain, "org_id": notice.org_id,
                                  "owner": notice.owner, "title": notice.title, "message": notice.message,
                                  **notice.extra}, channel.timeout)
    elif channel.type == "wecom":
        url = f"{channel.url or WECOM_URL}?key={urllib.parse.quote(channel.key or '')}"
        _post(url, {"msgtype": "markdown", "markdown": {"content": text}}, channel.timeout)
    elif channel.type == "dingtalk":
        query = {"access_token": channel.token or ""}
        url = f"{channel.url or DINGTALK_URL}?{urllib.parse.urlencode(query)}"
        if channel.secret:
            ts = int(now() * 1000)
            url += f"&timestamp={ts}&sign={dingtalk_sign(channel.secret, ts)}"
        _post(url, {"msgtype": "markdown", "markdown": {"title": f"riskwatch {notice.risk_id}", "text": text}},
              channel.timeout)
    elif channel.type == "feishu":
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
        if channel.secret:
            ts = int(now())
            body.update(timestamp=str(ts), sign=feishu_sign(channel.secret, ts))
        _post(channel.url or f"{FEISHU_URL}{channel.token or ''}", body, channel.timeout)
    else:
        mail = EmailMessage()
        mail["Subject"] = f"[riskwatch] {notice.risk_id} {notice.severity}: {notice.title}"
        mail["From"] = channel.sender or "riskwatch@localhost"
        mail["To"] = ", ".join(channel.to)
        mail.set_content(text)
        with smtplib.SMTP(channel.host or "localhost", channel.port, timeout=channel.timeout) as smtp:
            if channel.starttls:
                smtp.starttls()
            if channel.user:
                smtp.login(channel.user, channel.password or "")
            smtp.send_message(mail)


class Notifier:
    """Routes notices to channels from a background thread; ``notify`` never blocks."""

    def __init__(self, config: Config, metrics=None, attempts: int = 4, backoff: float = 0.5, queue_size: int = 10_000):
        self.config = config
        self.channels = {c.name: c for c in config.channels}
        self.metrics = metrics
        self.attempts, self.backoff = attempts, backoff
        self.sent: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="riskwatch-notify", daemon=True)
        self._thread.start()

    def route(self, notice: Notice) -> list[str]:
        for r in self.config.routes:
            if ((not r.domains or notice.domain in r.domains) and (not r.severities or notice.severity in r.severities)
                    and (not r.events or notice.event in r.events)):
                return r.channels
        return []

    def notify(self, notice: Notice) -> None:
        for name in self.route(notice):
            try:
                self._queue.put_nowait((name, notice))
            except queue.Full:
                self._failed(name, "queue full: dropped")

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued notice was sent or given up (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _failed(self, name: str, why: str) -> None:
        self.failed[name] = self.failed.get(name, 0) + 1
        log.error("notification on %s failed: %s", name, why)
        if self.metrics is not None:
            self.metrics.notification_failures.labels(name).inc()

    def _run(self) -> None:
        from tenacity import Retrying, stop_after_attempt, wait_exponential

        while True:
            name, notice = self._queue.get()
            try:
                for attempt in Retrying(stop=stop_after_attempt(self.attempts), reraise=True,
                                        wait=wait_exponential(multiplier=self.backoff, max=30)):
                    with attempt:
                        send(self.channels[name], notice)
                self.sent[name] = self.sent.get(name, 0) + 1
            except Exception as err:  # noqa: BLE001 - any failure is counted, never raised into scoring
                self._failed(name, f"{type(err).__name__}: {err}")
            finally:
                self._queue.task_done()
