from pathlib import Path

import pytest
from django.test import override_settings

from oscar_journeys import app_settings


def test_defaults_apply_and_settings_override_them():
    assert app_settings.API_MAX_BATCH == app_settings.DEFAULTS["API_MAX_BATCH"]
    with override_settings(OSCAR_JOURNEYS_API_MAX_BATCH=7):
        assert app_settings.API_MAX_BATCH == 7


def test_unknown_setting_names_itself():
    with pytest.raises(AttributeError, match="OSCAR_JOURNEYS_NO_SUCH"):
        app_settings.NO_SUCH


def test_every_setting_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    missing = [name for name in app_settings.DEFAULTS if f"OSCAR_JOURNEYS_{name}`" not in doc]
    assert not missing, f"docs/settings.md lacks {missing}"
