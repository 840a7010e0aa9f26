"""Who hears how a campaign run ended: Airflow's notifiers from the providers.

A campaign's ``notify:`` lists channels, each one of:

* ``via: smtp``: an e-mail through ``SmtpNotifier`` (apache-airflow-providers-smtp) and
  its connection (default ``smtp_default``) to the addresses in ``to``;
* ``via: slack``: a message to a Slack incoming webhook through ``SlackWebhookNotifier``
  (apache-airflow-providers-slack) and its connection (default ``slack_default``: the
  webhook's token, or its whole URL, is the connection's password);
* ``via: sns``: a publish to ``topic_arn`` through the Amazon provider's ``SnsNotifier``
  and its AWS connection (default ``aws_default``).

Each channel names the ``events`` it wants (default: regression, failure,
cleanup_failed; success is opt-in): a point's regression against the baseline, a run
that failed (runs without a result, interrupted, refused by plan), CLEANUP FAILED, or a
run that succeeded. CLEANUP FAILED is sent to every channel, whatever its events: left
resources cost money until someone acts. The message is the run's headline and a link
to its report.

A notifier that fails (no connection, a server that refuses, a timeout) is logged and
kept in the run's ``notifications.json``, and changes nothing else: the campaign's own
result, success or failure, is what its tasks said. No secret is logged or kept: the
connection holds it, and an error's text is kept without any URL it may quote (a
webhook's URL is its secret).
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from cachebench.models import Strict

log = logging.getLogger(__name__)

Event = Literal["regression", "failure", "cleanup_failed", "success"]
Via = Literal["smtp", "slack", "sns"]
DEFAULT_EVENTS: tuple[Event, ...] = ("regression", "failure", "cleanup_failed")
DEFAULT_CONN = {"smtp": "smtp_default", "slack": "slack_default", "sns": "aws_default"}
FILE = "notifications.json"
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$|^[^@\s,;<>]+@localhost$")
_CONN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")
_TOPIC = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
ERROR_CHARS = 300
RETRY_S = 1.0
#: How each event reads in a subject, most urgent first.
TITLES: dict[str, str] = {
    "cleanup_failed": "CLEANUP FAILED",
    "failure": "FAILED",
    "regression": "REGRESSION",
    "success": "succeeded",
}


class Channel(Strict):
    """One way to tell a team how a campaign run ended."""

    via: Via = Field(description="smtp (e-mail), slack (incoming webhook) or sns (a topic)")
    conn_id: str | None = Field(
        None,
        description="Airflow connection (default smtp_default, slack_default, aws_default)",
    )
    events: list[Event] = Field(
        list(DEFAULT_EVENTS),
        description="regression, failure, cleanup_failed, success (cleanup_failed is always sent)",
    )
    to: list[str] = Field([], description="smtp: recipient addresses")
    from_email: str | None = Field(None, description="smtp: sender (default: the connection's)")
    topic_arn: str | None = Field(None, description="sns: the topic's ARN")

    @property
    def connection(self) -> str:
        return self.conn_id or DEFAULT_CONN[self.via]


def problems(channels: Sequence[Channel]) -> list[str]:
    """What is wrong with the campaign's notify: list, as `field: value: allowed`."""
    out = []
    for i, ch in enumerate(channels):
        at = f"notify[{i}]"
        if ch.conn_id is not None and not _CONN_ID.match(ch.conn_id):
            out.append(f"{at}.conn_id: {ch.conn_id!r}: an Airflow connection id (A-Z, 0-9, _.-)")
        if ch.via == "smtp":
            if not ch.to:
                out.append(f"{at}.to: []: smtp needs at least one recipient address")
            for j, addr in enumerate(ch.to):
                if not _EMAIL.match(addr):
                    out.append(f"{at}.to[{j}]: {addr!r}: not an e-mail address (name@domain)")
            if ch.from_email is not None and not _EMAIL.match(ch.from_email):
                out.append(f"{at}.from_email: {ch.from_email!r}: not an e-mail address")
        else:
            for name in ("to", "from_email"):
                if getattr(ch, name):
                    out.append(f"{at}.{name}: {getattr(ch, name)!r}: only for via smtp")
        if ch.via == "sns":
            if not ch.topic_arn:
                out.append(
                    f"{at}.topic_arn: required for via sns: the topic's ARN, e.g. "
                    "arn:aws:sns:eu-west-1:123456789012:bench-alerts"
                )
            elif not _TOPIC.match(ch.topic_arn):
                out.append(
                    f"{at}.topic_arn: {ch.topic_arn!r}: not an SNS topic ARN "
                    "(arn:aws:sns:<region>:<account>:<name>)"
                )
        elif ch.topic_arn:
            out.append(f"{at}.topic_arn: {ch.topic_arn!r}: only for via sns")
    return out


