"""The admin of segments and predictions: target groups (rule builder, validation, live
count and preview), training runs, micro-segments, the campaign's target group and
lifecycle stage, and the scores on the customer 360 page."""

import datetime as dt
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from oscar_journeys.admin.segments import segment_in_words
from oscar_journeys.ml import schema
from oscar_journeys.models import Campaign, MicroSegment, Snapshot, TargetGroup, TrainingRun
from oscar_journeys.models import campaigns as c
from oscar_journeys.services.timeline import timeline_record_event

pytestmark = pytest.mark.django_db

SHOES_LATELY = {"event": schema.PRODUCT_ORDERED, "category": "Shoes", "within_days": 30, "op": ">=", "value": 1}
AT_RISK = {"field": "churn_probability", "op": ">", "value": 0.6}
COUNT_URL = "admin:oscar_journeys_targetgroup_count"


@pytest.fixture
def run(db):
    return TrainingRun.objects.create(
        version=3, as_of=dt.date(2025, 6, 1), status=TrainingRun.SUCCEEDED,
        metrics={"churn_auc": 0.8123, "recency_auc": 0.7011, "churn_brier": 0.1543, "clv_orders_mae": 0.42,
                 "clv_value_mae": 17.5, "segments": 6, "silhouette": 0.3141, "customers": 12000, "buyers": 4000,
                 "custom_metric": 1},
        params={"rfm": {"recency": [10, 30]}, "skipped": {"churn": "needs the snapshots of 2025-01-01"}},
        artifact=b"not read by the admin",
    )  # fmt: skip


@pytest.fixture
def segment(run):
    return MicroSegment.objects.create(
        number=2, name="", size=340, first_run=run, last_run=run, centroid={"orders_90d": 3.2, "recency_days": 12.0},
        description=[{"feature": "orders_90d", "level": "high", "z": 1.8},
                     {"feature": "recency_days", "level": "low", "z": -1.1}],
    )  # fmt: skip


@pytest.fixture
def group(db):
    return TargetGroup.objects.create(name="Shoe buyers at risk", rules=[SHOES_LATELY, AT_RISK])


@pytest.fixture
def scored(make_customer, run, segment):
    """Two customers with today's scored snapshot; ann bought shoes lately."""
    today = timezone.now().date() - dt.timedelta(days=1)
    ann, bob = make_customer(first_name="Ann"), make_customer(first_name="Bob")
    Snapshot.objects.create(
        customer=ann, as_of=today, frequency=4, lifecycle_stage="at_risk", rfm_score="245", rfm_segment="cannot_lose",
        micro_segment=2, churn_probability=0.8, prob_alive=0.35, expected_orders=1.25, clv=310.5,
        next_order_date=today + dt.timedelta(days=20), training_run=run.version,
    )  # fmt: skip
    Snapshot.objects.create(customer=bob, as_of=today, frequency=1, churn_probability=0.9, training_run=run.version)
    timeline_record_event(customer=ann, type=schema.PRODUCT_ORDERED, category="Shoes",
                          occurred_at=timezone.now() - dt.timedelta(days=3))  # fmt: skip
    return ann, bob


def post_count(client, rules, **extra):
    return client.post(reverse(COUNT_URL), {"rules": json.dumps(rules), **extra})


