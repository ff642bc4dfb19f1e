"""The template preview page: staff pick a message template and a real customer and see
the message as that customer would get it (subject, text, HTML, short text), rendered by
``services.rendering.render_preview``. Nothing is written and nothing is sent.

URL: ``admin/oscar_journeys/campaign/preview/?template=<id>&customer=<email, phone or id>``
(name ``admin:oscar_journeys_campaign_preview``). Needs the *view campaign* and *view
customer* permissions: the page shows a customer's data. The HTML is shown in an
``<iframe sandbox="" srcdoc="...">``: no script runs and nothing reaches the admin's origin."""

import logging

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from ..exceptions import JourneysError
from ..models import Customer, MessageTemplate
from .search import canonical_ids, customer_ids_for_term

logger = logging.getLogger(__name__)


class TemplateChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return _("%(campaign)s · step %(step)s · %(channel)s") % {
            "campaign": obj.step.campaign,
            "step": obj.step.position,
            "channel": obj.channel,
        }


class PreviewForm(forms.Form):
    template = TemplateChoiceField(
        label=_("Message template"),
        queryset=MessageTemplate.objects.select_related("step__campaign", "channel").order_by(
            "step__campaign__name", "step__position", "channel__name"
        ),
    )
    customer = forms.CharField(
        label=_("Customer"), max_length=254, help_text=_("The customer's email, phone number or id.")
    )

    def clean_customer(self):
        term = self.cleaned_data["customer"].strip()
        ids = sorted(canonical_ids(customer_ids_for_term(term)))
        if not ids:
            raise ValidationError(_("No customer has the email, phone or id %(term)s.") % {"term": term})
        if len(ids) > 1:
            raise ValidationError(
                _("%(term)s points at several customers (ids %(ids)s): give the customer id.")
                % {"term": term, "ids": ", ".join(map(str, ids))}
            )
        return Customer.objects.get(pk=ids[0])


def preview_view(model_admin):
    """The view, bound to the campaign admin (for its site, options and permissions)."""

    def view(request):
        if not (model_admin.has_view_permission(request) and request.user.has_perm("oscar_journeys.view_customer")):
            raise PermissionDenied
        if "customer" in request.GET:
            form = PreviewForm(request.GET)
        else:  # arriving from a template's "preview" link: the template chosen, no errors yet
            form = PreviewForm(initial={"template": request.GET.get("template")})
        outgoing, error = None, None
        if form.is_bound and form.is_valid():
            from ..services.rendering import render_preview

            try:
                outgoing = render_preview(template=form.cleaned_data["template"], customer=form.cleaned_data["customer"])
            except (JourneysError, ValidationError) as exc:
                error = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            except Exception as exc:  # a template error must not become a 500 for staff
                logger.exception("preview of template %s failed", form.cleaned_data["template"].pk)
                error = _("The template could not be rendered: %(error)s") % {"error": exc}
        context = {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.opts,
            "title": _("Preview a message"),
            "subtitle": None,
            "form": form,
            "outgoing": outgoing,
            "error": error,
            "template_obj": form.cleaned_data.get("template") if form.is_bound and not form.errors else None,
            "preview_customer": form.cleaned_data.get("customer") if form.is_bound and not form.errors else None,
        }
        request.current_app = model_admin.admin_site.name
        return TemplateResponse(request, "admin/oscar_journeys/campaign/preview.html", context)

    return view
