"""Sentence-level evidence: every sentence of the retrieved passages, scored against the question.

Signals, each the same for any corpus:
- similarity: cosine between the query and the sentence (read with its section heading) embeddings;
- coverage: the IDF-weighted share of the question's content words found in the sentence itself;
- context coverage: the same share over the sentence together with where it sits (page title, section
  path, its paragraph and the paragraphs either side, a comment's author line);
- answer type: when the question asks for a kind of value (`rag.answertypes`), whether the sentence
  states one that the question does not already give;
- follow-ups: nearness to what the previous answer quoted (same paragraph), and a penalty for repeating it;
- the reader (`rag.reader`, a model trained here): the probability that the sentence, read with where it
  sits, answers the question (a follow-up's question with the conversation's terms).
The weights are settings (`answer.*`), fitted by `rag eval --calibrate`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rag.answertypes import accepted, expected_kind, focus, new_values, page_topic, topic_words
from rag.index.embeddings import Embedder
from rag.index.lexical import LexicalIndex
from rag.maths import soft_coverage
from rag.orders import is_order
from rag.reader import Candidate, Reader
from rag.settings import AnswerSettings
from rag.text import MARKER, paragraph_spans, split_question, split_sentences, tokenize
from rag.types import Passage, Turn, context_line


@dataclass(frozen=True)
class Evidence:
    passage: int  # index into the passages
    start: int  # sentence span inside the passage text
    end: int
    text: str
    similarity: float
    coverage: float  # question words in the sentence
    context: float  # question words in the sentence or where it sits
    typed: bool | None  # states a value of the kind asked for; None when the question asks no kind
    score: float
    near: bool = False  # in a follow-up: in the paragraph the previous answer quoted
    repeat: bool = False  # in a follow-up: quoted by the previous answer
    reader: float = 0.0  # the reader's probability that the sentence answers the question


@dataclass(frozen=True)
class Features:
    """What the answerability judge sees of a question: its best evidence and how much of the question
    the corpus knows at all."""

    similarity: float
    context: float
    focus_context: float  # share of what the question asks about ("the monthly maximum") in its context
    focus_similarity: float  # similarity of what the question asks about and the sentence
    soft_context: float  # like `context`, a missing word counting its closest word's similarity
    soft_focus: float  # the same for the focus
    typed: float  # 1 when the question asks for a kind of value and the sentence states one
    reader: float  # the reader's probability that the sentence answers the question

    def vector(self) -> list[float]:
        return [
            self.similarity,
            self.context,
            self.focus_context,
            self.focus_similarity,
            self.soft_context,
            self.soft_focus,
            self.typed,
            self.reader,
        ]


@dataclass(frozen=True)
class Assessment:
    evidence: list[Evidence]  # best first; the first `lead` answer (parts of) the question
    features: Features | None  # of the best evidence (None when nothing was retrieved or none has the type)
    lead: int = 1
    reason: str = ""


def split_asking(question: str) -> tuple[str, str]:
    """(the sentence that asks, what the user said before it): "I joined six months ago. Can I use
    parental leave?" asks "Can I use parental leave?"."""
    sentences = split_sentences(question)
    if len(sentences) < 2:
        return question, ""
    asking = next((n for n, x in enumerate(sentences) if x.rstrip().endswith("?")), len(sentences) - 1)
    return " ".join(sentences[asking:]), " ".join(sentences[:asking])


def question_parts(question: str, query: str) -> list[tuple[str, str]]:
    """(part, its retrieval query) for each part of the question that evidence is sought for: "which
    page covers X?" seeks X, and "What X, and when Y?" seeks X and Y."""
    topic = page_topic(question)
    if topic:
        query = query.replace(question, topic) if question in query else topic
        question = topic
    parts = split_question(question)
    if len(parts) == 1:
        return [(question, query)]
    context = query[len(question) :] if query.startswith(question) else ""
    return [(part, f"{part}{context}") for part in parts]


def normalized(text: str) -> str:
    """Text compared without markers, case and spacing ("... at any time [1]." is "... at any time.")."""
    spaced = re.sub(r"\s+", " ", MARKER.sub(" ", text))
    return re.sub(r"\s+(?=[.,;:!?])", "", spaced).strip().casefold()


def evidence_score(ev: Evidence, s: AnswerSettings) -> float:
    """A sentence's score from its signals and the weights in the settings."""
    score = s.w_similarity * ev.similarity + s.w_coverage * ev.coverage + s.w_context * ev.context
    score += s.w_reader * ev.reader
    if ev.typed is False:
        score -= s.untyped_penalty
    if ev.near:
        score += s.follow_bonus
    if ev.repeat:
        score -= s.repeat_penalty  # a follow-up asks for something new
    return score