class Outcome(Strict):
    """How a campaign run ended, as its notifications say it."""

    campaign: str
    run_id: str
    happened: tuple[Event, ...]
    headline: str
    details: tuple[str, ...] = ()
    link: str = Field("", description="the report (the UI's link, else its path)")

    @property
    def title(self) -> str:
        said = [TITLES[e] for e in TITLES if e in self.happened]
        # 'succeeded' only alone (a regression of a run that succeeded); CLEANUP FAILED
        # says the run failed already
        if len(said) > 1:
            said = [t for t in said if t != TITLES["success"]]
        if "cleanup_failed" in self.happened:
            said = [t for t in said if t != TITLES["failure"]]
        return f"[cachebench] {self.campaign}: {', '.join(said) or 'finished'}"


class Delivery(Strict):
    via: Via
    conn_id: str
    events: tuple[Event, ...]
    ok: bool
    error: str = ""


def due(channel: Channel, happened: Sequence[Event]) -> tuple[Event, ...]:
    """The events of ``happened`` this channel is told of (CLEANUP FAILED always)."""
    wanted = {*channel.events, "cleanup_failed"}
    return tuple(e for e in happened if e in wanted)


def text(outcome: Outcome) -> str:
    lines = [outcome.title, f"run {outcome.run_id}", "", outcome.headline, *outcome.details]
    if outcome.link:
        lines += ["", f"Report: {outcome.link}"]
    return "\n".join(lines)


def _html(outcome: Outcome) -> str:
    e = html.escape
    parts = [f"<p><strong>{e(outcome.headline)}</strong></p>"]
    if outcome.details:
        parts.append("<ul>" + "".join(f"<li>{e(d)}</li>" for d in outcome.details) + "</ul>")
    if outcome.link:
        parts.append(f'<p>Report: <a href="{e(outcome.link)}">{e(outcome.link)}</a></p>')
    return f"<p>Campaign run {e(outcome.run_id)}</p>" + "".join(parts)


def _notifier(channel: Channel, outcome: Outcome) -> Any:
    """The provider's notifier for ``channel``, its message filled in."""
    if channel.via == "smtp":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(
            to=list(channel.to),
            from_email=channel.from_email,
            subject=outcome.title,
            html_content=_html(outcome),
            smtp_conn_id=channel.connection,
        )
    if channel.via == "slack":
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        # no retry handler: slack_sdk logs a retried request's URL, the webhook's secret
        # (send() tries a webhook twice itself)
        return SlackWebhookNotifier(
            slack_webhook_conn_id=channel.connection, text=text(outcome), retry_handlers=[]
        )
    from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

    region = (channel.topic_arn or "").split(":")[3] or None
    return SnsNotifier(
        aws_conn_id=channel.connection,
        target_arn=channel.topic_arn or "",
        message=text(outcome),
        subject=outcome.title[:100],  # SNS subjects stop at 100 characters
        region_name=region,
    )


def scrub(exc: BaseException) -> str:
    """An error's text without any URL (a webhook's URL is its secret), kept short."""
    said = _URL.sub("<url>", f"{type(exc).__name__}: {exc}")
    return said if len(said) <= ERROR_CHARS else said[: ERROR_CHARS - 3] + "..."


def _deliver(channel: Channel, outcome: Outcome, context: Any) -> None:
    tries = 2 if channel.via == "slack" else 1  # the SMTP hook and boto3 retry on their own
    for attempt in range(1, tries + 1):
        try:
            # the message is complete: notify() sends it as is (__call__ would render it
            # as a Jinja template first, and a headline may hold braces)
            _notifier(channel, outcome).notify(context if context is not None else {})
            return
        except Exception:
            if attempt == tries:
                raise
            time.sleep(RETRY_S)


def send(channels: Sequence[Channel], outcome: Outcome, context: Any = None) -> list[Delivery]:
    """Tell every channel the events it wants; never raises (each failure is logged and
    returned). ``context``: the task's Airflow context, when there is one."""
    out = []
    for ch in channels:
        events = due(ch, outcome.happened)
        if not events:
            continue
        try:
            _deliver(ch, outcome, context)
        except Exception as exc:
            error = scrub(exc)
            log.warning(
                "notify via %s (connection %s) failed: %s; the campaign run's own result is "
                "unchanged",
                ch.via,
                ch.connection,
                error,
            )
            out.append(
                Delivery(via=ch.via, conn_id=ch.connection, events=events, ok=False, error=error)
            )
            continue
        log.info("notified via %s (connection %s): %s", ch.via, ch.connection, outcome.title)
        out.append(Delivery(via=ch.via, conn_id=ch.connection, events=events, ok=True))
    return out
