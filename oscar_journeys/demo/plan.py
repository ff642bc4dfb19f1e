"""Plan demo customers and their history, without touching the database.

``plan_history(seed=..., customers=..., days=..., now=..., products=..., tz=...)`` yields one
``PlannedCustomer`` per customer; customer ``i`` depends only on ``(seed, i)``, the window and
the catalogue, so the same inputs always give the same plan.

The shape of the history:

- archetypes: repeat buyers (a purchase cycle of 20-60 days), one-off buyers, churners
  (repeat buyers who stop buying part-way through), browsers who never buy;
- about one customer in seven is a guest (orders with an email, no account);
- seasonality: more visits in November-December and January, at weekends and in the
  evening; swimwear sells in summer, jackets and boots in winter;
- each visit is a session: a log-in (account holders), searches, product views, basket
  additions; buying visits end with ``checkout_started`` and an order; some visits leave
  the basket behind (an account holder's lines stay in the basket until a later visit
  buys or removes them, or are still there at the end: an open basket);
- some orders are cancelled a day or so later, and some have a line returned.
"""

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal

import numpy as np

from ..ml import schema

REPEAT, ONE_OFF, CHURNER, BROWSER = "repeat", "one_off", "churner", "browser"
ARCHETYPES = {REPEAT: 0.30, ONE_OFF: 0.25, CHURNER: 0.20, BROWSER: 0.25}
GUEST_ARCHETYPES = {REPEAT: 0.3, ONE_OFF: 0.7}
GUEST_SHARE = 0.15
DATE_OF_BIRTH_SHARE = 0.6
PHONE_SHARE = 0.35
CANCEL_RATE = 0.05
RETURN_RATE = 0.07

MONTH_WEIGHT = {1: 1.15, 2: 0.8, 3: 0.9, 4: 0.95, 5: 1.0, 6: 1.05, 7: 1.0, 8: 0.9, 9: 0.95, 10: 1.0, 11: 1.35, 12: 1.5}
WEEKEND_WEIGHT = 1.3
# Share of visits starting at each hour of the day (local time): quiet nights, busy evenings.
HOUR_WEIGHT = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 1.5, 2, 2.2, 2.3, 2.5,
                        3, 2.8, 2.4, 2.3, 2.4, 2.8, 3.5, 4.2, 4.5, 4, 3, 2], dtype=float)
HOUR_P = HOUR_WEIGHT / HOUR_WEIGHT.sum()
# Category name -> {month: weight}; categories and months not listed weigh 1.
CATEGORY_SEASON = {
    "Swim": {5: 1.8, 6: 2.4, 7: 2.6, 8: 2.0, 11: 0.5, 12: 0.4, 1: 0.5, 2: 0.5},
    "Jackets": {10: 1.6, 11: 2.0, 12: 2.2, 1: 1.8, 2: 1.4, 6: 0.5, 7: 0.4},
    "Hiking boots": {4: 1.4, 5: 1.5, 9: 1.4, 10: 1.5, 12: 0.7},
    "Running shoes": {1: 1.8, 3: 1.3, 4: 1.3},
    "Yoga": {1: 1.8, 2: 1.3},
    "Cycling": {4: 1.4, 5: 1.6, 6: 1.6, 7: 1.5, 12: 0.6, 1: 0.6},
}
SEARCH_TERMS = {
    "Running shoes": ["running shoes", "trail shoes", "marathon trainers", "cushioned running shoe"],
    "Running apparel": ["running shorts", "compression tights", "reflective jacket", "sports bra"],
    "Yoga": ["yoga mat", "leggings", "yoga block", "meditation"],
    "Jackets": ["waterproof jacket", "down jacket", "fleece", "rain coat"],
    "Hiking boots": ["hiking boots", "waterproof boots", "walking shoes"],
    "Swim": ["swimsuit", "goggles", "swim shorts", "wetsuit"],
    "Cycling": ["cycling jersey", "bike helmet", "bike lights", "bib shorts"],
    "Bags": ["gym bag", "backpack", "running belt"],
    "Bottles & gear": ["water bottle", "foam roller", "headlamp", "sunglasses"],
}
FIRST_NAMES = [
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Sophie", "Emily", "Chloe", "Lucy", "Hannah", "Ella",
    "Lucía", "Sofía", "Martina", "Carmen", "Valentina", "Julia", "Beatriz", "Ana", "Mariana", "Camila",
    "Oliver", "George", "Harry", "Jack", "Noah", "Leo", "Oscar", "James", "Thomas", "Samuel", "Daniel",
    "Hugo", "Mateo", "Pablo", "Javier", "Diego", "Álvaro", "João", "Pedro", "Gabriel", "Rafael", "Tiago",
]
LAST_NAMES = [
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Davies", "Evans", "Thomas", "Roberts",
    "Walker", "Wright", "Green", "Hall", "Wood", "Clarke", "Patel", "Khan", "Murphy", "Kelly",
    "García", "Martínez", "López", "Sánchez", "Pérez", "Gómez", "Fernández", "Ruiz", "Moreno", "Navarro",
    "Silva", "Santos", "Oliveira", "Souza", "Costa", "Ferreira", "Almeida", "Ribeiro", "Carvalho", "Lima",
]
STREETS = ["High Street", "Station Road", "Church Lane", "Park Avenue", "Victoria Road", "Mill Lane",
           "Queens Road", "Green Lane", "Kings Road", "Manor Way", "Riverside", "Orchard Close"]
