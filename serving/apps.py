from django.apps import AppConfig


def _read_key_limits(api_key):
    from serving.quota_policies import key_limits_get

    return key_limits_get(api_key=api_key)


def _write_key_limits(api_key, limits):
    from serving.quota_policies import key_limits_set

    return key_limits_set(api_key=api_key, limits=limits)


class ServingConfig(AppConfig):
    name = "serving"

    def ready(self) -> None:
        # A key's own rate limits are quota policies (serving's rows); the key API and page live in
        # accounts, which imports no app above it, so serving plugs the limits in.
        from accounts.apikeys import KeyLimitsHooks, register_key_limits

        register_key_limits(KeyLimitsHooks(read=_read_key_limits, write=_write_key_limits))
