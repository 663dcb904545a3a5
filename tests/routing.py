"""Routing as another deployment routes it, in this test process."""

import importlib.util
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

import arcana.urls
from arcana.modes import Deployment

NOT_FOUND = {"error": "Not found.", "code": "not_found"}


def refused(response: Any) -> bool:
    """The contract's JSON 404: the route is not there."""
    return bool(response.status_code == 404 and response.json() == NOT_FOUND)


@pytest.fixture
def routed_as(settings: Any) -> Iterator[Callable[[Deployment, str], Client]]:
    """``routed_as(deployment, name)``: a client of this process routed as that
    deployment routes it: arcana/urls.py imported afresh (as module ``name``)
    with ``settings.ARCANA_DEPLOYMENT`` set to ``deployment``."""
    loaded: list[str] = []

    def route(deployment: Deployment, name: str) -> Client:
        settings.ARCANA_DEPLOYMENT = deployment
        module_name = f"tests._urls_of_{name}"
        spec = importlib.util.spec_from_file_location(module_name, arcana.urls.__file__)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        loaded.append(module_name)
        spec.loader.exec_module(module)
        settings.ROOT_URLCONF = module_name  # setting_changed clears the URL caches
        return Client()

    yield route
    for module_name in loaded:
        del sys.modules[module_name]
