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
import time
from collections.abc import Iterator
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from cachebench import notify
from cachebench.models import Cleanup

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
    assert msg["Subject"] == "[cachebench] nightly: CLEANUP FAILED"  # the run failed with it


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


# ------------------------------------------------------------------ the report task


def finished_run(root, channels: list[dict], cleanup: str = "clean"):
    """A finished campaign run (two repetitions of a point) as steps.report finds it, its
    campaign's notify: set to ``channels``, its deployment's destroy verdict ``cleanup``."""
    from test_export_support import make_load, make_point, write_point_dir

    from cachebench.workspace import run_slug

    run_dir = root / "demo" / run_slug("manual__test")
    point = make_point(0, "valkey")
    for rep in (1, 2):
        write_point_dir(run_dir, point, make_load(100_000.0 + rep), rep=rep)
    doc = json.loads((run_dir / "campaign.json").read_text())
    doc["spec"]["notify"] = channels
    (run_dir / "campaign.json").write_text(json.dumps(doc))
    ddir = run_dir / "deployments" / point.deployment_id
    ddir.mkdir(parents=True)
    problems = [] if cleanup == "clean" else ["terraform destroy: exit 1"]
    record = Cleanup(status=cleanup, at=time.time(), problems=problems)
    (ddir / "cleanup.json").write_text(record.model_dump_json())
    return run_dir


def test_the_report_task_tells_cleanup_failed_to_every_channel_and_still_fails(
    smtp: Inbox, tmp_path, monkeypatch
) -> None:
    from cachebench import steps

    monkeypatch.setenv("CACHEBENCH_RESULTS", str(tmp_path))
    regressions_only = {"via": "smtp", "conn_id": "smtp_test", "to": ["a@localhost"],
                        "events": ["regression"]}  # fmt: skip
    down = {"via": "smtp", "conn_id": "smtp_down", "to": ["b@localhost"]}
    closed = _free_port()  # nothing listens there: the notifier fails
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DOWN",
        json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": closed,
                    "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0,
                              "from_email": "bench@localhost"}}),
    )  # fmt: skip
    run_dir = finished_run(tmp_path, [regressions_only, down], cleanup="CLEANUP FAILED")
    with pytest.raises(steps.CleanupFailed, match="CLEANUP FAILED for 1 deployment"):
        steps.report("demo", "manual__test", link="http://ui.example/report.html")
    ((to, msg),) = smtp.messages
    assert to == ["a@localhost"] and msg["Subject"] == "[cachebench] demo: CLEANUP FAILED"
    body = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_content()
    assert "terraform destroy: exit 1" in body and "http://ui.example/report.html" in body
    told, failed = json.loads((run_dir / "notifications.json").read_text())
    assert told["ok"] and told["events"] == ["cleanup_failed"]
    assert not failed["ok"] and "Connection refused" in failed["error"]
    assert (run_dir / "report.html").is_file()


def test_a_success_is_told_only_to_channels_that_ask_for_it(smtp: Inbox, tmp_path, monkeypatch):
    from cachebench import steps

    monkeypatch.setenv("CACHEBENCH_RESULTS", str(tmp_path))
    wants = {"via": "smtp", "conn_id": "smtp_test", "to": ["a@localhost"], "events": ["success"]}
    default = {"via": "smtp", "conn_id": "smtp_test", "to": ["b@localhost"]}
    run_dir = finished_run(tmp_path, [wants, default])
    out = steps.report("demo", "manual__test")
    assert out["run_dir"] == str(run_dir)
    ((to, msg),) = smtp.messages
    assert to == ["a@localhost"] and msg["Subject"] == "[cachebench] demo: succeeded"
    body = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_content()
    assert "All 2 runs measured." in body and str(run_dir / "report.html") in body


def test_a_campaign_refused_by_plan_tells_its_channels_when_its_notify_block_is_valid(
    smtp: Inbox, tmp_path, monkeypatch
) -> None:
    from cachebench import steps
    from cachebench.campaign import CampaignError

    monkeypatch.setenv("CACHEBENCH_RESULTS", str(tmp_path))
    params = {
        "name": "nightly",
        "budget_usd": -1,
        "notify": [{"via": "smtp", "conn_id": "smtp_test", "to": ["team@localhost"]}],
    }
    with pytest.raises(CampaignError) as refused:
        steps.plan(params, "scheduled__2026-12-07T03:00:00+00:00", "local")
    steps.refused(params, "scheduled__2026-12-07T03:00:00+00:00", refused.value)
    ((_, msg),) = smtp.messages
    assert msg["Subject"] == "[cachebench] nightly: FAILED"
    body = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_content()
    assert "refused before anything was provisioned: " in body and "budget_usd" in body
    # a notify block that is itself wrong tells nobody (and never raises)
    wrong = params | {"notify": [{"via": "smtp", "conn_id": "smtp_test", "to": ["not-mail"]}]}
    steps.refused(wrong, "scheduled__x", refused.value)
    steps.refused(params | {"notify": "nope"}, "scheduled__x", refused.value)
    assert len(smtp.messages) == 1
