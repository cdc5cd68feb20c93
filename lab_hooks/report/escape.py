"""Make contributor- and model-written text inert before it reaches GitHub.

A leaf's text, a generated sample or a judge's output is untrusted. On a PR
comment it must not ping anyone (`@org/team`), inject HTML, links or images;
in a job log it must not issue workflow commands (`::set-output`, `::add-mask`).
Two renderings: `md_text` for prose (every markdown-active character escaped)
and `md_code` for identifiers and excerpts (an inline code span, where GitHub
renders nothing). Both are single-line, so they are safe in table cells.
"""

from __future__ import annotations

import re

ZWSP = "\u200b"

# The characters that start markup mid-line: emphasis, code, links and images,
# table cells, math, headings/footnotes; a backslash makes each literal.
_MD_ACTIVE = re.compile(r"([\\`*_~\[\]()!|$#])")
# ...and at the start of a line: lists, quotes, thematic breaks, numbered items.
_MD_LEADING = re.compile(r"^(\s*)([-+=]|\d+(?=[.)]))")
_COLONS = re.compile(r":(?=:)")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def one_line(text: object, limit: int | None = None) -> str:
    """The text on one line, control characters dropped, cut at `limit` chars."""
    s = _CONTROL.sub("", _LINE_BREAKS.sub(" ", str(text))).strip()
    if limit is not None and len(s) > limit:
        s = s[: max(limit - 1, 0)] + "…"
    return s


def md_text(text: object, limit: int | None = 300) -> str:
    """Untrusted text as inert GitHub markdown prose on one line.

    HTML becomes entities, markdown punctuation is backslash-escaped, `@` is
    followed by a zero-width space (no mention, as dependabot does), and URL
    schemes / `www.` are broken so GitHub does not autolink them.
    """
    s = one_line(text, limit)
    s = _MD_ACTIVE.sub(r"\\\1", s)  # first: the entities below need their `#`
    s = _MD_LEADING.sub(lambda m: m.group(1) + (m.group(2) + "\\" if m.group(2)[0].isdigit() else "\\" + m.group(2)), s)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = s.replace("@", "@&#8203;")
    s = re.sub(r"(?i)\b(www)\.", r"\1&#8203;.", s)  # `www.` autolinks
    s = _COLONS.sub(":&#8203;", s.replace("://", ":&#8203;//"))  # scheme://, workflow commands
    return s


def md_code(text: object, limit: int | None = 200) -> str:
    """Untrusted text as one inline code span: GitHub renders nothing inside it.

    The fence is one backtick longer than the longest run inside; `|` is escaped
    (GFM splits table cells before parsing code spans); `@` and `::` get a
    zero-width space so the text is also inert when the comment is echoed to a log.
    """
    s = _COLONS.sub(":" + ZWSP, one_line(text, limit).replace("@", "@" + ZWSP))
    s = s.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"


_SAFE_URL = re.compile(r"https://(?P<host>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]{1,5})?)(?P<path>(?:/[A-Za-z0-9._~-]*)*)")


def safe_url(value: object, host: str | None = None) -> str | None:
    """`value` when it is an https URL we may link to: a host (`host` if given) and a plain path
    (no credentials, query, fragment, spaces or markdown), else None."""
    m = _SAFE_URL.fullmatch(value) if isinstance(value, str) else None
    if m is None or (host is not None and m.group("host").lower() != host.lower()):
        return None
    return value


def url_host(url: str) -> str:
    """The host[:port] of a URL that `safe_url` accepted."""
    return _SAFE_URL.fullmatch(url).group("host")


def log_safe(text: object) -> str:
    """Untrusted text for a job log: no line can start or contain a workflow command."""
    return _COLONS.sub(":" + ZWSP, str(text).replace("\r", ""))
