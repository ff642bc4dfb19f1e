"""The journey report: hand-made decisions with known values and propensities, and the
figures the page must show for them, each worked out below from the definitions in
docs/reports.md ("The journey report")."""

import datetime as dt
import math
import pickle
import re
from decimal import Decimal
from statistics import NormalDist

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from oscar_journeys.ml.uplift import difference_in_means
from oscar_journeys.models import Campaign, Decision, FollowUp, Journey, PolicyVersion
from oscar_journeys.models import campaigns as c
from oscar_journeys.optimizer import JourneyPolicy
from oscar_journeys.services import optimizing

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc
MONDAY = dt.datetime(2025, 3, 10, 12, tzinfo=UTC)
LATER = dt.datetime(2025, 3, 19, 12, tzinfo=UTC)
MARCH = {"start": "2025-03-01", "end": "2025-03-31"}
Z = NormalDist().inv_cdf(0.975)
UPLIFT = {"A": 6.0, "B": 3.0}  # the stub reward model's uplift per campaign


class StubPolicy:
    """A stored policy version whose reward model is a fixed uplift per campaign; it checks
    that it is given every decision's features."""

    version = 1

    def __init__(self, uplift):
        self.uplift = uplift

    def predict(self, features, eligible):
        assert list(features.columns) == list(optimizing.POLICY_FEATURES)
        assert set(eligible["customer_id"]) <= set(features.index)
        return eligible.assign(uplift=eligible["campaign_id"].map(self.uplift).astype(float), uplift_sd=0.0, value=0.0)


@pytest.fixture(autouse=True)
def _fresh_policy_cache():
    optimizing.policy_of.cache_clear()
    yield
    optimizing.policy_of.cache_clear()


@pytest.fixture(params=["listed", "legacy rows"])
def logged(request):
    """A journey of A (priority 50) and B (priority 30), with follow-up C after A, and its
    decisions (customer ids stand for the decisions; S = skipped as outranked), written
    either as the round writes them (one row per decision, the campaigns chosen among in
    ``candidates``) or as rounds before 0007 did (a "skipped, outranked" row per campaign
    not chosen, a "nothing" row per campaign due); the report reads both the same:

    ===  ========  ==============  ============  =====  ======
    id   policy    candidates      logged        p      value
    ===  ========  ==============  ============  =====  ======
    1    journey   A, B(S)         send A        0.5    40
    2    journey   A(S), B         send B        0.25   20
    3    journey   A, B            nothing (x2)  0.2    10
    4    journey   A               send A        0.8    0
    5    journey   A, B(S)         holdout A     0.4    5
    6    journey   B               control B     0.3    0
    7    manual    A               send A        1.0    100
    8    manual    A, B(S)         holdout A     0.1    30
    9    journey   A (19 March)    control A     0.3    12
    10   journey   Z (not ours)    send Z        0.5    70
    11   journey   A (April)       send A        0.5    999
    ===  ========  ==============  ============  =====  ======
    """
    a = Campaign.objects.create(name="Cross-sell A", trigger=c.POST_PURCHASE, priority=50)
    b = Campaign.objects.create(name="Series B", trigger=c.POST_PURCHASE, priority=30)
    follow = Campaign.objects.create(name="Follow-up C", trigger=c.FOLLOW_UP, priority=10)
    other = Campaign.objects.create(name="Elsewhere Z", trigger=c.POST_PURCHASE, priority=90)
    journey = Journey.objects.create(name="After a purchase", mode=Journey.OPTIMIZED)
    journey.campaigns.set([a, b])
    FollowUp.objects.create(journey=journey, campaign=a, follow_up=follow, delay_days=7)

    listed = request.param == "listed"

    def decide(customer, campaign, outcome, p=1.0, value=0, *, when=MONDAY, policy="journey", among=()):
        Decision.objects.create(
            customer_id=customer, campaign=campaign, decided_at=when, outcome=outcome, policy=policy,
            propensity=p, attributed_value=Decimal(value), attribution_closed=True,
            candidates=sorted({campaign.pk, *(x.pk for x in among)}) if listed else [],
        )  # fmt: skip
        for other in [] if listed else among:
            legacy = (Decision.NOTHING, "") if outcome == Decision.NOTHING else (Decision.SKIPPED, Decision.OUTRANKED)
            Decision.objects.create(
                customer_id=customer, campaign=other, decided_at=when, outcome=legacy[0], reason=legacy[1],
                policy=policy, propensity=p if legacy[0] == Decision.NOTHING else 1.0,
                attributed_value=Decimal(value if legacy[0] == Decision.NOTHING else 0), attribution_closed=True,
            )  # fmt: skip

    decide(1, a, Decision.SEND, 0.5, 40, among=[b])
    decide(2, b, Decision.SEND, 0.25, 20, among=[a])
    decide(3, a, Decision.NOTHING, 0.2, 10, among=[b])
    decide(4, a, Decision.SEND, 0.8, 0)
    decide(5, a, Decision.HOLDOUT, 0.4, 5, among=[b])
    decide(6, b, Decision.CONTROL, 0.3, 0)
    decide(7, a, Decision.SEND, 1.0, 100, policy="manual")
    decide(8, a, Decision.HOLDOUT, 0.1, 30, policy="manual", among=[b])
    decide(9, a, Decision.CONTROL, 0.3, 12, when=LATER)
    decide(10, other, Decision.SEND, 0.5, 70)
    decide(11, a, Decision.SEND, 0.5, 999, when=dt.datetime(2025, 4, 5, tzinfo=UTC))
    return journey


