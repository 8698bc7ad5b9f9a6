"""The receipt verifier that runs in the browser, as one self-contained HTML page.

The page (templates/verify.html) carries its whole verifier inline: the vendored ethers bundle
and static/verify.js, which repeats `ledger.receipts.verify_receipt`'s checks by name. Nothing
is loaded from anywhere, so the same document works served at /verify and saved to disk and
opened as file:// with no server at all: a partner who does not trust the portal can keep a
copy and check receipts with it. The only requests it makes are to a JSON-RPC node the user
names (for the chain checks) and, for the portal's "verify this" links (`#src=<URL>`), to the
page's own origin.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from jinja2 import Environment, Template, select_autoescape
from markupsafe import Markup

from api.portal.csp import inline_hashes

# Inside <script>, the HTML parser ends the element at the first "</script" whatever the
# JavaScript around it means, and "<!--" can switch it into a state where a later "<script"
# swallows the real end tag. "<\/script" and "<\!--" mean the same inside JavaScript strings,
# regular expressions and comments, the only places either can occur in these sources.
_SCRIPT_END = re.compile(r"</(script)", re.IGNORECASE)


def inline_script(source: str) -> Markup:
    """JavaScript `source` made safe to place between <script> and </script>."""
    return Markup(_SCRIPT_END.sub(r"<\\/\1", source).replace("<!--", "<\\!--"))


@cache
def _asset(*parts: str) -> str:
    return resources.files("api.portal").joinpath(*parts).read_text("utf-8")


@cache
def _template() -> Template:
    env = Environment(
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.from_string(_asset("templates", "verify.html"))


def _check_url(value: str, what: str, *, relative: bool) -> str:
    """`value` if it is an http(s) URL (or, where `relative`, a path on the same site).

    Raises:
        ValueError: any other scheme (javascript:, data:, ...), or no host.
    """
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return value
    same_site = value.startswith("/") and not value.startswith("//")
    if relative and same_site and not parts.scheme and not parts.netloc:
        return value
    expected = "an http(s) URL" + (" or a path starting with /" if relative else "")
    raise ValueError(f"{what} must be {expected}, got {value!r:.80}")


def standalone_page(*, rpc_url: str | None = None, back_link: str | None = None) -> str:
    """The verifier page, one HTML document with every script inline.

    Args:
        rpc_url: prefills the page's JSON-RPC field (the user may change or clear it); the
            chain checks run only with a node.
        back_link: where the page's "back to the portal" link goes (none when None).

    Raises:
        ValueError: `rpc_url` is not an http(s) URL, or `back_link` neither that nor a path.
    """
    return _render(
        _check_url(rpc_url, "rpc_url", relative=False) if rpc_url else "",
        _check_url(back_link, "back_link", relative=True) if back_link else None,
    )


@lru_cache(maxsize=16)
def _render(rpc_url: str, back_link: str | None) -> str:
    # Half a megabyte of script per page: rendered once per (rpc_url, back_link).
    return _template().render(
        ethers_js=inline_script(_asset("static", "vendor", "ethers.umd.min.js")),
        verify_js=inline_script(_asset("static", "verify.js")),
        rpc_url=rpc_url,
        back_link=back_link,
    )


def write_standalone(
    path: Path | str, *, rpc_url: str | None = None, back_link: str | None = None
) -> Path:
    """Write `standalone_page()` to `path` (UTF-8), for opening as file:// or handing out.

    Raises:
        ValueError: as `standalone_page`.
        OSError: the file cannot be written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(standalone_page(rpc_url=rpc_url, back_link=back_link), encoding="utf-8")
    return out


@lru_cache(maxsize=16)
def content_security_policy(page: str) -> str:
    """A Content-Security-Policy for serving `page` (what `standalone_page` returns).

    Its inline scripts and style are allowed by hash and nothing else runs; fetches may go to
    the page's own origin (`#src=` links) and to any http(s) JSON-RPC node, since the user
    names the node to ask.
    """
    scripts, styles = inline_hashes(page), inline_hashes(page, "style")
    return (
        f"default-src 'none'; script-src {' '.join(scripts)}; style-src {' '.join(styles)}; "
        "img-src 'self' data:; connect-src 'self' http: https:; form-action 'none'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
