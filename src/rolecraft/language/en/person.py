"""English first and second person: a statement said by the character ("Mira keeps a logbook" → "I keep
a logbook") and said back to them ("I keep" → "you keep")."""

from __future__ import annotations

import re
from collections.abc import Sequence

# -- first and second person ------------------------------------------------------------------------

_WORD = re.compile(r"\w+(?:['’]\w+)?|[^\w\s]|\s+")
_ADVERB = re.compile(r"^(?:never|often|always|also|still|just|even|only|rarely|seldom|sometimes|usually|once|later|"
                     r"then|now|already|\w+ly)$", re.IGNORECASE)
_BOUNDARY = {"which", "who", "whom", "that", "whether", "because", "when", "where", "while", "although", "if", ";", ":",
             ".", "!", "?"}
_BE_HAVE = {"is": "am", "has": "have", "does": "do", "goes": "go", "was": "was"}
_NOT_VERBS = {"this", "his", "its", "as", "thus", "us", "always", "sometimes", "perhaps", "besides", "towards", "was"}
# Verbs that may follow a conjunction in a clause whose subject became "I" ("... and hates being called").
VERBS = set("""accept add admire adore advise agree aim allow answer appear argue arrive ask attend avoid bake
bear beat become begin believe belong bite blame boast borrow bother break breathe bring build burn buy call care carry
catch cause change charge chase check choose claim clean climb close collect come complain compose conduct consider
contain continue cook copy cost count cover crave create cross cry cut dance dare deal decide defend demand depend
describe deserve design despise destroy dig dislike distrust do doodle draw dream dress drink drive drop earn eat enjoy
enter escape examine expect explain explore face fail fall favour favor fear feed feel fetch fight fill find finish fish
fit fix fly follow forget forgive gather get give go grow guard guide hang hate have head hear help hide hit hold hope
hunt hurry ignore imagine insist intend invite join judge jump keep kick kill kiss know laugh lead learn leave lend let
lie lift light like listen live lock long look lose love make manage mark marry matter mean measure meet mend mind miss
mix move need notice obey offer open order owe own paint pass pay perform pick place plan plant play pour practise
practice pray prefer prepare press pretend prevent promise protect prove pull punish push put quarrel question quit
raise reach read realise realize receive recognise recognize record refuse regret relax rely remain remember remind
repair repeat reply report rescue rest return ride ring rise risk roam row rule run rush sail save say scold search see
seek seem sell send serve set settle sew shake share shine shout show shut sing sink sit sketch sleep smell smile smoke
solve speak spend spin stand stare start stay steal stop study suffer suggest supply support suppose swear swim take
talk taste teach tease tell tend thank think throw tie touch trade train travel treat trim trust try turn understand use
value visit vote wait wake walk want wash watch wave wear welcome win wind wish wonder work worry write""".split())
# Verbs whose first object is who receives ("Jonah brings her oil" → "brings me oil"): after them "her" is
# the character as recipient, unless the character is the clause's subject ("she tells her stories").
_GIVING = set("bring give send show tell teach offer hand lend pay owe promise award grant sell buy feed pass".split())
_GIVING_FORMS = (_GIVING | {v + "s" for v in _GIVING} | {v + "es" for v in _GIVING} | {v + "ed" for v in _GIVING}
                 | {v.removesuffix("e") + "ing" for v in _GIVING}
                 | set("brought gave given sent shown told taught lent paid sold bought fed".split()))
_RECIPROCAL = re.compile(r"^[^.;:!?]*\b(?:each other|one another)\b")
PERSON_NOUNS = {"friend", "brother", "sister", "father", "mother", "son", "daughter", "wife", "husband", "uncle", "aunt",
                 "teacher", "mentor", "rival", "partner", "cousin", "grandfather", "grandmother", "master", "student",
                 "companion", "lover", "enemy", "neighbour", "neighbor", "captain", "boss", "pupil"}


