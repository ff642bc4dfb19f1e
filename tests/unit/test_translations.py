"""The Spanish and Brazilian Portuguese catalogues: they load, they translate strings from the
models, events, commands and templates, and every entry is complete and keeps its placeholders.

The .po files are read with a small parser below (no polib), and the committed .mo files with
the standard library's gettext, so these tests need neither polib nor the gettext tools."""

import ast
import gettext
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from django.apps import apps
from django.template.loader import render_to_string
from django.utils import translation

import oscar_journeys
from oscar_journeys import events
from oscar_journeys.management.commands.journeys_import_events import Command as ImportEventsCommand
from oscar_journeys.models import Customer, CustomerMerge, EventSource

LOCALE_DIR = Path(oscar_journeys.__file__).resolve().parent / "locale"
CATALOGUES = {"es": "es", "pt-br": "pt_BR"}  # language code -> locale folder

# ---------------------------------------------------------------------------------------------
# A tiny .po reader


def _unquote(text):
    """The value of one quoted PO string (C escapes are a subset of Python's)."""
    return ast.literal_eval(text)


def read_po(path):
    """Entries of a .po file as dicts: msgid, msgid_plural, msgstr (str) or msgstr_plural
    ({index: str}), flags (set) and line (where the entry starts). Obsolete (#~) entries are
    left out; the header (msgid "") is the first entry."""
    entries, entry, field = [], None, None

    def flush():
        if entry is not None and "msgid" in entry:
            entries.append(entry)

    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#~"):
            continue
        if line.startswith("#"):
            if entry is not None and "msgid" in entry:  # a comment opens the next entry
                flush()
                entry, field = None, None
            if entry is None:
                entry = {"flags": set(), "line": number}
            if line.startswith("#,"):
                entry["flags"].update(flag.strip() for flag in line[2:].split(","))
            continue
        if line.startswith('"'):
            value = _unquote(line)
            if isinstance(field, tuple):
                entry["msgstr_plural"][field[1]] += value
            else:
                entry[field] += value
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "msgid" and entry is not None and "msgid" in entry:
            flush()
            entry = None
        if entry is None:
            entry = {"flags": set(), "line": number}
        match = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
        if match:
            field = ("msgstr_plural", int(match.group(1)))
            entry.setdefault("msgstr_plural", {})[field[1]] = _unquote(rest)
        elif keyword in ("msgctxt", "msgid", "msgid_plural", "msgstr"):
            field = keyword
            entry[keyword] = _unquote(rest)
        else:
            raise AssertionError(f"{path}:{number}: cannot read {raw!r}")
    flush()
    return entries


def po_path(folder):
    return LOCALE_DIR / folder / "LC_MESSAGES" / "django.po"


def catalogue(folder):
    """(header entry, other entries) of one language's .po file."""
    header, *rest = read_po(po_path(folder))
    assert header["msgid"] == "", f"{po_path(folder)} does not start with its header"
    return header, rest


PERCENT = re.compile(r"%(?:\([^)]+\))?[-#0+]*\d*(?:\.\d+)?[diouxXeEfFgGcrs%]")
BRACES = re.compile(r"\{\{|\}\}|\{\w*\}")
TAGS = re.compile(r"</?[a-zA-Z][^>]*>")


def markers(text):
    """What a translation must carry over unchanged: %-placeholders, {}-placeholders, tags."""
    return Counter(PERCENT.findall(text)) + Counter(BRACES.findall(text)) + Counter(TAGS.findall(text))


def pairs(entry):
    """(source, translation) pairs of an entry: msgstr[0] goes with msgid and the other plural
    forms with msgid_plural (both catalogues use nplurals=2; plural=(n != 1))."""
    if "msgid_plural" in entry:
        forms = sorted(entry["msgstr_plural"].items())
        return [(entry["msgid"] if index == 0 else entry["msgid_plural"], text) for index, text in forms]
    return [(entry["msgid"], entry["msgstr"])]


def where(folder, entry):
    return f"{po_path(folder).relative_to(LOCALE_DIR)}:{entry['line']} {entry['msgid']!r}"


# ---------------------------------------------------------------------------------------------
# The catalogues are complete and well-formed


@pytest.mark.parametrize("folder", CATALOGUES.values())
def test_header_names_the_language_utf8_and_two_plural_forms(folder):
    header, entries = catalogue(folder)
    fields = dict(line.split(": ", 1) for line in header["msgstr"].splitlines() if ": " in line)
    assert fields["Language"] == folder
    assert fields["Content-Type"] == "text/plain; charset=UTF-8"
    assert fields["Plural-Forms"] == "nplurals=2; plural=(n != 1);"
    assert "fuzzy" not in header["flags"]
    assert len(entries) > 100  # the app has a few hundred strings; an empty file is a mistake


@pytest.mark.parametrize("folder", CATALOGUES.values())
def test_no_entry_is_empty_or_fuzzy(folder):
    _, entries = catalogue(folder)
    fuzzy = [where(folder, e) for e in entries if "fuzzy" in e["flags"]]
    empty = [where(folder, e) for e in entries if any(not text for _, text in pairs(e))]
    wrong_forms = [where(folder, e) for e in entries if "msgid_plural" in e and sorted(e["msgstr_plural"]) != [0, 1]]
    assert not fuzzy, f"fuzzy entries: {fuzzy}"
    assert not empty, f"untranslated entries: {empty}"
    assert not wrong_forms, f"plural entries without exactly msgstr[0] and msgstr[1]: {wrong_forms}"


