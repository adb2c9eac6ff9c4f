"""Mutants of a Helm (Go text/template) file, made on the text of its actions `{{ ... }}`.

Operators: comparison functions swapped (`eq`/`ne`, `lt`/`le`, `gt`/`ge`), `and`/`or`, a dropped `not`,
`hasPrefix`/`hasSuffix`, integers +1 and -1, a negated `if`, a removed `fail` (the check is gone), a removed
pipeline stage (`| trimSuffix "-"`, `| trunc 63`), and a data string changed (`"ReadWriteOncePod"` in a
list no longer matches). Comments `{{/* */}}` and the text of messages are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

ACTION = re.compile(r"\{\{(?!-?\s*/\*)-?(.*?)-?\}\}", re.S)
# Tokens outside string literals: a string, or a word / number.
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|[A-Za-z_][A-Za-z0-9_.]*|-?\d+')
SWAPS = {
    "eq": "ne",
    "ne": "eq",
    "lt": "le",
    "le": "lt",
    "gt": "ge",
    "ge": "gt",
    "and": "or",
    "or": "and",
    "hasPrefix": "hasSuffix",
    "hasSuffix": "hasPrefix",
}
DATA_STRING = re.compile(r'^"[A-Za-z0-9._/%-]{1,40}"$')
# Strings that name a template or are format strings / field paths are not data.
NOT_DATA_AFTER = {"include", "define", "template", "printf", "fail", "tpl"}
PIPE_STAGE = re.compile(r"\|\s*(trunc|trimSuffix|default|int64|int|toString|quote|lower)\b[^|)}]*")
IF_ACTION = re.compile(r"\{\{-?\s*(else\s+)?if\s+(.+?)\s*-?\}\}")
FAIL_ACTION = re.compile(r"\{\{-?\s*fail\s.*?-?\}\}")


@dataclass(frozen=True)
class TplMutant:
    line: int
    operator: str
    before: str
    after: str
    start: int  # character offsets in the file: text[start:end] becomes `replacement`
    end: int
    replacement: str
    # The line before and the line it is on (stripped, joined by " / "), to tell equal changes apart:
    # a template repeats short lines (`value: {{ . | quote }}` under each env name).
    context: str = ""


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _snippet(text: str, start: int, end: int, replacement: str) -> tuple[str, str]:
    """The text around the change (up to 60 characters each side, within its line), before and after."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    left, right = max(line_start, start - 60), min(line_end, end + 60)
    before = text[left:right].strip()
    after = (text[left:start] + replacement + text[end:right]).strip()
    return before, after


def _token_mutants(text: str) -> Iterator[tuple[int, int, str, str]]:
    for action in ACTION.finditer(text):
        body_start = action.start(1)
        tokens = list(TOKEN.finditer(action.group(1)))
        for i, tok in enumerate(tokens):
            word = tok.group(0)
            start, end = body_start + tok.start(), body_start + tok.end()
            prev = tokens[i - 1].group(0) if i else ""
            if word in SWAPS:
                yield start, end, SWAPS[word], "function swap"
            elif word == "not":
                yield start, end + 1, "", "drop not"
            elif re.fullmatch(r"-?\d+", word):
                yield start, end, str(int(word) + 1), "off by one"
                yield start, end, str(int(word) - 1), "off by one"
            elif DATA_STRING.match(word) and prev not in NOT_DATA_AFTER and word != '"-"':
                yield start, end, word[:-1] + 'X"', "data string"


def _structural_mutants(text: str) -> Iterator[tuple[int, int, str, str]]:
    for match in IF_ACTION.finditer(text):
        cond = match.group(2)
        yield match.start(2), match.end(2), f"not ({cond})", "negate if"
    for match in FAIL_ACTION.finditer(text):
        dash_open = "{{-" if match.group(0).startswith("{{-") else "{{"
        dash_close = "-}}" if match.group(0).endswith("-}}") else "}}"
        yield match.start(), match.end(), f"{dash_open} /* fail removed */ {dash_close}", "remove fail"
    for action in ACTION.finditer(text):
        for stage in PIPE_STAGE.finditer(action.group(1)):
            start, end = action.start(1) + stage.start(), action.start(1) + stage.end()
            yield start, end, "", "drop pipeline stage"


def mutants(text: str) -> list[TplMutant]:
    found = []
    seen: set[tuple[int, int, str]] = set()
    for start, end, replacement, operator in [*_token_mutants(text), *_structural_mutants(text)]:
        if (start, end, replacement) in seen:
            continue
        seen.add((start, end, replacement))
        before, after = _snippet(text, start, end, replacement)
        line = _line(text, start)
        lines = text.splitlines()
        context = " / ".join(x.strip() for x in lines[max(0, line - 2) : line])
        found.append(TplMutant(line, operator, before, after, start, end, replacement, context))
    return sorted(found, key=lambda m: (m.start, m.end))


def apply(text: str, mutant: TplMutant) -> str:
    return text[: mutant.start] + mutant.replacement + text[mutant.end :]
