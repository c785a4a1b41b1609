"""Outgoing email (team invites) over SMTP, or a log line when none is configured.

smtplib blocks, so each message is sent in a worker thread: the trio loop
never waits on a mail server.  Without ``[smtp] host`` the message is logged
for the operator (who can forward the invite link by hand), so invites work
on a cluster with no mail set up.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

import trio

from config.settings import SmtpSettings

log = logging.getLogger("cloudstorage.mail")


class MailError(Exception):
    """The SMTP server refused or could not be reached."""


class Mailer:
    """Sends plain-text messages with the configured SMTP server."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._s = settings

    @property
    def configured(self) -> bool:
        """Whether an SMTP server is configured (else messages are only logged)."""
        return bool(self._s.host)

    async def send(self, to: str, subject: str, body: str) -> bool:
        """Send one message; True if it went to the SMTP server, False if it
        was only logged.  MailError if the server refused it."""
        if not self.configured:
            log.warning("no [smtp] host configured; message for %s not sent: %s\n%s",
                        to, subject, body)
            return False
        msg = EmailMessage()
        msg["From"] = self._s.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(body)
        try:
            await trio.to_thread.run_sync(self._send_blocking, msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"sending mail through {self._s.host}:{self._s.port} failed: "
                            f"{exc}") from exc
        return True

    def _send_blocking(self, msg: EmailMessage) -> None:
        s = self._s
        smtp_class = smtplib.SMTP_SSL if s.ssl else smtplib.SMTP
        with smtp_class(s.host, s.port, timeout=s.timeout_seconds) as smtp:
            if s.starttls and not s.ssl:
                smtp.starttls(context=ssl.create_default_context())
            if s.username:
                smtp.login(s.username, s.password)
            smtp.send_message(msg)
