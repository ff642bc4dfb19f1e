"""The journeys admin: the form with its follow-ups, the graph drawn as SVG (names escaped),
follow-up validation, and the policy versions."""

import re

import pytest
from django.urls import reverse

from oscar_journeys.admin.journeys import graph_layout
from oscar_journeys.models import Campaign, FollowUp, Journey, PolicyVersion
from oscar_journeys.models import campaigns as c

pytestmark = pytest.mark.django_db


@pytest.fixture
def journey(db):
    cross = Campaign.objects.create(name="Cross-sell", trigger=c.POST_PURCHASE)
    series = Campaign.objects.create(name="<b>Series</b>", trigger=c.POST_PURCHASE)
    out = Campaign.objects.create(name="Collection out", trigger=c.FOLLOW_UP)
    journey = Journey.objects.create(name="After a purchase", mode=Journey.OPTIMIZED)
    journey.campaigns.set([cross, series])
    FollowUp.objects.create(journey=journey, campaign=series, follow_up=out, delay_days=14,
                            condition=FollowUp.RESPONDED)
    return journey


def test_the_journey_page_draws_the_graph(admin_client, journey):
    page = admin_client.get(reverse("admin:oscar_journeys_journey_change", args=[journey.pk])).content.decode()
    begin = page.index('<svg class="journey-graph"')
    svg = page[begin:page.index("</svg>", begin)]
    assert svg.count("<rect") == 5  # the decision point, two entries, nothing, one follow-up
    assert svg.count("<line") == 4  # to each entry and to nothing, and the follow-up
    assert "after 14 days, if responded" in svg
    assert "&lt;b&gt;Series&lt;/b&gt;" in svg and "<b>Series" not in svg  # a name is text, not markup
    assert "Cross-sell" in svg and "Collection out" in svg and "Nothing" in svg


def test_graph_layout_puts_follow_ups_a_column_further():
    layout = graph_layout([1, 2], [(2, 3, "x"), (3, 4, "y")], {1: "a", 2: "b", 3: "c", 4: "d"})
    x = {node["key"]: node["x"] for node in layout["nodes"]}
    assert x["start"] < x[1] == x[2] == x["nothing"] < x[3] < x[4]
    assert layout["width"] > x[4]


def test_a_journey_saves_with_its_follow_ups_and_rejects_a_bad_one(admin_client, journey):
    cross, series = journey.campaigns.order_by("name")
    out = Campaign.objects.get(trigger=c.FOLLOW_UP)
    url = reverse("admin:oscar_journeys_journey_add")
    data = {
        "name": "Second", "mode": "manual", "active": "on", "campaigns": [cross.pk], "discount": "0.8", "depth": "2",
        "exploration": "0.02", "holdout": "0.1",
        "follow_ups-TOTAL_FORMS": "1", "follow_ups-INITIAL_FORMS": "0",
        "follow_ups-0-campaign": cross.pk, "follow_ups-0-follow_up": series.pk, "follow_ups-0-delay_days": "3",
        "follow_ups-0-condition": "any",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200 and not Journey.objects.filter(name="Second").exists()
    content = response.content.decode()
    assert "Select a valid choice" in content or "not a follow-up campaign" in content
    data["follow_ups-0-follow_up"] = out.pk
    response = admin_client.post(url, data)
    assert response.status_code == 302
    assert FollowUp.objects.get(journey__name="Second").follow_up == out
    assert Journey.objects.get(name="Second").holdout == 0.1


def test_the_journey_form_edits_the_hold_out_share_next_to_exploration(admin_client, journey):
    url = reverse("admin:oscar_journeys_journey_change", args=[journey.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="exploration"' in page and 'name="holdout"' in page
    assert page.index('name="exploration"') < page.index('name="holdout"') < page.index('class="journey-graph"')
    assert re.search(r'name="holdout"[^>]*value="0\.02"', page)  # the default
    data = {
        "name": journey.name, "mode": journey.mode, "active": "on", "campaigns": [c.pk for c in journey.campaigns.all()],
        "discount": "0.8", "depth": "2", "exploration": "0.02", "holdout": "0.6",
        "follow_ups-TOTAL_FORMS": "0", "follow_ups-INITIAL_FORMS": "0",
    }
    response = admin_client.post(url, data)  # above the 0.5 the field allows
    assert response.status_code == 200 and "less than or equal to 0.5" in response.content.decode()
    journey.refresh_from_db()
    assert journey.holdout == 0.02
    data["holdout"] = "0.1"
    assert admin_client.post(url, data).status_code == 302
    journey.refresh_from_db()
    assert journey.holdout == 0.1


def test_the_hold_out_share_is_validated():
    from django.core.exceptions import ValidationError

    journey = Journey(name="Checked")
    assert (journey.exploration, journey.holdout) == (0.02, 0.02)
    journey.full_clean()
    for share in (0.6, -0.1):
        journey.holdout = share
        with pytest.raises(ValidationError) as raised:
            journey.full_clean()
        assert set(raised.value.message_dict) == {"holdout"}


def test_policy_versions_show_what_was_learned(admin_client, journey):
    cross = Campaign.objects.get(name="Cross-sell")
    version = PolicyVersion.objects.create(
        version=4, status=PolicyVersion.SUCCEEDED, outcomes=1200, artifact=b"x",
        summary=[{"campaign_id": cross.pk, "n_treated": 700, "n_control": 500, "uplift": 3.25, "uplift_sd": 0.5,
                  "leaves": 3}],
    )
    page = admin_client.get(reverse("admin:oscar_journeys_policyversion_change", args=[version.pk])).content.decode()
    assert "Cross-sell" in page and re.search(r">\s*3[.,]25\s*<", page)
    assert admin_client.get(reverse("admin:oscar_journeys_policyversion_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:oscar_journeys_journey_changelist")).status_code == 200
