"""Content-Security-Policy sources for a page's inline scripts and styles, by SHA-256: a page
that must carry its code inline (the standalone verifier, Swagger UI's configuration) runs
exactly that code and nothing injected beside it."""

from __future__ import annotations

import base64
import hashlib
import re

_INLINE = re.compile(r"<(script|style)(?![^>]*\bsrc=)[^>]*>(.*?)</\1>", re.DOTALL | re.IGNORECASE)


def inline_hashes(html: str, tag: str = "script") -> list[str]:
    """`'sha256-...'` for each inline `tag` element (script or style) of `html`, in order."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(2).encode()).digest()).decode() + "'"
        for m in _INLINE.finditer(html)
        if m.group(1).lower() == tag
    ]
