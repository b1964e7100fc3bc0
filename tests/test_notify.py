"""Notifications against real local servers: an HTTP server standing in for the
robots' endpoints (it checks their signatures) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
import urllib.parse

import pytest
from prometheus_client import CollectorRegistry

from monitor.metrics import Metrics
from monitor.cases.notify import Config, Notice, Notifier, load_config

SECRET = "SEC0123456789abcdef"


class Robot(http.server.ThreadingHTTPServer):
    """Records every POST; answers with ``replies`` in turn (status, body), then 200 {"errcode": 0}."""

    def __init__(self):
        self.received: list[dict] = []
        self.replies: list[tuple[int, dict]] = []
        self.delay = 0.0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                url = urllib.parse.urlsplit(self.path)
                outer.received.append({"path": url.path, "query": dict(urllib.parse.parse_qsl(url.query)), "body": body,
                                       "content_type": self.headers.get("Content-Type")})
                time.sleep(outer.delay)
                status, reply = outer.replies.pop(0) if outer.replies else (200, {"errcode": 0, "errmsg": "ok"})
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture()
def robot():
    server = Robot()
    yield server
    server.shutdown()


@pytest.fixture()
def smtp():
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Inbox(Message):
        def __init__(self):
            super().__init__()
            self.messages = []

        def handle_message(self, message):
            self.messages.append(message)

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    controller.inbox = inbox
    yield controller
    controller.stop()


NOTICE = Notice("opened", "无合同付款 / Payment without a contract", "SUB01: payment FK1 of 90,000 CNY has no contract",
                "FIN-01", "high", "finance", "SUB01", "finance_compliance_officer", 17)


def notifier(channels: list[dict], routes: list[dict] | None = None, metrics=None, **kw) -> Notifier:
    import msgspec

    config = msgspec.convert({"channels": channels, "routes": routes or [{"channels": [c["name"] for c in channels]}]}, Config)
    return Notifier(config, metrics, backoff=0.01, **kw)


def test_wecom_gets_markdown_with_its_key(robot):
    n = notifier([{"name": "wecom", "type": "wecom", "url": robot.url + "/cgi-bin/webhook/send", "key": "K-1"}])
    n.notify(NOTICE)
    assert n.flush() and n.sent == {"wecom": 1}
    (got,) = robot.received
    assert got["path"] == "/cgi-bin/webhook/send" and got["query"] == {"key": "K-1"}
    assert got["body"]["msgtype"] == "markdown" and "FIN-01" in got["body"]["markdown"]["content"]
    assert "工单 / Ticket: #17" in got["body"]["markdown"]["content"]


def test_dingtalk_requests_carry_a_valid_signature(robot):
    n = notifier([{"name": "dt", "type": "dingtalk", "url": robot.url + "/robot/send", "token": "T", "secret": SECRET}])
    n.notify(NOTICE)
    assert n.flush() and n.sent == {"dt": 1}
    (got,) = robot.received
    ts = got["query"]["timestamp"]
    expected = base64.b64encode(hmac.new(SECRET.encode(), f"{ts}\n{SECRET}".encode(), hashlib.sha256).digest()).decode()
    assert got["query"]["sign"] == expected and got["query"]["access_token"] == "T"  # parse_qsl undid the URL encoding
    assert abs(int(ts) / 1000 - time.time()) < 60
    assert got["body"]["msgtype"] == "markdown" and got["body"]["markdown"]["title"] == "riskwatch FIN-01"


def test_feishu_requests_carry_a_valid_signature(robot):
    n = notifier([{"name": "fs", "type": "feishu", "url": robot.url + "/open-apis/bot/v2/hook/T", "secret": SECRET}])
    n.notify(NOTICE)
    assert n.flush() and n.sent == {"fs": 1}
    body = robot.received[0]["body"]
    expected = base64.b64encode(hmac.new(f"{body['timestamp']}\n{SECRET}".encode(), b"", hashlib.sha256).digest()).decode()
    assert body["sign"] == expected and body["msg_type"] == "text" and "SUB01" in body["content"]["text"]


def test_a_generic_webhook_gets_json(robot):
    n = notifier([{"name": "hook", "type": "webhook", "url": robot.url + "/hook"}])
    n.notify(NOTICE)
    assert n.flush()
    body = robot.received[0]["body"]
    assert {k: body[k] for k in ("event", "ticket_id", "risk_id", "severity", "org_id")} == {
        "event": "opened", "ticket_id": 17, "risk_id": "FIN-01", "severity": "high", "org_id": "SUB01"}
    assert robot.received[0]["content_type"] == "application/json"


def test_email_reaches_a_real_smtp_server(smtp):
    n = notifier([{"name": "mail", "type": "email", "host": "127.0.0.1", "port": smtp.port,
                   "sender": "riskwatch@jcgroup.example", "to": ["compliance@jcgroup.example"]}])
    n.notify(NOTICE)
    assert n.flush() and n.sent == {"mail": 1}
    (message,) = smtp.inbox.messages
    assert message["To"] == "compliance@jcgroup.example" and "FIN-01" in message["Subject"]
    assert "无合同付款" in message.get_payload(decode=True).decode("utf-8")


def test_failures_are_retried_then_counted_and_never_block(robot):
    registry = CollectorRegistry()
    n = notifier([{"name": "hook", "type": "webhook", "url": robot.url + "/hook"}], metrics=Metrics(registry), attempts=3)
    robot.replies = [(500, {}), (500, {})]  # two failures, then it works
    n.notify(NOTICE)
    assert n.flush() and n.sent == {"hook": 1} and len(robot.received) == 3
    robot.replies = [(200, {"errcode": 310000, "errmsg": "sign not match"})] * 3  # refused by the robot: a failure
    robot.delay = 0.2
    started = time.perf_counter()
    n.notify(NOTICE)
    assert time.perf_counter() - started < 0.05  # notify only queues
    assert n.flush() and n.failed == {"hook": 1}
    assert registry.get_sample_value("riskwatch_notification_failures_total", {"channel": "hook"}) == 1


def test_routes_pick_channels_by_domain_severity_and_event(robot):
    n = notifier([{"name": "a", "type": "webhook", "url": robot.url}, {"name": "b", "type": "webhook", "url": robot.url}],
                 routes=[{"domains": ["finance"], "severities": ["critical"], "channels": ["a"]},
                         {"events": ["escalated"], "channels": ["a", "b"]},
                         {"domains": ["procurement"], "channels": ["b"]}])
    assert n.route(NOTICE) == []
    assert n.route(Notice(**{**NOTICE.__dict__, "severity": "critical"})) == ["a"]
    assert n.route(Notice(**{**NOTICE.__dict__, "event": "escalated"})) == ["a", "b"]
    assert n.route(Notice(**{**NOTICE.__dict__, "domain": "procurement"})) == ["b"]


def test_config_reads_secrets_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "notify.yaml"
    path.write_text("channels:\n  - {name: w, type: wecom, key: \"${WECOM_KEY}\"}\nroutes:\n  - {channels: [w]}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="notify.yaml: environment variables not set: WECOM_KEY"):
        load_config(path)
    monkeypatch.setenv("WECOM_KEY", "abc")
    assert load_config(path).channels[0].key == "abc"
    path.write_text("channels:\n  - {name: w, type: wechat}\nroutes: []\n", encoding="utf-8")
    with pytest.raises(ValueError, match="notify.yaml: Invalid enum value 'wechat'"):
        load_config(path)
    path.write_text("channels: []\nroutes:\n  - {channels: [nobody]}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown channels: nobody"):
        load_config(path)


def test_the_runner_notifies_new_tickets_and_escalations(robot, default_pack, tmp_path):
    import datetime as dt

    from monitor.analyst.generator import generate
    from monitor.runners.runner import EmbeddedRunner
    from monitor.cases.tickets import SqlTicketStore

    path = tmp_path / "events.jsonl"
    generate(events=6000, seed=4).write(path)
    n = notifier([{"name": "hook", "type": "webhook", "url": robot.url + "/hook"}])
    store = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    now = [dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)]
    runner = EmbeddedRunner(default_pack, store, notifier=n, clock=lambda: now[0])
    summary = runner.run_file(path, None, tmp_path / "rej.jsonl")
    assert n.flush()
    opened = [r["body"] for r in robot.received if r["body"]["event"] == "opened"]
    assert len(opened) == summary.tickets_opened > 10
    now[0] += dt.timedelta(days=3)
    escalated = runner.check_escalations(force=True)
    assert n.flush() and escalated
    notes = [r["body"] for r in robot.received if r["body"]["event"] == "escalated"]
    assert len(notes) == len(escalated) and {b["to"] for b in notes} == {"compliance_head"}


def test_the_documented_example_is_a_valid_config(monkeypatch):
    from pathlib import Path

    for name in ("WECOM_FINANCE_KEY", "DINGTALK_TOKEN", "DINGTALK_SECRET", "FEISHU_TOKEN", "FEISHU_SECRET", "SMTP_PASSWORD"):
        monkeypatch.setenv(name, f"x-{name.lower()}")
    config = load_config(Path(__file__).resolve().parent.parent / "docs" / "notifications.example.yaml")
    assert {c.type for c in config.channels} == {"webhook", "wecom", "dingtalk", "feishu", "email"}
    assert config.channels[1].key == "x-wecom_finance_key"