class EvidenceScorer:
    """Scores the sentences of retrieved passages against a question (see the module docstring)."""

    def __init__(
        self,
        embedder: Embedder,
        lexical: LexicalIndex,
        settings: AnswerSettings,
        reader: Reader | None = None,
    ) -> None:
        self.embedder = embedder
        self.lexical = lexical
        self.settings = settings
        self.reader = reader
        self._cache: OrderedDict[tuple[object, ...], Assessment] = OrderedDict()

    def _weights(self, text: str) -> dict[str, float]:
        return {t: self.lexical.term_weight(t) for t in tokenize(text)}

    def score(
        self, question: str, query: str, passages: Sequence[Passage], history: Sequence[Turn] = ()
    ) -> list[Evidence]:
        """Every sentence of the passages (once, even when chunks overlap), best first."""
        s = self.settings
        asking, preamble = split_asking(question)
        terms = self._weights(topic_words(asking)) or self._weights(asking)
        # what the user said before asking, and a follow-up's context, count as context
        own = set(tokenize(asking))
        extra = {t: w for t, w in self._weights(f"{preamble} {query}").items() if t not in own}
        total = sum(terms.values()) or 1.0
        extra_total = sum(extra.values()) or 1.0
        kind = expected_kind(question)
        asked = self._weights(focus(question))
        asked_total = sum(asked.values())
        previous = next((t.content for t in reversed(history) if t.role == "assistant"), "")
        quoted = {
            normalized(x) for x in re.split(r"(?<=[.!?”\"])\s+|\n+", MARKER.sub(" ", previous)) if len(x) > 20
        }
        known = question  # a value the question states is no answer (the previous answer's may be: "When?")

        spans: list[tuple[int, int, int]] = []
        contexts: list[set[str]] = []
        near_previous: list[bool] = []
        seen: set[tuple[str, int]] = set()
        for i, passage in enumerate(passages):
            sentences = self.lexical.sentences(passage.id, passage.text)
            paragraphs = paragraph_spans(passage.text)
            where = set(tokenize(context_line(passage.metadata)))
            repeated = {
                p for p, (a, b) in enumerate(paragraphs)
                if any(normalized(passage.text[x:y]) in quoted for x, y in sentences if a <= x < b)
            }  # fmt: skip
            for a, b in sentences:
                key = (str(passage.metadata.get("path", passage.id)), passage.start + a)
                if key in seen or is_order(passage.text[a:b]):  # seen once; orders are never evidence
                    continue
                seen.add(key)
                p = next((n for n, (pa, pb) in enumerate(paragraphs) if pa <= a < pb), 0)
                # its paragraph and the ones either side (a list's lead-in, an item's neighbours)
                lo, hi = max(p - 1, 0), min(p + 2, len(paragraphs))
                nearby = passage.text[paragraphs[lo][0] : paragraphs[hi - 1][1]] if paragraphs else ""
                spans.append((i, a, b))
                contexts.append(where | set(tokenize(nearby)))
                near_previous.append(p in repeated)
        if not spans:
            return []
        texts = [passages[i].text[a:b] for i, a, b in spans]
        read = [
            f"{passages[i].section}: {t}" if passages[i].section else t
            for (i, _, _), t in zip(spans, texts, strict=True)
        ]
        vectors = self.embedder.encode_cached([query, *read])
        similarities = vectors[1:] @ vectors[0]
        readings = [0.0] * len(spans)
        if self.reader is not None:  # a follow-up is read with the conversation's terms
            candidates = [
                Candidate(i, a, b, t, context_line(passages[i].metadata))
                for (i, a, b), t in zip(spans, texts, strict=True)
            ]
            readings = self.reader.score(query if history else question, candidates)
        evidence = []
        for (i, a, b), text, similarity, around, near, reading in zip(
            spans, texts, similarities, contexts, near_previous, readings, strict=True
        ):
            tokens = set(tokenize(text))
            coverage = sum(w for t, w in terms.items() if t in tokens) / total
            context = sum(w for t, w in terms.items() if t in tokens | around) / total
            if extra:
                context = (
                    context + sum(w for t, w in extra.items() if t in tokens | around) / extra_total
                ) / 2
            typed = bool(new_values(kind, text, known)) if accepted(kind) else None
            if typed and asked_total and kind in ("count", "quantity", "percent", "money"):
                # the value must be of what is counted: "how many students" is not answered by "top 10"
                here = tokens | set(tokenize(passages[i].section))
                typed = sum(w for t, w in asked.items() if t in here) / asked_total >= s.typed_focus
            # a follow-up that asks for a kind of value may find it in what was quoted ("When was that?");
            # one that asks for more words ("What else?") wants something new
            repeat = normalized(text) in quoted and kind is None
            ev = Evidence(
                i, a, b, text, float(similarity), coverage, context, typed, 0.0, near, repeat, reading
            )
            evidence.append(replace(ev, score=evidence_score(ev, s)))
        evidence.sort(key=lambda ev: -ev.score)
        return evidence

    def features(self, question: str, best: Evidence, passage: Passage) -> Features:
        """The judge's view of the best evidence for `question`."""
        question = split_asking(question)[0]
        asked = focus(question)
        weights = self._weights(asked)
        total = sum(weights.values())
        where = f"{context_line(passage.metadata)} {passage.text}"
        around = set(tokenize(where))
        focus_context = sum(w for t, w in weights.items() if t in around) / total if total else 1.0
        if asked:
            vectors = self.embedder.encode_cached([asked, best.text])
            focus_similarity = float(vectors[0] @ vectors[1])
        else:
            focus_similarity = best.similarity
        soft_context = self.soft_coverage(topic_words(question), where)
        soft_focus = self.soft_coverage(asked, where) if asked else soft_context
        if best.typed:  # a value of the kind asked for is what the focus ("what time", "which year") wants
            focus_similarity = max(focus_similarity, best.similarity)
            focus_context, soft_focus = (
                max(focus_context, 0.5 * (1 + focus_context)),
                max(soft_focus, 0.5 * (1 + soft_focus)),
            )
        return Features(
            best.similarity,
            best.context,
            focus_context,
            focus_similarity,
            soft_context,
            soft_focus,
            1.0 if best.typed else 0.0,
            best.reader,
        )

    def excerpts(
        self,
        question: str,
        query: str,
        passages: Sequence[Passage],
        history: Sequence[Turn] = (),
        budget: int = 0,
    ) -> list[str]:
        """What an LLM is shown of each passage within about `budget` characters in all: the passage's
        best sentence, then the best sentences of any passage while the budget lasts, each passage's in
        document order with "…" where sentences are left out. Whole passages when they fit (or budget 0)."""
        if not budget or sum(len(p.text) for p in passages) <= budget:
            return [p.text for p in passages]
        evidence = self.score(question, query, passages, history)
        chosen: dict[int, list[Evidence]] = {}
        used = 0
        for ev in evidence:  # each passage's best sentence first: every marker keeps its meaning
            if ev.passage not in chosen:
                chosen[ev.passage] = [ev]
                used += len(ev.text)
        for ev in evidence:
            if used + len(ev.text) > budget:
                break
            if ev not in chosen[ev.passage]:
                chosen[ev.passage].append(ev)
                used += len(ev.text)
        texts = []
        for i, passage in enumerate(passages):
            text, last = "", 0
            for ev in sorted(chosen.get(i, []), key=lambda e: e.start):
                gap = passage.text[last : ev.start]
                text += (gap if not gap.strip() else " … ") if text else ("… " if gap.strip() else "")
                text += ev.text
                last = ev.end
            texts.append(text + (" …" if passage.text[last:].strip() else "") if text else passage.text)
        return texts

    def soft_coverage(self, question: str, text: str) -> float:
        """IDF-weighted share of the question's words in `text`, where a word that `text` lacks counts the
        embedding similarity of its closest word in `text` ("vessels" ~ "warships"): paraphrases keep
        their credit, questions about what the text never mentions do not."""
        import numpy as np

        words = list(dict.fromkeys(tokenize(question, stem=False)))
        if not words:
            return 1.0
        stems = {w: tokenize(w)[0] for w in words}
        present = set(tokenize(text))
        candidates = [w for w in dict.fromkeys(tokenize(text, stem=False)) if not w.isdigit()]
        credit = {w: 1.0 for w in words if stems[w] in present}
        missing = [w for w in words if w not in credit]
        if missing and candidates:
            vectors = self.embedder.encode_cached([*missing, *candidates])
            sims = vectors[: len(missing)] @ vectors[len(missing) :].T
            credit |= {w: float(max(0.0, np.max(row))) for w, row in zip(missing, sims, strict=True)}
        return soft_coverage(words, credit, {w: self.lexical.term_weight(stems[w]) for w in words})

    def assess(
        self, question: str, query: str, passages: Sequence[Passage], history: Sequence[Turn] = ()
    ) -> Assessment:
        """The evidence for each part of the question ("What X, and when Y?"), the best sentence of each
        part leading; features of the strongest answered part for the judge. Cached per question."""
        key = (question, query, tuple(p.id for p in passages), tuple(history))
        if key in self._cache:
            return self._cache[key]
        parts = question_parts(question, query)
        assessed = [self._assess_part(part, q, passages, history) for part, q in parts]
        answered = [a for a in assessed if a.lead]
        if len(parts) == 1 or not answered:
            result = assessed[0]
        else:
            lead = list(
                {(a.evidence[0].passage, a.evidence[0].start): a.evidence[0] for a in answered}.values()
            )
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
            best = max(answered, key=lambda a: a.evidence[0].score)
            result = Assessment([*lead, *rest], best.features, lead=len(lead))
        self._cache[key] = result
        while len(self._cache) > 64:
            self._cache.popitem(last=False)
        return result

    def _assess_part(
        self, question: str, query: str, passages: Sequence[Passage], history: Sequence[Turn]
    ) -> Assessment:
        evidence = self.score(question, query, passages, history)
        if not evidence:
            return Assessment([], None, 0, "nothing relevant retrieved")
        typed = [ev for ev in evidence if ev.typed is not False]
        if not typed:  # refused by type: the judge needs no features
            return Assessment(evidence, None, 0, "no passage states the kind of value asked for")
        best = typed[0]
        features = self.features(question, best, passages[best.passage])
        return Assessment([best, *(ev for ev in evidence if ev is not best)], features, 1)
