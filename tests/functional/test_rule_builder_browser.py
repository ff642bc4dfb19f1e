"""The rule builder (rule_builder.js) in a real browser: headless Chromium driven by
Selenium against pytest-django's ``live_server``, logged in through the admin login form.

Needs selenium, chromium and chromedriver (Debian: ``apt-get install chromium
chromium-driver``; .ci/run installs them); the module is skipped without them. Selenium is
pointed at the installed chromedriver and chromium, so it never downloads a driver.

Static files: pytest-django's ``live_server`` wraps the site in
``django.contrib.staticfiles.handlers.StaticFilesHandler`` whenever
``django.contrib.staticfiles`` is installed (as in example_shop.settings), the way Django's
``StaticLiveServerTestCase`` does. It serves /static/ from the finders (the app's static
folder, no collectstatic) whatever DEBUG is, so rule_builder.js loads as in production.

``live_server`` makes every test here transactional: the server thread must see the rows
the test creates. With SQLite in memory, pytest-django shares the test's connection with
the server thread."""

import datetime as dt
import json
import shutil
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from oscar_journeys.ml import schema
from oscar_journeys.models import Customer, Snapshot, TargetGroup

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")

from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(
        "needs chromium and chromedriver on PATH (apt-get install chromium chromium-driver)", allow_module_level=True
    )

pytestmark = pytest.mark.django_db(transaction=True)

SHOES_LATELY = {"event": schema.PRODUCT_ORDERED, "category": "Shoes", "within_days": 30, "op": ">=", "value": 1}
AT_RISK = {"field": "churn_probability", "op": ">", "value": 0.6}
WAIT = 10  # seconds; the live count waits 700 ms after the last change before it asks

ROWS = ".journeys-rule-builder .journeys-rule-list > li.journeys-rule"
STATUS = "#journeys-members > p.journeys-members-status"
PREVIEW_LINKS = "#journeys-members table tbody td a"


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1400",
                     "--lang=en-GB"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def admin_page(browser, live_server, admin_user):
    """open(url_name, *args): the admin page in the browser, logged in as a superuser
    through the login form."""
    browser.delete_all_cookies()
    browser.get(live_server.url + reverse("admin:login"))
    browser.find_element(By.NAME, "username").send_keys(admin_user.username)
    browser.find_element(By.NAME, "password").send_keys("password")  # pytest-django's admin_user
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "user-tools")))

    def open_page(url_name, *args):
        browser.get(live_server.url + reverse(url_name, args=args))
        # The script has started: the rows replace the textarea.
        rows_box = (By.CSS_SELECTOR, ".journeys-rule-builder .journeys-rule-rows")
        wait(browser).until(EC.visibility_of_element_located(rows_box))
        assert not browser.find_element(By.ID, "id_rules").is_displayed()
        return browser

    return open_page


@pytest.fixture
def customers(make_customer):
    """ann (churn risk 0.7) and bob (0.9), with yesterday's snapshots."""
    day = timezone.now().date() - dt.timedelta(days=1)
    ann, bob = make_customer(first_name="Ann"), make_customer(first_name="Bob")
    Snapshot.objects.create(customer=ann, as_of=day, frequency=4, churn_probability=0.7)
    Snapshot.objects.create(customer=bob, as_of=day, frequency=1, churn_probability=0.9)
    return ann, bob


def wait(browser):
    return WebDriverWait(browser, WAIT, ignored_exceptions=(StaleElementReferenceException,))


def rows(browser):
    return browser.find_elements(By.CSS_SELECTOR, ROWS)


def row(browser, number):
    """The number-th condition row (from 1), found again: picking a field or an operator
    redraws the row's controls."""
    return rows(browser)[number - 1]


def control(browser, number, label):
    return row(browser, number).find_element(By.CSS_SELECTOR, f"[aria-label='{label}']")


def rules_sent(browser):
    """The rules the form submits: the hidden textarea's value, as JSON."""
    return json.loads(browser.find_element(By.ID, "id_rules").get_property("value"))


def click_button(browser, text):
    browser.find_element(By.XPATH, f"//div[@class='journeys-rule-add']/button[normalize-space()='{text}']").click()


def add_condition(browser, field, op, value):
    click_button(browser, "Add a condition")
    number = len(rows(browser))
    Select(control(browser, number, "field")).select_by_value(field)
    Select(control(browser, number, "operator")).select_by_value(op)
    control(browser, number, "value").send_keys(value)
    return number


def wait_for_status(browser, text):
    """The members status once it starts with ``text`` (the summary goes on with the
    snapshots' day); a timeout says what it showed instead."""
    status = browser.find_element(By.CSS_SELECTOR, STATUS)
    try:
        return wait(browser).until(lambda b: status.text.startswith(text) and status)
    except TimeoutException:
        pytest.fail(f"the members status never started with {text!r}; it shows {status.text!r}")


def save(browser, name=None):
    if name is not None:
        browser.find_element(By.ID, "id_name").send_keys(name)
    browser.find_element(By.NAME, "_save").click()


def saved(browser):
    """Wait for the redirect to the list, which follows a successful save."""
    changelist = reverse("admin:oscar_journeys_targetgroup_changelist")
    wait(browser).until(lambda b: urlsplit(b.current_url).path == changelist)


# --- building and saving --------------------------------------------------------------------


