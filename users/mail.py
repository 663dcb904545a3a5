"""The account mails: a link to the client's page with ``uid`` and ``token``.

Built and sent by the worker (``users.tasks`` -> ``users.services.account_mail_send``),
never in a request.
"""

from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core.mail import EmailMessage


def link(base: str, *, uid: str, token: str) -> str:
    """``base`` with ``uid`` and ``token`` added to its query string."""
    parts = urlsplit(base)
    query = "&".join(
        part for part in (parts.query, urlencode({"uid": uid, "token": token})) if part
    )
    return urlunsplit(parts._replace(query=query))


def _minutes(seconds: int) -> str:
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def password_reset_message(*, to: str, name: str, uid: str, token: str) -> EmailMessage:
    url = link(settings.PASSWORD_RESET_URL, uid=uid, token=token)
    body = (
        f"Hello {name},\n\n"
        "Someone asked to reset the password of your Arcana Cloud account. "
        "To choose a new password, open this link:\n\n"
        f"{url}\n\n"
        f"It works once, for {_minutes(settings.PASSWORD_RESET_TIMEOUT)}. Setting a new "
        "password signs you out everywhere.\n"
        "If you did not ask for this, ignore this message: your password stays as it is.\n"
    )
    return EmailMessage("Reset your Arcana Cloud password", body, to=[to])


def email_verification_message(*, to: str, name: str, uid: str, token: str) -> EmailMessage:
    url = link(settings.EMAIL_VERIFICATION_URL, uid=uid, token=token)
    body = (
        f"Hello {name},\n\n"
        "Please confirm that this is your address for your Arcana Cloud account "
        "by opening this link:\n\n"
        f"{url}\n\n"
        f"It works once, for {_minutes(settings.PASSWORD_RESET_TIMEOUT)}.\n"
        "If you did not sign up or change your address, ignore this message.\n"
    )
    return EmailMessage("Confirm your email address", body, to=[to])