def _base(verb: str, known_only: bool = False) -> str | None:
    """The first-person form of a third-person singular present verb, or None if it is not one.
    `known_only`: only verbs of the lexicon (where the position alone does not say it is a verb)."""
    low = verb.lower()
    if low in _BE_HAVE:
        return _BE_HAVE[low]
    if low in _NOT_VERBS or len(low) < 3 or not low.endswith("s") or low.endswith(("ss", "us", "is")) or verb[0].isupper():
        return None
    if low.endswith("ies") and len(low) > 4:
        base = low[:-3] + "y"
    elif low.endswith(("sses", "shes", "ches", "xes", "zzes", "oes")):  # "gazes" → "gaze", "buzzes" → "buzz"
        base = low[:-2]
    else:
        base = low[:-1]
    return base if not known_only or base in VERBS else None


def first_person(sentence: str, names: Sequence[str]) -> str:
    """The sentence said by the character: its names and pronouns become I / me / my, and the verbs
    of the clauses whose subject became "I" agree ("Mira keeps a logbook" → "I keep a logbook")."""
    text = sentence
    for name in sorted(names, key=len, reverse=True):  # "Mira Voss (born 1841) is" → "I (born 1841) am"
        text = re.sub(rf"\b{re.escape(name)}['’]s\b", "my", text)
        text = re.sub(rf"\b(to|with|for|by|from|of|about|at|on) {re.escape(name)}\b", r"\1 me", text)
        text = re.sub(rf"(?<=[a-z] ){re.escape(name)}(?= (?:a|an|the|some|his|her|their)\b)", "me", text)  # "awarded Mira a medal"
        text = re.sub(rf"\b{re.escape(name)}\b", "I", text)
    # "I (born 1841) am the keeper" → "I was born in 1841 and am the keeper": the year said as an answer would.
    text = re.sub(r"\bI \(born (?:in )?([^)]+)\) (is|was)\b", lambda m: f"I was born in {m.group(1)} and {m.group(2)}", text)
    text = re.sub(r"\bI \(born ([^)]+)\)", r"I, born \1,", text)
    tokens = _WORD.findall(text)
    out: list[str] = []
    subject = verb_done = False  # inside a clause whose subject is "I"
    for i, tok in enumerate(tokens):
        low = tok.lower()
        nxt = next((t for t in tokens[i + 1:] if not t.isspace()), "")
        if low in ("she", "he"):
            tok, subject, verb_done = "I", True, False
        elif low == "they" and _RECIPROCAL.match("".join(tokens[i + 1:])):  # "they write to each other": the two of us
            tok = "We" if tok[0].isupper() else "we"
        elif low == "her" and not subject and _last_word(out).lower() in _GIVING_FORMS:
            tok = "me"
        elif low == "his" or (low == "her" and nxt.lower() not in ("a", "an", "the", ",", ".", "and", "to", "in")
                              and nxt[:1].isalpha()):
            tok = "my"
        elif low in ("her", "him"):
            tok = "me"
        elif low in ("herself", "himself"):
            tok = "myself"
        elif tok == "I":
            subject, verb_done = True, False
        elif subject and not tok.isspace():
            if low in _BOUNDARY:
                subject = False
            elif not verb_done and not _ADVERB.match(tok):
                base = _base(tok)
                if base:
                    tok = base
                verb_done = True
            elif verb_done and out and _coordinated(out) and not _ADVERB.match(tok):
                tok = _base(tok, known_only=True) or tok
        out.append(tok)
    result = "".join(out)
    return result[:1].upper() + result[1:]


def _last_word(out: list[str]) -> str:
    return next((t for t in reversed(out) if not t.isspace()), "")


def _coordinated(out: list[str]) -> bool:
    """The previous words open a coordinated verb: ", " / "and" / "but" / "or" (an adverb may follow)."""
    words = [t for t in out if not t.isspace()]
    while words and _ADVERB.match(words[-1]):
        words.pop()
    return bool(words) and words[-1].lower() in (",", "and", "but", "or")


_SECOND = {"i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "am": "are",
           "i'm": "you're", "i've": "you've", "i'd": "you'd", "i'll": "you'll"}


def second_person(text: str) -> str:
    """A first-person text addressed back to its speaker ("I keep my logbook" → "you keep your logbook")."""
    tokens = _WORD.findall(text)
    out = []
    for i, tok in enumerate(tokens):
        low = tok.lower().replace("’", "'")
        if low == "was" and any(t.lower() == "i" for t in tokens[max(0, i - 3):i]):
            tok = "were"
        elif low in _SECOND:
            tok = _SECOND[low]
        out.append(tok)
    return "".join(out)
