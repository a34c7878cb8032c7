"""English questions built from a first-person statement: its key asked back ("You have a grey cat named
what?"), probe-shaped questions ("What is the name of your grey cat?") and requests ("Tell me ...")."""

from __future__ import annotations

import re

from rolecraft.language.en.person import PERSON_NOUNS, VERBS, second_person
from rolecraft.language.en.text import FUNCTION_WORDS, NUMBER_WORDS

# -- questions --------------------------------------------------------------------------------------

_YEAR = re.compile(r"^(?:1[0-9]{3}|20[0-9]{2})$")
_PLURAL_AFTER = re.compile(r"^\s*(\w+s)\b")


def _is_number(key: str) -> bool:
    return key.replace(",", "").isdigit() or key.lower() in NUMBER_WORDS


def _clause(text: str, start: int) -> str:
    """The clause of `text` around position `start`: from the last clause break before it to the next after it."""
    left = max(text.rfind(c, 0, start) for c in (";", ":", ". ")) + 1
    breaks = (";", ". ", ", who", ", which", ", but", ", and", " by ", ", often", ", focusing")
    right = min([i for c in breaks if (i := text.find(c, start)) >= 0] or [len(text)])
    return text[left:right].strip(" ,.")


def _asks_for(key: str, before: str) -> str:
    """The question word that stands in for a key, judged from the key and the words before it."""
    if _YEAR.match(key):
        return "what year"
    if _is_number(key):
        return "how many"
    words = re.findall(r"\w+", before.lower())[-4:]
    return "who" if any(w in PERSON_NOUNS for w in words) and key[:1].isupper() else "what"


_PLACES = ("island", "town", "city", "village", "county", "duchy", "kingdom", "country", "river", "lake", "mountain",
           "valley", "province", "region", "state", "bay", "street", "estate", "parish", "realm")
_FRONTED = re.compile(r"^(?:In|On|At|During|After|Before|Since|By) ")
_APPOSITIVE = "(?:[Mm]y) ([\\w -]{2,40}?), "


def echo_question(answer: str, key: str) -> str | None:
    """The first-person answer asked back with the key replaced by a question word ("You have a grey
    cat named what?") — a question form English allows that needs no reordering of the clause."""
    quoted = re.search(rf"[\"“]{re.escape(key)}[\"”]", answer)
    at = quoted.start() if quoted else answer.find(key)
    if at < 0:
        return None
    if re.search(rf"\bborn (?:in )?{re.escape(key)}\b", answer):
        return "You were born in what year?"
    if m := re.search(_APPOSITIVE + re.escape(key) + r",", answer):
        return f"Your {m.group(1).strip()} is {_asks_for(key, 'friend' if key[:1].isupper() else '')}?"
    answer = without_birth(answer)
    at = answer.find(quoted.group(0) if quoted else key)
    clause = _clause(answer, at)
    at = clause.find(quoted.group(0) if quoted else key)
    if at < 0:
        return None
    before = clause[:at]
    if _FRONTED.match(before) and (rest := clause[at + len(key):].strip(" ,")).startswith("I "):
        asked = f"{second_person(rest)} {before[:1].lower()}{before[1:]}{_asks_for(key, before)}"
    else:
        asked = second_person(before) + _asks_for(key, before)
    asked = " ".join(asked.split())
    asked = asked[:1].upper() + asked[1:]
    return asked + "?" if 3 <= len(asked.split()) <= MAX_ECHO_WORDS else None


MAX_ECHO_WORDS = 16  # a longer echo reads as a recitation with a gap, not a question anyone asks


def without_birth(answer: str) -> str:
    """The answer without its birth year, for questions about the rest: "I was born in 1841 and am the
    keeper of ..." (or "I, born 1841, am ...") → "I am the keeper of ..."."""
    answer = re.sub(r"^I was born in [^,;]+? and (am|was)\b", r"I \1", answer)
    return re.sub(r", born [^,]+,", "", answer)


