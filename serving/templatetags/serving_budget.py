"""`{% team_budget team as budget %}`: the team's budget panel data, so a page shows the panel with
one include line (`serving/_team_budget.html`) and no view change."""

from django import template

register = template.Library()


@register.simple_tag
def team_budget(team):
    from serving.usage import team_budget as budget_for

    if team is None:
        return None
    return budget_for(team=team)
