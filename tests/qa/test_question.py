"""What a question asks for: answer types, parts, units, names and whom it is about."""

from __future__ import annotations

import pytest

from kzqa.qa.question import (
    about_someone_else,
    analyse,
    answer_type,
    counted_terms,
    name_beside_role,
    number_attached,
    offer_span,
    offers,
    required_units,
    role_terms,
    short_kind,
    split_parts,
)


@pytest.mark.parametrize("question, kind", [
    ("How tall is the Bayterek tower?", "quantity"),
    ("In what year did Bilash found Atajurt?", "year"),
    ("When did Sauytbay cross the border?", "date"),
    ("Who founded Atajurt?", "person"),
    ("Where did Sauytbay get asylum?", "place"),
    ("Сколько раз Назарбаев встречался с Си Цзиньпином?", "quantity"),
    ("Серікжан Біләш қай жылы азаматтық алды?", "year"),
    ("谁创立了Atajurt?", "person"),
    ("Why did people protest in 2016?", None),
])
def test_answer_type(question, kind):
    assert answer_type(question) == kind


@pytest.mark.parametrize("question, parts", [
    ("Who founded Atajurt Eriktileri, and when?", ["Who founded Atajurt Eriktileri", "when"]),
    ("When was Bilash put under house arrest, and when was he released?",
     ["When was Bilash put under house arrest", "when was he released"]),
    ("Где и когда Си Цзиньпин объявил о Поясе?", ["Где", "когда Си Цзиньпин объявил о Поясе"]),
    ("Why did Kazakhs and Uyghurs protest?", ["Why did Kazakhs and Uyghurs protest?"]),
])
def test_two_part_questions_are_split_at_the_second_question_word(question, parts):
    assert split_parts(question) == parts


def test_named_units_must_come_with_the_number():
    q = "How long is the oil pipeline, in kilometres?"
    assert required_units(q)
    assert not offers("quantity", "In 1997, CNPC acquired a 66.7% stake and agreed to build a pipeline.", q)
    assert offers("quantity", "The pipeline is 2,228 kilometres long.", q)
    money = "How much did CNPC pay for PetroKazakhstan?"
    assert not offers("quantity", "CNPC bought a 66.7% stake in 1997.", money)
    assert offers("quantity", "CNPC paid 4.18 billion USD.", money)


def test_a_year_the_question_already_holds_is_not_an_answer():
    q = "What happened in 2016 in Kazakhstan?"
    assert not offers("year", "In 2016, protests broke out.", "In what year after 2016 did it happen?")
    assert offers("year", "In 2019, he was detained.", q)


def test_unseen_names_come_from_the_corpus_statistics(engine):
    analysis = analyse("How busy is the Khorgos port in Peru?", engine.stats)
    assert "Peru" in analysis.unseen
    assert analyse("What did Nazarbayev's government do?", engine.stats).unseen == ()


def test_the_corpus_tells_who_is_she_and_who_is_he(engine):
    assert engine.stats.genders.get("sauytbay") == "f"
    assert engine.stats.genders.get("bilash") == "m"


def test_sentences_about_someone_else_are_recognised(engine):
    about_her = analyse("Where did Sayragul Sauytbay get political asylum?", engine.stats)
    assert about_her.gender == "f"
    assert about_someone_else("He was detained in March 2019.", about_her, engine.stats)
    assert about_someone_else("Serikzhan Bilash founded Atajurt in 2017.", about_her, engine.stats)
    assert not about_someone_else("In June 2019 she fled to Sweden.", about_her, engine.stats)
    assert not about_someone_else("Sauytbay was released on a suspended sentence.", about_her, engine.stats)
    neutral = analyse("How tall is the Bayterek tower?", engine.stats)
    assert not about_someone_else("He was detained in March 2019.", neutral, engine.stats)


@pytest.mark.parametrize("question, counted", [
    ("How many Chinese workers were employed in Kazakhstan?", {"chines", "worker"}),
    ("What share of the debt is owed to China?", {"%", "percent"}),
    ("What is the population of Almaty?", {"popul"}),
    ("How much did CNPC pay?", set()),
    ("Who founded Atajurt?", set()),
])
def test_what_a_quantity_question_counts(question, counted):
    assert counted_terms(question) == counted


def test_a_number_must_stand_beside_what_is_counted():
    workers = counted_terms("How many Chinese workers were employed in Kazakhstan?")
    assert number_attached("About 2,000 Chinese workers came in 2019.", workers)
    assert not number_attached("With 97 meters of altitude, the tower marks the capital.", workers)
    assert number_attached("With 97 meters of altitude, the tower marks the capital.", counted_terms("How tall is it?"))