def report(client, journey, params=MARCH):
    response = client.get(reverse("admin:oscar_journeys_journey_report", args=[journey.pk]), params)
    assert response.status_code == 200
    return response


def rows_by_name(response):
    return {row["campaign"].name: row for row in response.context["campaign_rows"]}


def shown(html, number):
    """``number`` as the page prints it (two decimals, either decimal mark)."""
    whole, decimals = f"{number:.2f}".split(".")
    return re.search(rf"(?<![\d.,]){re.escape(whole)}[.,]{decimals}(?!\d)", html) is not None


def hajek(pairs):
    """(mean, linearised variance) of (value, propensity) pairs, written out."""
    total = sum(1 / p for _, p in pairs)
    mean = sum(v / p for v, p in pairs) / total
    return mean, sum((v - mean) ** 2 / p**2 for v, p in pairs) / total**2


def test_campaign_incremental_value_is_inverse_propensity_weighted(admin_client, logged):
    response = report(admin_client, logged)
    rows = rows_by_name(response)
    assert list(rows) == ["Cross-sell A", "Series B", "Follow-up C"]  # by priority, the follow-up included
    a = rows["Cross-sell A"]
    # Rows of A in March: sends 1, 4, 7; outranked 2; nothing 3, holdouts 5, 8, control 9.
    assert (a["decisions"], a["sent"], a["nothing"]) == (8, 3, 4)
    # Randomized (p < 1) decisions where A was a candidate. Sent A: 1 and 4 (7 was certain).
    # Received nothing: 3, 5, 8 (manual: its choice was A), 9; not 6 (A was no candidate).
    treated = (40 * 2 + 0 * 1.25) / (2 + 1.25)
    control = (10 * 5 + 5 * 2.5 + 30 * 10 + 12 / 0.3) / (5 + 2.5 + 10 + 1 / 0.3)
    weighted = a["weighted"]
    assert weighted["treated_mean"] == pytest.approx(treated)
    assert weighted["control_mean"] == pytest.approx(control)
    assert weighted["estimate"] == pytest.approx(treated - control)
    assert (weighted["n_treated"], weighted["n_control"]) == (2, 4)
    assert weighted["treated_effective"] == pytest.approx(3.25**2 / (4 + 1.25**2))
    (_, var_t), (_, var_c) = hajek([(40, 0.5), (0, 0.8)]), hajek([(10, 0.2), (5, 0.4), (30, 0.1), (12, 0.3)])
    half = Z * math.sqrt(var_t + var_c)
    assert (weighted["low"], weighted["high"]) == pytest.approx((treated - control - half, treated - control + half))
    assert weighted["verdict"] == "unclear"

    b = rows["Series B"]["weighted"]
    # Sent B: 2 only (no interval from one decision). Nothing: 3, 5 (B outranked by the
    # policy: a candidate), 6; not 8 (manual priority never gives an outranked campaign a chance).
    assert b["estimate"] == pytest.approx(20 - (10 * 5 + 5 * 2.5 + 0) / (5 + 2.5 + 1 / 0.3))
    assert b["low"] is None and (b["n_treated"], b["n_control"]) == (1, 3)

    # The plain comparison with the holdout: sends of A against its holdouts, unweighted.
    plain = difference_in_means([40, 0, 100], [5, 30])
    assert rows["Cross-sell A"]["holdout"]["estimate"] == pytest.approx(plain["estimate"])
    assert rows["Cross-sell A"]["holdout"]["low"] == pytest.approx(plain["low"])
    assert rows["Series B"]["holdout"] is None and rows["Follow-up C"]["weighted"]["estimate"] is None

    html = response.text
    assert shown(html, treated - control) and shown(html, treated) and shown(html, plain["estimate"])
    assert "no holdout" in html


