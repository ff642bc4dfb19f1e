"""A sportswear shop with hidden customer types: the world the journey policies are tried in.

Every customer has one hidden type, which decides how they respond to each campaign. The
policies never see it: they see the customer's features (the shop's snapshot features,
noisy signals of the type) and the campaigns each customer is eligible for. The world
knows the types, so it can say exactly what a decision is worth on average: for a
customer of type t given action a (a campaign, or nothing)

    value = Bernoulli(P_BUY[t, a]) * BASKET[t] * (1 - DISCOUNT[a])
    E[value | t, a] = P_BUY[t, a] * BASKET[t] * (1 - DISCOUNT[a])

and the true incremental value of a send is E[value | t, a] - E[value | t, nothing]. The
simulation runner (``runner.run``) adds these up, with no noise, next to what the draws
actually gave.

The story the numbers tell (issue 5): some customers respond to one campaign only
(cross-buyers to the cross-sell, category-loyal customers to the series' follow-up), some
are hurt by discounts they did not need (sure things, who buy anyway), some buy only with a
discount (deal seekers), and some respond to nothing. The parameters are fixed constants,
set to tell that story, not tuned to make any learning policy win. The manual priority
(discounts first) is a realistic baseline: it earns well on deal seekers and on the series,
and gives money away to sure things.

Time is a day index from the start of a run (day 0, 1, ...), never the clock. All draws
come from numpy Generators keyed by the world's seed and the day, so a world is
reproducible and does not change when it is used: two runs of the same world see the same
customers reach the same decision points on the same days (the base trigger stream), and
the same luck (a customer's purchase draw on a day is one uniform number, compared with
the purchase probability of whatever the customer received; "common random numbers", so
that policies are compared on the same luck).
"""

import numpy as np
import pandas as pd

# --- the campaigns ------------------------------------------------------------------------

#: The shop's campaigns: ids are fixed. ``priority`` is the manual ranking (higher wins),
#: discounts first, as marketers do. ``prior_value`` is the expected incremental value of a
#: send before any data (none is assumed).
CAMPAIGNS = pd.DataFrame(
    {
        "campaign_id": [1, 2, 3, 4, 5],
        "name": [
            "Cross-sell: a new category",
            "Next collection: series",
            "Next collection is out",
            "Birthday offer 15%",
            "We miss you: 20% off",
        ],
        "priority": [30, 40, 20, 60, 80],
        "prior_value": [0.0, 0.0, 0.0, 0.0, 0.0],
    }
)

#: Receiving campaign 2 makes its follow-up 3 eligible 14 days later, whatever the customer
#: did. Campaign 3 is never eligible otherwise.
FOLLOW_UPS = pd.DataFrame({"campaign_id": [2], "follow_up_id": [3], "delay_days": [14], "condition": ["any"]})

#: The actions, by index: 0 is "nothing", then campaign ids 1 to 5 (the id is the index).
N_ACTIONS = 6
NOTHING = 0

#: Share of the basket given away by each action: the birthday offer is 15% off, "we miss
#: you" 20% off; the other messages carry no discount.
DISCOUNT = np.array([0.0, 0.0, 0.0, 0.0, 0.15, 0.20])

# --- the hidden types ---------------------------------------------------------------------

TYPES = ("cross_buyer", "category_loyal", "deal_seeker", "sure_thing", "lost_cause")

#: Share of each type among the customers.
TYPE_SHARES = np.array([0.20, 0.20, 0.15, 0.25, 0.20])

#: A type's order value (full price): sure things and category-loyal customers buy big
#: baskets, deal seekers and lost causes small ones.
BASKET = np.array([80.0, 90.0, 60.0, 100.0, 50.0])

