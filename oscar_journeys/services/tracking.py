"""Absolute links to our public pages (signed tokens) and email link tracking: every
http(s) link becomes a signed click URL, and an open pixel is added to HTML.

Used by ``rendering.py`` (messages) and ``recommendations.py`` (product links)."""

import functools
import html
import re

from django.apps import apps
from django.core.signals import setting_changed
from django.urls import get_script_prefix, get_urlconf, reverse

from .. import app_settings, tokens

_HREF = re.compile(
    r"""(<(?:a|area)\b[^>]*?\shref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""", re.IGNORECASE | re.DOTALL
)
_BARE_URL = re.compile(r"""https?://[^\s<>"'`{}|\\^\[\]]+""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def site_url():
    """Absolute base of our links: OSCAR_JOURNEYS_SITE_URL, else https:// + the Site's domain."""
    base = app_settings.SITE_URL
    if not base:
        domain = apps.get_model("sites", "Site").objects.get_current().domain
        base = "https://" + domain
    return base.rstrip("/")


def absolute_url(base_url, url):
    """``url`` made absolute on ``base_url`` (already absolute URLs are kept)."""
    if not url:
        return ""
    if url.startswith(("http://", "https://")):
        return url
    if url.startswith("//"):
        return "https:" + url
    return base_url + (url if url.startswith("/") else "/" + url)


_PLACEHOLDER = "T0KEN"


@functools.lru_cache(maxsize=64)
def _url_parts(name, urlconf, prefix):
    path = reverse(f"oscar_journeys:{name}", kwargs={"token": _PLACEHOLDER}, urlconf=urlconf)
    before, _sep, after = path.partition(_PLACEHOLDER)
    return before, after


def public_url(name, base_url, *, token):
    """Absolute URL of one of our public views (``oscar_journeys:<name>``) for ``token``.
    Signed tokens only hold URL-safe characters, so the reversed path is cached around a
    placeholder (reverse() costs more than rendering a line of a template)."""
    before, after = _url_parts(name, get_urlconf(), get_script_prefix())
    return f"{base_url}{before}{token}{after}"


def unsubscribe_url(*, customer_id, kind, message_id, base_url=None):
    token = tokens.make_token(tokens.UNSUBSCRIBE, {"c": customer_id, "k": kind, "m": message_id})
    return public_url("unsubscribe", base_url or site_url(), token=token)


def preferences_url(*, customer_id, base_url=None):
    token = tokens.make_token(tokens.PREFERENCES, {"c": customer_id})
    return public_url("preferences", base_url or site_url(), token=token)


def restore_url(*, basket_id, customer_id, base_url=None):
    token = tokens.make_token(tokens.RESTORE, {"b": basket_id, "c": customer_id})
    return public_url("basket-restore", base_url or site_url(), token=token)


def _forget_urls(*, setting, **kwargs):
    if setting == "ROOT_URLCONF":
        _url_parts.cache_clear()


setting_changed.connect(_forget_urls, dispatch_uid="oscar_journeys.rendering.urls")


# --- link tracking ----------------------------------------------------------------------------


class LinkTracker:
    """Replaces http(s) links by signed click URLs, numbering each distinct URL once."""

    def __init__(self, message_id, base_url, keep):
        self.message_id, self.base_url, self.keep = message_id, base_url, keep
        self.links, self._tracked = [], {}  # url -> its click URL

    def click_url(self, url):
        """The click URL replacing ``url``, or None to leave it as it is. A URL found twice
        (in the text and the HTML body) gets one index and one signed token."""
        tracked = self._tracked.get(url)
        if tracked is None:
            if not url.lower().startswith(("http://", "https://")) or url in self.keep:
                return None
            token = tokens.make_token(tokens.CLICK, {"m": self.message_id, "l": len(self.links)})
            self.links.append(url)
            tracked = self._tracked[url] = public_url("message-click", self.base_url, token=token)
        return tracked

    def rewrite_html(self, source):
        def replace(match):
            raw = next(group for group in match.groups()[1:] if group is not None)
            tracked = self.click_url(html.unescape(raw).strip())
            if tracked is None:
                return match.group(0)
            quote = '"' if match.group(2) is not None else "'" if match.group(3) is not None else '"'
            return f"{match.group(1)}{quote}{html.escape(tracked)}{quote}"

        return _HREF.sub(replace, source)

    def rewrite_text(self, source):
        def replace(match):
            url = match.group(0)
            trail = ""
            while url and url[-1] in ".,;:!?)'\"":
                if url[-1] == ")" and url.count("(") >= url.count(")"):
                    break
                url, trail = url[:-1], url[-1] + trail
            tracked = self.click_url(url)
            return (tracked or url) + trail

        return _BARE_URL.sub(replace, source)


def add_open_pixel(source, pixel_url):
    pixel = (
        f'<img src="{html.escape(pixel_url)}" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px" />'
    )
    ends = list(_BODY_END.finditer(source))
    if ends:
        at = ends[-1].start()
        return source[:at] + pixel + source[at:]
    return source + pixel
