"""Answer types: what kind of value a question asks for, and whether a sentence states one.

The kinds are generic, read off the question's wording (English question grammar, not any corpus's
nouns): a duration ("how long", "how many days"), a time of day ("what time"), a date ("when", "which
year"), a percentage, an amount of money (any currency, symbol or code, with k/m/bn), a count ("how
many"), a quantity ("how much": money, a count, a percentage or a duration), a name ("who"), or yes/no.
A value that the question (or the previous answer) already states is not an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER_WORDS = (
    "zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    "seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|"
    "million|billion|dozen|half|single|once|twice|a few|several|a couple of"
)
_NUM = rf"(?:\d+(?:[.,]\d+)*(?:\.\d+)?|\b(?:{_NUMBER_WORDS})\b)"
_UNITS = (
    r"(?:milli)?seconds?|secs?|minutes?|mins?|hours?|hrs?|h|days?|nights?|weeks?|wks?|fortnights?|months?|"
    r"mos?|quarters?|years?|yrs?|decades?|(?:business|working|calendar|work) days?|pay ?periods?|semesters?"
)
_MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_WEEKDAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekdays?|weekends?"
_CURRENCY_SYMBOLS = "$€£¥₹₩₽₺₪฿₫₴₦₱"
_CURRENCY_WORDS = (
    r"usd|eur|gbp|jpy|chf|cad|aud|inr|cny|rmb|sek|nok|dkk|dollars?|euros?|pounds?|yen|yuan|francs?|rupees?|"
    r"krona|kronor|krone|cents?|pence|bucks"
)
_SCALE = r"(?:\s?(?:k|m|mn|bn|b|thousand|million|billion|trillion)\b)?"

PATTERNS: dict[str, re.Pattern[str]] = {
    "duration": re.compile(
        rf"{_NUM}(?:\s?(?:-|to|–|or)\s?{_NUM})?[\s-]*(?:(?!(?:and|or|of|to|the|in|at|by|{_NUMBER_WORDS})\b)[A-Za-z][\w-]*\s){{0,2}}?(?:{_UNITS})\b"
        rf"|\b(?:an?|per|each|every)\s(?:{_UNITS})\b"
        r"|\b(?:daily|weekly|biweekly|monthly|quarterly|annually|yearly|overnight)\b",
        re.I,
    ),
    "time": re.compile(
        r"\b\d{1,2}(?::\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.)(?!\w)|\b(?:[01]?\d|2[0-3]):[0-5]\d\b"
        r"|\b(?:noon|midday|midnight|end of (?:the )?(?:business )?day|close of business|cob|eod)\b",
        re.I,
    ),
    "date": re.compile(
        rf"\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b"
        rf"|\b(?:{_MONTHS})\b\.?(?:\s\d{{1,2}}(?:st|nd|rd|th)?)?|\b\d{{1,2}}(?:st|nd|rd|th)?\s(?:of\s)?(?:{_MONTHS})\b"
        rf"|\b(?:1[5-9]|20)\d\d\b|\b(?:{_WEEKDAYS})\b"
        r"|\b(?:yesterday|today|tomorrow|annually|every year|each year|(?:last|next|this) (?:year|month|week|quarter))\b",
        re.I,
    ),
    "percent": re.compile(rf"{_NUM}\s?(?:%|per ?cent\b|percentage points?\b)", re.I),
    "money": re.compile(
        rf"[{_CURRENCY_SYMBOLS}]\s?\d+(?:[.,]\d+)*{_SCALE}|\b\d+(?:[.,]\d+)*{_SCALE}\s?(?:{_CURRENCY_WORDS})\b"
        rf"|\b(?:{_CURRENCY_WORDS})\s?\d+(?:[.,]\d+)*{_SCALE}",
        re.I,
    ),
    "count": re.compile(_NUM, re.I),
    "name": re.compile(
        r"\b[A-Z][\w’'&.-]*(?:\s+(?:of\s+|the\s+|and\s+|for\s+)?[A-Z][\w’'&.-]*)*|\b[\w.+-]+@[\w-]+\.[\w.-]+\b"
    ),
}
# "how much" accepts any of these
_QUANTITY = ("money", "count", "percent", "duration")

# Question openings, tried in order on the question from its first question word (the first that
# matches decides): "My flight was cancelled. How long ..." asks at "How long".
_OPENINGS: list[tuple[str, re.Pattern[str]]] = [
    (
        "percent",
        re.compile(
            r"^(?:what|which) (?:\w+ ){0,2}?(?:percentage|percent|share|proportion|fraction)\b|^how many percent",
            re.I,
        ),
    ),
    ("time", re.compile(r"^(?:(?:at|by|until|from) )?what time\b|^(?:what|which) hours?\b(?! of)", re.I)),
    (
        "duration",
        re.compile(
            rf"^how long\b|^for how long\b|^how many (?:more |additional |extra |total )?(?:{_UNITS})\b|^how (?:soon|often|frequently|early|late|far (?:ahead|in advance|before|out|back))\b|^what (?:is |was |are )?the (?:\w+ )?(?:duration|period|length|frequency|timeframe)\b|^within how\b",
            re.I,
        ),
    ),
    (
        "date",
        re.compile(
            r"^when\b|^(?:by |on |in |until |from )?(?:what|which) (?:\w+ )?(?:year|date|month|day|week|quarter|deadline)\b|^how recently\b",
            re.I,
        ),
    ),
    (
        "money",
        re.compile(
            r"^how much (?:\w+ ){0,2}?(?:does|do|did|is|was|are|were|will|would|can|could|should) (?:\w+ ){0,4}?(?:cost|pay|paid|charge|spend|spent|earn|worth|reimburse|fund|owe|budget)\w*\b(?! ?periods?\b)|^(?:what|how much) (?:\w+ ){0,2}?(?:price|cost|fee|salary|budget|allowance|stipend|reimbursement|rate of pay)\b|^how much (?:money|cash)\b|^(?:what|how much) (?:is|was|are|were) [^?]{0,40}? worth\b",
            re.I,
        ),
    ),
    (
        "quantity",
        re.compile(
            r"^how (?:much|large|big|high|low|small|far|heavy|fast)\b|^what (?:is |was |are |were )?the (?:\w+ )?(?:amount|limit|maximum|minimum|max|min|size|number|total|cap|threshold)\b|^(?:what|which) (?:\w+ )?(?:amount|limit|maximum|minimum|number)\b",
            re.I,
        ),
    ),
    ("count", re.compile(r"^how many\b|^what number of\b", re.I)),
    ("name", re.compile(r"^(?:who|whom|whose)\b|^(?:by|to|from|with|for) whom\b", re.I)),
    (
        "yes-no",
        re.compile(
            r"^(?:is|are|am|was|were|can|could|do|does|did|should|must|may|might|will|would|has|have|had|shall)\b",
            re.I,
        ),
    ),
]
_FIRST = re.compile(
    r"\b(?:(?:at|by|until|from|for|on|in|to|with) )?(?:what|which|who|whom|whose|when|where|why|how)\b"
    r"|(?:^|(?<=[.?!:;]\s))(?:is|are|am|was|were|can|could|do|does|did|should|must|may|might|will|would|has|have|had|shall)\b",
    re.I,
)


_PAGE = re.compile(
    r"^\W*(?:(?:in |on )?(?:which|what) (?:\w+ )?(?:page|document|doc|article|section|file|guide|policy|chapter|part)s?"
    r"|where (?:in (?:the )?\w+ )?(?:can i|do i|should i|would i|could i) (?:find|read|look|see)"
    r"|where (?:in (?:the )?\w+ )?(?:is|are) (?:it )?(?:explained|described|covered|documented|listed))\b"
    r"(?P<verb>(?:\s+(?:of|in|from) (?:the )?\w+)?\s+(?:\w+\s+){0,2}?(?:covers?|covered|explains?|explained|describes?|described|discuss(?:es)?|lists?|listed|mentions?|talks? about|tells? (?:me|you|us)|walks? (?:me|you|us) through|deals? with|documents?|has|have|contains?|says?|is about|about|on|for|information about|info on|details)\b|)",
    re.I,
)


_PAGE_WHERE = re.compile(
    r"^\W*where (?:in (?:the )?\w+ )?(?:is|are) (?P<topic>.+?) (?:explained|described|covered|documented|listed|discussed|defined)\b",
    re.I,
)


def page_topic(question: str) -> str | None:
    """For a question asking which page covers something ("Which page explains how to request leave?"),
    what it is about ("how to request leave"); None for other questions."""
    where = _PAGE_WHERE.match(question)
    if where:
        return where.group("topic")
    match = _PAGE.match(question)
    if not match:
        return None
    topic = question[match.end() :].strip(" ?.!")
    return topic if re.search(r"\w", topic) else None


# A leading clause that sets the scene ("When I leave, do I ...", "If I travel, how much ..."): the
# question is asked after it.
_SCENE = re.compile(
    r"(?:when|whenever|if|once|after|before|while|since|as soon as|in case)\b[^,?]{1,100},\s*"
    r"(?=(?:what|which|who|whom|whose|when|where|why|how|is|are|am|was|were|can|could|do|does|did|should|"
    r"must|may|might|will|would|has|have|had|shall)\b)",
    re.I,
)


def _asking_at(question: str) -> int:
    """Where the question asks: its first question word, after any preamble or scene-setting clause."""
    first = _FIRST.search(question)
    if not first:
        return 0
    scene = _SCENE.match(question, first.start())
    return scene.end() if scene else first.start()


def _opening(question: str) -> tuple[str | None, int, int]:
    """The kind the question asks for and the span of the words that ask it ("How long", "what time")."""
    at = _asking_at(question)
    opening = question[at:]
    for kind, pattern in _OPENINGS:
        match = pattern.search(opening)
        if match:
            return kind, at + match.start(), at + match.end()
    return None, at, at


def expected_kind(question: str) -> str | None:
    """The kind of value the question asks for, or None (what/how/why questions that want a description)."""
    if page_topic(question):
        return "page"
    return _opening(question)[0]


def topic_words(question: str) -> str:
    """The question without the words that ask for the kind of value ("By what time must I tell my
    manager?" is about "must I tell my manager"): what the answer's sentence should be about."""
    kind, start, end = _opening(question)
    if kind is None or kind in ("name", "yes-no"):
        return question
    return f"{question[:start]} {question[end:]}".strip()


def accepted(kind: str | None) -> tuple[str, ...]:
    """The value kinds that answer a question of `kind` (none for descriptive, name and yes/no questions)."""
    if kind == "quantity":
        return _QUANTITY
    if kind == "date":
        return ("date", "time", "duration")  # "when" is answered by a date, a time or a delay
    if kind == "count":
        return ("count",)
    if kind in ("duration", "time", "percent", "money"):
        return (kind,)
    return ()


@dataclass(frozen=True)
class Value:
    kind: str
    start: int
    end: int
    text: str

    @property
    def key(self) -> str:
        """A normal form for comparing values: lower case, digits without separators."""
        return re.sub(r"(?<=\d)[,](?=\d)", "", re.sub(r"\s+", " ", self.text.lower())).strip(" .")


def values(kind: str, text: str) -> list[Value]:
    """Every value of `kind` in `text`."""
    return [
        Value(kind, m.start(), m.end(), m.group(0))
        for m in PATTERNS[kind].finditer(text)
        if m.group(0).strip()
    ]


def _digits(key: str) -> set[str]:
    return set(re.findall(r"\d+(?:\.\d+)?", key)) or {key}


def new_values(kind: str | None, text: str, known: str) -> list[Value]:
    """Values in `text` of a kind that answers a `kind` question and that `known` (the question, the
    previous answer) does not already state."""
    found: list[Value] = []
    stated = {v.key for k in accepted(kind) for v in values(k, known)}
    stated_digits = {d for key in stated for d in _digits(key)}
    years = {(v.start, v.end) for v in values("date", text) if re.fullmatch(r"\d{4}", v.text)}
    for k in accepted(kind):
        for value in values(k, text):
            if k == "count" and (value.start, value.end) in years:
                continue  # a year is a date, not a count
            if value.key in stated or (_digits(value.key) <= stated_digits and re.search(r"\d", value.key)):
                continue
            found.append(value)
    return found


_AUX = (
    r"is|are|am|was|were|do|does|did|can|could|should|would|will|shall|must|may|might|has|have|had|"
    r"get|gets|got|need|needs|'s|’s"
)
_STOP_FOCUS = rf"(?:{_AUX}|of|for|in|on|at|to|from|by|with|about|that|which|who|when|where|if|per|under|after|before|during|i|we|you|they|he|she|it)\b"
_NP = rf"(?:(?!{_STOP_FOCUS})[\w’'-]+\s?){{1,4}}"
_OF = rf"(?:\s*of\s+(?:the\s+|a\s+|an\s+)?(?:[\w’'-]+['’]s?\s+)?{_NP})?"
_FOCUS = [
    re.compile(rf"^how (?:many|much) (?P<focus>{_NP}{_OF})", re.I),
    re.compile(
        rf"^(?:what|which)(?:\s*(?:'s|’s)|\s+(?:is|are|was|were))?\s+(?:the\s+|a\s+|an\s+|[\w’'-]+['’]s?\s+)?(?P<focus>{_NP}{_OF})",
        re.I,
    ),
    re.compile(rf"^who\s+(?:is|are|was|were)\s+(?:the\s+)?(?P<focus>{_NP}{_OF})", re.I),
]


def focus(question: str) -> str:
    """What the question asks about at its question word: "how many [paid holidays] do we get",
    "what is [the monthly maximum] for ...", "which [team] does X work on"; empty when it names nothing."""
    opening = question[_asking_at(question) :]
    opening = re.sub(r"^(?:at|by|until|from|for|on|in|to|with)\s+", "", opening, flags=re.I)
    asking = set()
    kind, start, end = _opening(question)
    if kind not in (None, "name", "yes-no"):
        asking = {w.lower() for w in re.findall(r"[\w’'-]+", question[start:end])}
    for pattern in _FOCUS:
        match = pattern.search(opening)
        if match:  # without the words that ask for the kind ("what share of X" is about X)
            words = match.group("focus").split()
            while words and words[0].lower() in asking | {"of", "the", "a", "an"}:
                words.pop(0)
            return " ".join(words)
    return ""