#: Probability that a customer of the type buys within the attribution window after each
#: action (columns: nothing, 1 cross-sell, 2 series, 3 series follow-up, 4 birthday 15%,
#: 5 "we miss you" 20%).
#:
#: - cross_buyer: the cross-sell more than doubles the chance (+9.60 a send); the rest
#:   barely moves them, and a discount barely pays for itself (+0.40 / +0.64).
#: - category_loyal: the series pays a little (+2.70), its follow-up pays well (+13.50;
#:   the follow-up is only ever sent after the series was received, its effect is that of
#:   the pair's second message); the cross-sell does nothing; discounts lose a little.
#: - deal_seeker: only discounts work (+12.30 / +13.80); messages without one barely.
#: - sure_thing: buys anyway (40%); messages add ~1, discounts give the discount away on
#:   orders that would have come anyway (-4.30 / -6.40).
#: - lost_cause: nothing works; every message costs a little (annoyance, unsubscribes:
#:   the chance drops from 2% to 1.5%; -0.25 to -0.40 a send).
P_BUY = np.array(
    [
        # nothing  1      2      3      4      5
        [0.08, 0.20, 0.09, 0.09, 0.10, 0.11],  # cross_buyer
        [0.10, 0.10, 0.13, 0.25, 0.11, 0.12],  # category_loyal
        [0.05, 0.06, 0.06, 0.06, 0.30, 0.35],  # deal_seeker
        [0.40, 0.41, 0.41, 0.41, 0.42, 0.42],  # sure_thing
        [0.02, 0.015, 0.015, 0.015, 0.015, 0.015],  # lost_cause
    ]
)

#: Expected value of each action per type, and the true incremental value (uplift) of each
#: action over nothing (column 0 is 0 by definition).
EXPECTED_VALUE = P_BUY * BASKET[:, None] * (1.0 - DISCOUNT[None, :])
UPLIFT = EXPECTED_VALUE - EXPECTED_VALUE[:, [NOTHING]]

# --- the clock: decision points -----------------------------------------------------------

#: Chance per day that a customer who is free (see COOLDOWN_DAYS) reaches a decision point:
#: about one every two to three weeks.
DECISION_RATE = 0.07

#: After a decision point, a customer reaches no other (base) decision point for this many
#: days.
COOLDOWN_DAYS = 7

#: Days simulated (without decisions) before day 0, so that the cooldowns on day 0 are
#: already those of a shop in its steady state, not everyone free at once.
BURN_IN_DAYS = 28

#: Share of decision points that follow a purchase (eligible for the cross-sell 1 and the
#: series 2) rather than a lapse of 60+ days without an order (eligible for "we miss you"
#: 5), by type: sure things have just bought, lost causes have mostly lapsed.
PURCHASE_SHARE = np.array([0.70, 0.75, 0.50, 0.90, 0.30])

#: Share of decision points where the customer's birthday is coming up (birthday offer 4
#: eligible). Drawn per decision point: a simplification, a customer may meet it twice in a
#: run.
BIRTHDAY_SHARE = 0.30

# --- features -----------------------------------------------------------------------------

FEATURES = (
    "recency_days",
    "frequency",
    "monetary",
    "categories_bought",
    "discount_order_share",
    "email_click_rate",
    "other_category_views",
    "tenure_days",
)

#: Mean of each type on a latent scale, per feature (the columns of FEATURES). Sure things
#: bought recently and often, in big baskets; lost causes long ago, rarely, and do not
#: click; cross-buyers buy in many categories and browse others; category-loyal customers
#: stick to one and have been customers long; deal seekers order mostly with a discount.
FEATURE_MEANS = np.array(
    [
        [0.0, 0.2, 0.2, 1.4, -0.2, 0.3, 1.5, -0.2],  # cross_buyer
        [-0.2, 0.4, 0.5, -1.2, -0.4, 0.6, -1.3, 0.6],  # category_loyal
        [0.6, 0.0, -0.7, 0.3, 1.8, 0.5, 0.0, -0.3],  # deal_seeker
        [-1.2, 1.3, 0.8, 0.4, -0.3, -0.2, 0.0, 0.5],  # sure_thing
        [1.6, -1.2, -0.6, -0.6, 0.3, -1.5, -0.8, 0.0],  # lost_cause
    ]
)

