"""English text: sentences, the statements a profile makes about its character (pronouns resolved),
key spans (what an answer must say) and the vocabulary a hallucination check compares against."""

from __future__ import annotations

import re
from collections.abc import Sequence

# -- sentences ------------------------------------------------------------------------------------

_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "prof", "sr", "jr", "vs", "etc", "no", "mt", "ft", "lt", "capt", "gen",
                  "col", "rev", "hon", "e.g", "i.e", "approx", "ca", "c"}
_SPLIT = re.compile(r"(?<=[.!?])[\"”')\]]*\s+(?=[\"“(\[]?[A-Z0-9])")
_FIELD = re.compile(r"^\s*([A-Z][\w' ]{1,40}?)\s*:\s*(.+)$")


def sentences(text: str, shortest: int = 3) -> list[str]:
    """Sentences of a paragraph (of at least `shortest` words); "Mr. Voss" and "St. Ives" do not end one."""
    out: list[str] = []
    for line in text.splitlines():
        start = 0
        for m in _SPLIT.finditer(line):
            before = line[start:m.start()].rsplit(None, 1)[-1].rstrip(".").lower() if line[start:m.start()].strip() else ""
            if before in _ABBREVIATIONS or re.fullmatch(r"[a-z]", before):
                continue
            out.append(line[start:m.start()].strip())
            start = m.end()
        out.append(line[start:].strip())
    return [s for s in out if len(s.split()) >= shortest]


# -- who a sentence is about ----------------------------------------------------------------------

_SUBJECT_PRONOUN = re.compile(r"^(?:He|She)\b")
_POSSESSIVE_START = re.compile(r"^(?:His|Her)\b")
_IRREGULAR_PAST = {"grew", "was", "were", "had", "did", "went", "became", "began", "took", "made", "gave", "won", "wrote",
                   "came", "left", "lost", "met", "found", "fought", "taught", "studied", "moved", "lived", "spent"}


def statements(paragraph: str, name: str, names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(statement, key spans) for every sentence of a paragraph, about the character by name.

    A `Field: value` line (APC's made-up profiles) becomes "Name's field is value." with the value as
    its key when it is short; a value that is already a sentence about the character stays one."""
    out: list[tuple[str, list[str]]] = []
    for line in paragraph.splitlines():
        field = _FIELD.match(line)
        parts = sentences(field.group(2) if field else line, shortest=1 if field else 3)
        if field and parts and field.group(1).strip().lower() not in ("name", "full name"):
            first, value = parts[0], parts[0].rstrip(".")
            words = value.split()
            if re.search(rf"\b{re.escape(name)}\b|^(?:He|She)\b", first):
                out.append((resolve(first, name), key_spans(first, names)))
            elif words[0].lower() in _IRREGULAR_PAST:
                sentence = f"{name} {words[0].lower()} {' '.join(words[1:])}."
                out.append((sentence, key_spans(sentence, names)))
            else:
                label = field.group(1).strip().lower()
                verb = "are" if label.endswith("s") and not label.endswith("ss") else "is"
                short = len(words) <= 6 and "," not in value
                if not short and not words[0].isupper():  # a description, not a name: "Strict and rigorous, ..."
                    value = value[:1].lower() + value[1:]
                items = [i.strip() for i in value.split(",")]
                listed = len(items) >= 3 and all(0 < len(i.split()) <= 3 for i in items)  # a card's trait list
                keys = [value] if short else [items[0]] if listed else key_spans(value, names)
                out.append((f"{name}'s {label} {verb} {value}.", keys))
            parts = parts[1:]
        elif field:
            parts = []
        out += [(resolve(s, name), key_spans(resolve(s, name), names)) for s in parts]
    return out


def resolve(sentence: str, name: str) -> str:
    """A leading bare pronoun becomes the character's name, so the statement stands on its own."""
    if _SUBJECT_PRONOUN.match(sentence):
        return _SUBJECT_PRONOUN.sub(name, sentence, count=1)
    if _POSSESSIVE_START.match(sentence):
        return _POSSESSIVE_START.sub(f"{name}'s", sentence, count=1)
    if not re.search(rf"\b{re.escape(name)}\b", sentence):  # "The Duke awarded her a medal" → "... awarded Mira a medal"
        return _OBJECT_PRONOUN.sub(name, sentence, count=1)
    return sentence


# "her" as an object, not a possessive: followed by an article, a preposition or the clause's end.
_OBJECT_PRONOUN = re.compile(r"(?<=\w )(?:him|her)\b(?=\s+(?:a|an|the|to|in|on|with|for|and|as)\b|\s*[,.;])")


# -- key spans --------------------------------------------------------------------------------------

NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_JOINERS = {"of", "the", "van", "von", "de", "da", "del", "du", "la", "le", "y", "and"}
_TOKEN = re.compile(r"[A-Za-z][\w'’-]*|\d[\d,.]*\d|\d|\"[^\"]{2,40}\"|“[^”]{2,40}”")
_NOT_NAMES = {"I", "The", "A", "An", "In", "On", "At", "His", "Her", "He", "She", "It", "They", "Their", "This", "That",
              "Every", "Each", "When", "After", "Before", "During", "Outside", "Despite", "Besides", "Having", "Known",
              "Often", "Although", "While", "From", "With", "For", "As", "But", "And", "Or", "If", "Since", "My", "Our",
              "Your", "We", "You", "Me", "Yes", "No", "Not", "Its", "Mine"}


def key_spans(sentence: str, own_names: Sequence[str] = ()) -> list[str]:
    """What a correct answer about this sentence must say: proper names (not the character's own),
    numbers and years, number words, quoted phrases — in order, each once."""
    own = {n.lower() for n in own_names}
    spans: list[str] = []
    tokens = [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(sentence)]

    def joined(j: int) -> bool:  # the token follows the previous one across nothing but spaces
        return not sentence[tokens[j - 1][2]:tokens[j][1]].strip()

    i = 0
    while i < len(tokens):
        word, start, _ = tokens[i]
        if word[0] in "\"“":
            spans.append(word.strip("\"“”"))
        elif word[0].isdigit() or word.lower() in NUMBER_WORDS and word.lower() not in ("one",):
            spans.append(word)
        elif word[0].isupper() and (start > 0 or word not in _NOT_NAMES) and word not in _NOT_NAMES:
            run = [word]
            j = i + 1
            while j < len(tokens) and joined(j) and (
                    tokens[j][0][0].isupper() or tokens[j][0] in _JOINERS and j + 1 < len(tokens) and joined(j + 1)
                    and tokens[j + 1][0][0].isupper()):
                run.append(tokens[j][0])
                j += 1
            name = re.sub(r"['’]s$", "", " ".join(run))
            if name.lower() not in own and not any(name.lower() == o.split()[0] for o in own):
                spans.append(name)
            i = j
            continue
        i += 1
    return list(dict.fromkeys(s for s in spans if s.strip()))


def vocabulary(text: str) -> set[str]:
    """The names and numbers a text uses (lower-cased): what a hallucination check compares against."""
    found = set()
    for span in key_spans(text):
        found.add(span.lower())
        found.update(w.lower() for w in span.split() if w not in _JOINERS)
    return found


FUNCTION_WORDS = frozenset(
    "with from into that this these those their your very every some about over after before which while where "
    "when them they have been there would could should other being having known often always still since under "
    "between through during whose what does tell".split())