# Ofcom's numbers for drama (020 7946 0000-0999, 0113 496 0000-0999, ...): they reach nobody.
# Customer i of a seed gets number i, so that no two customers of one run share a number.
DRAMA_PHONE_RANGES = ["+442079460", "+441134960", "+441144960", "+441164960", "+441174960", "+441184960",
                      "+441214960", "+441314960", "+441414960", "+441514960", "+441614960", "+442890180",
                      "+442920180", "+441914980"]
CITIES = [("London", "SW1A"), ("London", "E1"), ("Manchester", "M1"), ("Leeds", "LS1"), ("Bristol", "BS1"),
          ("Birmingham", "B1"), ("Edinburgh", "EH1"), ("Glasgow", "G1"), ("Cardiff", "CF10"),
          ("Brighton", "BN1"), ("Liverpool", "L1"), ("Newcastle", "NE1")]


@dataclass
class PlannedEvent:
    type: str
    at: datetime
    upc: str = ""
    value: Decimal | None = None
    payload: dict = field(default_factory=dict)


@dataclass
class PlannedOrder:
    placed_at: datetime
    lines: list  # [(upc, quantity)] in basket order
    added_at: datetime  # when the first line went into the basket
    cancelled_at: datetime | None = None
    returned_line: int | None = None  # index into lines
    returned_at: datetime | None = None


@dataclass
class PlannedCustomer:
    index: int
    archetype: str
    has_account: bool
    email: str
    first_name: str
    last_name: str
    phone: str
    date_of_birth: object  # datetime.date or None
    address: dict  # line1, line4 (city), postcode
    joined_at: datetime
    last_login: datetime | None = None
    events: list = field(default_factory=list)  # PlannedEvent, in time order
    orders: list = field(default_factory=list)  # PlannedOrder, in time order
    open_basket: list = field(default_factory=list)  # [(upc, quantity, added_at)]


def ascii_slug(text):
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace(" ", "")


class Window:
    """The days of history, with a relative weight for each (month and weekend)."""

    def __init__(self, *, now, days, tz, products):
        self.now, self.tz = now, tz
        self.start = now - timedelta(days=days)
        first = self.start.astimezone(tz).date()
        last = now.astimezone(tz).date()
        self.dates = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        weight = np.array(
            [MONTH_WEIGHT[d.month] * (WEEKEND_WEIGHT if d.weekday() >= 5 else 1.0) for d in self.dates]
        )
        self.weight = weight / weight.mean()
        self.products = list(products)
        self.categories = sorted({p.category for p in self.products})
        # Month -> probability of each product (season of its category), and per category.
        self.product_p = {}
        for month in range(1, 13):
            w = np.array([CATEGORY_SEASON.get(p.category, {}).get(month, 1.0) for p in self.products])
            self.product_p[month] = w / w.sum()
        self.by_category = {c: [i for i, p in enumerate(self.products) if p.category == c] for c in self.categories}

    def __len__(self):
        return len(self.dates)

    def at(self, day, rng):
        """A local time on day index ``day`` (hour by HOUR_WEIGHT), or None outside the window."""
        hour = int(rng.choice(24, p=HOUR_P))
        moment = datetime.combine(
            self.dates[day], time(hour, int(rng.integers(60)), int(rng.integers(60))), tzinfo=self.tz
        )
        return moment if self.start < moment <= self.now else None


def plan_history(*, seed, customers, days, now, products, tz):
    """Yield a ``PlannedCustomer`` for each of ``customers`` customers: ``days`` days of
    history ending at ``now`` (an aware datetime) over ``products`` (``DemoProduct`` list)."""
    window = Window(now=now, days=days, tz=tz, products=products)
    for index in range(customers):
        yield plan_customer(seed, index, window)


