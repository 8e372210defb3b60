"""The API's documentation pages, Swagger UI (`/docs`) and ReDoc (`/redoc`), served with assets
from Baton itself (`/static`, from the fastapi-offline package) instead of a CDN, so they render
with no network. Public, as FastAPI's own are: they show only the OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# The package and folder whose files `/static` serves next to the pages' own (see pages.static_files).
ASSETS = ("fastapi_offline", "static")


# The documentation pages load nothing from elsewhere: ReDoc's footer would fetch its maker's logo
# from a CDN, and a browser offline should not even try.
_SAME_ORIGIN_ONLY = {"Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                                "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                                "worker-src 'self' blob:; font-src 'self' data:"}


def _openapi_url(request: Request) -> str:
    return str(request.scope.get("root_path", "")) + str(request.app.openapi_url)


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    page = get_swagger_ui_html(openapi_url=_openapi_url(request), title=f"{request.app.title} - API",
                               swagger_js_url="/static/swagger-ui-bundle.js", swagger_css_url="/static/swagger-ui.css",
                               swagger_favicon_url="/static/favicon.png", oauth2_redirect_url=OAUTH2_REDIRECT,
                               # no badge from the public validator: it would call out to the internet
                               swagger_ui_parameters={"validatorUrl": None})
    page.headers.update(_SAME_ORIGIN_ONLY)
    return page


@router.get(OAUTH2_REDIRECT, response_class=HTMLResponse)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", response_class=HTMLResponse)
async def redoc(request: Request) -> HTMLResponse:
    page = get_redoc_html(openapi_url=_openapi_url(request), title=f"{request.app.title} - API",
                          redoc_js_url="/static/redoc.standalone.js", redoc_favicon_url="/static/favicon.png",
                          with_google_fonts=False)
    page.headers.update(_SAME_ORIGIN_ONLY)
    return page
