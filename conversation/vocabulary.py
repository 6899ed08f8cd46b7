"""The words Operator reads in an SMS: filler, questions, negations, phrases, and Twilio's keywords.

Only data and the tokenizer live here; command_processor decides what the words mean. One list
of each, used everywhere (the inbound path and the resolver read the same opt-out words).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Twilio acts on these itself (its default Advanced Opt-Out keywords); they are never commands.
OPT_OUT = frozenset("stop stopall unsubscribe cancel end quit optout revoke".split())
OPT_IN = frozenset("start unstop optin".split())
RESERVED = OPT_OUT | OPT_IN

# Words that carry no meaning for matching ("how's the cpu looking?" -> "cpu").
FILLER = frozenset(
    """a an the is are was were be been being am do does did how hows how's what whats what's
    whats's which who where when why can could would should will please pls plz me my our us
    we i i'm im you your it its it's for of on in at to from with about any anything some show
    tell give get check see look looking looks doing going state like right now currently
    current latest today ok okay hey hi hello there is there's yo just quick quickly again
    and or but so then this that these those up there's has have had let let's lets lemme
    gimme need want wanna know find list display pull fetch print send um uh hmm er well
    actually also still really kindly operator bot guys team dude mate man buddy sir
    much many lot very whole overall tail""".split()
)
# Words before an action that turn it into a question about the alert ("was 12 acked?").
QUESTION = frozenset(
    """is are was were has have had did does who whos who's why how what whats what's when
    which whether isn't isnt wasn't wasnt hasn't hasnt didn't didnt doesn't doesnt should""".split()
)
# Words before an action that call it off ("don't ack 12", "never mind the snooze").
NEGATION = frozenset("don't dont not never cancel nvm nevermind undo abort".split())
# Several words that mean one ("new relic", "on it"): rewritten before matching.
PHRASES = {
    "new relic": "apps",
    "next page": "more",
    "go on": "more",
    "keep going": "more",
    "never mind": "nvm",
    "forget it": "nvm",
    "do not": "dont",
    "slow queries": "db",
    "long queries": "db",
    "running queries": "db",
    "cancel it": "nvm",
    "cancel that": "nvm",
    "cancel this": "nvm",
}
for _verb in ("cancel", "end", "remove", "lift", "expire", "delete", "undo", "stop", "drop"):
    for _object in ("silence", "silencing", "the silence", "that silence", "this silence"):
        PHRASES[f"{_verb} {_object}"] = "unsilence"
# Whole messages that act on the last alert paged ("on it" = I have it: ack).
INTENTS = {
    "on it": "ack",
    "i'm on it": "ack",
    "im on it": "ack",
    "i am on it": "ack",
    "looking into it": "ack",
    "investigating": "ack",
    "i'll take it": "ack",
    "ill take it": "ack",
    "taking it": "ack",
    "go ahead": "yes",
    "do it": "yes",
    "yes do it": "yes",
    "don't": "no",
    "dont": "no",
    "don't do it": "no",
    "dont do it": "no",
    "what can you do": "help",
    "what do you do": "help",
    "how does this work": "help",
    "what can i do": "help",
    "what can i ask": "help",
    "what can i say": "help",
    "what is this": "help",
    "what are you": "help",
    "who are you": "help",
    "are you there": "help",
    "you there": "help",
    "anyone there": "help",
    "is this working": "help",
    "ping": "help",
    "test": "help",
    "testing": "help",
}
# Words around an intent that change nothing ("ok, on it", "go ahead please").
SOFT = frozenset("ok okay k alright please pls plz thanks thx just now then so sure cool".split())

# Words that open a message without changing what it asks ("hey, is 12 acked?").
OPENERS = frozenset("hey hi hello ok okay so and but um uh hmm well quick question operator yo".split())
HOW_TO = frozenset("do can should to would does".split())
IF_WORDS = frozenset(("if", "whether"))
_TOKEN = re.compile(r"[^\s,;]+")
_EDGE_PUNCT = "!?.,;:'\"()[]{}<>`~*_¿¡"


@dataclass(frozen=True)
class Word:
    """One word as matched (lower-cased, surrounding punctuation gone) and where it was typed."""

    text: str
    start: int
    end: int


def words_of(text: str) -> list[Word]:
    """The words of `text` with their positions; commas and semicolons separate words too."""
    found = []
    for match in _TOKEN.finditer(text):
        clean = match.group().strip(_EDGE_PUNCT).lower()
        if clean:
            found.append(Word(clean, match.start(), match.end()))
    return found


def tokens(text: str) -> list[str]:
    """Lower-cased words with surrounding punctuation removed."""
    return [w.text for w in words_of(text)]


def stems(word: str) -> list[str]:
    """The word and its plain forms: 'silenced' -> silence, 'acking' -> ack, 'alerts' -> alert."""
    forms = [word]
    if len(word) > 3:
        if word.endswith("ies"):
            forms.append(word[:-3] + "y")  # "queries" -> query
        if word.endswith("s"):
            forms += [word[:-1], word[:-2]] if word.endswith("es") else [word[:-1]]
        if word.endswith("ed"):
            forms += [word[:-1], word[:-2]]
        if word.endswith("ing"):
            forms += [word[:-3], word[:-3] + "e"]
    return [f for f in forms if f == word or len(f) >= 3]
