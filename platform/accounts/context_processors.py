def teams(request):
    """The team switcher in the base layout."""
    user = getattr(request, "user", None)
    # An API key's principal (no pk) can reach a rendered page too (the Swagger UI): it has no
    # memberships of its own to switch between.
    if user is None or not user.is_authenticated or user.pk is None:
        return {}
    from accounts.models import Membership

    membership = getattr(request, "membership", None)
    return {
        "active_membership": membership if membership else None,
        "my_memberships": Membership.objects.select_related("team").filter(user=user).order_by("team__name"),
    }
