"""Refresh-token families, beside simplejwt's token_blacklist tables.

simplejwt's ``OutstandingToken`` keeps each refresh token whole, but a claim
inside it cannot be queried. A replayed token names its family in its ``fam``
claim (authn/tokens.py); these rows, one per rotated token and keyed by its
``jti``, are how every token of that family is found.
"""

from django.db import models
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken


class RefreshTokenLineage(models.Model):
    """The family of one refresh token issued by rotation.

    A family's first token (from a login or a registration) needs no row: its
    ``jti`` is the family id. The row goes when simplejwt's
    ``flushexpiredtokens`` deletes its outstanding token.
    """

    token = models.OneToOneField(
        OutstandingToken,
        to_field="jti",
        db_column="jti",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="lineage",
    )
    family = models.CharField(max_length=255, db_index=True)

    def __str__(self) -> str:
        return f"{self.token_id} in family {self.family}"
