"""The password hasher: Argon2id at OWASP's recommended minimum.

Django's ``Argon2PasswordHasher`` defaults to 100 MiB, two passes and eight
lanes: about 140 ms of CPU per hash on a 2-core machine, so one login or
registration costs more than every other request of a client's session
together, and a burst of logins queues behind the hashes. OWASP's Password
Storage Cheat Sheet gives equivalent Argon2id settings that trade memory for
passes; the first of them, m = 19 MiB, t = 2, p = 1, is its stated minimum and
costs about a sixth (~25 ms here). Stronger settings are a subclass away.

The algorithm name stays ``argon2``: hashes made with Django's defaults are
still this hasher's to check, and Django's ``must_update`` (the parameters
differ) rehashes them with these settings on the next successful login
(``users.services.user_authenticate``); a password is never rehashed
without its owner typing it.
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idPasswordHasher(Argon2PasswordHasher):
    """Argon2id, m = 19 MiB, t = 2, p = 1 (OWASP's minimum)."""

    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
