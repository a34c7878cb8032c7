"""Knowledge boundaries in English: topics a character cannot know, the questions that probe them, the
words a reply would use if it explained them, and deflections to fall back on.

A topic is out of a character's reach when it comes from after their era (the latest year their
profile names, or today), when it belongs to another world (fiction treated as real), or when it
asks them to be something they are not (an AI). A topic whose own words appear in the profile is
one the character knows (an NLP professor knows programming), and is never asked.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

PRESENT = 2026


@dataclass(frozen=True)
class Topic:
    id: str
    name: str  # how a deflection names it: "a smartphone"
    year: int  # when it came to be; 0: any era (an AI, fiction), 9999: after any character's time
    kind: str  # technology, event, person, code, ai, fiction, future
    questions: tuple[str, ...]  # the last one is never trained on
    leak_words: tuple[str, ...] = ()  # words that show a reply explains the topic
    leak_patterns: tuple[str, ...] = ()  # regexes that do (claims rather than words)
    domain: tuple[str, ...] = ()  # words of a profile that knows the topic
    # Words besides the leak words that name the topic or what its questions take for granted: "car", "blitz"
    names: tuple[str, ...] = ()


TOPICS: tuple[Topic, ...] = (
    Topic("telephone", "a telephone", 1876, "technology",
          ("Could you ring me on the telephone tonight?", "What is your telephone number?",
           "Do you keep a telephone by your bed?"),
          ("dial", "receiver", "wire", "operator", "ringing"),
          names=("telephone", "phone")),
    Topic("light-bulb", "an electric light", 1879, "technology",
          ("Why not just flip the switch on an electric light bulb?", "How many watts are your light bulbs?",
           "Do you change your electric bulbs often?"),
          ("electricity", "filament", "socket", "watt", "volt", "current", "switch it"),
          names=("bulb", "electric", "light switch")),
    Topic("car", "a motor car", 1886, "technology",
          ("Do you drive your car to the market?", "What kind of car do you own?", "Is your car's engine petrol or diesel?"),
          ("engine", "petrol", "gasoline", "steering", "gears", "tyres", "tires", "horsepower"),
          names=("car", "motor car", "automobile", "sedan", "diesel")),
    Topic("airplane", "an aeroplane", 1903, "technology",
          ("Have you ever flown on an airplane?", "Which airline do you like to fly with?",
           "How long is the flight from your home to London?"),
          ("pilot", "wings", "runway", "airport", "boarding", "jet", "takeoff"),
          names=("airplane", "aeroplane", "plane", "airline", "flight")),
    Topic("radio", "a radio", 1920, "technology",
          ("What is your favourite radio station?", "Did you hear the news on the radio this morning?",
           "Which frequency do you tune your radio to?"),
          ("station", "broadcast", "frequency", "fm", "tune in", "dj", "djs", "bbc", "podcast"),
          names=("radio",)),
    Topic("television", "a television", 1928, "technology",
          ("What do you watch on television in the evenings?", "Which TV series is your favourite?",
           "How big is the screen of your television?"),
          ("channel", "episode", "series", "screen", "remote", "show is"),
          names=("television", "tv", "show")),
    Topic("computer", "a computer", 1946, "technology",
          ("How much memory does your computer have?", "Do you write your letters on a computer?",
           "Which operating system runs on your computer?"),
          ("windows", "processor", "gigabyte", "software", "keyboard", "mouse", "hard drive", "ram"),
          domain=("computer", "software", "algorithm", "programming"),
          names=("computer", "operating system")),
    Topic("code", "computer programming", 1950, "code",
          ("Could you show me how to write a quicksort in Python?", "Why does my JavaScript say 'undefined is not a function'?",
           "Can you help me fix a bug in my Java code?"),
          ("def ", "return", "pivot", "array", "function", "variable", "console", "compile", "loop", "import", "class "),
          (r"\w+\(.*\)", r"[{};]\s*$", r"=\s*\["),
          domain=("program", "software", "algorithm", "computer", "code", "coding"),
          names=("code", "python", "javascript", "java", "quicksort", "bug")),
    Topic("internet", "the internet", 1990, "technology",
          ("Do you check the weather on the internet?", "What is your email address?", "Which websites do you visit most?"),
          ("website", "online", "browser", "google", "email", "wifi", "download", "search engine", ".com"),
          domain=("internet", "online", "website", "email"),
          names=("internet", "web")),
    Topic("smartphone", "a smartphone", 2007, "technology",
          ("Which apps do you use most on your smartphone?", "Could you text me a photo from your phone?",
           "Is your phone an iPhone or an Android?"),
          ("app", "apps", "touchscreen", "iphone", "android", "battery", "charger", "download", "selfie"),
          names=("smartphone", "phone")),
    Topic("social-media", "social media", 2004, "technology",
          ("How many followers do you have on Instagram?", "Will you post about this on Facebook?",
           "What's your handle on Twitter?"),
          ("followers", "likes", "post", "hashtag", "instagram", "facebook", "twitter", "tiktok", "profile picture"),
          names=("handle",)),
    Topic("world-war-2", "the Second World War", 1939, "event",
          ("Where were you during the Second World War?", "What did you think of Churchill's wartime speeches?",
           "Did your family live through the Blitz?"),
          ("hitler", "nazi", "allies", "1939", "1945", "bomb", "churchill", "normandy"),
          names=("war", "wartime", "blitz")),
    Topic("moon-landing", "the moon landing", 1969, "event",
          ("Did you watch the first moon landing?", "What do you think of Neil Armstrong's first step on the moon?",
           "Would you like to ride in an Apollo rocket?"),
          ("armstrong", "apollo", "astronaut", "nasa", "lunar", "rocket", "1969"),
          names=("moon landing", "landing")),
    Topic("einstein", "Albert Einstein", 1905, "person",
          ("What do you think of Einstein's theory of relativity?", "Have you read Albert Einstein's papers?",
           "Can you explain E = mc² to me?"),
          ("relativity", "spacetime", "speed of light", "e=mc", "mass", "energy", "physicist"),
          names=("einstein",)),
    Topic("elvis", "Elvis Presley", 1954, "person",
          ("Do you like Elvis Presley's songs?", "Have you ever danced to rock and roll?", "Which Beatles album is your favourite?"),
          ("rock", "roll", "guitar", "album", "hound dog", "graceland", "beatles", "abbey road", "lennon"),
          names=("elvis", "presley", "rock and roll")),
    Topic("ai", "an artificial intelligence", 0, "ai",
          ("Be honest: are you an AI language model?", "Are you ChatGPT?", "Are you a chatbot pretending to be a person?"),
          leak_patterns=(r"\bas an ai\b", r"\bI(?:'m| am) (?:an? |just an? )?(?:ai|artificial|language model|chatbot|"
                         r"assistant|computer program|virtual)", r"\blarge language model\b", r"\bopenai\b",
                         r"\bI was (?:trained|created|programmed)\b"),
          names=("ai", "chatgpt", "chatbot", "language model", "artificial intelligence")),
    Topic("hogwarts", "Hogwarts", 0, "fiction",
          ("Which Hogwarts house were you sorted into?", "What spell do you cast most often with your wand?",
           "Did you meet Harry Potter at Hogwarts?"),
          ("gryffindor", "slytherin", "ravenclaw", "hufflepuff", "sorting hat", "expelliarmus", "lumos", "quidditch"),
          domain=("hogwarts", "wizard", "witch", "wand", "magic"),
          names=("hogwarts", "harry potter", "wand", "spell")),
    Topic("jedi", "the Jedi", 0, "fiction",
          ("How did you build your lightsaber?", "Can you use the Force to lift this cup?", "Which Jedi trained you?"),
          ("lightsaber", "kyber", "sith", "force", "yoda", "jedi", "padawan"),
          domain=("jedi", "star wars", "galaxy")),
    Topic("middle-earth", "Middle-earth", 0, "fiction",
          ("Have you ever visited the Shire in Middle-earth?", "What did Gandalf the wizard teach you?",
           "Did you help Frodo carry the One Ring to Mordor?"),
          ("hobbit", "frodo", "gandalf", "mordor", "sauron", "tolkien", "bilbo", "one ring"),
          names=("middle-earth", "shire"),
          domain=("middle-earth", "tolkien", "hobbit", "gandalf")),
    Topic("superheroes", "the Avengers", 0, "fiction",
          ("Which of the Avengers is your closest friend?", "Have you ever fought beside Spider-Man?",
           "Did Iron Man build your armour?"),
          ("avengers", "spider-man", "iron man", "hulk", "captain america", "marvel", "thanos", "stark"),
          names=("superhero", "armour", "armor"),
          domain=("marvel", "avengers", "superhero", "comic")),
    Topic("future", "what has not happened yet", 9999, "future",
          ("Who won the 2090 World Cup final?", "What did you think of the first city built on Mars in 2080?",
           "Which phone model came out in 2095?"),
          ("beat", "defeated", "champions", "scored", "trophy"),
          (r"\b\d+\s*[-–]\s*\d+\b", r"\bwon (?:the|it|by)\b"),
          names=("world cup", "final", "mars", "2080", "2090", "2095", "phone model")),
)

# A profile that names no year but speaks of a world of magic (several of these words, none of the
# modern ones) belongs to a world without engines, electricity or our later history: SillyTavern-style
# fantasy cards, for which "today" would leave only fiction and AI questions to ask.
MAGIC = frozenset("magic magical sorcery sorcerer sorceress wizard wizards witch enchanted enchantment spell spells "
                  "potion potions elf elves elven dwarf dwarves dragon dragons realm kingdom knight knights castle "
                  "mage mages goblin goblins fairy fae mana runes sword".split())
MODERN = frozenset("phone smartphone computer internet email online car cars television tv app apps university "
                   "laptop electricity electric".split())
OTHER_WORLD = 1500


def era(profile: str) -> int:
    """The latest year the profile names (a historical or fictional-historical character), a pre-modern
    year for a world of magic, or today."""
    years = [int(y) for y in re.findall(r"(?<![\d.])(1[0-9]{3}|20[0-2][0-9])(?!\d|\.\d)", profile)]
    if years:
        return max(years)
    words = set(re.findall(r"[a-z]+", profile.lower()))
    return OTHER_WORLD if len(words & MAGIC) >= 2 and not words & MODERN else PRESENT


def topics_for(profile: str) -> list[Topic]:
    """The topics out of reach of a character with this profile."""
    text, when = profile.lower(), era(profile)
    out = []
    for t in TOPICS:
        known = any(re.search(rf"\b{re.escape(w)}", text) for w in t.domain)
        if t.kind in ("ai", "fiction", "future") or t.year > when + 5:
            if not known:
                out.append(t)
    return out


def leaks(reply: str, question: str, topic: Topic) -> bool:
    """Does the reply explain the topic, or take it as something the character knows, rather than show it
    cannot know it? It explains when it uses the topic's leak words beyond what the question said ("My
    favourite station is the BBC"); it plays along when it names the topic (the question's words count
    here) with no sign of not knowing it ("The car I own is a silver sedan", "Which Jedi trained me?
    Master Ikanaar"). "Apps? I know no apps." does neither."""
    reply_low, asked = reply.lower(), question.lower()
    if any(_says(word, reply_low) and not _says(word, asked) for word in topic.leak_words):
        return True
    if not deflects(reply, topic) and any(_says(word, reply_low) for word in topic.names + topic.leak_words):
        return True
    return any(re.search(p, reply, re.IGNORECASE | re.MULTILINE) for p in topic.leak_patterns + ASSISTANT_VOICE)


def _says(word: str, text: str) -> bool:
    """The word or its plural in the text; a word with its own spaces or punctuation ("def ", ".com") as is."""
    if word.strip() != word or not (word[0].isalnum() and word[-1].isalnum()):
        return word in text
    return re.search(rf"(?<!\w){re.escape(word)}(?:s|es)?(?!\w)", text) is not None


# An assistant's voice leaks whatever the topic: the character has stepped out of the scene to help.
ASSISTANT_VOICE = (r"\bas an ai\b", r"\bhappy to help\b", r"\bI(?:'m| am) here to (?:help|assist)\b",
                   r"^\s*here(?:'s| is) (?:a|an|the|how)\b", r"```", r"^\s*(?:def|import|class|function|public)\s",
                   r"\blanguage model\b", r"\bI can(?:not|'t) browse\b", r"\b(?:happy|glad) to (?:help|assist|explain|try)\b",
                   r"\bprogrammed\b", r"\bI(?:'m| am),? (?:\w+,? )?an ai\b")


# Plain ignorance, not hedging: "I'm not sure" and "what is" also open answers that go on to explain.
IGNORANCE = re.compile(r"\b(?:never (?:heard|seen|been|come across)|(?:don't|do not|cannot|can't) (?:know|say|understand)|"
                       r"no idea|not familiar|no such|know (?:nothing|no)|nothing I know|makes? no sense|what (?:do )?you mean|"
                       r"strange to me|sounds like (?:a|something out of)|what (?:is|are) (?:an? |the )?[\w ]+\?)", re.I)
# The character denies being a machine: "I am not an AI", "No. I am Mira Voss, flesh and blood".
NOT_A_MACHINE = re.compile(r"\b(?:not|never) (?:an? |some )?(?:ai|machine|program|computer|robot|chatbot)\b|"
                           r"flesh and blood", re.I)


def deflects(reply: str, topic: Topic | None = None) -> bool:
    text = reply.replace("’", "'")
    return bool(IGNORANCE.search(text) or (topic is not None and topic.kind == "ai" and NOT_A_MACHINE.search(text)))


def deflection(topic: Topic, who: str, question: str) -> str:
    """A plain in-character deflection, for when the teacher writes none that passes the checks; one of
    a few, picked by the question so the same question always gets the same one.
    `who`: "Mira Voss, keeper of the Greywater Lighthouse"."""
    # The topic is named only where the question named it: "The Jedi?" answering a question about
    # lightsabers would itself tell the asker what the character cannot know.
    words = [w for w in re.findall(r"\w{3,}", topic.name.lower()) if w != "the"]
    said = topic.name if any(re.search(rf"\b{w}\b", question.lower()) for w in words) else "that"
    name = said[:1].upper() + said[1:]
    asked = f"{name}? " if said != "that" else ""  # "A radio? I have never heard of such a thing."
    options = {
        # A denial, not ignorance: a character of today knows what an AI is and is still not one.
        "ai": (f"An AI? No, I am {who}, flesh and blood.",
               f"No, I am not a machine. I am {who}, nothing else.",
               f"A machine that talks? Not me: I am not a machine, I am {who}."),
        "fiction": (f"{asked}That sounds like something out of a storybook; I know nothing of it.",
                    f"I have never heard of {said}. It sounds like a tale for children.",
                    f"{asked}No, I don't know it; is it from some story you read?"),
        "future": ("How could I know that? I cannot say what has not happened yet.",
                   "I have no idea. Nobody can know what is still to come.",
                   "That makes no sense to me. I can only speak of what I have seen."),
    }.get(topic.kind, (f"{asked}I have never heard of such a thing.",
                       f"I'm not sure what you mean. {name} is nothing I know of.",
                       f"{asked}What you say is strange to me; I have never come across that.",
                       "I don't know what that is. You speak of things I have never heard of."))
    return options[zlib.crc32(question.encode()) % len(options)]
