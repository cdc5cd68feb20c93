"""GitHub Actions expressions, the subset our workflows' `if:` use, evaluated as GitHub does.

Literals ('text', true, false, null, numbers), context paths (`github.event.x`),
`!`, `==`, `!=` (strings compared case-insensitively, as GitHub does), `&&`,
`||` and parentheses. Anything else raises, so a condition this cannot read is
a test failure, not a silent pass.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>&&|\|\||==|!=|!|\(|\))|(?P<num>-?\d+(?:\.\d+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*))")


def _tokens(text: str) -> list[tuple[str, object]]:
    text = text.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    out, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"cannot read expression at {text[pos:pos + 30]!r}")
        kind = m.lastgroup
        value = m.group(kind)
        out.append((kind, value[1:-1].replace("''", "'") if kind == "str" else value))
        pos = m.end()
    return out


def evaluate(text: str, contexts: dict) -> object:
    tokens = _tokens(text)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else (None, None)

    def take(expected=None):
        nonlocal pos
        token = peek()
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, got {token[1]!r}")
        pos += 1
        return token

    def primary():
        kind, value = take()
        if value == "(":
            result = disjunction()
            take(")")
            return result
        if value == "!":
            return not truthy(primary())
        if kind == "str":
            return value
        if kind == "num":
            return float(value)
        if kind == "name":
            if value in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[value]
            node = contexts
            for part in value.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            return node
        raise ValueError(f"unexpected {value!r}")

    def comparison():
        left = primary()
        while peek()[1] in ("==", "!="):
            op = take()[1]
            right = primary()
            same = equal(left, right)
            left = same if op == "==" else not same
        return left

    def conjunction():
        left = comparison()
        while peek()[1] == "&&":
            take()
            right = comparison()
            left = right if truthy(left) else left
        return left

    def disjunction():
        left = conjunction()
        while peek()[1] == "||":
            take()
            right = conjunction()
            left = left if truthy(left) else right
        return left

    result = disjunction()
    if pos != len(tokens):
        raise ValueError(f"trailing tokens: {tokens[pos:]}")
    return result


def truthy(value: object) -> bool:
    return value not in (None, False, 0, 0.0, "")


def equal(a: object, b: object) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return a == b