# --- pages load -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["targetgroup", "trainingrun", "microsegment"])
def test_admin_pages_load(admin_client, group, segment, model):
    obj = {"targetgroup": group, "trainingrun": segment.last_run, "microsegment": segment}[model]
    assert admin_client.get(reverse(f"admin:oscar_journeys_{model}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"admin:oscar_journeys_{model}_change", args=[obj.pk])).status_code == 200
    add = admin_client.get(reverse(f"admin:oscar_journeys_{model}_add"))
    assert add.status_code == (200 if model == "targetgroup" else 403)


def test_target_group_form_has_the_rule_builder_and_the_members_box(admin_client, group, segment):
    html = admin_client.get(reverse("admin:oscar_journeys_targetgroup_change", args=[group.pk])).text
    assert "oscar_journeys/admin/rule_builder.js" in html and "//cdn" not in html
    assert f'data-count-url="{reverse(COUNT_URL)}"' in html
    assert 'id="journeys-members"' in html and f'data-group="{group.pk}"' in html
    spec = json.loads(html.split('id="id_rules-spec" type="application/json">')[1].split("</script>")[0])
    fields = {f["name"]: f for g in spec["groups"] for f in g["fields"]}
    assert {"churn_probability", "lifecycle_stage", "frequency", "has_email"} <= set(fields)
    assert ["at_risk", "At risk"] in fields["lifecycle_stage"]["choices"]
    assert fields["micro_segment"]["choices"] == [[2, "Segment 2"]]
    assert [schema.PRODUCT_ORDERED, "Ordered a product"] in spec["events"]
    assert spec["event_operators"] == ["==", "!=", "<", "<=", ">", ">="]


def test_target_group_list_shows_the_rules_in_words(admin_client, group):
    TargetGroup.objects.create(name="Stale", rules=[{"field": "gone", "op": "==", "value": 1}])
    html = admin_client.get(reverse("admin:oscar_journeys_targetgroup_changelist")).text
    assert "Number of “Ordered a product” in Shoes in the last 30 days ≥ 1 and Churn probability &gt; 0.6" in html
    assert "Not valid: Rule 1 (gone ==): unknown field" in html


# --- saving and validation ------------------------------------------------------------------


def group_post(rules, **fields):
    return {"name": "Lapsing VIPs", "description": "", "rules": json.dumps(rules), "active": "on", **fields}


def test_a_valid_group_saves(admin_client):
    rules = [SHOES_LATELY, {"field": "lifecycle_stage", "op": "in", "value": ["at_risk", "churned"]}]
    response = admin_client.post(reverse("admin:oscar_journeys_targetgroup_add"), group_post(rules))
    assert response.status_code == 302
    assert TargetGroup.objects.get().rules == rules


@pytest.mark.parametrize(
    "rules, message",
    [
        ([{"field": "lifecycle_stage", "op": "==", "value": "vip"}],
         "Rule 1 (lifecycle_stage ==): unknown value 'vip'; use one of prospect, new, active, high_value, at_risk, "
         "churned, reactivated."),
        ([AT_RISK, dict(SHOES_LATELY, within_days=0)],
         "Rule 2 (product_ordered &gt;=): within_days must be a whole number of days from 1 to 3650, not 0."),
        ([dict(SHOES_LATELY, event="bought")], "Rule 1 (bought &gt;=): unknown event type"),
        ({"field": "clv"}, "The audience must be a list of rules"),
    ],
)
def test_bad_rules_are_shown_on_the_field(admin_client, rules, message):
    response = admin_client.post(reverse("admin:oscar_journeys_targetgroup_add"), group_post(rules))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["rules"]
    assert len(errors) == 1 and errors[0].startswith(message.replace("&gt;", ">"))
    assert 'class="errorlist' in response.text
    assert not TargetGroup.objects.exists()


def test_rules_that_are_not_json_are_refused(admin_client):
    data = dict(group_post([]), rules="[{field: clv}")
    response = admin_client.post(reverse("admin:oscar_journeys_targetgroup_add"), data)
    assert response.context["adminform"].form.errors["rules"] == ["Enter a valid JSON."]


# --- the live count and preview -------------------------------------------------------------


def test_count_view_counts_and_previews(admin_client, scored, group):
    ann, bob = scored
    response = post_count(admin_client, [SHOES_LATELY, AT_RISK])
    assert response.status_code == 200
    data = response.json()
    assert data["count"] == 1
    assert data["summary"].startswith("1 customer meets these conditions now. Behaviour, segments and predictions")
    assert data["columns"] == ["Number of “Ordered a product” in Shoes in the last 30 days", "Churn probability"]
    assert data["rows"] == [{"url": reverse("admin:oscar_journeys_customer_360", args=[ann.pk]), "name": "Ann",
                             "values": ["1", "0.8"]}]  # fmt: skip
    unstaged = [{"field": "lifecycle_stage", "op": "is_null"}, {"field": "churn_probability", "op": "not_null"}]
    both = post_count(admin_client, unstaged).json()
    assert (both["count"], [row["name"] for row in both["rows"]]) == (1, ["Bob"])
    stage = post_count(admin_client, [{"field": "lifecycle_stage", "op": "==", "value": "at_risk"},
                                      {"field": "micro_segment", "op": "==", "value": 2}]).json()  # fmt: skip
    assert stage["rows"][0]["values"] == ["At risk", "Segment 2"]
    # The group's own rules: the count is kept on it.
    post_count(admin_client, group.rules, group=str(group.pk))
    group.refresh_from_db()
    assert group.last_count == 1 and group.last_counted_at is not None
    post_count(admin_client, [AT_RISK], group=str(group.pk))  # other rules than the saved ones
    group.refresh_from_db()
    assert group.last_count == 1


def test_count_view_says_what_is_wrong(admin_client):
    response = post_count(admin_client, [{"field": "churn_probability", "op": ">", "value": "high"}])
    assert response.status_code == 400
    assert response.json() == {
        "error": "Rule 1 (churn_probability >): the value must be a number, not 'high'."
    }
    response = admin_client.post(reverse(COUNT_URL), {"rules": "[{"})
    assert (response.status_code, response.json()) == (400, {"error": "The rules are not valid JSON."})


def test_count_view_is_staff_only_post_only_and_csrf_protected(client, admin_client, admin_user, scored):
    assert admin_client.get(reverse(COUNT_URL)).status_code == 405
    anonymous = client.post(reverse(COUNT_URL), {"rules": "[]"})
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    # Staff without the target-group permission: refused.
    staff = get_user_model().objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    client.force_login(staff)
    assert client.post(reverse(COUNT_URL), {"rules": "[]"}).status_code == 403
    # May see target groups, not customers: the count without the rows.
    staff.user_permissions.add(Permission.objects.get(codename="view_targetgroup"))
    scored_rules = json.dumps([{"field": "churn_probability", "op": "not_null"}])
    data = client.post(reverse(COUNT_URL), {"rules": scored_rules}).json()
    assert (data["count"], data["rows"]) == (2, [])
    # Without the CSRF token, refused.
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(reverse(COUNT_URL), {"rules": "[]"}).status_code == 403


def test_count_action_keeps_the_counts(admin_client, scored, group):
    response = admin_client.post(
        reverse("admin:oscar_journeys_targetgroup_changelist"),
        {"action": "count_members", "_selected_action": [group.pk]},
        follow=True,
    )
    assert "Shoe buyers at risk: 1 member." in [str(m) for m in get_messages(response.wsgi_request)]
    group.refresh_from_db()
    assert group.last_count == 1


# --- training runs and micro-segments -------------------------------------------------------


def test_training_run_shows_its_metrics_read_only(admin_client, run):
    listing = admin_client.get(reverse("admin:oscar_journeys_trainingrun_changelist")).text
    for text in ("0.812", "0.701", "0.1543", "17.50", "0.314", "Succeeded"):
        assert text in listing
    page = admin_client.get(reverse("admin:oscar_journeys_trainingrun_change", args=[run.pk]))
    html = page.text
    for text in ("Churn AUC", "AUC of the recency rule (same split)", "Churn Brier score",
                 "CLV holdout error: value per buyer (MAE)", "Micro-segments", "Silhouette", "Custom_metric",
                 "needs the snapshots of 2025-01-01", "&quot;recency&quot;"):  # fmt: skip
        assert text in html
    assert "not read by the admin" not in html
    assert 'name="_save"' not in html  # read-only
    assert admin_client.post(reverse("admin:oscar_journeys_trainingrun_delete", args=[run.pk]),
                             {"post": "yes"}).status_code == 403  # fmt: skip


def test_micro_segment_is_described_in_words_and_named(admin_client, segment):
    assert segment_in_words(segment.description) == "High orders in 90 days, low days since last order"
    assert segment_in_words([]) == "Close to the average customer"
    listing = admin_client.get(reverse("admin:oscar_journeys_microsegment_changelist")).text
    assert "High orders in 90 days, low days since last order" in listing
    url = reverse("admin:oscar_journeys_microsegment_change", args=[segment.pk])
    assert admin_client.post(url, {"name": "Busy regulars", "size": "1"}).status_code == 302
    segment.refresh_from_db()
    assert (segment.name, segment.size) == ("Busy regulars", 340)  # only the name is editable


# --- campaigns and the customer 360 page ----------------------------------------------------


def test_campaign_form_offers_the_target_group_and_the_lifecycle_stage(admin_client, group):
    html = admin_client.get(reverse("admin:oscar_journeys_campaign_add")).text
    assert 'name="target_group"' in html and 'name="lifecycle_stage"' in html
    assert "oscar_journeys/admin/rule_builder.js" in html  # the audience uses the builder too
    assert "Lifecycle stage changed: the stage customers enter." in html


def test_campaign_with_an_inactive_group_is_warned_about(admin_client, group):
    from tests.functional.test_admin_campaigns import campaign_post

    group.active = False
    group.save()
    data = campaign_post(trigger=c.STAGE_CHANGED, lifecycle_stage="at_risk", target_group=str(group.pk))
    response = admin_client.post(reverse("admin:oscar_journeys_campaign_add"), data, follow=True)
    campaign = Campaign.objects.get()
    assert (campaign.target_group, campaign.lifecycle_stage) == (group, "at_risk")
    assert any("is inactive: the campaign reaches nobody" in str(m) for m in get_messages(response.wsgi_request))
    missing = admin_client.post(reverse("admin:oscar_journeys_campaign_add"),
                                campaign_post(name="No stage", trigger=c.STAGE_CHANGED))  # fmt: skip
    assert missing.context["adminform"].form.errors["lifecycle_stage"] == [
        "A lifecycle-stage campaign needs the stage customers enter."
    ]


def test_360_shows_the_latest_scores(admin_client, scored, segment):
    ann, bob = scored
    segment.name = "Busy regulars"
    segment.save()
    html = admin_client.get(reverse("admin:oscar_journeys_customer_360", args=[ann.pk])).text
    assert "Segments and predictions" in html
    for text in ("At risk", "Can&#x27;t lose them (245)", "Busy regulars (High orders in 90 days, low days since last order)",
                 "80 %", "35 %", "1.25", "310.50", "Training run 3 (2025-06-01)"):  # fmt: skip
        assert text in html
    assert reverse("admin:oscar_journeys_microsegment_change", args=[segment.pk]) in html
    unscored = admin_client.get(reverse("admin:oscar_journeys_customer_360", args=[bob.pk])).text
    assert "90 %" in unscored  # scored by the run, with no stage
    from oscar_journeys.models import Customer

    nobody = Customer.objects.create(email="new@example.com")
    Snapshot.objects.create(customer=nobody, as_of=timezone.now().date())
    html = admin_client.get(reverse("admin:oscar_journeys_customer_360", args=[nobody.pk])).text
    assert "Not scored yet" in html