@pytest.mark.parametrize("question, roles", [
    ("Who is the director of the Confucius Institute in Nur-Sultan?", {"director"}),
    ("What is the name of China's ambassador to Kazakhstan?", {"ambassador"}),
    ("Which architect designed the Bayterek tower?", {"architect"}),
    ("Who was Nazarbayev's successor as President of Kazakhstan?", {"successor"}),
    ("Who founded Atajurt Eriktileri?", set()),
    ("Who is in charge of the capital's international finance hub?", set()),
])
def test_the_role_a_who_question_asks_to_name(question, roles):
    assert role_terms(question) == roles


def test_a_name_must_stand_beside_the_role():
    roles = role_terms("Who was Nazarbayev's successor as President of Kazakhstan?")
    assert name_beside_role("Nazarbayev’s successor, President Kassym-Jomart Tokayev, signed it.", roles)
    assert not name_beside_role("The succession was smooth and the successor was chosen in 2019.", roles)


@pytest.mark.parametrize("kind, sentence, question, short", [
    ("quantity", "With 97 meters of altitude, the Bayterek tower marks the year.", "How tall is the tower?", "97 meters"),
    ("quantity", "Beside the $30 billion deal, China lent more.", "How big was the deal?", "$30 billion"),
    ("quantity", "Trade reached 14.36 billion USD in 2019.", "What was the trade turnover in 2019?", "14.36 billion USD"),
    ("quantity", "It planned to relocate 55 Chinese plants.", "How many Chinese plants?", "55"),
    ("year", "Zhang Qian died in 114 BC after two journeys.", "When did Zhang Qian die?", "114 BC"),
    ("year", "In 2013 Xi announced the Belt in Astana.", "In which year did Xi speak in Astana?", "2013"),
    ("date", "He was released in August 2019.", "When was he released?", "August 2019"),
    ("date", "It opened in 1997, twenty years after 1977.", "When did it open, after 1977?", "1997"),
    ("person", "The first president, Nursultan Nazarbayev, ordered it.", "Who ordered the tower?", "Nursultan Nazarbayev"),
    ("name", "It is financed by China Development Bank.", "Which lender financed Nur-Sultan's rail?", "China Development Bank"),
    ("place", "It borders Turkmenistan’s north.", "Which country borders it?", "Turkmenistan"),
    ("place", "In the Sino-Soviet clash of 1969 near Lake Zhalanashkol, troops died.", "Near which lake did troops clash?",
     "Lake Zhalanashkol"),
    ("person", "In 138 BC, Zhang Qian travelled west.", "Who was the first Chinese envoy?", "Zhang Qian"),
    ("quantity", "In 1997 the China National Petroleum Corporation (CNPC) acquired a 66.7% stake.",
     "What size of stake did CNPC acquire?", "66.7%"),
])
def test_offer_span_is_the_direct_answer(kind, sentence, question, short):
    span = offer_span(kind, sentence, question)
    assert span is not None and sentence[span[0]:span[1]] == short
    assert offers(kind, sentence, question)


def test_offer_span_skips_what_the_question_already_holds():
    assert offer_span("year", "In 2019 trade grew.", "What happened in 2019?") is None
    assert offer_span("person", "Nazarbayev met Xi.", "When did Nazarbayev meet Xi?") is None
    assert offer_span(None, "Anything at all in 2019.", "Why?") is None


@pytest.mark.parametrize("question, kind", [
    ("Which Chinese lender financed the light rail?", "name"),
    ("What size of stake did CNPC acquire?", "quantity"),
    ("What was the total trade turnover in 2019?", "quantity"),
    ("How tall is the Bayterek tower?", "quantity"),
    ("Why did people protest in 2016?", None),
    ("How did Kazakhstan react?", None),
    ("What happened in Zhanaozen?", None),
])
def test_short_kind(question, kind, engine):
    assert short_kind(analyse(question, engine.stats)) == kind


# ---------------------------------------------------------------- names, direction and entities


def test_english_mentions_carry_their_roles():
    from kzqa.qa.question import english_mentions

    got = [(m.name, m.role) for m in english_mentions(
        "Why did 60,000 Kazakhs flee from Kazakhstan into northern Xinjiang, says the People's Map?")]
    assert got == [("kazakhs", "subject"), ("kazakhstan", "source"), ("xinjiang", "place"),
                   ("people map", "subject")]