#: Standard deviation of each customer's latent features around their type's mean. With
#: 0.95 the types overlap: a good classifier on the features gets about 85% of the types
#: right, so a policy that learns from the features cannot quite reach the oracle, which
#: knows the types.
FEATURE_NOISE = 0.95

# Keys of the independent random streams (with the seed and the day).
_TYPES, _FEATURE_STREAM, _TRIGGERS, _RESPONSES = 1, 2, 3, 4


def _whole(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a whole number, {minimum} or more, got {value!r}")
    return int(value)


def _latent_to_features(z):
    """The shop's features from the latent matrix ``z`` (one row per customer): monotone
    maps to the features' usual units and shapes (skewed days and amounts, counts, rates)."""
    return np.column_stack(
        [
            30.0 * np.exp(0.8 * z[:, 0]),  # recency_days: days since the last order
            np.maximum(1.0, np.round(4.0 * np.exp(0.6 * z[:, 1]))),  # frequency: orders a year
            75.0 * np.exp(0.35 * z[:, 2]),  # monetary: average order value
            1.0 + np.floor(1.5 * np.exp(0.5 * z[:, 3])),  # categories_bought
            1.0 / (1.0 + np.exp(1.5 - 0.8 * z[:, 4])),  # discount_order_share
            1.0 / (1.0 + np.exp(3.0 - 0.6 * z[:, 5])),  # email_click_rate
            np.round(3.0 * np.exp(0.7 * z[:, 6])),  # other_category_views (30 days)
            600.0 * np.exp(0.5 * z[:, 7]),  # tenure_days
        ]
    )


def draw_types(n_customers, rng):
    """Type index (into TYPES) of ``n_customers`` customers, drawn with TYPE_SHARES."""
    return rng.choice(len(TYPES), size=n_customers, p=TYPE_SHARES)


def draw_features(types, rng):
    """Feature matrix (columns FEATURES) of customers of the given type indexes."""
    z = FEATURE_MEANS[types] + FEATURE_NOISE * rng.standard_normal((len(types), len(FEATURES)))
    return _latent_to_features(z)


class World:
    """``n_customers`` customers (ids 1 to ``n_customers``) of the sportswear shop, their
    hidden types and features drawn from ``seed``.

    - ``campaigns``, ``follow_ups``: the frames a policy is built with (see the module's
      constants).
    - ``types``: Series customer_id -> type name. Hidden: for tests and the oracle only.
    - ``features(customer_ids, now)``: what a policy sees.
    - ``triggers(day)``: the base eligibility of a day (decision points), which depends only
      on the seed; follow-ups are added by the runner from what the policy did.
    - ``respond(customer_ids, campaign_ids, day)``: the drawn value of what each received;
      ``expected_value`` and ``uplift``: the exact expectations.

    A World holds no state of a run (the runner keeps it; the world only caches its trigger
    stream, which depends on the seed alone), so one world can be run with several policies
    and each sees the same customers, decision points and luck."""

    def __init__(self, n_customers=20_000, seed=1):
        self.n_customers = _whole(n_customers, "n_customers", 1)
        self.seed = _whole(seed, "seed", 0)
        self.campaigns = CAMPAIGNS.copy()
        self.follow_ups = FOLLOW_UPS.copy()
        self.customer_ids = np.arange(1, self.n_customers + 1, dtype="int64")
        self._type_index = draw_types(self.n_customers, np.random.default_rng([self.seed, _TYPES]))
        self._features = draw_features(self._type_index, np.random.default_rng([self.seed, _FEATURE_STREAM]))
        self.types = pd.Series(
            np.asarray(TYPES, dtype=object)[self._type_index],
            index=pd.Index(self.customer_ids, name="customer_id"),
            name="type",
        )
        # The base trigger stream, computed day by day as far as asked and kept.
        self._triggers = []
        self._free_from = None

    # --- customers ---------------------------------------------------------------------

    def _positions(self, customer_ids):
        ids = np.asarray(customer_ids)
        if ids.dtype.kind not in "iu" and not (ids.dtype.kind == "f" and np.all(ids == np.round(ids))):
            raise ValueError("customer_ids must be whole numbers")
        ids = ids.astype("int64")
        if len(ids) and (ids.min() < 1 or ids.max() > self.n_customers):
            raise ValueError(f"customer_ids must be between 1 and {self.n_customers} (this world's customers)")
        return ids - 1

    def type_index(self, customer_ids):
        """Index into TYPES of each customer's hidden type."""
        return self._type_index[self._positions(customer_ids)]

    def features(self, customer_ids, now=None):
        """The customers' features: a float DataFrame indexed by ``customer_id`` (in the order
        given), columns FEATURES. The customers do not drift during a run, so ``now`` (the
        decision's time, for the common interface) does not change them."""
        positions = self._positions(customer_ids)
        return pd.DataFrame(
            self._features[positions],
            index=pd.Index(positions + 1, name="customer_id"),
            columns=list(FEATURES),
        )

    # --- actions -----------------------------------------------------------------------

    def _actions(self, campaign_ids):
        """Action index per row: 0 for nothing (None, NaN, NA), else the campaign id."""
        ids = pd.Series(campaign_ids.to_numpy() if isinstance(campaign_ids, pd.Series) else np.asarray(campaign_ids))
        if ids.dtype == object:
            numbers = pd.to_numeric(ids, errors="coerce")
            if (ids.notna() & numbers.isna()).any():
                raise ValueError("campaign_ids must be campaign ids or None (nothing)")
            ids = numbers
        values = ids.astype("Float64")
        nothing = values.isna().to_numpy()
        actions = values.fillna(NOTHING).to_numpy(dtype="float64")
        sent = actions[~nothing]
        if np.any(sent != np.round(sent)) or np.any((sent < 1) | (sent >= N_ACTIONS)):
            known = CAMPAIGNS["campaign_id"].tolist()
            raise ValueError(f"campaign_ids must be among this world's campaigns {known} or None (nothing)")
        return actions.astype("int64")

    def _pairs(self, customer_ids, campaign_ids):
        types = self.type_index(customer_ids)
        actions = self._actions(campaign_ids)
        if len(actions) != len(types):
            raise ValueError("customer_ids and campaign_ids must have the same length")
        return types, actions

    def expected_value(self, customer_ids, campaign_ids):
        """E[value | type, action] per row (campaign id, or None for nothing)."""
        types, actions = self._pairs(customer_ids, campaign_ids)
        return EXPECTED_VALUE[types, actions]

    def uplift(self, customer_ids, campaign_ids):
        """True incremental value per row: E[value | action] - E[value | nothing] (0 for
        nothing)."""
        types, actions = self._pairs(customer_ids, campaign_ids)
        return UPLIFT[types, actions]

    def respond(self, customer_ids, campaign_ids, day):
        """What each customer did after receiving ``campaign_ids`` (None: nothing) on day
        ``day``: a frame with ``responded`` (bought in the window) and ``value``. The draw is
        one uniform number per customer and day (from the seed), so a customer who buys
        without a message on a day would also buy with a message that raises the chance."""
        day = _whole(day, "day", 0)
        types, actions = self._pairs(customer_ids, campaign_ids)
        u = np.random.default_rng([self.seed, _RESPONSES, day]).random(self.n_customers)
        responded = u[self._positions(customer_ids)] < P_BUY[types, actions]
        value = np.where(responded, BASKET[types] * (1.0 - DISCOUNT[actions]), 0.0)
        return pd.DataFrame({"responded": responded, "value": value})

    @property
    def uplift_table(self):
        """True incremental value of one send: one row per type, one column per campaign."""
        index = pd.Index(TYPES, name="type")
        return pd.DataFrame(UPLIFT[:, 1:], index=index, columns=CAMPAIGNS["campaign_id"].tolist())

    # --- the clock ---------------------------------------------------------------------

    def _trigger_day(self, key_day):
        """Decision points of one day (key_day counts from the start of the burn-in): updates
        the cooldowns and returns the positions of the customers at a decision point and two
        flags each: after a purchase (else after a lapse), birthday coming up."""
        rng = np.random.default_rng([self.seed, _TRIGGERS, key_day])
        point = rng.random(self.n_customers) < DECISION_RATE
        point &= self._free_from <= key_day
        purchase_draw = rng.random(self.n_customers)
        birthday_draw = rng.random(self.n_customers)
        positions = np.flatnonzero(point)
        self._free_from[positions] = key_day + COOLDOWN_DAYS + 1
        purchase = purchase_draw[positions] < PURCHASE_SHARE[self._type_index[positions]]
        birthday = birthday_draw[positions] < BIRTHDAY_SHARE
        return positions, purchase, birthday

    def _advance(self, day):
        if self._free_from is None:
            self._free_from = np.zeros(self.n_customers, dtype="int64")
            for key_day in range(BURN_IN_DAYS):
                self._trigger_day(key_day)
        while len(self._triggers) <= day:
            positions, purchase, birthday = self._trigger_day(BURN_IN_DAYS + len(self._triggers))
            ids = positions + 1
            parts = [
                (ids[purchase], 1),
                (ids[purchase], 2),
                (ids[birthday], 4),
                (ids[~purchase], 5),
            ]
            customers = np.concatenate([p for p, _ in parts])
            campaigns = np.concatenate([np.full(len(p), c, dtype="int64") for p, c in parts])
            order = np.lexsort((campaigns, customers))
            self._triggers.append((customers[order], campaigns[order]))

    def triggers(self, day):
        """The base eligible pairs of day ``day`` (0 = the first day of a run): a frame
        ``customer_id``, ``campaign_id`` ordered by customer then campaign. A customer at a
        decision point after a purchase is eligible for 1 and 2, after a lapse for 5, and
        for 4 too when the birthday is coming up. Depends only on the seed and the day."""
        day = _whole(day, "day", 0)
        self._advance(day)
        customers, campaigns = self._triggers[day]
        return pd.DataFrame({"customer_id": customers.copy(), "campaign_id": campaigns.copy()})


# --- for the speed benchmark --------------------------------------------------------------


def synthetic_features(n_customers, seed=0):
    """Features (columns FEATURES, indexed by ``customer_id`` 1 to ``n_customers``) of a
    population drawn like a World's, without the rest of the world: cheap for the
    benchmark's hundreds of thousands of customers."""
    n_customers = _whole(n_customers, "n_customers", 1)
    seed = _whole(seed, "seed", 0)
    rng = np.random.default_rng([seed, _FEATURE_STREAM])
    matrix = draw_features(draw_types(n_customers, rng), rng)
    index = pd.Index(np.arange(1, n_customers + 1, dtype="int64"), name="customer_id")
    return pd.DataFrame(matrix, index=index, columns=list(FEATURES))


def synthetic_eligible(n_customers, per_customer, n_campaigns, seed=0):
    """Eligible pairs for the benchmark: customers 1 to ``n_customers``, each eligible for
    ``per_customer`` distinct campaigns drawn from 1 to ``n_campaigns``; a frame
    ``customer_id``, ``campaign_id`` ordered by customer then campaign."""
    n_customers = _whole(n_customers, "n_customers", 1)
    per_customer = _whole(per_customer, "per_customer", 1)
    n_campaigns = _whole(n_campaigns, "n_campaigns", 1)
    seed = _whole(seed, "seed", 0)
    if per_customer > n_campaigns:
        raise ValueError(f"per_customer ({per_customer}) cannot exceed n_campaigns ({n_campaigns})")
    rng = np.random.default_rng(seed)
    keys = rng.random((n_customers, n_campaigns), dtype=np.float32)
    picked = np.argpartition(keys, per_customer - 1, axis=1)[:, :per_customer] if per_customer < n_campaigns else (
        np.broadcast_to(np.arange(n_campaigns), (n_customers, n_campaigns))
    )
    campaigns = np.sort(picked, axis=1).astype("int64") + 1
    customers = np.repeat(np.arange(1, n_customers + 1, dtype="int64"), per_customer)
    return pd.DataFrame({"customer_id": customers, "campaign_id": campaigns.ravel()})
