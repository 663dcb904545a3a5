"""Account mails: following the links they carry (and, in this package's
tests, a real SMTP server and the real queue and worker)."""

import re
from urllib.parse import parse_qs, urlsplit

from django.core.mail import EmailMessage


def link_of(message: EmailMessage | str, base: str) -> tuple[str, str]:
    """The ``uid`` and ``token`` of the link to ``base`` in a mail's body."""
    body = message if isinstance(message, str) else str(message.body)
    (url,) = re.findall(re.escape(base) + r"\?\S+", body)
    query = parse_qs(urlsplit(url).query)
    return query["uid"][0], query["token"][0]