@pytest.mark.parametrize("question, sentence, inverted", [
    ("How many Chinese citizens live in Kazakhstan?", "An estimated 1.5 million Kazakhs live in China.", True),
    ("How many Kazakhs live in China?", "An estimated 1.5 million Kazakhs live in China.", False),
    ("Why did people flee from Kazakhstan into Xinjiang?",
     "60,000 Kazakhs left northern Xinjiang and crossed the border into Kazakhstan at Bakhtu.", True),
    ("Why did people flee from Xinjiang into Kazakhstan?",
     "60,000 Kazakhs left northern Xinjiang and crossed the border into Kazakhstan at Bakhtu.", False),
    # both directions stated: nothing is inverted
    ("How much did China invest in Kazakhstan?",
     "China invested in Kazakhstan, and Kazakhstan in China, in 2019.", False),
    # names in one role only: no direction to compare
    ("How many times did Nazarbayev meet Xi Jinping?", "Nazarbayev met Xi Jinping 19 times.", False),
])
def test_direction_in_english(question, sentence, inverted):
    from kzqa.qa.question import direction_inverted, english_mentions

    assert direction_inverted(tuple(english_mentions(question)), sentence) is inverted


def _mapped(engine, question: str):
    from kzqa.channels.vocabulary import map_words
    from kzqa.qa.retrieve import detect_language
    from kzqa.stores.manifest import MULTILINGUAL

    return analyse(question, engine.stats, map_words(engine.stats.vocabulary, engine.encoders[MULTILINGUAL],
                                                      question, detect_language(question)))


@pytest.mark.parametrize("question, inverted", [
    ("Сколько граждан Китая живёт в Казахстане?", True),
    ("Сколько казахов живёт в Китае?", False),
    ("Қазақстанда қанша қытай азаматы тұрады?", True),
    ("Қытайда қанша қазақ тұрады?", False),
    ("有多少中国公民住在哈萨克斯坦?", True),
])
def test_direction_in_russian_kazakh_and_chinese_through_the_mapping(engine, question, inverted):
    from kzqa.qa.question import direction_inverted, same_name

    analysis = _mapped(engine, question)
    assert any(same_name(m.name, "china") for m in analysis.entities)  # 'china' or 'chinese'
    assert any(same_name(m.name, "kazakhstan") for m in analysis.entities)
    assert direction_inverted(analysis.entities, "An estimated 1.5 million Kazakhs live in China.") is inverted


@pytest.mark.parametrize("question, missing", [
    ("How many times did Tokayev meet Xi Jinping?", True),
    ("How many times did Nazarbayev meet Xi Jinping?", False),
    ("Which Chinese bank finances Almaty's light rail?", True),
])
def test_entity_check_in_english(engine, question, missing):
    from kzqa.qa.question import entity_missing

    sentence = ("Nursultan Nazarbayev, in office from April 1990 to March 2019, met with President Xi Jinping 19 "
                "times between 2013 and 2019.")
    if "rail" in question:
        sentence = "For example, the construction of Nur-Sultan’s light rail transit is financed by China Development Bank."
    assert entity_missing(analyse(question, engine.stats), sentence, "", engine.stats.common) is missing


def test_entity_check_reads_the_sentence_before(engine):
    from kzqa.qa.question import entity_missing

    analysis = analyse("What does the Bayterek tower symbolise?", engine.stats)
    assert entity_missing(analysis, "It symbolises the tree of life.", "", engine.stats.common)
    assert not entity_missing(analysis, "It symbolises the tree of life.", "The Bayterek tower is 97 m tall.",
                              engine.stats.common)


@pytest.mark.parametrize("question, missing", [
    ("Сколько метров в высоту монумент Байтерек в Астане?", True),   # the sentence is about Nur-Sultan's rail
    ("Қытай даму банкі қай жобаны қаржыландырады?", False),
])
def test_entity_check_in_russian_and_kazakh_through_the_mapping(engine, question, missing):
    from kzqa.qa.question import entity_missing

    sentence = "For example, the construction of Nur-Sultan’s light rail transit is financed by China Development Bank."
    assert entity_missing(_mapped(engine, question), sentence, "", engine.stats.common) is missing


@pytest.mark.parametrize("question, unseen", [
    ("How much did Kazakhstan put into the AIIB?", []),        # the initials of a corpus name
    ("Where does Kazakstan rank among CIS countries?", []),    # one letter off a corpus word
    ("What is the capital of Peru?", ["Peru"]),
    ("How many containers pass through Khorgos?", ["Khorgos"]),
])
def test_unseen_names_forgive_initials_and_misspellings(engine, question, unseen):
    from kzqa.qa.question import unseen_names

    assert unseen_names(question, engine.stats) == unseen
