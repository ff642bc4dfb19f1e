"""Channel backends. A backend is code (a ``BaseChannel`` subclass named by its dotted path
in ``OSCAR_JOURNEYS_CHANNEL_BACKENDS``); a channel is a ``models.Channel`` record that names
one and holds its options. See ``base.py`` for the contract and docs/channels.md."""

import logging

from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


def backend_choices(kind=None):
    """[(dotted path, channel_name)] of the configured backends (of ``kind`` if given), for
    the admin. A path that does not import is left out (the system checks report it)."""
    from .. import app_settings

    choices = []
    for path in app_settings.CHANNEL_BACKENDS:
        try:
            cls = import_string(path)
        except ImportError:
            logger.warning("Channel backend %s cannot be imported", path)
            continue
        if kind is None or getattr(cls, "kind", None) == kind:
            choices.append((path, getattr(cls, "channel_name", None) or path))
    return choices
