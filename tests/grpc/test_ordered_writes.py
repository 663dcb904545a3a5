"""Work of two commits, failing between them, over REST and gRPC alike.

Registration creates the user (one commit), then the first session (another).
When the second fails the user stays: they can log in, and registering again
is a conflict, on both transports.
"""

from typing import Any

import pytest
from django.db import OperationalError

from authn.models import RefreshToken
from tests.grpc.test_parity import STRONG, Api, api, kinds
from users.models import User

__all__ = ["api"]  # the parity fixture: every test here runs over REST and gRPC

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def token_store_down(**kwargs: Any) -> None:
    raise OperationalError("the token store is down")


def test_a_register_cut_short_after_the_user_leaves_a_user_who_can_log_in(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"name": "Half Way", "email": "half.way@example.com", "password": STRONG}
    monkeypatch.setattr("authn.repository.refresh_token_record", token_store_down)
    cut_short = api.register(**body)
    monkeypatch.undo()
    assert cut_short.kind == "unavailable"
    created = User.objects.get(email="half.way@example.com")
    assert not RefreshToken.objects.filter(user_id=str(created.pk)).exists()
    # The retry of the whole registration is a conflict; logging in works.
    assert kinds(api.register(**body), api.login(body["email"], STRONG)) == ["conflict", "ok"]
