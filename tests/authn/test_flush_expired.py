"""``manage.py flushexpiredtokens`` deletes the rows of expired refresh tokens only."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from authn.models import RefreshToken

pytestmark = pytest.mark.django_db


def _token(jti: str, expires_in: timedelta) -> None:
    now = timezone.now()
    RefreshToken.objects.create(
        jti=jti, user_id="u1", family=jti, token="t", created_at=now, expires_at=now + expires_in
    )


def test_expired_rows_go_and_live_ones_stay() -> None:
    _token("gone", timedelta(seconds=-1))
    _token("kept", timedelta(days=1))
    out = StringIO()
    call_command("flushexpiredtokens", stdout=out)
    assert list(RefreshToken.objects.values_list("jti", flat=True)) == ["kept"]
    assert out.getvalue().strip() == "Deleted 1 expired refresh token(s)."
