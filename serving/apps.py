from django.apps import AppConfig


def _team_endpoint_slugs(team) -> list[str]:
    """The team's endpoints, offered to the API keys page (accounts never imports serving)."""
    from serving.selectors import endpoint_list

    return list(endpoint_list(team=team).values_list("slug", flat=True))


class ServingConfig(AppConfig):
    name = "serving"

    def ready(self) -> None:
        from accounts.apikeys import register_endpoint_provider

        register_endpoint_provider(_team_endpoint_slugs)
