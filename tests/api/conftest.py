"""More personas for the API tests: adam (an admin of alice's team), dora (invited, no team)."""

import pytest
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, UserFactory


@pytest.fixture
def adam(team):
    user = UserFactory(email="adam@example.com")
    MembershipFactory(team=team, user=user, role="admin")
    return user


@pytest.fixture
def adam_client(adam):
    client = APIClient()
    client.force_login(adam)
    return client


@pytest.fixture
def dora(db):
    return UserFactory(email="dora@example.com")


@pytest.fixture
def dora_client(dora):
    client = APIClient()
    client.force_login(dora)
    return client
