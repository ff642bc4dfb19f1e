"""The self-optimizing journey policy: learns from its own randomized decisions which campaign
pays for which customers, and keeps exploring so that it can go on learning.

What it learns, per campaign ``a``, is the uplift tau_a(x) = E[value | a sent, x] -
E[value | nothing, x]: how much more a customer with features x brings in when sent ``a``
than when sent nothing. Only randomized decisions teach it (a choice made with probability 1
says nothing about the alternatives), each weighted by 1 / its propensity, so that the
customers the logging policy favoured do not count twice (inverse-propensity weighting).

- Groups: the customers are split into groups whose uplifts are estimated separately, in
  one of two ways (``partition``):
  - "mixture" (the default): segments shared by every campaign, a Gaussian mixture of
    ``max_leaves`` components on the normal scores (ranks) of the features, each customer
    belonging to each segment with a probability. It finds customer types that show as
    clusters in the features, with little data (one fit serves every campaign); it cannot
    tell which features matter for a response, so a response hidden in one feature among
    many noisy ones is missed.
  - "tree": a shallow regression tree per campaign on the IPS transformed outcome (Athey &
    Imbens 2016), Z = value * (T / e - (1 - T) / (1 - e)), whose expectation is the uplift.
    It learns which features matter, but the transformed outcome is noisy: it needs more
    decisions per campaign.
  The groups only split the customers; their uplifts are estimated afterwards.
- Groups' uplifts: the difference of the Hájek (self-normalised weighted) means of the treated and
  control values, with its sampling variance.
- Shrinkage: the campaign's overall uplift is combined with a normal prior (``prior_value``,
  the owner's guess); each leaf is pulled toward that campaign mean, the more so the fewer
  customers it holds (empirical Bayes: the spread between leaves by the method of moments).
  A campaign with few data stays near its prior; a new one is its prior.
- Follow-ups: a campaign that opens a valuable follow-up is worth its own uplift plus the
  discounted value of the best follow-up (scaled by the response rate when the follow-up
  needs a response, or its absence), recursively to ``depth`` hops.
- Choice: Thompson sampling (``draws`` samples of each uplift from its posterior; q = the
  share of samples in which each option, "nothing" included, is the best) mixed with uniform
  exploration, p = (1 - exploration) * q + exploration / (K + 1). The choice is drawn from p,
  and p is logged as its propensity, so every decision can be learned from and evaluated
  off-policy. A random ``holdout`` share of the customers given a campaign receives nothing
  (``control``), a clean comparison group at every step.

Pure numpy / pandas / scikit-learn (no Django). Vectorized: no Python loop per customer;
loops run over campaigns, follow-up links and chunks of draws.
"""

import numpy as np
import pandas as pd
from scipy.special import ndtri
from sklearn.mixture import GaussianMixture
from sklearn.tree import DecisionTreeRegressor

from .manual import DECISION_COLUMNS

CONDITIONS = ("any", "responded", "not_responded")
TREE, MIXTURE = "tree", "mixture"
PARTITIONS = (TREE, MIXTURE)
# The decision frame: the common columns, then the probability that the customer receives
# nothing (the chosen "nothing" or the hold-out), which the shop needs for a customer it
# later puts in the global control group.
POLICY_DECISION_COLUMNS = DECISION_COLUMNS + ("nothing_propensity",)
# Rows logged with a propensity this high were deterministic choices: not learned from.
DETERMINISTIC = 0.999
# Pseudo-observations of the overall value variance added to each group's variance, so
# that a small group whose values happen to be all equal does not claim certainty.
VARIANCE_PSEUDO_COUNT = 2.0
# Quantile bins per feature the trees split on, and the rows the bin edges are taken from.
BINS = 64
QUANTILE_SAMPLE = 200_000
# Sampled options the Thompson sampling handles at once (float32: 4 bytes each).
CHUNK_ELEMENTS = 4_000_000
# Standard normal draws by inverse transform of 16-bit uniforms: a table of the 65,536
# normal quantiles at (i + 1/2) / 2^16. About twice as fast as numpy's normals and as good for
# Thompson sampling (the tails are cut at 4.3 sd, a 1 in 60,000 event).
_NORMAL_TABLE = ndtri((np.arange(1 << 16) + 0.5) / (1 << 16)).astype("float32")
_KEEP = object()


def _check_number(value, name, *, low=None, high=None, low_open=False, high_open=False, whole=False):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number) or (whole and number != int(number)):
        raise ValueError(f"{name} must be a finite {'whole ' if whole else ''}number, got {value!r}")
    if low is not None and (number < low or (low_open and number == low)):
        raise ValueError(f"{name} must be {'above' if low_open else 'at least'} {low}, got {value!r}")
    if high is not None and (number > high or (high_open and number == high)):
        raise ValueError(f"{name} must be {'below' if high_open else 'at most'} {high}, got {value!r}")
    return int(number) if whole else number


