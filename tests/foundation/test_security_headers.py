"""Every response carries a Content-Security-Policy and a Permissions-Policy, and the templates keep
to what that policy allows: no inline <script> and no on* handler attributes."""

import re
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.mark.parametrize("path", ["/accounts/login/", "/healthz", "/api/v1/me", "/no/such/page/"])
def test_every_response_carries_the_csp_and_permissions_policy(client, db, path):
    response = client.get(path)
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "img-src 'self' data:" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    policy = response["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()"):
        assert feature in policy


def test_no_template_has_an_inline_script_or_event_handler():
    offenders = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for match in re.finditer(r"<script\b([^>]*)>", text):
            if "src=" not in match.group(1) and "application/json" not in match.group(1):
                offenders.append(f"{template.relative_to(TEMPLATES)}: inline <script>")
        for match in re.finditer(r"\son[a-z]+\s*=", text):
            offenders.append(f"{template.relative_to(TEMPLATES)}: handler {match.group(0).strip()}")
    assert offenders == []


def test_the_swagger_ui_page_has_no_inline_script(alice_client):
    page = alice_client.get("/api/docs/").content.decode()
    assert re.search(r"<script>\s*\S", page) is None
