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


def test_swagger_groups_the_paths_by_the_app_that_serves_them(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--file", str(out))
    paths = yaml.safe_load(out.read_text())["paths"]

    def tags(path: str) -> set[str]:
        return {tag for operation in paths[path].values() for tag in operation.get("tags", [])}

    assert tags("/api/v1/me") == {"accounts"}
    assert tags("/api/v1/datasets") == {"datasets"}
    assert tags("/api/v1/jobs") == {"fine-tuning"}
    assert tags("/api/v1/workers") == {"workers"}
    all_tags = {tag for path in paths for tag in tags(path)}
    assert {"accounts", "datasets", "fine-tuning", "serving", "workers", "openai"} <= all_tags