def _choose(rng, weights):
    keys = list(weights)
    p = np.array([weights[k] for k in keys])
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def plan_customer(seed, index, window):
    rng = np.random.default_rng([seed, index])
    guest = bool(rng.random() < GUEST_SHARE)
    archetype = _choose(rng, GUEST_ARCHETYPES if guest else ARCHETYPES)
    first, last = FIRST_NAMES[rng.integers(len(FIRST_NAMES))], LAST_NAMES[rng.integers(len(LAST_NAMES))]
    email = f"{ascii_slug(first)}.{ascii_slug(last)}.{seed}-{index}@example.com"
    phone = ""
    if rng.random() < PHONE_SHARE and index < 1000 * len(DRAMA_PHONE_RANGES):
        phone = f"{DRAMA_PHONE_RANGES[index // 1000]}{index % 1000:03d}"
    date_of_birth = None
    if rng.random() < DATE_OF_BIRTH_SHARE:
        date_of_birth = window.now.date() - timedelta(days=int(rng.integers(18 * 365, 70 * 365)))
    city, area = CITIES[rng.integers(len(CITIES))]
    address = {
        "line1": f"{int(rng.integers(1, 200))} {STREETS[rng.integers(len(STREETS))]}",
        "line4": city,
        "postcode": f"{area} {int(rng.integers(1, 10))}{'ABDEFGHJLNPQRSTUWXYZ'[rng.integers(20)]}"
        f"{'ABDEFGHJLNPQRSTUWXYZ'[rng.integers(20)]}",
    }
    n_days = len(window)
    # Two in five were already customers when the window opens; the others arrive over it.
    join = int(rng.integers(0, max(1, n_days // 10))) if rng.random() < 0.4 else int(rng.integers(0, n_days))
    favourites = [str(c) for c in rng.choice(window.categories, size=min(2, len(window.categories)), replace=False)]

    buy_days, browse_rate, stop = _purchase_days(rng, archetype, join, window)
    lam = np.zeros(n_days)
    lam[join:] = browse_rate * window.weight[join:]
    if stop is not None:
        lam[stop:] *= 0.15  # churners drift away
    browse_days = [] if guest else [d for d in np.flatnonzero(rng.poisson(lam)) if d not in buy_days]
    if not guest and join not in buy_days:
        browse_days.append(join)  # everyone with an account came once, at least
    visits = sorted([(d, True) for d in buy_days] + [(int(d), False) for d in set(browse_days)])

    customer = PlannedCustomer(
        index=index, archetype=archetype, has_account=not guest, email=email, first_name=first,
        last_name=last, phone=phone, date_of_birth=date_of_birth, address=address, joined_at=None,
    )
    _Session(customer, window, rng, favourites).run(visits, join)
    return customer


def _purchase_days(rng, archetype, join, window):
    """Days (indices) with a buying visit, the daily rate of browsing visits, and the day a
    churner stops buying (None for the others)."""
    n_days = len(window)
    cycle = float(rng.uniform(20, 60))
    if archetype == BROWSER:
        return [], 1 / float(rng.uniform(7, 25)), None
    if archetype == ONE_OFF:
        day = min(n_days - 1, join + int(rng.integers(0, 30)))
        return [_busy_day_near(rng, day, join, n_days, window)], 1 / 25, None
    t = join + float(rng.uniform(0, 10))
    stop = None
    if archetype == CHURNER:
        stop = int(max(join + (n_days - join) * rng.uniform(0.3, 0.7), t + 1.2 * cycle))
    days = []
    while t < min(n_days, stop or n_days):
        days.append(_busy_day_near(rng, int(t), join, n_days, window))
        # Gaps scatter around the cycle (gamma, shape 4) and shrink in busy seasons.
        t += max(3.0, cycle * float(rng.gamma(4.0, 0.25)) / window.weight[int(t)])
    return sorted(set(days)), 2.5 / cycle, (stop if stop is not None and stop < n_days else None)


def _busy_day_near(rng, day, first, n_days, window):
    """A day within two of ``day`` (and in [first, n_days)), busy days (weekends, busy
    months) more likely: people shop when they have time."""
    candidates = np.arange(max(first, day - 2), min(n_days, day + 3))
    p = window.weight[candidates] ** 2
    return int(candidates[rng.choice(len(candidates), p=p / p.sum())])


class _Session:
    """Walks through one customer's visits in time order, keeping the basket between them."""

    def __init__(self, customer, window, rng, favourites):
        self.c, self.w, self.rng, self.favourites = customer, window, rng, favourites
        self.basket = []  # [(upc, quantity, added_at)] carried between visits (account holders)

    def product(self, when):
        rng, w = self.rng, self.w
        if rng.random() < 0.7:
            pool = w.by_category[self.favourites[int(rng.integers(len(self.favourites)))]]
            return w.products[pool[int(rng.integers(len(pool)))]]
        return w.products[int(rng.choice(len(w.products), p=w.product_p[when.month]))]

    def event(self, type, at, product=None, quantity=1, value=None, **payload):
        if at > self.w.now:
            raise _PastNow
        if type in (schema.BASKET_ADDITION, schema.BASKET_LINE_REMOVAL):
            value = product.price * quantity
        if product is not None and type != schema.PRODUCT_VIEWED:
            payload["quantity"] = quantity
        self.c.events.append(PlannedEvent(type, at, product.upc if product else "", value, payload))

    def run(self, visits, join):
        c, w = self.c, self.w
        by_upc = {p.upc: p for p in w.products}
        for day, buying in visits:
            start = w.at(day, self.rng)
            if start is None:
                continue
            if c.joined_at is None:
                c.joined_at = max(start - timedelta(minutes=1), w.start + timedelta(seconds=1))
                if c.has_account:
                    self.event(schema.USER_REGISTERED, c.joined_at)
            try:
                self.visit(start, buying, by_upc)
            except _PastNow:
                pass  # the window ends in the middle of this visit
        if c.joined_at is None:  # no visit fell inside the window: they signed up and left
            midnight = datetime.combine(w.dates[join], time(0), tzinfo=w.tz)
            c.joined_at = min(max(midnight, w.start + timedelta(seconds=1)), w.now)
            if c.has_account:
                self.event(schema.USER_REGISTERED, c.joined_at)
        if c.has_account and self.basket:
            c.open_basket = list(self.basket)
        logins = [e.at for e in c.events if e.type == schema.USER_LOGGED_IN]
        c.last_login = max(logins) if logins else None

    def visit(self, t, buying, by_upc):
        rng, c = self.rng, self.c

        def tick(low=15, high=150):
            return timedelta(seconds=int(rng.integers(low, high)))

        if c.has_account and (rng.random() < 0.6 or buying):
            self.event(schema.USER_LOGGED_IN, t)
        for _ in range(int(rng.random() < 0.35) + int(rng.random() < 0.1)):
            t += tick()
            category = self.favourites[int(rng.integers(len(self.favourites)))]
            terms = SEARCH_TERMS.get(category, [category.lower()])
            self.event(schema.USER_SEARCH, t, query=terms[int(rng.integers(len(terms)))])
        viewed = []
        for _ in range(1 + int(rng.poisson(2.5))):
            t += tick(20, 240)
            product = self.product(t)
            viewed.append(product)
            self.event(schema.PRODUCT_VIEWED, t, product)
        if self.basket and not buying and rng.random() < 0.5:
            for upc, quantity, _added in self.basket:
                t += tick()
                self.event(schema.BASKET_LINE_REMOVAL, t, by_upc[upc], quantity)
            self.basket = []
        adding = buying or rng.random() < 0.25
        if adding:
            count = 1 + int(rng.random() < 0.35) + int(rng.random() < 0.1) if buying else 1 + int(rng.random() < 0.3)
            for product in list(dict.fromkeys(viewed))[:count]:
                quantity = 2 if rng.random() < 0.1 else 1
                t += tick()
                self.event(schema.BASKET_ADDITION, t, product, quantity)
                self.basket.append((product.upc, quantity, t))
        if buying or (adding and rng.random() < 0.3):
            t += tick(30, 120)
            value = sum(by_upc[upc].price * q for upc, q, _ in self.basket)
            self.event(schema.CHECKOUT_STARTED, t, value=value)
        if buying:
            t += tick(60, 400)
            if t > self.w.now:
                raise _PastNow
            self.c.orders.append(self.order(t))
            self.basket = []
        elif not c.has_account:
            self.basket = []  # a guest's basket leaves with their session

    def order(self, placed_at):
        rng, now = self.rng, self.w.now
        lines = {}
        for upc, quantity, _added in self.basket:
            lines[upc] = lines.get(upc, 0) + quantity
        order = PlannedOrder(placed_at=placed_at, lines=list(lines.items()), added_at=self.basket[0][2])
        if rng.random() < CANCEL_RATE:
            at = placed_at + timedelta(minutes=int(rng.integers(30, 36 * 60)))
            order.cancelled_at = at if at <= now else None
        elif rng.random() < RETURN_RATE:
            at = placed_at + timedelta(days=int(rng.integers(5, 21)), minutes=int(rng.integers(0, 600)))
            if at <= now:
                order.returned_line, order.returned_at = int(rng.integers(len(order.lines))), at
        return order


class _PastNow(Exception):
    """The visit runs past the end of the window: stop it there."""
