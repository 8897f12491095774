from django.apps import AppConfig


def _team_endpoint_slugs(team) -> list[str]:
    """The team's endpoints, offered to the API keys page (accounts never imports serving)."""
    from serving.selectors import endpoint_list

    return list(endpoint_list(team=team).values_list("slug", flat=True))


def _read_key_limits(api_key):
    from serving.quota_policies import key_limits_get

    return key_limits_get(api_key=api_key)


def _write_key_limits(api_key, limits):
    from serving.quota_policies import key_limits_set

    return key_limits_set(api_key=api_key, limits=limits)


class ServingConfig(AppConfig):
    name = "serving"

    def ready(self) -> None:
        from accounts.apikeys import register_endpoint_provider

        register_endpoint_provider(_team_endpoint_slugs)

        # A key's own rate limits are quota policies (serving's rows); the key API and page live in
        # accounts, which imports no app above it, so serving plugs the limits in.
        from accounts.apikeys import KeyLimitsHooks, register_key_limits

        register_key_limits(KeyLimitsHooks(read=_read_key_limits, write=_write_key_limits))
