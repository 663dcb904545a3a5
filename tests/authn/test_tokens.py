"""Access tokens are verified once per token string; expiry every time."""

import pytest
from rest_framework_simplejwt.exceptions import TokenError

from authn.tokens import _verified, access_claims
from tests.conftest import forged_token, tokens_for
from users.models import User

pytestmark = pytest.mark.django_db


def test_claims_of_a_valid_token(user: User) -> None:
    token = tokens_for(user).access
    claims = access_claims(token)
    assert claims.user_id == str(user.pk)
    assert claims.session_id is not None


def test_signature_is_checked_once_per_token(user: User) -> None:
    token = tokens_for(user).access
    access_claims(token)
    hits = _verified.cache_info().hits
    access_claims(token)
    assert _verified.cache_info().hits == hits + 1


def test_expiry_is_checked_on_every_call(user: User) -> None:
    token = tokens_for(user).access
    claims = access_claims(token)  # now cached
    with pytest.raises(TokenError, match="expired"):
        access_claims(token, now=claims.expires_at)


def test_bad_tokens_take_no_slot(user: User) -> None:
    size = _verified.cache_info().currsize
    for bad in (forged_token(user), tokens_for(user).refresh, "garbage"):
        with pytest.raises(TokenError):
            access_claims(bad)
    assert _verified.cache_info().currsize == size
