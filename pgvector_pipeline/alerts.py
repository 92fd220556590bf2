"""Alerts: a JSON POST to the webhook in PGVECTOR_ALERT_WEBHOOK_URL when a backup, restore, truncate, copy, retention
or drill run fails (sensors.alerts) and when the freshness check finds no recent global backup (assets.freshness).

The body is Slack's incoming-webhook format (`text`) with the same facts as fields beside it (`title`, `details`,
`source`), so a Slack or Mattermost incoming webhook shows it as it is and any other receiver (PagerDuty's Events
API through a small relay, an email gateway, a chat bot) can read the fields. Messages carry what the run's failure
says, which never holds a password (postgres.connection redacts every DSN). An alert that cannot be delivered is
logged as a warning and never fails what sent it: the failure it reports is already recorded in Dagster.
"""

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

WEBHOOK_ENV = "PGVECTOR_ALERT_WEBHOOK_URL"
# A webhook that does not answer within this many seconds is given up on (a sensor tick has 60 s in all).
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Alert:
    """What went wrong, for a person (title, text) and for a program (details)."""

    title: str
    text: str
    details: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        lines = [f"*{self.title}*", self.text] + [f"{name}: {value}" for name, value in self.details.items()]
        document = {"text": "\n".join(lines), "title": self.title, "details": dict(self.details)}
        return json.dumps({**document, "source": "pgvector-pipeline"}).encode()


def webhook_url() -> str | None:
    """The configured webhook (PGVECTOR_ALERT_WEBHOOK_URL), or None when alerts are off."""
    return os.environ.get(WEBHOOK_ENV, "").strip() or None


def post_alert(alert: Alert, warn: Callable[[str], None]) -> bool:
    """POST `alert` to the configured webhook; True when it answered 2xx. Off (False) when none is configured."""
    url = webhook_url()
    if url is None:
        return False
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        warn(f"{WEBHOOK_ENV} is not an http(s) URL; no alert was sent: {alert.title}")
        return False
    request = urllib.request.Request(
        url, data=alert.body(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:  # noqa: S310 - the scheme is checked
            status: int = answer.status  # urlopen's answer is untyped (Any) in typeshed
            return 200 <= status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # The URL may carry a token (Slack's do): only its host is named.
        host = urllib.parse.urlsplit(url).hostname
        warn(f"The alert could not be delivered to the webhook at {host} ({type(exc).__name__}: {exc}): {alert.title}")
        return False