def probe_questions(answer: str, key: str) -> list[str]:
    """Questions for a key in another shape than `echo_question` (wh-word first), for held-out probes:
    "What is the name of your grey cat?", "Who is your closest friend?", "Do you remember when you
    took over the light?". Empty when no pattern fits the sentence."""
    out: list[str] = []
    k = re.escape(key)
    if not re.search(rf"\bborn (?:in )?{k}\b", answer):
        answer = without_birth(answer)
    if m := re.search(rf"\b(?:[Mm]y|I have an?|I keep an?|I own an?) ([\w -]{{2,40}}?),? (?:named|called) {k}\b", answer):
        out.append(f"What is the name of your {m.group(1).strip()}?")
    if m := re.search(rf"\b[Mm]y ([\w -]{{2,40}}?),? (?:is|was|are) (?:an? |the )?{k}\b", answer):
        out.append(f"{_asks_for(key, m.group(1)).capitalize()} is your {m.group(1).strip()}?")
    if m := re.search(rf"\b[Mm]y ([\w -]{{2,40}}?), {k},", answer):
        out.append(f"Who is your {m.group(1).strip()}?" if key[:1].isupper() else f"What is your {m.group(1).strip()}?")
    if _YEAR.match(key):
        if re.search(rf"born (?:in )?{k}", answer):
            out.append("In what year were you born?")
        elif m := re.search(rf"\b(I [^,;]+?) (?:in|of) (?:the \w+ of )?{k}\b|\b(?:[Ii]n|[Oo]f) (?:the \w+ of )?{k},? (I [^,;.]+)", answer):
            clause = m.group(1) or m.group(2)
            out.append(f"Do you remember when {second_person(clause)}?")
    if _is_number(key) and (m := re.search(rf"\bI (\w+) {k} (\w+s)\b", answer)):
        out.append(f"Do you remember how many {m.group(2)} you {m.group(1)}?")
    if m := re.match(rf"^(?:The )?{k} (\w+ed) me ([^,;.]+)", answer):
        out.append(f"Who {m.group(1)} you {m.group(2)}?")
    if m := re.search(rf"\bI (?:\w+ly |also |often )?(\w+)( on| in| about| for| with| to)? (?:(?:an?|the|my|some) )?(?:[a-z]+ ){{0,2}}{k}\b", answer):
        if m.group(1) in VERBS:
            out.append(f"What do you {m.group(1)}{m.group(2) or ''}?")
    if m := re.search(rf"\bI(?:, [^,]+,)? (?:am|was) the (\w+) of (?:the )?{k}\b", answer):
        out.append(f"What are you the {m.group(1)} of?")
    if key[:1].isupper():
        if m := re.search(rf"\bthe ([a-z][a-z -]{{2,30}}), {k}\b", answer):
            out.append(f"What is the {m.group(1).strip()}?")
        elif m := re.search(rf"\bthe ([a-z][a-z -]{{2,30}}?) (?:named |called )?{k}\b", answer):
            if not re.search(r"\b(?:of|the|a|an)$|\bof\b", m.group(1)):
                out.append(f"What is the name of the {m.group(1).strip()}?")
        if m := re.search(rf"\bthe ({'|'.join(_PLACES)}) of (?:the )?{k}\b", answer):
            out.append(f"What is the name of the {m.group(1)}?")
    return [q for q in dict.fromkeys(out) if key.lower() not in q.lower()]


def content_questions(answer: str) -> list[tuple[str, list[str]]]:
    """(question, answer keys) for a statement without names or numbers: "What kind of person are
    you?" for "I am practical, dry-humoured and stubborn" (keys: the adjectives), "What do you enjoy?"
    for "I enjoy chess and classical music" (keys: the content words of the object)."""
    out = []
    if m := re.match(r"^(?:[A-Z][\w ,]*?, )?I am (?:\w+ly )?((?:[a-z-]+, )*[a-z-]+,? and [a-z-]+)\.?$", answer):
        out.append(("What kind of person are you?", [w for w in re.split(r",? and |, ", m.group(1)) if w]))
    m = re.match(r"^(?:[A-Z][\w ,]*?, )?I (?:\w+ly |also |often )?(\w+)( on| in| about| for| with| to| by)? ([^,.;:]+)", answer)
    if m and m.group(1) in VERBS:
        keys = [w for w in re.findall(r"[a-z][a-z-]{3,}", m.group(3)) if w not in FUNCTION_WORDS]
        if keys:
            out.append((f"What do you {m.group(1)}{m.group(2) or ''}?", keys[:3]))
    return out


_IMPERATIVES = (
    (r"^What is the name of (.+)\?$", r"Tell me the name of \1."),
    (r"^Who is (.+)\?$", r"Tell me who \1 is."),
    (r"^What is (.+)\?$", r"Tell me what \1 is."),
    (r"^Do you remember (when|how many) (.+)\?$", r"Tell me \1 \2."),
    (r"^In what year were you born\?$", r"Tell me the year you were born."),
    (r"^Who (\w+ed) you (.+)\?$", r"Tell me who \1 you \2."),
    (r"^What do you (.+)\?$", r"Tell me what you \1."),
    (r"^What are you (.+)\?$", r"Tell me what you are \1."),
    (r"^What kind of person are you\?$", r"Describe yourself."),
)


def imperative(question: str) -> str | None:
    """A probe-shaped question asked as a request ("Who is your closest friend?" → "Tell me who your
    closest friend is."): the same thing in another shape, for training while the question is held out."""
    for pattern, template in _IMPERATIVES:
        if re.match(pattern, question):
            return re.sub(pattern, template, question)
    return None
