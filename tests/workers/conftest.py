"""Personas for the platform-admin surface: olga is staff (a platform operator); alice, bob and
charlie from the shared conftest are not."""

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory


@pytest.fixture
def olga(db):
    return UserFactory(email="olga@ops.example.com", is_staff=True)


@pytest.fixture
def olga_client(olga):
    client = APIClient()
    client.force_login(olga)
    return client
