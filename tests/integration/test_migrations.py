from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_migrations_are_up_to_date():
    out = StringIO()
    try:
        call_command("makemigrations", "oscar_journeys", "--check", "--dry-run", stdout=out)
    except SystemExit:
        pytest.fail("Models changed without a migration:\n" + out.getvalue())
