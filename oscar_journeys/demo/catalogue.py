"""The demo shop's catalogue: a small sportswear shop, created with Oscar's models once and
reused afterwards (products are found by UPC, categories by name along their path)."""

import random
import warnings
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from oscar.core.loading import get_class, get_model

PARTNER_NAME = "Journeys Sportswear"
PRODUCT_CLASS_NAME = "Sportswear"
PRODUCT_CLASS_SLUG = "journeys-sportswear"
UPC_PREFIX = "JD-"

# (category path, UPC code, (lowest, highest) price, product names). The names are shop
# data, like any product title, and stay in English.
CATALOGUE = (
    (
        "Running > Running shoes",
        "RSH",
        (55, 160),
        ["Road Runner", "Trail Blazer", "Tempo Racer", "Cloud Glide", "Marathon Pro", "Daily Trainer",
         "Hill Climber", "Track Spike", "Night Runner", "Ultra Cushion"],
    ),
    (
        "Running > Running apparel",
        "RAP",
        (12, 75),
        ["Breathable tee", "Half-zip top", "Running shorts", "Compression tights", "Wind vest",
         "Reflective jacket", "Running socks (3 pack)", "Sports bra", "Long-sleeve base layer"],
    ),
    (
        "Yoga",
        "YOG",
        (9, 85),
        ["Yoga mat", "Cork block", "Yoga strap", "High-waist leggings", "Studio top", "Meditation cushion",
         "Travel mat", "Yoga towel", "Wrap cardigan"],
    ),
    (
        "Outdoor > Jackets",
        "OJK",
        (70, 260),
        ["Rain shell", "Down jacket", "Softshell", "Insulated parka", "Fleece", "Packable windbreaker",
         "Three-in-one jacket", "Gilet"],
    ),
    (
        "Outdoor > Hiking boots",
        "OBT",
        (65, 190),
        ["Mountain boot", "Light hiker", "Waterproof mid", "Approach shoe", "Winter boot", "Trekking sandal",
         "Gaiters"],
    ),
    (
        "Swim",
        "SWM",
        (7, 60),
        ["Swimsuit", "Swim shorts", "Goggles", "Swim cap", "Kickboard", "Microfibre towel", "Jammer",
         "Open-water wetsuit vest"],
    ),
    (
        "Cycling",
        "CYC",
        (12, 150),
        ["Cycling jersey", "Bib shorts", "Cycling gloves", "Helmet", "Bike lights set", "Saddle bag",
         "Cycling cap", "Thermal overshoes"],
    ),
    (
        "Accessories > Bags",
        "ABG",
        (15, 95),
        ["Gym duffel", "Running belt", "Daypack 20L", "Hydration vest", "Drawstring bag", "Travel backpack"],
    ),
    (
        "Accessories > Bottles & gear",
        "AGR",
        (6, 70),
        ["Steel bottle", "Squeeze bottle", "Sports watch strap", "Foam roller", "Resistance bands",
         "Headlamp", "Sunglasses", "Energy gel (12 pack)"],
    ),
)

COUNTRY = {
    "iso_3166_1_a2": "GB",
    "iso_3166_1_a3": "GBR",
    "iso_3166_1_numeric": "826",
    "printable_name": "United Kingdom",
    "name": "United Kingdom of Great Britain and Northern Ireland",
}


@dataclass(frozen=True)
class DemoProduct:
    """What the plan and the history need to know of one demo product."""

    upc: str
    title: str
    category: str  # name of the leaf category
    price: Decimal
    product_id: int = 0


def catalogue_spec():
    """The demo catalogue as a list of ``DemoProduct`` (no ids): fixed, whatever the seed."""
    products = []
    for path, code, (low, high), names in CATALOGUE:
        leaf = path.split(">")[-1].strip()
        for n, name in enumerate(names, start=1):
            upc = f"{UPC_PREFIX}{code}-{n:02d}"
            rnd = random.Random(upc)
            price = Decimal(int(low + (high - low) * rnd.random())) + Decimal(rnd.choice(["0.00", "0.50", "0.99"]))
            products.append(DemoProduct(upc=upc, title=name, category=leaf, price=price))
    return products


def catalogue_ensure(*, initial_stock=200):
    """Create what is missing of the demo catalogue (partner, product class, categories,
    products with a stock record each) and the shipping country; reuse what exists.

    Returns ``(products, created)``: the ``DemoProduct`` list with database ids and the
    prices actually stored, and the number of products created now."""
    Partner = get_model("partner", "Partner")
    ProductClass = get_model("catalogue", "ProductClass")
    Product = get_model("catalogue", "Product")
    StockRecord = get_model("partner", "StockRecord")
    Country = get_model("address", "Country")

    Country._default_manager.get_or_create(
        iso_3166_1_a2=COUNTRY["iso_3166_1_a2"], defaults={**COUNTRY, "is_shipping_country": True}
    )
    partner = Partner._default_manager.filter(name=PARTNER_NAME).first()
    if partner is None:
        partner = Partner._default_manager.create(name=PARTNER_NAME)
    product_class = ProductClass._default_manager.filter(slug=PRODUCT_CLASS_SLUG).first()
    if product_class is None:
        product_class = ProductClass._default_manager.create(
            name=PRODUCT_CLASS_NAME, slug=PRODUCT_CLASS_SLUG, requires_shipping=True, track_stock=True
        )

    spec = catalogue_spec()
    existing = {p.upc: p for p in Product._default_manager.filter(upc__in=[s.upc for s in spec])}
    missing = [item for item in spec if item.upc not in existing]
    with warnings.catch_warnings():
        # Haystack's simple backend warns on every product saved; it indexes nothing anyway.
        warnings.filterwarnings("ignore", message="update is not implemented in this backend")
        existing.update(_create_products(missing, product_class, partner, initial_stock))

    prices = dict(
        StockRecord._default_manager.filter(product__upc__in=existing, partner=partner).values_list(
            "product__upc", "price"
        )
    )
    products = [
        DemoProduct(
            upc=item.upc,
            title=existing[item.upc].title,
            category=item.category,
            price=prices.get(item.upc) or item.price,
            product_id=existing[item.upc].pk,
        )
        for item in spec
    ]
    return products, len(missing)


def _create_products(items, product_class, partner, initial_stock):
    """Create the ``DemoProduct`` items given, in their categories; return {upc: Product}."""
    Product = get_model("catalogue", "Product")
    ProductCategory = get_model("catalogue", "ProductCategory")
    StockRecord = get_model("partner", "StockRecord")
    create_from_breadcrumbs = get_class("catalogue.categories", "create_from_breadcrumbs")
    leaf_paths = {path.split(">")[-1].strip(): path for path, *_ in CATALOGUE}
    categories, created = {}, {}
    for item in items:
        if item.category not in categories:
            categories[item.category] = create_from_breadcrumbs(leaf_paths[item.category])
        product = Product._default_manager.create(
            title=item.title,
            upc=item.upc,
            product_class=product_class,
            structure=Product.STANDALONE,
            description=f"{item.title} from the {item.category.lower()} range of the demo shop.",
        )
        ProductCategory._default_manager.create(product=product, category=categories[item.category])
        StockRecord._default_manager.create(
            product=product,
            partner=partner,
            partner_sku=item.upc,
            price=item.price,
            price_currency=settings.OSCAR_DEFAULT_CURRENCY,
            num_in_stock=initial_stock,
        )
        created[item.upc] = product
    return created
