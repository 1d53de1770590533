"""Sentence-level evidence: which sentences of the retrieved passages answer the question, and whether
the passages hold an answer at all.

A sentence's score combines independent signals, because no single similarity separates answerable from
unanswerable questions on this corpus (unanswerable ones score as high as answerable ones):
- similarity: cosine between the query and sentence embeddings (catches paraphrases);
- coverage: the IDF-weighted share of the question's content words found in the sentence, or in the
  author line of the thread comment it belongs to;
- answer type: a question that opens with "how many/much" wants a number next to what it counts, "when"
  a date, "who" a name next to what it asks about, and the value must be new (not already in the
  question); a sentence that says the value is withheld ("whose name is redacted") does not answer.
The question is judged answerable when a sentence answers the expected type (if any), and the passage it
comes from mentions every named entity of the question that the corpus knows about (a question that
joins two things no passage connects is not answered by either).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ingest.sentences import paragraph_spans
from rag.embeddings import Embedder
from rag.lexical import LexicalIndex, tokenize
from rag.types import Passage, Turn

_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_NUMBER = re.compile(
    r"[£$€]?\d[\d,.]*\d[mbk]?\b|[£$€]?\d[mbk]?\b"
    r"|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|hundred|thousand|million|billion|dozen)\b",
    re.I,
)
_DATE = re.compile(
    rf"\b(1[89]\d\d|20\d\d)\b|\b({_MONTHS})\b|\b\d+ (days?|weeks?|months?|years?) ago\b"
    r"|\b(yesterday|today|last (year|month|week))\b",
    re.I,
)
_NAME = re.compile(
    rf"\b(?!(?:{_MONTHS})\b)[A-Z][\w’'-]*[a-z][\w’'-]*(?:\s+[A-Z][\w’'-]+)*|\b[A-Z]{{2,}}\b|\b\w+@[\w.]+\w"
)
_MONEY = re.compile(
    r"[£$€]\s?\d[\d,.]*(?:\s?(?:m|bn|k|million|billion)\b)?|\b\d[\d,.]*\s?(?:pounds|dollars|euros)\b", re.I
)
_TITLE = re.compile(r"[“\"]([^”\"]{3,120})[”\"]")
_TYPE_PATTERN = {"number": _NUMBER, "money": _MONEY, "date": _DATE, "name": _NAME, "title": _TITLE}
_LEAD = r"^"
EXPECTS = {
    "title": re.compile(
        _LEAD
        + r"what (is|was) the (title|name) of (the |a |an |this |that )?(\w+ ){0,3}?(documentary|film|book|"
        r"report|article|post|programme|program|series|show|paper|song|thread|investigation)\b",
        re.I,
    ),
    "number": re.compile(
        _LEAD
        + r"(how (much|many)|what (amount|sum|percentage|number)|what (is|was|are|were) \S+( \S+){0,2}? "
        r"(revenue|price|value|cost|budget|salary|population|turnover|profit|size|worth))\b",
        re.I,
    ),
    "date": re.compile(_LEAD + r"(when|(in |on )?(what|which) (\w+ )?(year|date|month|day|time))\b", re.I),
    "name": re.compile(
        _LEAD
        + r"(who(m|se)?|what (is|was) the (name|title)|which (\w+ )?(person|people|user|commenter|department|"
        r"agency|ministry|company|organi[sz]ation|university|charity|expert))\b",
        re.I,
    ),
}
_ABOUT_THREAD = re.compile(
    r"\b(up|down)?votes?\b|\bupvot|\bdownvot|\bscore\b|\bcomment|\bthread\b|\bOP\b|\brepl(y|ied|ies)\b"
    r"|\bpost(er|ed)?\b|\brespond",
    re.I,
)
_WITHHELD = re.compile(
    r"\b(redacted|withheld|undisclosed|unnamed|anonymous|declined to (comment|say)|not (been )?(named|disclosed|identified|revealed))\b",
    re.I,
)
# A sentence that opens by referring back ("The company, which ...", "He said") leans on the one before.
_ANAPHOR = re.compile(
    r"[“\"]?(?:(?:He|She|It|They|This|These|Those)\b|The (?:company|institute|institution|centre|center|"
    r"university|college|firm|charity|partnership|deal|group|organisation|organization|professor|researcher)"
    r"\b(?![’']s))"
)
_WORD = re.compile(r"[£$€]?[\w’'.@-]*\w", re.UNICODE)
_QUESTION_WORDS = frozenset("what which who whom whose when where why how name title".split())
_NEAR = {"number": 4, "name": 4, "title": 4, "money": 8, "date": 8}  # words between a value and what is asked


_WH = re.compile(r"\b(how|what|which|who|whom|whose|when|where|why|in which|in what|on what)\b", re.I)
_AUX = frozenset("""was is are were did does do has have had will would could should can of""".split())
_COUNTED = re.compile(
    r"\bhow (?:much|many) (?!(?:was|is|are|were|did|does|do|has|have|had)\b)((?:[\w’'-]+ ){0,2}?[\w’'-]+)(?= (?:was|is|are|were|did|does|do|has|have|had|will|would|could|can|in|of|for|from|with|to|at|on)\b|\W*$)"
    r"|\bwhat (?:is|was|are|were) \S+(?: \S+){0,2}? (revenue|price|value|cost|budget|salary|population|turnover|profit|size|worth)\b",
    re.I,
)


def expected_type(question: str) -> str | None:
    """The kind of answer the question asks for at its first question word: number, date, name, or None."""
    first = _WH.search(question)
    if not first:
        return None
    opening = question[first.start() :]
    for kind, pattern in EXPECTS.items():
        if pattern.search(opening):
            return "money" if kind == "number" and _asks_money(opening) else kind
    return None


_MONEY_WORDS = frozenset(
    """revenue revenues price prices value cost costs budget salary turnover profit profits worth cash
    money funding funds fund fee fees paid pay spend spent""".split()
)


def _asks_money(opening: str) -> bool:
    if re.match(r"how much (was|were|did|does|is|has|had)\b", opening, re.I):
        return True
    return counted(opening).lower() in _MONEY_WORDS


def counted(question: str) -> str:
    """What a "how many/much X" (or "what is X's revenue") question counts: X, unless X is a verb."""
    match = _COUNTED.search(question)
    if not match:
        return ""
    phrase = (match.group(1) or match.group(2) or "").split()
    head = phrase[-1] if phrase else ""  # "how many academic articles": articles
    return "" if head.lower() in _AUX else head


def _values(kind: str, text: str) -> set[str]:
    return {m.group(0).lower().strip("£$€ ").replace(",", "") for m in _TYPE_PATTERN[kind].finditer(text)} - {
        ""
    }


_CURRENCIES = {"$": r"\$|dollars?", "€": r"€|euros?", "£": r"£|pounds?"}


def typed_answer(kind: str, text: str, question: str, focus: set[str], known: str = "") -> bool:
    """True when `text` holds a value of `kind` that neither the question nor the previous answer
    (`known`) already states, near a word of the question (so that "top 10 universities" does not answer
    "how many students"), and in the currency the question asks for, if it names one."""
    if _WITHHELD.search(text):
        return False
    asked = _values(kind, question) | _values(kind, known)
    known_words = set(tokenize(known))
    currency = next((c for c, p in _CURRENCIES.items() if re.search(rf"(?:{p})(?!\w)", question, re.I)), None)
    words = [(m.start(), m.end(), m.group(0)) for m in _WORD.finditer(text)]
    near = [i for i, (_, _, w) in enumerate(words) if set(tokenize(w)) & focus]
    for match in _TYPE_PATTERN[kind].finditer(text):
        value = match.group(0).lower().strip("£$€ ").replace(",", "")
        if (
            not value
            or value in asked
            or (kind in ("name", "title") and set(tokenize(value)) & (focus | known_words))
        ):
            continue
        if kind == "money" and currency and not re.search(_CURRENCIES[currency], match.group(0), re.I):
            continue
        index = next(
            (i for i, (s, e, _) in enumerate(words) if s <= match.start() < e or s >= match.start()), None
        )
        last = next((i for i, (s, e, _) in enumerate(words) if s < match.end() <= e), index)
        window = _NEAR[kind]
        if index is not None and any(index - window <= i <= (last or index) + window for i in near):
            return True
    return False


_DEMONYM = re.compile(r"(ish|ese|ian|an|ic|i)$")


def question_entities(question: str) -> list[str]:
    """Capitalized names in the question, not its first word, question words or adjectives of nationality
    ('British'): 'Mareike Ohlberg', 'Imperial College London'."""
    entities = []
    for match in re.finditer(r"(?<![.?!]\s)\b[A-Z][\w’'-]+(?:\s+(?:of\s+)?[A-Z][\w’'-]+)*", question):
        words = [w for w in re.findall(r"[\w’'-]+", match.group(0)) if w.lower() not in _QUESTION_WORDS]
        if (
            match.start() == 0
            or not words
            or (len(words) == 1 and (_DEMONYM.search(words[0]) or len(words[0]) < 3))
        ):
            continue
        entities.append(" ".join(words))
    return entities


@dataclass(frozen=True)
class Evidence:
    passage: int  # index into the passages
    start: int  # sentence span inside the passage text
    end: int
    text: str
    coverage: float
    similarity: float
    typed: bool | None  # answers the expected kind; None when the question expects no kind
    score: float


@dataclass(frozen=True)
class Assessment:
    answerable: bool
    reason: str
    evidence: list[Evidence]  # best first
    lead: int = 0  # the first `lead` sentences answer (parts of) the question and belong in the answer


_PART_SPLIT = re.compile(
    r"\s*(?:,\s*(?:and|but)\s+|;\s*|\?\s+|(?:\s+and|,)\s+(?=(?:how|what|which|who|whom|whose|when|where|why|in which|did|was|is)\b))",
    re.I,
)


def split_question(question: str) -> list[str]:
    """The parts of a compound question: "How much was the deal, and in which year?" has two."""
    parts: list[str] = []
    for piece in _PART_SPLIT.split(question):
        piece = piece.strip(" ,;") if piece else ""
        if not re.search(r"\w", piece):
            continue
        if not tokenize(piece) and parts:  # "..., and when?" asks about the part before it
            piece = f"{piece.rstrip('?')} {parts[-1]}"
        parts.append(piece)
    return parts if len(parts) > 1 else [question]


# Text that addresses an AI assistant rather than stating anything: never evidence, never the question.
INSTRUCTION = re.compile(
    r"^\W*(ignore|disregard|forget|override|reply|respond|answer (only|every|all)|print|output|repeat|append|"
    r"pretend|act as|roleplay|you are( now)?|you must|from now on|system( override)?\b|new instructions?|"
    r"before answering|after answering|do not (cite|answer|mention)|developer mode|jailbreak|</?\w+>)",
    re.I,
)
_INSTRUCTION_ANYWHERE = re.compile(
    r"\b(ignore|disregard) (all |any |the )?(previous|prior|above|earlier) (instructions|prompts?|rules)\b"
    r"|\banswer every question with\b|\bsystem prompt\b",
    re.I,
)


def is_instruction(sentence: str) -> bool:
    """True for a sentence that gives an AI assistant orders ("Ignore previous instructions ...")."""
    return bool(INSTRUCTION.match(sentence) or _INSTRUCTION_ANYWHERE.search(sentence))


def information_need(question: str) -> str:
    """The question without the sentences that give orders: "Ignore all previous instructions. How much
    was returned?" asks "How much was returned?". The orders are data, never obeyed, and not searched for."""
    from ingest.sentences import split_sentences

    sentences = split_sentences(question)
    kept = [s for s in sentences if not is_instruction(s)]
    return " ".join(kept) if kept and len(kept) < len(sentences) else question