@pytest.mark.parametrize("folder", CATALOGUES.values())
def test_translations_keep_placeholders_and_tags(folder):
    _, entries = catalogue(folder)
    bad = [
        f"{where(folder, e)}: {dict(markers(source))} != {dict(markers(text))}"
        for e in entries
        for source, text in pairs(e)
        if markers(source) != markers(text)
    ]
    assert not bad, "placeholders or tags changed:\n" + "\n".join(bad)


@pytest.mark.parametrize("folder", CATALOGUES.values())
def test_committed_mo_is_compiled_from_the_po(folder):
    """The .mo ships with the package (installs need no gettext), so it must not lag the .po."""
    _, entries = catalogue(folder)
    with open(po_path(folder).with_suffix(".mo"), "rb") as mo:
        compiled = gettext.GNUTranslations(mo)._catalog
    expected = {}
    for e in entries:
        key = e["msgid"] if "msgctxt" not in e else f"{e['msgctxt']}\x04{e['msgid']}"
        if "msgid_plural" in e:
            expected.update({(key, index): text for index, text in e["msgstr_plural"].items()})
        else:
            expected[key] = e["msgstr"]
    compiled.pop("", None)  # the header
    assert compiled == expected, "the .mo differs from the .po: run compilemessages"


@pytest.mark.parametrize("folder", CATALOGUES.values())
def test_every_model_name_event_label_and_choice_is_in_the_catalogue(folder):
    """Catches strings added to the models or events.py after the last makemessages."""
    _, entries = catalogue(folder)
    known = {e["msgid"] for e in entries}
    wanted = {str(label) for label in events.LABELS.values()}
    with translation.override(None):
        for model in apps.get_app_config("oscar_journeys").get_models():
            wanted.update((str(model._meta.verbose_name), str(model._meta.verbose_name_plural)))
            for field in model._meta.get_fields():
                if field.concrete and not field.auto_created and not field.primary_key:
                    wanted.add(str(field.verbose_name))
                    wanted.update(str(label) for _, label in field.flatchoices)
    assert sorted(wanted - known) == []


# ---------------------------------------------------------------------------------------------
# Django uses them


@pytest.mark.parametrize(
    "language, customer, source, app_name",
    [
        ("es", "cliente", "orígenes de eventos", "Recorridos de clientes"),
        ("pt-br", "cliente", "origens de eventos", "Jornadas de clientes"),
    ],
)
def test_model_and_app_names_are_translated(language, customer, source, app_name):
    with translation.override(language):
        assert str(Customer._meta.verbose_name) == customer
        assert str(EventSource._meta.verbose_name_plural) == source
        assert str(apps.get_app_config("oscar_journeys").verbose_name) == app_name
        assert str(Customer._meta.get_field("phone").verbose_name) in ("teléfono (E.164)", "telefone (E.164)")


@pytest.mark.parametrize(
    "language, placed, cart",
    [("es", "Realizó un pedido", "Añadió al carrito"), ("pt-br", "Fez um pedido", "Adicionou à cesta")],
)
def test_event_labels_are_translated(language, placed, cart):
    with translation.override(language):
        assert str(events.label("order_placed")) == placed
        assert str(events.event_types()["basket_addition"]) == cart
    with translation.override("en-gb"):
        assert str(events.label("order_placed")) == "Placed an order"


@pytest.mark.parametrize(
    "language, one, many",
    [("es", "1 evento", "5 eventos"), ("pt-br", "1 evento", "5 eventos")],
)
def test_plural_forms_are_picked_by_count(language, one, many):
    with translation.override(language):
        for count, expected in ((1, one), (5, many)):
            text = translation.ngettext("%(counter)s event", "%(counter)s events", count) % {"counter": count}
            assert text == expected
        merges = translation.ngettext("Reverted %(count)d merge.", "Reverted %(count)d merges.", 2) % {"count": 2}
        assert merges in ("Se revirtieron 2 fusiones.", "2 mesclagens revertidas.")


@pytest.mark.parametrize(
    "language, reverted, reason, in_effect",
    [
        ("es", "Revertida el", "Fusionado por el personal", "Vigente"),
        ("pt-br", "Revertida em", "Mesclado pela equipe", "Em vigor"),
    ],
)
def test_admin_template_strings_are_translated(language, reverted, reason, in_effect):
    template = "oscar_journeys/admin/includes/merge_cells.html"
    merge = CustomerMerge(reason=CustomerMerge.ADMIN, events_moved=3)
    with translation.override(language):
        html = render_to_string(template, {"merge": merge, "can_change": False})
        assert reason in html
        assert in_effect in html
        merge.reverted_at = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
        html = render_to_string(template, {"merge": merge, "can_change": False})
        assert reverted in html
        assert "Reverted on" not in html


@pytest.mark.parametrize(
    "language, start",
    [("es", "Importa eventos desde un archivo CSV"), ("pt-br", "Importa eventos de um arquivo CSV")],
)
def test_management_command_help_is_translated(language, start):
    with translation.override(language):
        assert str(ImportEventsCommand.help).startswith(start)
