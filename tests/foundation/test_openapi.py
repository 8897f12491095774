import yaml
from django.core.management import call_command


def test_the_whole_openapi_schema_is_valid_and_generates_without_warnings(tmp_path):
    # --fail-on-warn turns any view drf-spectacular cannot describe (or any operationId clash) into a failure.
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    paths = set(schema["paths"])
    for expected in ("/api/v1/me", "/api/v1/datasets", "/api/v1/jobs", "/api/v1/workers", "/api/v1/api-keys"):
        assert expected in paths, expected
