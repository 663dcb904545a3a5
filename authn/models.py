"""Refresh tokens: one row per token issued, its family, and whether it is revoked.

authn keeps its own table rather than simplejwt's ``token_blacklist`` app:
that app's ``OutstandingToken`` has a foreign key to the user model, and the
token table must live where users' tables may not (the auth service's own
database in microservices mode; ARCHITECTURE: "a foreign key never crosses a
service that may be deployed apart"). So the user is a plain id, checked when
it matters: at every refresh the user must still exist and be active
(``authn.services``). simplejwt's token classes are kept (``authn.tokens``);
only its storage is replaced, and one row per token replaces its two tables
(outstanding + blacklisted) and the family lineage table before them:

- ``family`` is the ``jti`` of the login (or registration) token that started
  the token's rotation chain (its own ``jti`` for that first token), so a
  replayed token's whole family is found with one indexed query;
- ``revoked_at`` is set once, by a conditional ``UPDATE ... WHERE revoked_at IS
  NULL``: of several concurrent rotations of one token exactly one wins.
"""

from django.db import models


class RefreshToken(models.Model):
    id = models.BigAutoField(primary_key=True)
    jti = models.CharField(max_length=255, unique=True)
    # The user's id as the users app has it; no foreign key (see above).
    user_id = models.CharField(max_length=64, db_index=True)
    family = models.CharField(max_length=255, db_index=True)
    token = models.TextField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user_id", "revoked_at"], name="authn_refresh_user_live")]

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "live"
        return f"refresh token {self.jti} of user {self.user_id} ({state})"