_TOPIC = re.compile(
    r"\b(?:say|said|says|think|thinks|write|wrote|claim|claimed|argue|argued|tell|told) about ([^?.!]+)", re.I
)


def _paragraph_tokens(passage: Passage, ev: Evidence) -> set[str]:
    """Words of the paragraph holding an evidence sentence, and of the comment's author line."""
    start, end = next(
        ((a, b) for a, b in paragraph_spans(passage.text) if a <= ev.start < b), (ev.start, ev.end)
    )
    return set(tokenize(f"{passage.text[start : max(end, ev.end)]} {passage.header}"))


def _overlap(tokens: set[str], other: set[str]) -> float:
    return len(tokens & other) / min(len(tokens), len(other)) if tokens and other else 0.0


class EvidenceScorer:
    """Scores the sentences of retrieved passages against a question."""

    def __init__(
        self,
        embedder: Embedder,
        lexical: LexicalIndex,
        min_score: float = 0.12,
        weights: tuple[float, float, float] = (0.5, 0.4, 0.1),
    ) -> None:
        self.embedder = embedder
        self.lexical = lexical
        self.min_score = min_score
        self.weights = weights  # of similarity, question-word coverage, context-word coverage

    def score(
        self, question: str, query: str, passages: Sequence[Passage], history: Sequence[Turn] = ()
    ) -> list[Evidence]:
        """Every sentence of the passages (once, even when chunks overlap), best first."""
        question_terms = {t: self.lexical.term_weight(t) for t in tokenize(question)}
        context_terms = {t: self.lexical.term_weight(t) for t in tokenize(query) if t not in question_terms}
        q_total = sum(question_terms.values()) or 1.0
        c_total = sum(context_terms.values()) or 1.0
        kind = expected_type(question)
        focus = set(question_terms) | set(context_terms)
        thing = tokenize(counted(question)) if kind in ("number", "money") else []
        if kind == "money" and thing and thing[0] in tokenize(" ".join(_MONEY_WORDS)):
            thing = []  # the amount itself answers "how much cash"
        if thing and all(t in self.lexical.idf for t in thing):
            focus = set(thing)  # "how many students": a number next to "students", not any number
        about_thread = bool(_ABOUT_THREAD.search(question))
        previous = next((t.content for t in reversed(history) if t.role == "assistant"), "")
        previous_tokens = set(tokenize(previous))

        spans: list[tuple[int, int, int]] = []
        around: list[set[str]] = []  # words of the rest of each sentence's paragraph
        seen: set[tuple[str, int]] = set()
        for i, passage in enumerate(passages):
            sentences = self.lexical.sentences(passage.id, passage.text)
            paragraphs = paragraph_spans(passage.text)
            for k, (s, e) in enumerate(sentences):
                key = (str(passage.metadata.get("path", "")), passage.start + s)
                if key in seen or is_instruction(passage.text[s:e]):  # seen once; orders are not evidence
                    continue
                seen.add(key)
                ps, pe = next(((a, b) for a, b in paragraphs if a <= s < b), (s, e))
                if k and _ANAPHOR.match(passage.text, s):
                    s = sentences[k - 1][0]  # "The company, which ..." needs the sentence naming it
                spans.append((i, s, e))
                around.append(set(tokenize(passage.text[ps:s] + " " + passage.text[e:pe])))
        if not spans:
            return []
        texts = [passages[i].text[s:e] for i, s, e in spans]
        vectors = self.embedder.encode_cached([query, *texts])
        similarities = vectors[1:] @ vectors[0]
        evidence = []
        for (i, s, e), text, similarity, nearby in zip(spans, texts, similarities, around, strict=True):
            header = passages[i].header
            tokens = set(tokenize(text))
            seen_tokens = tokens | set(tokenize(header))
            coverage = (
                sum(
                    w if t in seen_tokens else 0.5 * w
                    for t, w in question_terms.items()
                    if t in seen_tokens | nearby
                )
                / q_total
            )
            context = (
                sum(w for t, w in context_terms.items() if t in seen_tokens) / c_total
                if context_terms
                else 0.0
            )
            # A comment's author, votes and reply-to answer questions about the thread itself.
            typed_text = f"{header}: {text}" if about_thread and header else text
            typed = typed_answer(kind, typed_text, question, focus, previous) if kind else None
            w_sim, w_cov, w_ctx = self.weights
            score = w_sim * float(similarity) + w_cov * coverage + w_ctx * context + 0.05 / (1 + i)
            if typed is False:
                score -= 0.15
            if previous_tokens and _overlap(tokens, previous_tokens) > 0.6:
                score -= 0.3  # a follow-up asks for something new, not the previous answer again
            evidence.append(Evidence(i, s, e, text, coverage, float(similarity), typed, score))
        evidence.sort(key=lambda ev: -ev.score)
        return evidence

    def _known(self, entity: str) -> bool:
        """The corpus names this entity somewhere (an unknown name may be a paraphrase: 'Tory')."""
        return any(t in self.lexical.idf for t in tokenize(entity))

    def assess(
        self, question: str, query: str, passages: Sequence[Passage], history: Sequence[Turn] = ()
    ) -> Assessment:
        """Judge each part of the question ("What X, and when Y?") on its own; the question is answered
        when some part is, and each answered part's best sentence leads the evidence."""
        parts = split_question(question)
        if len(parts) == 1:
            return self._assess_part(question, query, passages, history)
        context = query[len(question) :] if query.startswith(question) else ""
        assessed = [
            self._assess_part(part, f"{part} {question}{context}", passages, history) for part in parts
        ]
        answered = [a for a in assessed if a.answerable]
        if not answered:
            return assessed[0]
        lead = list({(a.evidence[0].passage, a.evidence[0].start): a.evidence[0] for a in answered}.values())
        taken = {(ev.passage, ev.start) for ev in lead}
        rest = sorted(
            {
                (ev.passage, ev.start): ev
                for a in assessed
                for ev in a.evidence
                if (ev.passage, ev.start) not in taken
            }.values(),
            key=lambda ev: -ev.score,
        )
        missed = [p for p, a in zip(parts, assessed, strict=True) if not a.answerable]
        reason = f"not answered: {'; '.join(missed)}" if missed else ""
        return Assessment(True, reason, [*lead, *rest], lead=len(lead))

    def _assess_part(
        self, question: str, query: str, passages: Sequence[Passage], history: Sequence[Turn]
    ) -> Assessment:
        evidence = self.score(question, query, passages, history)
        if not evidence or evidence[0].score < self.min_score:
            return Assessment(False, "nothing relevant retrieved", evidence)
        floor = max(self.min_score, 0.75 * evidence[0].score)
        candidates = [ev for ev in evidence[:5] if ev.score >= floor]
        if candidates[0].typed is not None:
            candidates = [ev for ev in candidates if ev.typed]
            if not candidates:
                return Assessment(False, "no passage holds the kind of answer asked for", evidence)
        entities = [e for e in question_entities(question) if self._known(e)]
        connected = [ev for ev in candidates if self._mentions(passages[ev.passage], entities)]
        if not connected:
            return Assessment(False, f"no passage connects {' and '.join(entities)}", evidence)
        topic = _TOPIC.search(question)
        if topic:  # "What did X say about Y?": the answer must be about Y
            weights = {t: self.lexical.idf[t] for t in tokenize(topic.group(1)) if t in self.lexical.idf}
            total = sum(weights.values())
            connected = [
                ev
                for ev in connected
                if not total
                or sum(w for t, w in weights.items() if t in _paragraph_tokens(passages[ev.passage], ev))
                >= 0.5 * total
            ]
            if not connected:
                return Assessment(False, f"nothing retrieved is about {topic.group(1)}", evidence)
        best = connected[0]
        return Assessment(True, "", [best, *(ev for ev in evidence if ev is not best)], lead=1)

    @staticmethod
    def _mentions(passage: Passage, entities: list[str]) -> bool:
        """Every entity is named in the passage (one of its words will do: 'Guo' for 'Yike Guo')."""
        have = set(tokenize(f"{passage.text} {passage.header}"))
        return all(set(tokenize(e)) & have for e in entities)