def test_the_journey_against_the_global_control_group(admin_client, logged):
    control = report(admin_client, logged).context["control"]
    expected = difference_in_means([40, 20, 0, 100], [0, 12])  # sends of A and B; control 6 and 9; not Z
    assert (control["n_sent"], control["n_control"]) == (4, 2)
    assert (control["estimate"], control["low"], control["high"]) == pytest.approx(
        (expected["estimate"], expected["low"], expected["high"])
    )


def test_manual_priority_counts_only_the_decisions_it_would_have_taken(admin_client, logged):
    response = report(admin_client, logged)
    policies = response.context["policies"]
    # The self-optimizing decisions of the journey: 1, 2, 3, 4, 5, 6 and 9 (not Z's 10).
    assert policies["n"] == 7
    rows = {row["key"]: row for row in policies["rows"]}
    assert set(rows) == {"manual_ips", "journey"}  # no policy version: no doubly robust estimate
    # Manual priority sends A to every customer with A due: weight 1/p on 1 and 4, zero on
    # 2 (B was sent) and on every "nothing".
    terms = [40 / 0.5, 0, 0, 0 / 0.8, 0, 0, 0]
    manual = rows["manual_ips"]
    assert manual["estimate"] == pytest.approx(sum(terms) / 7)
    assert manual["effective_sample_size"] == pytest.approx((2 + 1.25) ** 2 / (2**2 + 1.25**2))
    sd = math.sqrt(sum((t - sum(terms) / 7) ** 2 for t in terms) / 6)
    assert manual["low"] == pytest.approx(sum(terms) / 7 - Z * sd / math.sqrt(7))
    # The self-optimizing policy as it ran: the plain mean.
    assert rows["journey"]["estimate"] == pytest.approx((40 + 20 + 10 + 0 + 5 + 0 + 12) / 7)
    assert rows["journey"]["effective_sample_size"] == pytest.approx(7)
    html = response.text
    assert shown(html, 80 / 7) and shown(html, 87 / 7)
    assert "No version of the self-optimizing policy has been learned yet" in html
    assert "effective sample size" in html


def test_doubly_robust_uses_the_latest_policy_version(admin_client, logged):
    a, b = Campaign.objects.get(name="Cross-sell A"), Campaign.objects.get(name="Series B")
    PolicyVersion.objects.create(version=1, status=PolicyVersion.SUCCEEDED, artifact=b"broken")
    PolicyVersion.objects.create(
        version=2, status=PolicyVersion.SUCCEEDED,
        artifact=pickle.dumps(StubPolicy({a.pk: UPLIFT["A"], b.pk: UPLIFT["B"]})),
    )  # fmt: skip
    response = report(admin_client, logged)
    rows = {row["key"]: row for row in response.context["policies"]["rows"]}
    # The reward model: the mean value of the decisions that received nothing (3, 5, 6, 9),
    # plus the predicted uplift of the campaign.
    base = (10 + 5 + 0 + 12) / 4
    q = {"A": base + UPLIFT["A"], "B": base + UPLIFT["B"], None: base}
    # (manual's choice, logged action, weight, value) of decisions 1, 2, 3, 4, 5, 6, 9
    decisions = [("A", "A", 2, 40), ("A", "B", 0, 20), ("A", None, 0, 10), ("A", "A", 1.25, 0),
                 ("A", None, 0, 5), ("B", None, 0, 0), ("A", None, 0, 12)]  # fmt: skip
    terms = [q[choice] + w * (value - q[action]) for choice, action, w, value in decisions]
    assert rows["manual_dr"]["estimate"] == pytest.approx(sum(terms) / 7)
    assert rows["manual_ips"]["estimate"] == pytest.approx(80 / 7)
    html = response.text
    assert "Doubly robust" in html and shown(html, sum(terms) / 7)
    assert "No version of the self-optimizing policy" not in html