def test_rows_built_on_the_add_page_are_what_is_saved(admin_page):
    browser = admin_page("admin:oscar_journeys_targetgroup_add")
    assert rows(browser) == []
    assert browser.find_element(By.XPATH, "//p[normalize-space()='No condition: everyone.']").is_displayed()
    assert rules_sent(browser) == []

    add_condition(browser, "churn_probability", ">", "0.6")
    assert rules_sent(browser) == [AT_RISK]
    click_button(browser, "Add an event condition")
    assert [r["event"] for r in rules_sent(browser)[1:]] == [schema.PRODUCT_ORDERED]  # the builder's default
    control(browser, 2, "category").send_keys("Shoes")
    assert rules_sent(browser) == [AT_RISK, SHOES_LATELY]
    assert not browser.find_element(By.XPATH, "//p[normalize-space()='No condition: everyone.']").is_displayed()

    save(browser, "Shoe buyers at risk")
    saved(browser)
    assert TargetGroup.objects.get().rules == [AT_RISK, SHOES_LATELY]


def test_saved_rules_load_as_rows_and_a_removed_row_is_gone(admin_page):
    group = TargetGroup.objects.create(name="Shoe buyers at risk", rules=[SHOES_LATELY, AT_RISK])
    browser = admin_page("admin:oscar_journeys_targetgroup_change", group.pk)
    wait(browser).until(lambda b: len(rows(b)) == 2)
    assert Select(control(browser, 1, "event")).first_selected_option.get_attribute("value") == schema.PRODUCT_ORDERED
    assert control(browser, 1, "category").get_property("value") == "Shoes"
    assert control(browser, 1, "days").get_property("value") == "30"
    assert Select(control(browser, 2, "field")).first_selected_option.get_attribute("value") == "churn_probability"
    assert Select(control(browser, 2, "operator")).first_selected_option.get_attribute("value") == ">"
    assert control(browser, 2, "value").get_property("value") == "0.6"
    assert rules_sent(browser) == [SHOES_LATELY, AT_RISK]

    row(browser, 1).find_element(By.CSS_SELECTOR, "button.journeys-rule-remove").click()
    wait(browser).until(lambda b: len(rows(b)) == 1)
    assert rules_sent(browser) == [AT_RISK]
    save(browser)
    saved(browser)
    group.refresh_from_db()
    assert group.rules == [AT_RISK]


# --- the live count and preview -------------------------------------------------------------


def test_the_live_count_follows_the_rows(admin_page, customers):
    browser = admin_page("admin:oscar_journeys_targetgroup_add")
    everyone = Customer.objects.count()  # ann, bob and the admin user's customer record
    wait_for_status(browser, f"{everyone} customers meet these conditions now.")  # no condition yet

    number = add_condition(browser, "churn_probability", ">", "0.8")
    wait_for_status(browser, "1 customer meets these conditions now.")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, PREVIEW_LINKS)] == ["Bob"]
    header = browser.find_elements(By.CSS_SELECTOR, "#journeys-members thead th")
    assert [th.get_property("textContent") for th in header] == ["Customer", "Churn probability"]  # CSS uppercases

    box = control(browser, number, "value")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("0.5")
    assert rules_sent(browser) == [{"field": "churn_probability", "op": ">", "value": 0.5}]
    wait_for_status(browser, "2 customers meet these conditions now.")
    wait(browser).until(lambda b: [a.text for a in b.find_elements(By.CSS_SELECTOR, PREVIEW_LINKS)] == ["Ann", "Bob"])


def test_a_bad_value_shows_what_is_wrong(admin_page, customers):
    browser = admin_page("admin:oscar_journeys_targetgroup_add")
    click_button(browser, "Add an event condition")
    days = control(browser, 1, "days")
    days.clear()
    days.send_keys("0")
    message = "Rule 1 (product_ordered >=): within_days must be a whole number of days from 1 to 3650, not 0."
    status = wait_for_status(browser, message)
    assert "errornote" in status.get_attribute("class").split()
    assert not browser.find_element(By.CSS_SELECTOR, "#journeys-members table").is_displayed()

    # Fixed, the count comes back.
    days.send_keys(Keys.BACKSPACE, "7")
    status = wait_for_status(browser, "0 customers meet these conditions now.")
    assert "errornote" not in status.get_attribute("class").split()


def test_a_customer_name_with_html_is_shown_as_text(admin_page, make_customer):
    name = '<img src=x onerror="window.journeysXss=1"><b>Mallory</b>'
    mallory = make_customer(first_name=name)
    Snapshot.objects.create(customer=mallory, as_of=timezone.now().date() - dt.timedelta(days=1), churn_probability=0.9)
    browser = admin_page("admin:oscar_journeys_targetgroup_add")
    add_condition(browser, "churn_probability", ">", "0.5")
    wait_for_status(browser, "1 customer meets these conditions now.")
    link = wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, PREVIEW_LINKS)))
    assert link.text == name
    assert link.find_elements(By.XPATH, "./*") == []  # no <img>, no <b>
    assert browser.find_elements(By.CSS_SELECTOR, "#journeys-members img, #journeys-members b") == []
    assert browser.execute_script("return window.journeysXss") is None
    assert link.get_attribute("href").endswith(reverse("admin:oscar_journeys_customer_360", args=[mallory.pk]))