def _campaign_ids(column, name):
    """A campaign id column (ints, floats with NaN, nullable Int64, objects with None) as
    (int64 ids with 0 where missing, mask of the present ones)."""
    series = pd.Series(np.asarray(column, dtype=object) if not isinstance(column, pd.Series) else column)
    numbers = pd.to_numeric(series, errors="coerce")
    if (series.notna() & numbers.isna()).any():
        raise ValueError(f"{name}: campaign_id must be a whole number or None")
    values = numbers.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    present = ~np.isnan(values)
    if np.any(values[present] != np.round(values[present])):
        raise ValueError(f"{name}: campaign_id must be a whole number or None")
    return np.where(present, values, 0).astype("int64"), present


def _standard_normal(rng, out):
    """Fill the float32 array ``out`` with standard normal draws from ``rng`` (16-bit
    uniforms, four per 64 random bits, through the quantile table)."""
    raw = rng.bit_generator.random_raw((out.size + 3) // 4)
    codes = raw.view(np.uint16)[: out.size].reshape(out.shape)
    np.take(_NORMAL_TABLE, codes, out=out, mode="wrap")


def _sorted_pairs(customers, campaigns):
    """The (customer, campaign) pairs sorted by customer then campaign, without duplicates."""
    low_customer, low_campaign = customers.min(initial=0), campaigns.min(initial=0)
    span = int(campaigns.max(initial=0)) - int(low_campaign) + 1
    if (int(customers.max(initial=0)) - int(low_customer) + 1) * span < 2 ** 62:
        # One int64 key per pair: a single sort (skipped when the pairs come sorted).
        key = (customers - low_customer) * span + (campaigns - low_campaign)
        if len(key) > 1 and not np.all(key[1:] > key[:-1]):
            order = np.argsort(key)
            key = key[order]
            customers, campaigns = customers[order], campaigns[order]
    else:
        order = np.lexsort((campaigns, customers))
        customers, campaigns = customers[order], campaigns[order]
        key = None
    keep = np.ones(len(customers), dtype=bool)
    if key is not None:
        keep[1:] = key[1:] != key[:-1]
    else:
        keep[1:] = (customers[1:] != customers[:-1]) | (campaigns[1:] != campaigns[:-1])
    if keep.all():
        return customers, campaigns
    return customers[keep], campaigns[keep]


def _follow_up_graph(follow_ups):
    """{campaign_id: ((follow_up_id, condition), ...)} from a follow-ups frame (or None)."""
    if follow_ups is None or len(follow_ups) == 0:
        return {}
    missing = {"campaign_id", "follow_up_id"} - set(follow_ups.columns)
    if missing:
        raise ValueError(f"follow_ups frame lacks column(s) {sorted(missing)}")
    parents, present = _campaign_ids(follow_ups["campaign_id"], "follow_ups")
    children, present_too = _campaign_ids(follow_ups["follow_up_id"], "follow_ups")
    if not (present.all() and present_too.all()):
        raise ValueError("follow_ups frame has a missing campaign_id or follow_up_id")
    if "condition" in follow_ups.columns:
        conditions = follow_ups["condition"].fillna("any").astype(str).to_numpy()
    else:
        conditions = np.full(len(follow_ups), "any", dtype=object)
    unknown = set(conditions) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"follow_ups frame has unknown condition(s) {sorted(unknown)}; use one of {list(CONDITIONS)}")
    graph = {}
    for parent, child, condition in zip(parents.tolist(), children.tolist(), conditions.tolist()):
        links = graph.setdefault(parent, [])
        if (child, condition) not in links:
            links.append((child, condition))
    return {parent: tuple(links) for parent, links in graph.items()}


class _CampaignModel:
    """One campaign's learned uplift: its customer groups, each with the posterior mean and
    sd of the uplift and the treated response rate. The groups are the leaves of the
    campaign's own tree (partition "tree"), the segments shared by every campaign, a customer
    belonging to each with a probability (partition "mixture"), or one group (no data)."""

    def __init__(self, mean, sd, rate, *, tree=None, node_leaf=None, segmented=False, campaign_mean, campaign_sd,
                 n_treated=0, n_control=0, leaves=0):
        self.mean = np.asarray(mean, dtype="float64")
        self.sd = np.asarray(sd, dtype="float64")
        self.rate = np.asarray(rate, dtype="float64")
        self.tree = tree
        self.node_leaf = node_leaf
        self.segmented = segmented
        self.campaign_mean = float(campaign_mean)
        self.campaign_sd = float(campaign_sd)
        self.n_treated = int(n_treated)
        self.n_control = int(n_control)
        self.leaves = int(leaves)

    @classmethod
    def prior(cls, value, variance, *, n_treated=0, n_control=0):
        """A campaign without (enough) data: its prior, everywhere; response rate 1/2."""
        sd = float(np.sqrt(variance))
        return cls([value], [sd], [0.5], campaign_mean=value, campaign_sd=sd, n_treated=n_treated,
                   n_control=n_control)

    def evaluate(self, X, member):
        """(mean, sd, response rate) of the uplift for the rows of ``X`` (binned features),
        whose memberships of the shared segments are ``member`` (rows x segments)."""
        if self.tree is not None:
            leaf = self.node_leaf[self.tree.apply(X)]
            return self.mean[leaf], self.sd[leaf], self.rate[leaf]
        if self.segmented:
            return member @ self.mean, np.sqrt(member @ (self.sd * self.sd)), member @ self.rate
        n = len(X)
        return np.full(n, self.mean[0]), np.full(n, self.sd[0]), np.full(n, self.rate[0])


