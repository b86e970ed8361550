"""What a question asks for: its parts, the answer type of each part, its key terms, the names
and the person it is about. Pure functions of the question text (and of :class:`CorpusStats`;
a ru/zh/kk question's words mapped onto the corpus's English words stand in for its English).

Names carry a role (:class:`Mention`: subject, place, source), so that
``direction_inverted(analysis.entities, sentence)`` can tell 'Kazakhs live in China' from the
question 'How many Chinese citizens live in Kazakhstan?', and ``entity_missing`` whether the
names asked about are in a quote or just before it.

``analyse(q).parts[i].text`` is a contiguous piece of ``q``; a question with one part has
``parts[0].text == q``. ``offers(kind, sentence, question)`` tells whether ``sentence`` holds an
answer of ``kind`` (a year, a date, a quantity, a person, a place) that ``question`` does not
already hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..channels.lexical import MONTHS, CorpusStats, tokenize
from ..channels.vocabulary import MappedWord

_QUESTION_WORDS = ("what which who whom whose when where why how many much long large big tall high year years "
                   "day date name exact number amount kind type did does do is was were are been according "
                   "document documents say mention")


@lru_cache(maxsize=1)
def question_terms() -> frozenset[str]:
    """Question words (stemmed as lexical.tokenize stems them) that carry no topic."""
    return frozenset(tokenize([_QUESTION_WORDS])[0])

YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_QUANTITY = re.compile(r"(\d+(?:[.,]\d+)*)\s*(%|[^\W\d_]+)?")
_DATE = re.compile(rf"\b(?:\d{{1,2}}\s+(?:{MONTHS})|(?:{MONTHS})\s+\d{{1,4}}|(?:{MONTHS})\b|1[0-9]{{3}}\b|20[0-9]{{2}}\b)", re.I)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w’'\-]+(?:\s+[A-Z][\w’'\-]+)*")

# (answer type, pattern over the lower-cased question); first match wins.
_TYPE_CUES = [
    ("year", r"\b(what|which|in what|in which) year\b|в каком году|в какой год|қай жыл|哪一年|哪年|什么年份|何年"),
    ("date", r"\bwhen\b|\bwhat (exact )?(day|date|month)\b|когда|какого числа|қашан|何时|什么时候|哪天|几月"),
    ("quantity", r"\bhow (many|much|long|large|big|tall|high|far|old)\b|\bwhat (percentage|share|amount|number)\b"
                 r"|\bwhat (?:is|was|are|were) the (?:\w+ )?(?:population|capacity|length|area|size|cost|price|budget|value)\b"
                 r"|сколько|какой процент|какова (сумма|высота|длина)|қанша|неше|多少|几|多高|多长|多大"),
    ("person", r"\bwho\b|\bwhose\b|\bwhom\b|\bwhat is the name of\b|\bname the\b|кто|кого|кім|谁"),
    ("place", r"\bwhere\b|\bin which (city|country|town|region|province)\b|где|куда|откуда|қайда|қай жерде|哪里|在哪|何处"),
]
# Types whose absence from the quoted sentences means the detail asked for is not given.
CHECKED_TYPES = ("year", "date", "quantity", "person")

# A unit the question names must come with the number: "in kilometres", "cubic metres", "how much … pay".
_UNIT_CUES = [
    (r"\bkilomet(er|re)s?\b|\bkm\b|километр|公里", r"kilomet|\bkm\b"),
    (r"\bcubic\b|кубическ|текше|立方", r"\bcubic\b"),
    (r"\btonn?es?\b|\bтонн|吨", r"\btonn?e"),
    (r"\bhectares?\b|гектар|公顷", r"\bhectare"),
    (r"\bpercent(age)?\b|\bper cent\b|%|процент|пайыз|百分", r"%|percent"),
    (r"\b(?:in|of) (?:us )?dollars\b|\busd\b|\$|доллар|美元", r"usd|\$|dollar"),
    (r"\btenge\b|тенге|теңге|坚戈", r"tenge"),
    (r"\byuan\b|\brmb\b|юан|人民币", r"yuan|rmb"),
    (r"\beuros?\b|евро|欧元", r"euro"),
    (r"\bmiles?\b|мил[ья]|英里", r"\bmile"),
    (r"\bfeet\b|\bfoot\b|фут|英尺", r"\bfeet|\bfoot"),
    (r"\bkilo(?:gram)?s?\b|\bkg\b|килограмм|公斤", r"kilogram|\bkg\b"),
    (r"\bsquare\b|квадратн|平方", r"square"),
    (r"\bhow much\b.*\b(pay|paid|cost|invest|loan|lend|lent|spend|spent|worth|price|amount|fine)",
     r"usd|\$|dollar|tenge|yuan|rmb|billion|million"),
]

# Where a two-part question splits: "Who founded it, and when?", "где … и сколько …", "… және қашан".
_QUESTION_WORD = (r"who|whom|whose|when|where|what|which|why|how|кто|кого|когда|где|куда|откуда|сколько|почему|"
                  r"зачем|какой|какая|какие|каком|какого|какую|каких|кім|қашан|қайда|қанша|неше|неге|қай")
# Where a question splits into parts: "…, and when?", "… and by what percentage …", "где … и сколько …",
# "… және бастапқыда неше …" (up to two lower-case words between the conjunction and the question
# word: not "Geology and Natural Resources who …"), and
# between two questions in one message ("…多少？其中…多少？").
_PART_SPLIT = re.compile(
    rf",?\s+(?:and|и|және|а также)\s+(?=(?:(?-i:[a-zа-яёәғқңөұүһі])[\w’'\-]*\s+){{0,2}}(?:{_QUESTION_WORD})\b)|(?<=[?？])\s*(?=\S)",
    re.I)
MAX_PARTS = 3

_FEMALE = re.compile(r"\b(she|her|hers|herself|woman|women|mother|wife|daughter)\b", re.I)
_MALE = re.compile(r"\b(he|his|him|himself|man|father|husband|son)\b", re.I)
_FEMALE_PRONOUN = re.compile(r"\b(she|her|hers|herself)\b", re.I)
_MALE_PRONOUN = re.compile(r"\b(he|his|him|himself)\b", re.I)


@dataclass(frozen=True)
class Part:
    """One part of a question: its text, its answer type and its own key terms."""

    text: str
    kind: str | None
    terms: tuple[str, ...]


@dataclass(frozen=True)
class Mention:
    """A name in a text, lower-cased and in English ('kazakhstan', 'chinese'; a non-English
    question's names as the corpus words they map to), and its role: 'place' after 'in', 'to',
    'into' ('в', 'на', 'к'; Kazakh locative or dative endings; '在', '到', '向'), 'source' after
    'from' ('из', 'от'; '从'), else 'subject'."""

    name: str
    role: str


@dataclass(frozen=True)
class Analysis:
    """Everything the answer stage needs to know about a question."""

    question: str
    parts: tuple[Part, ...]
    terms: tuple[str, ...]  # key terms of the whole question (stemmed, question words removed)
    years: tuple[str, ...]
    units: tuple[str, ...]  # patterns a supporting sentence must match
    persons: tuple[str, ...] = ()  # lower-cased name words of the question with a known gender
    gender: str | None = None  # 'f' or 'm': whom the question is about, when it can tell
    unseen: tuple[str, ...] = field(default=())  # capitalised words the corpus never mentions
    counted: frozenset[str] = frozenset()  # what a quantity question counts or measures (stems)
    roles: frozenset[str] = frozenset()  # the role a 'who' question asks to name (stems)
    entities: tuple[Mention, ...] = ()  # the names it asks about, in English, with their roles

    @property
    def kind(self) -> str | None:
        return next((p.kind for p in self.parts if p.kind), None)


def answer_type(question: str) -> str | None:
    """'year', 'date', 'quantity', 'person', 'place' or None, from the question words."""
    q = question.lower()
    for kind, pattern in _TYPE_CUES:
        if re.search(pattern, q):
            return kind
    return None


def required_units(question: str) -> list[str]:
    """Patterns a supporting sentence must match for the units or money the question asks for."""
    q = question.lower()
    return [need for cue, need in _UNIT_CUES if re.search(cue, q)]


def key_terms(question: str) -> list[str]:
    return [t for t in dict.fromkeys(tokenize([question])[0]) if t not in question_terms()]


def split_parts(question: str) -> list[str]:
    """The question cut where another question word starts a new clause ("…, and when?",
    "Where and when …", "… and by what percentage …") or another question starts; at most
    MAX_PARTS parts, each a contiguous piece of the question."""
    pieces = [p.strip(" ,?？") for p in _PART_SPLIT.split(question, maxsplit=MAX_PARTS - 1)]
    return pieces if len(pieces) >= 2 and all(pieces) else [question]


def unseen_names(question: str, stats: CorpusStats) -> list[str]:
    """Latin-script capitalised words of the question (past its first word) that the corpus, its
    titles, authors and publishers never mention: 'Khorgos', 'Peru', 'iPhone'. The initials of a
    name of the corpus ('CIS' for 'Commonwealth of Independent States') and a misspelling of a
    corpus word of six letters or more (one edit: 'Kazakstan') count as mentioned."""
    words = re.findall(r"[A-Za-z][A-Za-z’'\-]*", question)[1:]
    names = []
    for word in words:
        stem = re.sub(r"(’s|'s|’|')$", "", word)
        if not any(ch.isupper() for ch in stem) or stem in stats.acronyms:
            continue
        if any(part and part.lower() not in stats.words and not _misspelt(part.lower(), stats.words)
               for part in stem.split("-")):
            names.append(stem)
    return names


def _misspelt(word: str, known: frozenset[str]) -> bool:
    """Is ``word`` (six letters or more) one edit away from a known word of its length ± 1?"""
    if len(word) < 6:
        return False
    return any(abs(len(k) - len(word)) <= 1 and _one_edit(word, k) for k in known)


def _one_edit(a: str, b: str) -> bool:
    """Do ``a`` and ``b`` differ by one inserted, deleted or replaced letter?"""
    if len(a) > len(b):
        a, b = b, a
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a))
    return a[i + (len(a) == len(b)):] == b[i + 1:]


def question_gender(question: str, stats: CorpusStats) -> tuple[tuple[str, ...], str | None]:
    """The named people of the question that the corpus genders, and the question's gender:
    from its own pronouns ('her', 'he'), else from the corpus's pronouns for the named person."""
    words = [w.lower() for w in re.findall(r"[A-Z][a-z’'\-]+", question)]
    persons = tuple(w for w in words if w in stats.genders)
    if _FEMALE.search(question) and not _MALE.search(question):
        return persons, "f"
    if _MALE.search(question) and not _FEMALE.search(question):
        return persons, "m"
    genders = {stats.genders[w] for w in persons}
    return persons, (genders.pop() if len(genders) == 1 else None)


def analyse(question: str, stats: CorpusStats, mapped: list[MappedWord] | None = None) -> Analysis:
    """What ``question`` asks. A non-English question's key terms and names are read from
    ``mapped`` (its content words with the corpus words nearest to them in the multilingual
    model, :func:`kzqa.channels.vocabulary.map_words`): the same checks then apply to it."""
    if mapped is None:
        parts = tuple(Part(p, answer_type(p), tuple(key_terms(p))) for p in split_parts(question))
        terms, entities = tuple(key_terms(question)), tuple(english_mentions(question))
    else:
        kept = [m for m in mapped if m.trusted]
        pieces, at = [], 0
        for piece in split_parts(question):
            start = question.find(piece, at)
            at = start + len(piece)
            pieces.append((piece, start, at))
        parts = tuple(Part(p, answer_type(p), tuple(key_terms(" ".join(m.word for m in kept if s <= m.start < e))))
                      for p, s, e in pieces)
        terms = tuple(key_terms(" ".join(m.word for m in kept)))
        entities = tuple(Mention(m.word, mapped_role(question, m)) for m in kept if m.word in stats.names)
    persons, gender = question_gender(question, stats)
    return Analysis(question, parts, terms, tuple(YEAR.findall(question)),
                    tuple(required_units(question)), persons, gender, tuple(unseen_names(question, stats)),
                    counted_terms(question), role_terms(question), entities)


# ---------------------------------------------------------------- names and their direction

_PLACE_BEFORE = re.compile(r"(?:\b(?:in|into|to|towards|within|inside)\s+(?:the\s+)?(?:[a-z]+ern\s+)?|"
                           r"(?<![\w])(?:в|во|на|к|ко|до)\s+|[在到向至往入])$", re.I)
_SOURCE_BEFORE = re.compile(r"(?:\b(?:from|left|leave|leaving|fled)\s+(?:the\s+)?(?:[a-z]+ern\s+)?|"
                            r"(?<![\w])(?:из|от|со)\s+|从)$", re.I)
_KAZAKH_PLACE = re.compile(r"(?:да|де|та|те|нда|нде|ға|ге|қа|ке|на|не|а|е)$")
_KAZAKH_SOURCE = re.compile(r"(?:дан|ден|тан|тен|нан|нен)$")
_NAME_RUN = re.compile(r"[A-Z][\w’'\-]*(?:\s+(?:of\s+)?[A-Z][\w’'\-]*)*")
_NOT_NAMES = frozenset("how what which who whom whose when where why is was are were did does do has have had can "
                       "could would should will in on at the a an according among besides after before during "
                       "since for".split())


def _role_before(prefix: str) -> str:
    if _SOURCE_BEFORE.search(prefix):
        return "source"
    return "place" if _PLACE_BEFORE.search(prefix) else "subject"


def english_mentions(text: str) -> list[Mention]:
    """The names of an English text, a run of capitalised words each ('Xi Jinping',
    'China National Petroleum Corporation'; possessives cut, question words and sentence
    openers such as 'The' or 'According' left out), lower-cased, with the role the words
    before the run give it: 'How many Chinese citizens live in Kazakhstan?' → chinese
    (subject), kazakhstan (place)."""
    out = []
    for m in _NAME_RUN.finditer(text):
        words = [_POSSESSIVE.sub("", w).lower() for w in m.group(0).split()]
        while words and words[0] in _NOT_NAMES:
            words = words[1:]
        words = [w for w in words if w != "of"]
        if words and len("".join(words)) > 2:
            out.append(Mention(" ".join(words), _role_before(text[max(0, m.start() - 30):m.start()])))
    return out


def mapped_role(question: str, m: MappedWord) -> str:
    """The role of a mapped word in a Russian, Kazakh or Chinese question: from the preposition
    or character before it, or (Kazakh) from its case ending ('Қытайда' in China: place)."""
    role = _role_before(question[max(0, m.start - 6):m.start])
    if role == "subject" and re.search("[әғқңөұүһі]", question, re.I) and len(m.token) > 4:
        if _KAZAKH_SOURCE.search(m.token.lower()):
            return "source"
        if _KAZAKH_PLACE.search(m.token.lower()):
            return "place"
    return role


def _same_word(a: str, b: str) -> bool:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n >= 4 and n >= min(len(a), len(b)) - 1


def same_name(a: str, b: str) -> bool:
    """One name in two forms: a word of one is a form of a word of the other ('china' and
    'chinese', 'kazakh' and 'kazakhstan', 'xi jinping' and 'jinping': a shared start of at
    least four letters covering all but one letter of the shorter word)."""
    return any(_same_word(x, y) for x in a.split() for y in b.split())


def direction_inverted(question: tuple[Mention, ...], sentence: str) -> bool:
    """Does ``sentence`` state the question's relation the other way round? True when two names
    A and B have different roles in the question (subject, place, source) and the sentence
    gives A only other roles than its own, among them B's, and B only other roles than its
    own, among them A's: 'How many Chinese citizens live in Kazakhstan?' against 'An estimated
    1.5 million Kazakhs live in China.', 'fled from Kazakhstan into Xinjiang' against 'left
    Xinjiang and crossed into Kazakhstan'. (The check is symmetric in A and B.)"""
    said = english_mentions(sentence)

    def roles(name: str) -> set[str]:
        return {m.role for m in said if same_name(m.name, name)}

    for a in question:
        for b in question:
            if a.role == b.role or same_name(a.name, b.name):
                continue
            ra, rb = roles(a.name), roles(b.name)
            if b.role in ra and a.role in rb and a.role not in ra and b.role not in rb:
                return True
    return False


def entity_missing(analysis: Analysis, sentence: str, before: str, common: frozenset[str]) -> bool:
    """Is a name the question asks about (other than the corpus's common ones: 'China',
    'Kazakhstan') in neither ``sentence`` nor ``before`` it (what a reader has just read: the
    sentence before, the section heading, the document's title)? A name of several words is
    there when one of its own words is."""
    context = re.findall(r"[a-z][a-z’'\-]+", f"{before} {sentence}".lower())
    for mention in analysis.entities:
        own = [w for w in mention.name.split() if len(w) > 2 and not set(tokenize([w])[0]) <= common]
        if own and not any(_same_word(w, c) for w in own for c in context):
            return True
    return False


# What 'how tall/long/…' measures in; English only (the documents are English).
_MEASURES = {"tall": "meter metre", "high": "meter metre", "long": "kilometre kilometer km meter metre mile year month",
             "far": "kilometre kilometer km mile", "old": "year", "large": "square hectare km percent hundred thousand",
             "big": "square hectare km percent hundred thousand"}
_NOT_COUNTED = set("did does do is was were are has have had will would can could should the a an of in on at to "
                   "for by from with that which who".split())
_COUNT = re.compile(r"\d[\d,.]*\s*%?|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|"
                    r"dozens?|hundreds?|thousands?|millions?|billions?)\b", re.I)


def counted_terms(question: str) -> frozenset[str]:
    """What an English quantity question counts or measures, as stems: the words after
    'how many' up to the verb ('how many Chinese workers were …' → chines, worker), the units
    of 'how tall/long/far/old/large' and '%' for 'what percentage/share'. Empty for 'how much'
    (money or amounts: see :func:`required_units`) and for other questions."""
    q = question.lower()
    out: set[str] = set()
    m = re.search(r"\bhow (many|tall|high|long|far|old|large|big)\b(.*)", q)
    if m:
        if m.group(1) in _MEASURES:
            out |= set(tokenize([_MEASURES[m.group(1)]])[0])
        for word in re.findall(r"[a-z]+", m.group(2))[:3]:
            if word in _NOT_COUNTED:
                break
            out |= set(tokenize([word])[0])
    if re.search(r"\bwhat (percentage|share|proportion)\b", q):
        out |= {"%", "percent"}
    m = re.search(r"\bwhat (?:is|was|are|were) the (?:\w+ )?(population|capacity|length|area|size)\b", q)
    if m:
        out |= set(tokenize([m.group(1)])[0])
    return frozenset(out)


_ROLE = re.compile(r"\bwho (?:is|was|are|were) (?:the |a |an )?((?:[\w’']+ ){0,2}?[a-z]+)\b(?= of| in| at| for| to| as|\?|$)"
                   r"|\bname of (?:the |a |an )?((?:[\w’']+ ){0,2}?[a-z]+)\b(?= of| in| at| for| to| who|\?|$)"
                   r"|\bwhich ([a-z]+) (?!of\b)[a-z]+(?:ed|s)\b"
                   r"|\b(?:took over|served|acted) as (?:the )?([a-z]+)\b", re.I)


def role_terms(question: str) -> frozenset[str]:
    """The role an English 'who' question asks to name, as stems: 'Who is the director of …'
    → director, 'the name of China's ambassador' → ambassador, 'Which architect designed …' →
    architect, 'who took over as head' → head. Empty when it asks for a doer ('Who founded …')."""
    m = _ROLE.search(question)
    if not m:
        return frozenset()
    phrase = next(g for g in m.groups() if g)
    first, last = phrase.split()[0].lower(), phrase.split()[-1].lower()
    if first in _NOT_COUNTED or last in _NOT_COUNTED or last in {"one", "person", "people", "man", "woman", "name", "names"}:
        return frozenset()
    return frozenset(tokenize([last])[0])


def name_beside_role(sentence: str, roles: frozenset[str]) -> bool:
    """Does a capitalised name stand within four words of one of the ``roles`` in ``sentence``
    ('AIFC Governor Kairat Kelimbetov', 'his successor, President Tokayev')?"""
    words = re.findall(r"[\w’'\-]+", sentence)
    stems = [tokenize([w])[0] for w in words]
    for i, st in enumerate(stems):
        if st and st[0] in roles:
            near = words[max(0, i - 4):i] + words[i + 1:i + 5]
            if any(w[0].isupper() for w in near if w.lower() not in {"the", "a", "an"}):
                return True
    return False


def number_attached(sentence: str, counted: frozenset[str]) -> bool:
    """Does a number of ``sentence`` stand beside (within three words) one of the ``counted``
    stems: '2,000 Chinese workers', '97 meters', '22.8%'?"""
    for m in _COUNT.finditer(sentence):
        if "%" in m.group(0) and counted & {"%", "percent"}:
            return True
        near = (tokenize([sentence[max(0, m.start() - 40):m.start()]])[0][-3:]
                + tokenize([sentence[m.end():m.end() + 40]])[0][:3])
        if counted & set(near):
            return True
    return False


def about_someone_else(sentence: str, analysis: Analysis, stats: CorpusStats) -> bool:
    """True when ``sentence`` is clearly about another person than the question: it names a
    person of the other gender (or another gendered person) and not the question's, or it
    refers by pronoun only to someone of the other gender."""
    if analysis.gender is None:
        return False
    words = {w.lower() for w in re.findall(r"[A-Z][a-z’'\-]+", sentence)}
    if words & set(analysis.persons):
        return False
    others = {stats.genders[w] for w in words if w in stats.genders}
    if others:
        return analysis.gender not in others
    female, male = bool(_FEMALE_PRONOUN.search(sentence)), bool(_MALE_PRONOUN.search(sentence))
    return (male and not female) if analysis.gender == "f" else (female and not male)


def _question_numbers(question: str) -> set[str]:
    return {re.sub(r"\D", "", n) for n in _NUMBER.findall(question)}


_NUMBER_WORDS = re.compile(r"\b(?:(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|fifty|"
                           r"a few|several|many) (?:hundred|thousand|million|billion)s?|hundreds|thousands|"
                           r"millions|billions|dozens)\b", re.I)
_QUANTITY_UNITS = {"%", "percent", "million", "billion", "thousand", "hundred", "meter", "metre",
                   "kilometre", "kilometer", "km", "usd", "time", "people", "kazakh", "chinese"}
_LEADING = {"in", "the", "on", "at", "after", "before", "during", "since", "according", "a", "an", "by",
            "from", "for", "as", "with", "when", "while", "president", "minister"}


def _is_quantity(number: str, unit: str) -> bool:
    """A number that is not a bare year: '97 meters', '66.7%', '19', '14.36 billion'."""
    digits = re.sub(r"\D", "", number)
    return bool(digits) and (not YEAR.fullmatch(number) or unit.lower().rstrip("s") in _QUANTITY_UNITS)


def _is_name(phrase: str) -> bool:
    """Capitalised words inside a sentence that are not a month or a sentence opener."""
    words = phrase.lower().split()
    while words and words[0] in _LEADING:
        words = words[1:]
    return bool(words) and not any(re.fullmatch(MONTHS, w) for w in words)


_MAGNITUDE = re.compile(r"\s+(?:hundred|thousand|million|billion|trillion)s?\b", re.I)
_CURRENCY_AFTER = re.compile(r"\s+(?:usd|us dollars?|dollars?|tenge|yuan|rmb|euros?)\b", re.I)
_CURRENCY_BEFORE = re.compile(r"(?:\$|usd\s?|us\$\s?)$", re.I)
_YEAR_AFTER = re.compile(r",?\s+(?:1[0-9]{3}|20[0-9]{2})\b")


_UNITS = re.compile(r"%|percent|per cent|met(?:er|re)s?|kilomet(?:er|re)s?|km|miles?|tonn?e?s?|hectares?|"
                    r"years?|months?|days?|hours?|times|billion|million|thousand|hundred|trillion|usd|dollars?|"
                    r"tenge|yuan|rmb|euros?", re.I)
_POSSESSIVE = re.compile(r"(?:’s|'s|’|')$")
_ERA_YEAR = re.compile(r"\b\d{1,4}\s?(?:BC|BCE|AD|CE)\b")


def _quantity_span(sentence: str, m: re.Match) -> tuple[int, int]:
    """A quantity's whole span: '$30 billion', '14.36 billion USD', '97 meters', '66.7%'; the
    word after the number only when it is a unit ('55 Chinese plants' → '55')."""
    start, end = m.start(1), m.end()
    if not m.group(2) or not _UNITS.fullmatch(m.group(2)):
        end = m.end(1)
    before = _CURRENCY_BEFORE.search(sentence[max(0, start - 5):start])
    if before:
        start -= len(before.group(0))
    magnitude = _MAGNITUDE.match(sentence, m.end(1))
    if magnitude:
        end = max(end, magnitude.end())
    currency = _CURRENCY_AFTER.match(sentence, end)
    if currency:
        end = currency.end()
    return start, end


def offer_span(kind: str | None, sentence: str, question: str,
               common: frozenset[str] = frozenset()) -> tuple[int, int] | None:
    """Where ``sentence`` holds an answer of ``kind`` that the question does not already hold:
    ``(start, end)`` of the first such answer, ``sentence[start:end]`` being e.g. '97 meters',
    '$30 billion', 'March 2019', '2013', 'Nursultan Nazarbayev'; None when it holds none (and
    for questions without a type). A name whose stemmed words are all in ``common`` (words of
    most passages: 'China', 'Kazakhstan') does not answer 'who' or 'where'."""
    q = question.lower()
    asked = _question_numbers(question)
    if kind == "year":
        m = next((m for m in (*_ERA_YEAR.finditer(sentence), *YEAR.finditer(sentence))
                  if re.sub(r"\D", "", m.group(0)) not in asked), None)
        return m.span() if m else None
    if kind == "date":
        era = next((m for m in _ERA_YEAR.finditer(sentence) if re.sub(r"\D", "", m.group(0)) not in asked), None)
        if era:
            return era.span()
        for m in _DATE.finditer(sentence):
            if m.group(0).lower() not in q and re.sub(r"\D", "", m.group(0)) not in asked:
                year = _YEAR_AFTER.match(sentence, m.end()) if not YEAR.fullmatch(m.group(0)) else None
                return m.start(), (year.end() if year else m.end())
        return None
    if kind == "quantity":
        if not all(re.search(need, sentence, re.I) for need in required_units(question)):
            return None
        for m in _QUANTITY.finditer(sentence):
            if _is_quantity(m.group(1), m.group(2) or "") and re.sub(r"\D", "", m.group(1)) not in asked:
                return _quantity_span(sentence, m)
        m = _NUMBER_WORDS.search(sentence)
        return m.span() if m else None
    if kind in ("person", "place", "name"):  # 'who': people, organisations and countries alike
        q = q.replace("’", "'")
        spans = []
        for m in _NAME.finditer(sentence):
            name = _POSSESSIVE.sub("", m.group(0))
            if (_is_name(name) and not _ERA.fullmatch(name) and name.lower().replace("’", "'") not in q
                    and not (common and set(tokenize([m.group(0)])[0]) <= common)):
                spans.append(_without_leading(name, m.start()))
        if not spans:
            return None
        anchor = _asked_noun(question)  # 'Near which lake …' → the name beside 'Lake'
        for start, end in spans:
            if anchor and re.search(rf"\b{anchor}", sentence[max(0, start - 12):end + 12], re.I):
                return start, end
        return spans[0]
    return None


_ERA = re.compile(r"BC|BCE|AD|CE")
_ASKED = re.compile(r"\b(?:which|what)\s+([a-z]{3,})\b", re.I)


def _asked_noun(question: str) -> str | None:
    """The noun a 'which/what <noun>' question asks for ('lake', 'university', 'dynasty')."""
    m = _ASKED.search(question)
    if not m or m.group(1).lower() in _NOT_COUNTED or m.group(1).lower() in _QUESTION_WORDS.split():
        return None
    return re.escape(m.group(1).lower().rstrip("s"))


def _without_leading(phrase: str, start: int) -> tuple[int, int]:
    """The span of a capitalised phrase without its leading 'In', 'The', 'President' …"""
    words = re.finditer(r"\S+", phrase)
    for w in words:
        if w.group(0).lower() not in _LEADING:
            return start + w.start(), start + len(phrase)
    return start, start + len(phrase)


# "Which creature …", "what collective name …", "which lender …": a name is asked for (not for
# "what happened", "what is the reason", "which … why/how").
_WHICH = re.compile(r"\b(which|what)\s+(?!(?:is|was|are|were|did|does|do|has|have|had|happened|happens|kind|type|"
                    r"role|reason|reasons|impact|effect|effects|problem|problems|led|made|makes|caused|about|does)\b)"
                    r"[a-z]+", re.I)


def short_kind(analysis: Analysis) -> str | None:
    """The kind of direct answer the question's first part asks for: its answer type, else
    'name' for 'which/what <noun>' questions; None for 'why', 'how' and other questions."""
    part = analysis.parts[0]
    if part.kind:
        return part.kind
    if re.search(r"\b(why|how)\b|почему|зачем|как |неге|қалай|为什么|怎么|如何", part.text, re.I):
        return None
    if _AMOUNT.search(part.text):
        return "quantity"
    return "name" if _WHICH.search(part.text) else None


# "What size of stake …", "What was the total trade turnover …", "What proportion …": an amount
_AMOUNT = re.compile(r"\bwhat\s+(?:is|was|are|were\s+)?(?:the\s+)?(?:\w+\s+){0,2}?(?:size|proportion|share|total|amount|"
                     r"number|turnover|volume|stake|value|cost|percentage|sum)\b", re.I)


_SOURCES = re.compile(r"\b(?:sources?|authors?|wrote|written|writ|publications?|published|publisher|articles?|books?|"
                      r"journals?|reading|cited?|references?|bibliography|scholars?)\b|источник|автор|стать|книг|"
                      r"литератур|публикац|来源|作者|文章|书|文献|出处|дереккөз|автор|мақала|кітап", re.I)


def asks_about_sources(question: str) -> bool:
    """Does the question ask about sources, authors or publications (so that reference lists
    may answer it)?"""
    return bool(_SOURCES.search(question))


def offers(kind: str | None, sentence: str, question: str, common: frozenset[str] = frozenset()) -> bool:
    """Does ``sentence`` hold an answer of ``kind`` that the question does not already hold?
    (True for questions without a type; :func:`offer_span` says where.)"""
    if kind not in ("year", "date", "quantity", "person", "place"):
        return True
    return offer_span(kind, sentence, question, common) is not None


def coverage(terms: list[str] | tuple[str, ...], text_terms: set[str], stats: CorpusStats) -> float:
    """IDF-weighted share of ``terms`` present in ``text_terms`` (1.0 when there are no terms)."""
    weights = {t: stats.idf(t) for t in terms}
    total = sum(weights.values())
    return 1.0 if total <= 0 else sum(w for t, w in weights.items() if t in text_terms) / total


def topic_words(question: str, text_terms: set[str]) -> list[str]:
    """Words of the question (as typed, in order, names first) whose stemmed form is a key term
    found in ``text_terms``: what the documents do discuss of the question."""
    words = []
    for m in re.finditer(r"[^\W\d_][\w’'\-]*", question):
        stems = tokenize([m.group(0)])[0]
        if stems and stems[0] not in question_terms() and stems[0] in text_terms:
            words.append(re.sub(r"(’s|'s)$", "", m.group(0)))
    words = list(dict.fromkeys(words))
    return sorted(words, key=lambda w: not w[0].isupper())
