"""Every string of the English catalogue is translated, and the compiled
catalogue the site serves says the same as its source: an operator who picks
English never meets a Chinese label that a merge or a new admin screen left out."""

from __future__ import annotations

import ast
import gettext
from pathlib import Path

from django.conf import settings

EN = Path(settings.BASE_DIR) / "locale" / "en" / "LC_MESSAGES"


def _entries(po: Path) -> list[tuple[str, str, bool, dict[str, str]]]:
    """(msgid, msgstr, fuzzy, all parts) of each live entry; a plural entry's
    msgstr is its first form."""
    found = []
    for block in po.read_text(encoding="utf-8").split("\n\n"):
        lines = [ln for ln in block.splitlines() if not ln.startswith("#~")]
        fuzzy = any(ln.startswith("#,") and "fuzzy" in ln for ln in lines)
        parts: dict[str, str] = {}
        key = ""
        for line in lines:
            if line.startswith(("msgctxt ", "msgid", "msgstr")):
                key, _, rest = line.partition(" ")
                parts[key] = ast.literal_eval(rest)
            elif line.startswith('"') and key:
                parts[key] += ast.literal_eval(line)
        if parts.get("msgid"):
            msgstr = parts.get("msgstr", parts.get("msgstr[0]", ""))
            found.append((parts["msgid"], msgstr, fuzzy, parts))
    return found


def test_every_english_string_is_translated_and_none_is_fuzzy():
    entries = _entries(EN / "django.po")

    assert len(entries) > 1000
    assert [msgid for msgid, msgstr, fuzzy, _ in entries if not msgstr or fuzzy] == []


def test_the_compiled_english_catalogue_matches_its_source():
    with open(EN / "django.mo", "rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    stale = [
        msgid
        for msgid, msgstr, _, parts in _entries(EN / "django.po")
        if _compiled(compiled, parts) != msgstr
    ]

    assert stale == []


def _compiled(compiled: gettext.GNUTranslations, parts: dict[str, str]) -> str:
    if "msgid_plural" in parts:
        one = compiled.ngettext(parts["msgid"], parts["msgid_plural"], 1)
        if "msgctxt" in parts:
            one = compiled.npgettext(
                parts["msgctxt"], parts["msgid"], parts["msgid_plural"], 1
            )
        return one
    if "msgctxt" in parts:
        return compiled.pgettext(parts["msgctxt"], parts["msgid"])
    return compiled.gettext(parts["msgid"])