def _group_stats(member, y, w, value_var):
    """Per segment, for one group (treated or control), each row counting with its weight
    ``w`` times its membership of the segment (``member``: rows x segments, each row summing
    to 1): sum of weights, Hájek mean, variance of that mean (the weighted variance,
    regularised toward ``value_var``, over the effective size (sum w)^2 / sum w^2; inf for an
    empty segment) and the effective size."""
    sw = member.T @ w
    sw2 = (member * member).T @ (w * w)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (member.T @ (w * y)) / sw
        spread = np.maximum((member.T @ (w * y * y)) / sw - mean * mean, 0.0)
        n_eff = np.where(sw > 0, sw * sw / sw2, 0.0)
        variance = (n_eff * spread + VARIANCE_PSEUDO_COUNT * value_var) / (n_eff + VARIANCE_PSEUDO_COUNT)
        mean_var = np.where(sw > 0, variance / n_eff, np.inf)
    return sw, np.where(sw > 0, mean, 0.0), mean_var, n_eff


class JourneyPolicy:
    """Choose, per customer, one eligible campaign or nothing, to maximise the incremental
    value of the journey, learning from its own logged decisions.

    ``campaigns``: one row per campaign, ``campaign_id`` and optionally ``prior_value`` (the
    expected incremental value of one send before any data; default 0.0); other columns
    (``priority``, ``name``) are ignored. ``follow_ups``: ``campaign_id``, ``follow_up_id``,
    optional ``condition`` ("any", "responded", "not_responded"); ``delay_days`` is not
    needed here. Options (see the module docstring): ``discount`` of a follow-up's value,
    ``depth`` of follow-up hops, ``exploration`` share (default 0.02), ``holdout`` share of
    the sends (default 0.02),
    ``draws`` of the Thompson sampling, ``prior_strength`` (the prior counts as that many
    customers), ``partition`` ("mixture" or "tree"), ``max_leaves`` (segments of the
    mixture, leaves of a tree) and ``min_leaf`` (least rows per leaf; a mixture has at most
    one segment per ``min_leaf`` rows), ``memory`` (the most
    recent randomized rows kept to learn from), ``random_state`` of the trees.

    ``version`` counts the ``learn`` calls. Picklable."""

    name = "journey"

    def __init__(self, campaigns, follow_ups=None, *, discount=0.8, depth=2, exploration=0.02, holdout=0.02,
                 draws=32, prior_strength=30.0, partition=MIXTURE, max_leaves=6, min_leaf=100, memory=1_000_000,
                 random_state=0):
        if partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {list(PARTITIONS)}, got {partition!r}")
        self.partition = partition
        self.prior_strength = _check_number(prior_strength, "prior_strength", low=0, low_open=True)
        self.max_leaves = _check_number(max_leaves, "max_leaves", low=1, whole=True)
        self.min_leaf = _check_number(min_leaf, "min_leaf", low=1, whole=True)
        self.memory = _check_number(memory, "memory", low=1, whole=True)
        self.random_state = random_state
        self.version = 0
        self._priors = {}
        self.add_campaigns(campaigns)
        self.follow_ups = None
        self._graph = {}
        self.discount, self.depth, self.exploration, self.holdout, self.draws = 0.8, 2, 0.02, 0.02, 32
        self.set_options(follow_ups=follow_ups, discount=discount, depth=depth, exploration=exploration,
                         holdout=holdout, draws=draws)
        # What it has learned from: the randomized rows (most recent ``memory``).
        self.feature_names = None
        self.medians = np.zeros(0)
        self.bin_edges = []
        self.value_var = 1.0
        self._rows = None
        self._models = {}
        self._segmenter = None

    # --- configuration ----------------------------------------------------------------------

    def add_campaigns(self, campaigns):
        """Add the campaigns of ``campaigns`` not known yet, with their ``prior_value``
        (default 0.0). Known campaigns keep their prior and what was learned. Returns self."""
        if "campaign_id" not in campaigns.columns:
            raise ValueError("campaigns frame lacks column(s) ['campaign_id']")
        ids, present = _campaign_ids(campaigns["campaign_id"], "campaigns")
        if not present.all():
            raise ValueError("campaigns frame has a missing campaign_id")
        if len(set(ids.tolist())) != len(ids):
            raise ValueError("campaigns frame names a campaign more than once")
        if "prior_value" in campaigns.columns:
            priors = pd.to_numeric(campaigns["prior_value"], errors="coerce").astype("float64").fillna(0.0)
            if not np.isfinite(priors.to_numpy()).all():
                raise ValueError("campaigns frame: prior_value must be finite numbers")
            priors = priors.tolist()
        else:
            priors = [0.0] * len(ids)
        # A new dict (not an update in place): a shallow copy of the policy keeps its own.
        added = {a: float(p) for a, p in zip(ids.tolist(), priors) if a not in self._priors}
        self._priors = {**self._priors, **added}
        return self

    def set_options(self, *, follow_ups=_KEEP, discount=None, depth=None, exploration=None, holdout=None,
                    draws=None):
        """Change the decision options (not what was learned): the follow-up graph and the
        ``discount``, ``depth``, ``exploration``, ``holdout`` and ``draws``; None keeps an
        option. Rebinds (never mutates) the policy's attributes, so a ``copy.copy`` of a
        learned policy can be given a journey's options. Returns self."""
        if follow_ups is not _KEEP:
            self._graph = _follow_up_graph(follow_ups)
            self.follow_ups = None if follow_ups is None else follow_ups.copy()
        if discount is not None:
            self.discount = _check_number(discount, "discount", low=0)
        if depth is not None:
            self.depth = _check_number(depth, "depth", low=0, whole=True)
        if exploration is not None:
            self.exploration = _check_number(exploration, "exploration", low=0, high=1)
        if holdout is not None:
            self.holdout = _check_number(holdout, "holdout", low=0, high=1, high_open=True)
        if draws is not None:
            self.draws = _check_number(draws, "draws", low=1, whole=True)
        return self

    # --- learning ------------------------------------------------------------------------------

    def learn(self, outcomes, features):
        """Add the logged decisions ``outcomes`` (``campaign_id``: what the customer received,
        None/NaN for nothing; ``propensity``: the probability of receiving it; ``value``;
        ``decided_at``, when given, orders the rows) with ``features`` (a DataFrame, row for
        row) to what the policy has seen, keep the most recent ``memory`` randomized rows,
        refit every campaign and add 1 to ``version``. Deterministic rows (propensity >=
        0.999) are skipped: they hold no comparison. Returns self."""
        missing = {"campaign_id", "propensity", "value"} - set(outcomes.columns)
        if missing:
            raise ValueError(f"outcomes frame lacks column(s) {sorted(missing)}")
        if not isinstance(features, pd.DataFrame):
            raise ValueError("features must be a DataFrame with one row per outcome")
        if len(features) != len(outcomes):
            raise ValueError(
                f"features has {len(features)} rows but outcomes has {len(outcomes)}: they must match row for row"
            )
        campaign, received = _campaign_ids(outcomes["campaign_id"], "outcomes")
        propensity = pd.to_numeric(outcomes["propensity"], errors="coerce").to_numpy(dtype="float64")
        if not np.all((propensity > 0) & (propensity <= 1)):
            raise ValueError("outcomes: propensity must be in (0, 1] (the probability of what was received)")
        value = pd.to_numeric(outcomes["value"], errors="coerce").to_numpy(dtype="float64")
        if not np.isfinite(value).all():
            raise ValueError("outcomes: value holds missing or infinite values; give 0 when nothing was attributed")
        names = list(features.columns) if self.feature_names is None else self.feature_names
        try:
            X = features.reindex(columns=names).to_numpy(dtype="float64")
        except (TypeError, ValueError):
            raise ValueError(f"features: the columns {names} must be numeric") from None
        self.feature_names = names  # those of the first learn, for good

        for a in np.unique(campaign[received]).tolist():
            if a not in self._priors:
                self._priors = {**self._priors, a: 0.0}
        keep = propensity < DETERMINISTIC
        if "decided_at" in outcomes.columns:
            try:
                stamps = pd.DatetimeIndex(pd.to_datetime(outcomes["decided_at"], utc=True)).asi8
            except (TypeError, ValueError):
                stamps = np.zeros(len(outcomes), dtype="int64")
            order = np.argsort(stamps, kind="stable")
            order = order[keep[order]]
        else:
            order = np.flatnonzero(keep)
        batch = {
            "campaign": campaign[order],
            "received": received[order],
            "propensity": propensity[order],
            "value": value[order],
            "X": X[order].astype("float32"),  # what the trees read; half the memory (and pickle)
        }
        if self._rows is None:
            rows = batch
        else:
            rows = {key: np.concatenate([self._rows[key], batch[key]]) for key in batch}
        self._rows = {key: column[-self.memory:] for key, column in rows.items()}
        self._fit()
        self.version += 1
        return self

    def _fit(self):
        rows = self._rows
        X = rows["X"]
        if X.shape[1] and len(X):
            with np.errstate(all="ignore"):
                medians = np.nanmedian(np.where(np.isnan(X).all(axis=0), 0.0, X), axis=0)
        else:
            medians = np.zeros(X.shape[1])
        self.medians = np.where(np.isnan(medians), 0.0, medians).astype("float64")
        X = np.where(np.isnan(X), self.medians, X).astype("float32")
        # The trees split on quantile bins of the features (as histogram boosting does): five
        # times faster to fit than on the raw values, and a shallow tree loses nothing.
        sample = X
        if len(X) > QUANTILE_SAMPLE:
            sample = X[np.random.default_rng(self.random_state).choice(len(X), QUANTILE_SAMPLE, replace=False)]
        inner = np.linspace(0, 1, BINS + 1)[1:-1]
        self.bin_edges = [
            np.unique(np.quantile(sample[:, j], inner)).astype("float32") if len(sample) else np.zeros(0, "float32")
            for j in range(X.shape[1])
        ]
        X = self._binned(X)
        value = rows["value"]
        variance = float(np.var(value)) if len(value) > 1 else 0.0
        self.value_var = variance if variance > 0 else 1.0
        weight = 1.0 / rows["propensity"]
        control = ~rows["received"]
        self._segmenter = self._fit_segments(X) if self.partition == MIXTURE else None
        segment = self._segment_of(X) if self.partition == MIXTURE else None
        models = {}
        for a, prior in sorted(self._priors.items()):
            treated = rows["received"] & (rows["campaign"] == a)
            models[a] = self._fit_campaign(X, treated, control, value, weight, prior, segment)
        self._models = models

    def _scores(self, X):
        """Normal scores of the binned features (a rank transform): what the segments read.
        Each row's rank is spread at random within its bin (a randomized probability
        integral transform): a count such as orders or categories has few distinct values,
        and without the spread the mixture spends its components on those ties. The draws
        are seeded, so the same rows get the same scores."""
        width = np.array([len(edges) + 1 for edges in self.bin_edges], dtype="float32")
        spread = np.random.default_rng(self.random_state).random(X.shape, dtype=np.float32)
        return ndtri((X + 0.01 + 0.98 * spread) / width).astype("float32")

    def _fit_segments(self, X):
        """Segments of the customers shared by every campaign: a Gaussian mixture of
        ``max_leaves`` components on the normal scores of their features. Each campaign's
        uplift is estimated per segment, a customer counting in each with the probability
        that they belong to it."""
        k = int(min(self.max_leaves, len(X) // max(self.min_leaf, 1)))
        if k < 2 or not X.shape[1]:
            return None
        sample = X
        if len(X) > QUANTILE_SAMPLE:
            sample = X[np.random.default_rng(self.random_state).choice(len(X), QUANTILE_SAMPLE, replace=False)]
        return GaussianMixture(n_components=k, covariance_type="full", random_state=self.random_state).fit(self._scores(sample))

    def _segment_of(self, X):
        """Each row's membership of the segments (rows x segments; one segment without them)."""
        if getattr(self, "_segmenter", None) is None:
            return np.ones((len(X), 1))
        return self._segmenter.predict_proba(self._scores(X))

    def _fit_campaign(self, X, treated, control, value, weight, prior, segment):
        n_treated, n_control = int(treated.sum()), int(control.sum())
        prior_var = self.value_var / self.prior_strength
        if n_treated < 2 or n_control < 2:
            return _CampaignModel.prior(prior, prior_var, n_treated=n_treated, n_control=n_control)
        use = treated | control
        t, y, w = treated[use], value[use], weight[use]

        # The campaign's overall uplift (Hájek) combined with the prior.
        one = np.ones((len(y), 1))
        _, mean_t, var_t, n_eff_t = _group_stats(one[t], y[t], w[t], self.value_var)
        _, mean_c, var_c, _ = _group_stats(one[~t], y[~t], w[~t], self.value_var)
        data_var = float(var_t[0] + var_c[0])
        precision = 1.0 / prior_var + 1.0 / data_var
        campaign_mean = (prior / prior_var + float(mean_t[0] - mean_c[0]) / data_var) / precision
        campaign_var = 1.0 / precision
        responded = (y > 0).astype("float64")
        share = float(np.sum(w[t] * responded[t]) / np.sum(w[t]))
        campaign_rate = (share * n_eff_t[0] + 1.0) / (n_eff_t[0] + 2.0)  # Laplace, effective counts

        tree, node_leaf = None, None
        if segment is not None:
            member = segment[use]
        else:
            # The partition: a shallow tree on the IPS transformed outcome.
            tree, node_leaf, leaf = self._fit_tree(X[use], y, t, w)
            member = np.zeros((len(y), int(leaf.max()) + 1))
            member[np.arange(len(y)), leaf] = 1.0
        n_leaves = member.shape[1]

        # Each segment's uplift and its sampling variance, then shrunk toward the campaign mean.
        sw_t, leaf_mean_t, leaf_var_t, leaf_n_t = _group_stats(member[t], y[t], w[t], self.value_var)
        _, leaf_mean_c, leaf_var_c, _ = _group_stats(member[~t], y[~t], w[~t], self.value_var)
        diff = leaf_mean_t - leaf_mean_c
        sampling_var = leaf_var_t + leaf_var_c
        between = self._between_leaf_variance(diff, sampling_var)
        finite = np.isfinite(sampling_var)
        pull = np.where(finite, between / (between + np.where(finite, sampling_var, 1.0)), 0.0)
        mean = campaign_mean + pull * np.where(finite, diff - campaign_mean, 0.0)
        var = np.where(finite, pull * np.where(finite, sampling_var, 0.0), 0.0) + (1 - pull) ** 2 * campaign_var
        with np.errstate(invalid="ignore", divide="ignore"):
            leaf_share = (member[t].T @ (w[t] * responded[t])) / sw_t
        rate = np.where(sw_t > 0, (np.nan_to_num(leaf_share) * leaf_n_t + 2 * campaign_rate) / (leaf_n_t + 2),
                        campaign_rate)
        return _CampaignModel(
            mean, np.sqrt(var), rate, tree=tree, node_leaf=node_leaf, segmented=segment is not None and n_leaves > 1,
            campaign_mean=campaign_mean,
            campaign_sd=np.sqrt(campaign_var), n_treated=n_treated, n_control=n_control, leaves=n_leaves,
        )

    def _fit_tree(self, X, y, t, w):
        """A shallow regression tree on the IPS transformed outcome (Athey & Imbens 2016),
        z = y * (t / e - (1 - t) / (1 - e)), whose expectation is the uplift: (tree, map of
        node to leaf number, leaf of each row), or (None, None, zeros) when it finds no split."""
        leaf = np.zeros(len(y), dtype="int64")
        if self.max_leaves < 2 or not X.shape[1] or len(y) < 2 * self.min_leaf:
            return None, None, leaf
        e = float(np.sum(w[t]) / np.sum(w))
        z = y * np.where(t, 1.0 / e, -1.0 / (1.0 - e))
        tree = DecisionTreeRegressor(
            max_leaf_nodes=self.max_leaves, min_samples_leaf=self.min_leaf, random_state=self.random_state
        ).fit(X, z, sample_weight=w)
        is_leaf = tree.tree_.children_left == -1
        if is_leaf.sum() < 2:
            return None, None, leaf
        node_leaf = np.full(tree.tree_.node_count, -1, dtype="int64")
        node_leaf[is_leaf] = np.arange(int(is_leaf.sum()))
        return tree, node_leaf, node_leaf[tree.apply(X)]

    def _between_leaf_variance(self, diff, sampling_var):
        """The variance of the true leaf uplifts around their mean, by the method of moments
        (DerSimonian & Laird), floored at a small positive number (one leaf: the floor)."""
        floor = 1e-6 * self.value_var
        finite = np.isfinite(sampling_var) & (sampling_var > 0)
        if finite.sum() < 2:
            return floor
        w = 1.0 / sampling_var[finite]
        d = diff[finite]
        centre = np.sum(w * d) / np.sum(w)
        q = np.sum(w * (d - centre) ** 2)
        scale = np.sum(w) - np.sum(w * w) / np.sum(w)
        return max(floor, float((q - (len(d) - 1)) / scale)) if scale > 0 else floor

    def _model(self, campaign_id):
        model = self._models.get(campaign_id)
        if model is None:  # no learn yet, or added since: its prior
            prior = self._priors.get(campaign_id, 0.0)
            model = _CampaignModel.prior(prior, self.value_var / self.prior_strength)
        return model

    # --- deciding ------------------------------------------------------------------------------

    def _feature_matrix(self, features, customers):
        """The features of ``customers`` with the learned columns, missing values (and unknown
        customers, missing columns) filled with the training medians, binned for the trees."""
        names = self.feature_names or []
        if not names:
            return np.zeros((len(customers), 0), dtype="float32")
        if features is None or not isinstance(features, pd.DataFrame):
            X = np.full((len(customers), len(names)), np.nan)
        else:
            if not features.index.is_unique:
                raise ValueError("features: the index (customer ids) holds duplicates")
            try:
                X = features.reindex(index=customers, columns=names).to_numpy(dtype="float64")
            except (TypeError, ValueError):
                raise ValueError(f"features: the columns {names} must be numeric") from None
        return self._binned(np.where(np.isnan(X), self.medians, X).astype("float32"))

    def _binned(self, X):
        """Each feature replaced by its quantile bin (what the trees read), as float32."""
        codes = np.empty(X.shape, dtype="float32")
        for j, edges in enumerate(self.bin_edges):
            codes[:, j] = np.searchsorted(edges, X[:, j], side="right")
        return codes

    def _pairs(self, features, eligible, *, sort):
        """The eligible pairs as arrays (sorted by customer then campaign and deduplicated when
        ``sort``), each pair's customer position, and the customers' feature matrix."""
        missing = {"customer_id", "campaign_id"} - set(eligible.columns)
        if missing:
            raise ValueError(f"eligible frame lacks column(s) {sorted(missing)}")
        if eligible["customer_id"].isna().any() or eligible["campaign_id"].isna().any():
            raise ValueError("eligible frame has a missing customer_id or campaign_id")
        try:
            customers = eligible["customer_id"].to_numpy(dtype="int64")
            campaigns = eligible["campaign_id"].to_numpy(dtype="int64")
        except (TypeError, ValueError):
            raise ValueError("eligible frame: customer_id and campaign_id must be whole numbers") from None
        if sort:
            customers, campaigns = _sorted_pairs(customers, campaigns)
            first = np.ones(len(customers), dtype=bool)
            first[1:] = customers[1:] != customers[:-1]
            unique = customers[first]
            position = np.cumsum(first) - 1
        else:
            position, unique = pd.factorize(customers)
        return customers, campaigns, unique, position, self._feature_matrix(features, unique)

    def _estimates(self, X, position, campaigns):
        """Per pair: posterior mean and sd of the campaign's uplift, and the value V with the
        discounted best follow-up (posterior means), for the customer at ``position``."""
        mean = np.empty(len(campaigns))
        sd = np.empty(len(campaigns))
        value = np.empty(len(campaigns))
        inverse, ids = pd.factorize(campaigns)
        # A stable sort of the few campaign codes (radix sort on int16): each campaign's rows.
        order = np.argsort(inverse.astype("int16" if len(ids) < 2 ** 15 else "int64"), kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(ids)))])
        base = self._segment_of(X)  # each customer's segment memberships, once
        for j, a in enumerate(ids.tolist()):
            rows = order[bounds[j]:bounds[j + 1]]
            X_rows, base_rows = X[position[rows]], base[position[rows]]
            cache = {}
            m, s, _ = self._evaluate(a, X_rows, base_rows, cache)
            mean[rows], sd[rows] = m, s
            value[rows] = self._value(a, X_rows, base_rows, self.depth, cache)
        return mean, sd, value

    def _evaluate(self, campaign_id, X_rows, base_rows, cache):
        if campaign_id not in cache:
            cache[campaign_id] = self._model(campaign_id).evaluate(X_rows, base_rows)
        return cache[campaign_id]

    def _value(self, campaign_id, X_rows, base_rows, depth, cache):
        """V_a = mean_a + discount * max(0, best over a's follow-ups of factor * V_b), with
        ``depth`` hops left (0: the campaign's own uplift only)."""
        mean, _, rate = self._evaluate(campaign_id, X_rows, base_rows, cache)
        links = self._graph.get(campaign_id, ())
        if depth <= 0 or not links:
            return mean
        best = np.zeros(len(mean))  # "no follow-up" is worth 0: a bad follow-up is not sent
        for follow_up, condition in links:
            follow_value = self._value(follow_up, X_rows, base_rows, depth - 1, cache)
            if condition == "responded":
                follow_value = rate * follow_value
            elif condition == "not_responded":
                follow_value = (1.0 - rate) * follow_value
            best = np.maximum(best, follow_value)
        return mean + self.discount * best

    def _probabilities(self, X, position, campaigns, starts, rng):
        """Per pair the probability p of choosing it, per customer the probability of
        nothing, and the pairs' V: Thompson sampling plus uniform exploration."""
        mean, sd, value = self._estimates(X, position, campaigns)
        n_pairs = len(campaigns)
        eligible_count = np.diff(np.append(starts, n_pairs))
        wins = np.zeros(n_pairs, dtype="int64")
        # Customers with the same number K of options are sampled together, as (K, customers)
        # blocks: the best of K is then an elementwise max over K rows.
        for k in np.unique(eligible_count).tolist():
            customers = np.flatnonzero(eligible_count == k)
            pairs = starts[customers] + np.arange(k)[:, None]  # (K, customers): pair positions
            wins[pairs] = self._thompson_wins(value[pairs].astype("float32"), sd[pairs].astype("float32"), rng)
        uniform = self.exploration / (eligible_count + 1.0)
        p_pair = (1.0 - self.exploration) * wins / self.draws + uniform[position]
        p_campaigns = np.add.reduceat(p_pair, starts) if n_pairs else np.zeros(0)
        p_nothing = np.maximum(1.0 - p_campaigns, 0.0)
        return p_pair, p_nothing, value

    def _thompson_wins(self, centre, spread, rng):
        """For (K, customers) blocks of options: in how many of ``draws`` samples each option
        is the best and better than nothing (worth 0; nothing wins ties, and between equal
        options the first). A sample is ``centre`` (V: the sampled uplift's posterior mean plus
        the deterministic follow-up part) + ``spread`` (the uplift's posterior sd) * z."""
        k, n = centre.shape
        wins = np.zeros((k, n), dtype="int64")
        columns = max(1, min(n, CHUNK_ELEMENTS // k))
        rows = max(1, min(self.draws, CHUNK_ELEMENTS // (k * columns)))  # draws at once
        buffer = np.empty(rows * k * columns, dtype="float32")
        for done in range(0, self.draws, rows):
            size = min(rows, self.draws - done)
            for begin in range(0, n, columns):
                end = min(n, begin + columns)
                sample = buffer[: size * k * (end - begin)].reshape(size, k, end - begin)
                _standard_normal(rng, sample)
                sample *= spread[:, begin:end]
                sample += centre[:, begin:end]
                best = sample.max(axis=1)
                decided = best <= 0  # nothing is the best
                for option in range(k):
                    won = sample[:, option] == best
                    won &= ~decided
                    wins[option, begin:end] += won.sum(axis=0)
                    decided |= won
        return wins

    def decide(self, features, eligible, now, seed=None):
        """One row per customer in ``eligible`` (pairs ``customer_id``, ``campaign_id``),
        ordered by customer id: ``customer_id``, ``campaign_id`` (Int64; <NA> = nothing),
        ``propensity`` (the probability that the customer receives what the row means: the
        campaign for a send, nothing for a control row or nothing), ``expected_value`` (the
        choice's V, 0.0 for nothing), ``control`` (chosen but held out: receives nothing) and
        ``nothing_propensity`` (the probability that the customer receives nothing).
        ``features``: indexed by customer id; missing customers or values get the training
        medians. ``now`` is accepted for the common interface. ``seed``: numpy Generator seed
        (the same seed, the same decisions)."""
        customers, campaigns, unique, position, X = self._pairs(features, eligible, sort=True)
        n = len(unique)
        if n == 0:
            return pd.DataFrame(
                {"customer_id": np.zeros(0, dtype="int64"), "campaign_id": pd.array([], dtype="Int64"),
                 "propensity": np.zeros(0), "expected_value": np.zeros(0), "control": np.zeros(0, dtype=bool),
                 "nothing_propensity": np.zeros(0)},
                columns=list(POLICY_DECISION_COLUMNS),
            )
        starts = np.flatnonzero(np.r_[True, customers[1:] != customers[:-1]])
        rng = np.random.default_rng(seed)
        p_pair, p_nothing, value = self._probabilities(X, position, campaigns, starts, rng)

        # Draw each customer's option from p: the campaigns in id order, then nothing.
        u = rng.random(n)
        cumulative = np.cumsum(p_pair)
        within = cumulative - (cumulative[starts] - p_pair[starts])[position]
        k = np.add.reduceat((within <= u[position]).astype("int64"), starts)
        eligible_count = np.diff(np.append(starts, len(campaigns)))
        sent = k < eligible_count
        pick = starts + np.minimum(k, eligible_count - 1)
        held = (rng.random(n) < self.holdout) & sent

        received_nothing = p_nothing + self.holdout * (1.0 - p_nothing)
        propensity = np.where(sent & ~held, p_pair[pick] * (1.0 - self.holdout), received_nothing)
        chosen = pd.array(np.where(sent, campaigns[pick], 0), dtype="Int64")
        chosen[~sent] = pd.NA
        return pd.DataFrame(
            {
                "customer_id": unique,
                "campaign_id": chosen,
                "propensity": propensity,
                "expected_value": np.where(sent, value[pick], 0.0),
                "control": held,
                "nothing_propensity": received_nothing,
            },
            columns=list(POLICY_DECISION_COLUMNS),
        )

    def probabilities(self, features, eligible, seed=None):
        """The probability of every option of each customer, before the holdout: a long frame
        ``customer_id``, ``campaign_id`` (Int64; <NA> = nothing, last per customer),
        ``probability`` (sums to 1 per customer). With the seed ``decide`` was given, the
        same probabilities it drew from (the Thompson draws come first from the seed)."""
        customers, campaigns, unique, position, X = self._pairs(features, eligible, sort=True)
        if len(unique) == 0:
            return pd.DataFrame({"customer_id": np.zeros(0, dtype="int64"), "campaign_id": pd.array([], dtype="Int64"),
                                 "probability": np.zeros(0)})
        starts = np.flatnonzero(np.r_[True, customers[1:] != customers[:-1]])
        rng = np.random.default_rng(seed)
        p_pair, p_nothing, _ = self._probabilities(X, position, campaigns, starts, rng)
        # Interleave: each customer's campaigns, then a "nothing" row.
        slot = np.arange(len(campaigns)) + position  # a pair moves down by its customer's earlier nothing rows
        nothing_slot = np.append(starts[1:], len(campaigns)) + np.arange(len(unique))
        total = len(campaigns) + len(unique)
        ids = np.zeros(total, dtype="int64")
        who = np.empty(total, dtype="int64")
        probability = np.empty(total)
        ids[slot], who[slot], probability[slot] = campaigns, customers, p_pair
        who[nothing_slot], probability[nothing_slot] = unique, p_nothing
        campaign = pd.array(ids, dtype="Int64")
        campaign[nothing_slot] = pd.NA
        return pd.DataFrame({"customer_id": who, "campaign_id": campaign, "probability": probability})

    def predict(self, features, eligible):
        """``eligible`` (its rows and order) plus, per pair, ``uplift`` (posterior mean of the
        campaign's uplift for that customer), ``uplift_sd`` and ``value`` (V, with the
        discounted best follow-up): the reward model of doubly-robust estimates."""
        _, campaigns, _, position, X = self._pairs(features, eligible, sort=False)
        mean, sd, value = self._estimates(X, position, campaigns)
        return eligible.assign(uplift=mean, uplift_sd=sd, value=value)

    def summary(self):
        """One row per campaign, by id: ``campaign_id``, ``n_treated`` and ``n_control`` (the
        randomized rows it learned from), ``uplift`` (the campaign's posterior mean),
        ``uplift_sd``, ``leaves`` (of its partition; 0 = its prior only)."""
        ids = sorted(set(self._priors) | set(self._models))
        models = [self._model(a) for a in ids]
        return pd.DataFrame(
            {
                "campaign_id": np.asarray(ids, dtype="int64"),
                "n_treated": np.asarray([m.n_treated for m in models], dtype="int64"),
                "n_control": np.asarray([m.n_control for m in models], dtype="int64"),
                "uplift": np.asarray([m.campaign_mean for m in models], dtype="float64"),
                "uplift_sd": np.asarray([m.campaign_sd for m in models], dtype="float64"),
                "leaves": np.asarray([m.leaves for m in models], dtype="int64"),
            }
        )
