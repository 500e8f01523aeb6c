"""Response headers that Django's SecurityMiddleware does not set: CSP, Permissions-Policy, CORP.

The Content-Security-Policy allows scripts, styles and connections from our own origin only: no inline
script, no eval (htmx runs with `allowEval: false`), no plugins, no framing (the terminal must not be
clickjacked), and forms post only to us. X-Frame-Options, nosniff, Referrer-Policy and COOP come from
Django's own middleware and settings; this middleware only fills them in if something removed them.

One page kind needs more: xterm.js's DOM renderer creates `<style>` elements (xtermjs/xterm.js#4133),
so a view that shows a terminal is wrapped in `@allow_inline_style_elements`, which relaxes
`style-src-elem` for that response only. Style attributes and scripts stay strict there too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase

CSP_DIRECTIVES: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "object-src": "'none'",
}

# Features a container dashboard never needs; denying them limits what injected content could reach.
# Only features browsers recognise: an unknown one (Chromium has no "bluetooth" policy feature) makes
# every page log a warning, and tests/e2e/test_polish.py asserts the console stays clean.
PERMISSIONS_POLICY = (
    ", ".join(
        f"{feature}=()"
        for feature in (
            "accelerometer",
            "autoplay",
            "camera",
            "display-capture",
            "geolocation",
            "gyroscope",
            "magnetometer",
            "microphone",
            "midi",
            "payment",
            "usb",
            "serial",
            "hid",
            "browsing-topics",
        )
    )
    + ", clipboard-write=(self), fullscreen=(self)"
)

# Attribute set on a response by @allow_inline_style_elements.
_INLINE_STYLE_ELEMENTS = "berth_csp_inline_style_elements"


def content_security_policy(*, inline_style_elements: bool = False) -> str:
    """Return the CSP header value; with `inline_style_elements`, `<style>` elements are allowed too."""
    directives = dict(CSP_DIRECTIVES)
    if inline_style_elements:
        directives["style-src-elem"] = "'self' 'unsafe-inline'"
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class SecurityHeadersMiddleware:
    """Add CSP, Permissions-Policy and Cross-Origin-* headers to every HTTP response.

    A header already present (set by a view on purpose) is left alone.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        inline = bool(getattr(response, _INLINE_STYLE_ELEMENTS, False))
        response.headers.setdefault(
            "Content-Security-Policy", content_security_policy(inline_style_elements=inline)
        )
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def allow_inline_style_elements(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view's responses as needing `<style>` elements (xterm.js); see the module docstring."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = view(request, *args, **kwargs)
        setattr(response, _INLINE_STYLE_ELEMENTS, True)
        return response

    return wrapped