def test_doubly_robust_with_a_stored_journey_policy(admin_client, logged):
    """The real policy, pickled as the shop stores it: before any data its uplift of a
    campaign is the campaign's prior value (A: 4, B: 1)."""
    a, b = Campaign.objects.get(name="Cross-sell A"), Campaign.objects.get(name="Series B")
    policy = JourneyPolicy(pd.DataFrame({"campaign_id": [a.pk, b.pk], "priority": [50, 30], "prior_value": [4.0, 1.0]}))
    PolicyVersion.objects.create(version=1, status=PolicyVersion.SUCCEEDED, artifact=pickle.dumps(policy))
    rows = {row["key"]: row for row in report(admin_client, logged).context["policies"]["rows"]}
    base = (10 + 5 + 0 + 12) / 4
    q = {"A": base + 4, "B": base + 1, None: base}
    decisions = [("A", "A", 2, 40), ("A", "B", 0, 20), ("A", None, 0, 10), ("A", "A", 1.25, 0),
                 ("A", None, 0, 5), ("B", None, 0, 0), ("A", None, 0, 12)]  # fmt: skip
    terms = [q[choice] + w * (value - q[action]) for choice, action, w, value in decisions]
    assert rows["manual_dr"]["estimate"] == pytest.approx(sum(terms) / 7)


def test_autonomous_decisions_per_week_table_and_chart(admin_client, logged):
    response = report(admin_client, logged)
    weeks = response.context["weeks"]
    monday = lambda m, d: dt.date(2025, m, d)  # noqa: E731
    assert weeks == [
        (monday(2, 24), 0, 0), (monday(3, 3), 0, 0), (monday(3, 10), 6, 3), (monday(3, 17), 1, 0),
        (monday(3, 24), 0, 0), (monday(3, 31), 0, 0),
    ]  # fmt: skip
    chart = response.context["week_chart"]
    assert chart.count == 6 and chart.segments and chart.latest == 0
    html = response.text
    chart_html = html[html.index("journeys-weekly"):]
    assert 'class="journeys-chart-svg"' in chart_html and "<polyline" in chart_html
    assert "Self-optimizing decisions per week" in chart_html


def test_an_empty_range_says_there_is_no_decision(admin_client, logged):
    response = report(admin_client, logged, {"start": "2025-02-01", "end": "2025-02-28"})
    assert response.context["empty"] is True
    assert "No decisions were taken for this journey" in response.text
    assert "journeys-journey-campaigns" not in response.text
    assert report(admin_client, logged).context["empty"] is False


def test_a_period_of_skipped_manual_decisions_only(admin_client, logged):
    a = Campaign.objects.get(name="Cross-sell A")
    when = dt.datetime(2025, 5, 6, 9, tzinfo=UTC)
    Decision.objects.create(customer_id=20, campaign=a, decided_at=when, outcome=Decision.SKIPPED,
                            reason=Decision.CAPPED, policy="manual")  # fmt: skip
    response = report(admin_client, logged, {"start": "2025-05-01", "end": "2025-05-31"})
    assert response.context["empty"] is False and response.context["decisions"] == 0
    assert rows_by_name(response)["Cross-sell A"]["decisions"] == 1
    assert response.context["policies"] is None
    assert "The self-optimizing policy took no decision for this journey in this period" in response.text
    assert [n for _week, n, _sent in response.context["weeks"]] == [0] * 5


def test_nothing_logged_on_another_journeys_campaign_counts_for_every_journey_listed(admin_client, logged):
    """The round logs "nothing" on the customer's first due step; when that campaign is not
    the journey's, the decision still lists the journey's campaigns among its candidates."""
    a, b, other = (Campaign.objects.get(name=n) for n in ("Cross-sell A", "Series B", "Elsewhere Z"))
    when = dt.datetime(2025, 5, 6, 9, tzinfo=UTC)
    Decision.objects.create(customer_id=30, campaign=other, decided_at=when, outcome=Decision.NOTHING,
                            policy="journey", propensity=0.5, candidates=sorted([other.pk, a.pk]))  # fmt: skip
    Decision.objects.create(customer_id=31, campaign=other, decided_at=when, outcome=Decision.NOTHING,
                            policy="journey", propensity=0.5, candidates=[other.pk])  # not ours  # fmt: skip
    response = report(admin_client, logged, {"start": "2025-05-01", "end": "2025-05-31"})
    assert response.context["decisions"] == 1
    assert [n for _week, n, _sent in response.context["weeks"]] == [0, 1, 0, 0, 0]
    assert rows_by_name(response)["Cross-sell A"]["decisions"] == 1
    assert rows_by_name(response)["Series B"]["decisions"] == 0


def test_the_report_needs_the_view_journey_permission(client, logged):
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    url = reverse("admin:oscar_journeys_journey_report", args=[logged.pk])
    assert client.get(url).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_journey"))
    client.force_login(get_user_model().objects.get(pk=user.pk))
    assert client.get(url, MARCH).status_code == 200


def test_the_journey_list_links_to_the_report(admin_client, logged):
    page = admin_client.get(reverse("admin:oscar_journeys_journey_changelist")).text
    assert reverse("admin:oscar_journeys_journey_report", args=[logged.pk]) in page
