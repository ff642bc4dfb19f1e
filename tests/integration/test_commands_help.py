import pytest
from django.core.management import get_commands, load_command_class

COMMANDS = sorted(name for name, app in get_commands().items() if app == "oscar_journeys")


def test_the_app_has_its_commands():
    assert {"journeys_snapshot", "journeys_import_events", "journeys_create_source", "journeys_demo_data"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("name", COMMANDS)
def test_help_renders(name):
    command = load_command_class("oscar_journeys", name)
    text = command.create_parser("manage.py", name).format_help()
    assert name in text and len(str(command.help)) > 20
