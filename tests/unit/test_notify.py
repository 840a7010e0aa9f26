"""Notifications reach real servers the tests start: an e-mail an aiosmtpd server
receives, an SNS publish that lands in moto (read back from an SQS queue subscribed to
the topic), a Slack webhook POST to an HTTP server on loopback. A channel that fails is
logged and returned, never raised, and no webhook secret is kept or logged.

The notifiers are the providers' own (SmtpNotifier, SnsNotifier, SlackWebhookNotifier),
reading their Airflow connections from AIRFLOW_CONN_* as a deployment would.
"""

from __future__ import annotations

import email
import json
import logging
import socket
import threading
from collections.abc import Iterator
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from cachebench import notify

OUTCOME = notify.Outcome(
    campaign="nightly",
    run_id="scheduled__2026-12-07T00:00:00+00:00",
    happened=("regression",),
    headline="Against the previous run: regression in 2. REGRESSION: redis throughput -41.0%",
    details=("Engines: no verdict {braces stay as they are}",),
    link="http://airflow.example/cachebench/reports/nightly/scheduled/report.html",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ smtp


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch) -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    inbox, port = Inbox(), _free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "bench@localhost"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TEST", json.dumps(conn))
    try:
        yield inbox
    finally:
        server.stop()


def test_the_email_reaches_a_real_smtp_server(smtp: Inbox) -> None:
    channel = notify.Channel(via="smtp", conn_id="smtp_test", to=["team@localhost"])
    (sent,) = notify.send([channel], OUTCOME)
    assert sent.ok and sent.events == ("regression",), sent
    ((to, msg),) = smtp.messages
    assert to == ["team@localhost"]
    assert msg["Subject"] == "[cachebench] nightly: REGRESSION"
    assert msg["From"] == "bench@localhost"
    body = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_content()
    assert "REGRESSION: redis throughput -41.0%" in body
    assert "{braces stay as they are}" in body  # sent as written, not rendered as Jinja
    assert f'href="{OUTCOME.link}"' in body and OUTCOME.run_id in body


def test_an_event_the_channel_did_not_ask_for_is_not_sent_but_cleanup_failed_always_is(
    smtp: Inbox,
) -> None:
    only_failures = notify.Channel(
        via="smtp", conn_id="smtp_test", to=["team@localhost"], events=["failure"]
    )
    assert notify.send([only_failures], OUTCOME) == [] and smtp.messages == []
    success = OUTCOME.model_copy(update={"happened": ("success",)})
    assert success.title == "[cachebench] nightly: succeeded"
    regressed = OUTCOME.model_copy(update={"happened": ("regression", "success")})
    assert regressed.title == "[cachebench] nightly: REGRESSION"
    assert notify.send([notify.Channel(via="smtp", to=["a@localhost"])], success) == []
    left = OUTCOME.model_copy(
        update={"happened": ("cleanup_failed", "failure"), "headline": "CLEANUP FAILED for 1"}
    )
    (sent,) = notify.send([only_failures], left)
    assert sent.ok and sent.events == ("cleanup_failed", "failure")
    ((_, msg),) = smtp.messages
    assert msg["Subject"] == "[cachebench] nightly: CLEANUP FAILED, FAILED"


# ------------------------------------------------------------------ sns


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


REGION = "eu-west-1"


def moto_connection(moto_url: str, monkeypatch) -> None:
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": moto_url, "region_name": REGION},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_MOTO", json.dumps(conn))


def test_the_sns_publish_lands_in_moto(moto_url: str, monkeypatch) -> None:
    region = REGION
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    sns = boto3.client("sns", region_name=region, endpoint_url=moto_url, **keys)
    sqs = boto3.client("sqs", region_name=region, endpoint_url=moto_url, **keys)
    topic = sns.create_topic(Name="bench-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="bench-alerts-inbox")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    queue_arn = attributes["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    moto_connection(moto_url, monkeypatch)
    channel = notify.Channel(via="sns", conn_id="aws_moto", topic_arn=topic)
    (sent,) = notify.send([channel], OUTCOME)
    assert sent.ok, sent
    got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)["Messages"]
    envelope = json.loads(got[0]["Body"])
    assert envelope["TopicArn"] == topic
    assert envelope["Subject"] == "[cachebench] nightly: REGRESSION"
    assert OUTCOME.headline in envelope["Message"]
    assert f"Report: {OUTCOME.link}" in envelope["Message"]


# ------------------------------------------------------------------ slack


class Webhook(BaseHTTPRequestHandler):
    received: list[tuple[str, dict]]
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"ok" if self.status == 200 else b"invalid_token")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook(monkeypatch) -> Iterator[type[Webhook]]:
    handler = type("Hook", (Webhook,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = {
        "conn_type": "slackwebhook",
        "host": f"http://127.0.0.1:{server.server_address[1]}/services",
        "password": "T0001/B0001/sEcReTwEbHoOk",
    }
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_TEST", json.dumps(conn))
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_the_slack_webhook_reaches_a_loopback_server(webhook: type[Webhook]) -> None:
    channel = notify.Channel(via="slack", conn_id="slack_test")
    (sent,) = notify.send([channel], OUTCOME)
    assert sent.ok, sent
    ((path, body),) = webhook.received
    assert path == "/services/T0001/B0001/sEcReTwEbHoOk"
    assert body["text"].startswith("[cachebench] nightly: REGRESSION\nrun scheduled__")
    assert OUTCOME.headline in body["text"] and f"Report: {OUTCOME.link}" in body["text"]


def test_a_failing_channel_is_logged_and_returned_never_raised_nor_its_secret_kept(
    webhook: type[Webhook], smtp: Inbox, moto_url: str, monkeypatch, caplog
) -> None:
    moto_connection(moto_url, monkeypatch)
    webhook.status = 403  # the webhook refuses (a revoked token)
    channels = [
        notify.Channel(via="slack", conn_id="slack_test"),
        notify.Channel(  # a topic that does not exist
            via="sns", conn_id="aws_moto", topic_arn="arn:aws:sns:eu-west-1:123456789012:gone"
        ),
        notify.Channel(via="smtp", conn_id="smtp_test", to=["team@localhost"]),
    ]
    with caplog.at_level(logging.DEBUG):
        slack, sns, mail = notify.send(channels, OUTCOME)
    assert not slack.ok and "403" in slack.error
    assert not sns.ok and "NotFound" in sns.error, sns
    assert mail.ok and len(smtp.messages) == 1  # the others' failures stop nothing
    assert len(webhook.received) == 2  # tried twice
    for said in (slack.error, sns.error, caplog.text):
        assert "sEcReTwEbHoOk" not in said
    assert "notify via slack (connection slack_test) failed" in caplog.text
