from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "serving"

    def ready(self) -> None:
        from serving import schema  # noqa: F401  registers the OpenAPI auth extension
