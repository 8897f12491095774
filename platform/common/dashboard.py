"""What the dashboard shows. Each section is asked of its own app's selectors, so the dashboard
grows as the apps do and never queries another team's rows."""

from django.apps import apps


def dashboard_for(*, membership) -> dict:
    if membership is None:
        return {"team": None, "sections": []}
    sections = []
    for app_config in apps.get_app_configs():
        provider = getattr(app_config, "dashboard_section", None)
        if provider is not None:
            sections.append(provider(team=membership.team))
    return {"team": membership.team, "sections": sections}
