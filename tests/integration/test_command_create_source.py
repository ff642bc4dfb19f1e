"""manage.py journeys_create_source: a new source with its token shown once, and --rotate."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from oscar_journeys.models import EventSource


def create(*args):
    out = StringIO()
    call_command("journeys_create_source", *args, stdout=out)
    return out.getvalue()


def test_creates_a_source_and_prints_its_token_once(db):
    out = create("pos")
    source = EventSource.objects.get(name="pos")
    token = next(line for line in out.splitlines() if line and " " not in line)
    assert EventSource.for_token(token) == source
    assert source.token_hash != token and source.token_prefix == token[:8]  # only a hash is stored


def test_verbosity_0_prints_only_the_token(db):
    token = create("pos", "--verbosity", "0").strip()
    assert EventSource.for_token(token).name == "pos"


def test_rotate_replaces_the_token(db):
    old = create("pos", "--verbosity", "0").strip()
    new = create("pos", "--rotate", "--verbosity", "0").strip()
    assert new != old
    assert EventSource.for_token(old) is None
    assert EventSource.for_token(new).name == "pos"
    assert EventSource.objects.count() == 1


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["pos"], "exists already"),
        (["till", "--rotate"], "no event source named 'till'"),
        (["not a slug"], "not a valid source name"),
        (["oscar"], "shop's own events"),
    ],
)
def test_errors(db, args, fragment):
    create("pos", "--verbosity", "0")
    with pytest.raises(CommandError, match=fragment):
        create(*args)
    assert EventSource.objects.count() == 1


def test_help_renders():
    from oscar_journeys.management.commands.journeys_create_source import Command

    assert "--rotate" in Command().create_parser("manage.py", "journeys_create_source").format_help()
