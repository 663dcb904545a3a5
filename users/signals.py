"""Signals the users app sends. Other apps connect to them; users imports none
of those apps."""

from django.dispatch import Signal

# Sent by ``User.save`` once a new password of an existing user has committed,
# whichever path set it (the API, the admin's forms, ``manage.py
# changepassword``, a reset, the shell): one signal, so no path can forget to
# end the user's sessions. Arguments: ``user_id`` (str) and ``keep_session``
# (the refresh-token jti of the caller's own session, which survives, or None).
password_changed = Signal()
