from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from accounts import receivers, schema  # noqa: F401  schema registers the OpenAPI auth extension

        receivers.connect()
