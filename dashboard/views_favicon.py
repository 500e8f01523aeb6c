"""/favicon.ico: browsers ask for it on pages without a `<link rel="icon">` (downloads, raw files).

Every Berth page links static/img/berth.svg itself (templates/base.html, templates/admin/base_site.html);
this answers the remaining requests with a redirect there instead of a 404 in the console.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import path
from django.views.decorators.http import require_GET

ICON = "img/berth.svg"


@require_GET
def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Redirect to the SVG icon (resolved per request, so a manifest storage works too)."""
    return HttpResponsePermanentRedirect(static(ICON))


urlpatterns = [path("favicon.ico", favicon, name="favicon")]
