"""Template tags: the link from the Oscar dashboard to the customer 360 page, and the
date drill-down of our big admin lists."""

from django import template
from django.core.exceptions import ObjectDoesNotExist
from django.urls import NoReverseMatch, reverse

register = template.Library()


@register.simple_tag(takes_context=True)
def customer_360_url(context, user):
    """URL of the customer 360 page for an Oscar ``user``, or "" when the user has no
    customer or the viewer may not see customers. A merged customer leads to its survivor."""
    request = context.get("request")
    viewer = getattr(request, "user", None) or context.get("user")
    if viewer is None or not viewer.has_perm("oscar_journeys.view_customer"):
        return ""
    try:
        customer = user.journeys_customer
    except (ObjectDoesNotExist, AttributeError):
        return ""
    try:
        return reverse("admin:oscar_journeys_customer_360", args=[customer.merged_into_id or customer.pk])
    except NoReverseMatch:  # the project does not serve the Django admin
        return ""


@register.inclusion_tag("admin/date_hierarchy.html")
def journeys_date_hierarchy(cl):
    """Django's date drill-down, without the scan: the calendar between the bounds that
    ``cl.model_admin.date_hierarchy_bounds(cl)`` returns."""
    from ..admin.datehierarchy import calendar_hierarchy

    return calendar_hierarchy(cl, cl.model_admin.date_hierarchy_bounds(cl))
