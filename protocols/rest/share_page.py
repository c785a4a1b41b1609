"""The HTML of ``/s/{code}``: what a person opening a share link sees.

One small self-contained page (inline CSS, no script, no external resource),
served with a Content-Security-Policy that allows nothing else: the file
name, its size, a password field when the share has one, and a download
button.  Every value from the database or the client is HTML-escaped.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

# No script, no external resource; the form may only post back to us.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f6fa;
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center;color:#1d2433}
.card{background:#fff;border-radius:12px;box-shadow:0 4px 24px rgba(20,30,60,.12);
padding:32px 36px;width:min(420px,90vw)}
h1{font-size:20px;margin:0 0 4px;word-break:break-all}
.meta{color:#5b6478;margin:0 0 24px;font-size:14px}
label{display:block;font-size:14px;margin-bottom:6px}
input[type=password]{width:100%;box-sizing:border-box;padding:10px 12px;font-size:15px;
border:1px solid #c5cbd8;border-radius:8px;margin-bottom:16px}
.button{display:block;width:100%;box-sizing:border-box;text-align:center;padding:12px;
font:inherit;font-size:16px;border:0;border-radius:8px;background:#2f6fed;color:#fff;
text-decoration:none;cursor:pointer}
.error{color:#b3261e;font-size:14px;margin:0 0 16px}
.brand{font-size:12px;color:#8a93a6;margin-top:24px;text-align:center}
"""


def human_size(size: int) -> str:
    """``5242880`` -> ``5.0 MB`` (decimal units, as file managers show them)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"  # unreachable


def _document(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"referrer\" content=\"no-referrer\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main class=\"card\">{body}"
        "<p class=\"brand\">Shared with cloudstorage</p></main></body></html>\n"
    )


def share_page(code: str, file_name: str, size: int, *, needs_password: bool,
               error: str = "") -> str:
    """The page of a live share: name, size, password field if needed, button."""
    action = f"/s/{quote(code, safe='')}"
    parts = [
        f"<h1 id=\"file-name\">{escape(file_name)}</h1>",
        f"<p class=\"meta\" id=\"file-size\">{escape(human_size(size))}</p>",
    ]
    if error:
        parts.append(f"<p class=\"error\" id=\"error\" role=\"alert\">{escape(error)}</p>")
    if needs_password:
        # POSTed, so the password never lands in a URL, a log or the history.
        parts.append(
            f"<form method=\"post\" action=\"{escape(action)}\" id=\"download-form\">"
            "<label for=\"password\">This file is protected by a password</label>"
            "<input type=\"password\" id=\"password\" name=\"password\" required "
            "autocomplete=\"off\" autofocus>"
            "<button type=\"submit\" class=\"button\" id=\"download\">Download</button></form>")
    else:
        parts.append(f"<a class=\"button\" id=\"download\" href=\"{escape(action)}?download=1\" "
                     "download>Download</a>")
    return _document(f"{file_name} - shared file", "".join(parts))


def gone_page(message: str) -> str:
    """The page of an unknown, expired, exhausted or deactivated link (names no file)."""
    return _document("Link unavailable", "<h1 id=\"file-name\">Link unavailable</h1>"
                     f"<p class=\"meta\" id=\"error\">{escape(message)}</p>")
