def teams(request):
    """The team switcher in the base layout."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from accounts.models import Membership

    membership = getattr(request, "membership", None)
    return {
        "active_membership": membership if membership else None,
        "my_memberships": Membership.objects.select_related("team").filter(user=user).order_by("team__name"),
    }
