"""The word lists of the greater-than, agreement, capitals and pronoun tasks (data, no code).

Each generator keeps only the words that are one token (with a leading space) in the model's
tokenizer and records the refused ones in its prompt table's provenance
(``df.attrs["circuitgen"]``, the CLI's ``.meta.json``); the counts below are those of the SmolLM2
tokenizer (``smollm2-135m``, also the tiny-llama model's), checked by tests/test_tasks_four.py.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Greater-than (Hanna et al. 2023): the nouns of their template "The {noun} lasted from the year
# {XX}{YY} to the year {XX}" (their list, plus "war"). SmolLM2: 6 of 121 refused (abduction,
# insurgency, notoriety, overhaul, slump, stint).
YEAR_NOUNS = (
    "abduction", "accord", "affair", "agreement", "appraisal", "assaults", "assessment", "attack",
    "attempts", "campaign", "captivity", "case", "challenge", "chaos", "clash", "collaboration",
    "coma", "competition", "confrontation", "consequence", "conspiracy", "construction",
    "consultation", "contact", "contract", "convention", "cooperation", "custody", "deal",
    "decline", "decrease", "demonstrations", "development", "disagreement", "disorder", "dispute",
    "domination", "dynasty", "effect", "effort", "employment", "endeavor", "engagement",
    "epidemic", "evaluation", "exchange", "existence", "expansion", "expedition", "experiments",
    "fall", "fame", "flights", "friendship", "growth", "hardship", "hostility", "illness",
    "impact", "imprisonment", "improvement", "incarceration", "increase", "insurgency",
    "invasion", "investigation", "journey", "kingdom", "marriage", "modernization", "negotiation",
    "notoriety", "obstruction", "operation", "order", "outbreak", "outcome", "overhaul",
    "patrols", "pilgrimage", "plague", "plan", "practice", "process", "program", "progress",
    "project", "pursuit", "quest", "raids", "reforms", "reign", "relationship", "retaliation",
    "riot", "rise", "rivalry", "romance", "rule", "sanctions", "shift", "siege", "slump",
    "stature", "stint", "strikes", "study", "test", "testing", "tests", "therapy", "tour",
    "tradition", "treaty", "trial", "trip", "unemployment", "voyage", "warfare", "work", "war",
)
CENTURIES = tuple(range(11, 18))  # Hanna et al.'s XX: 11..17
# Variation families (lexical): event nouns outside Hanna et al.'s list, later centuries; the
# things whose prices rise (domain: prices).
NEW_YEAR_NOUNS = (
    "festival", "famine", "drought", "exhibition", "tournament", "parade", "strike", "boom",
    "crisis", "blockade", "embargo", "occupation", "presidency", "mission", "survey", "season",
    "semester", "excavation", "renovation", "census", "fair", "rebellion", "revolution", "recession",
)
LATE_CENTURIES = (18, 19)
PRICE_ITEMS = ("house", "car", "boat", "painting", "piano", "horse", "watch", "ring", "computer",
               "sofa", "bicycle", "camera", "guitar", "farm", "apartment", "ticket", "statue", "carpet")

# --------------------------------------------------------------------------------------------
# Subject-verb agreement: (singular, plural) nouns for subjects and attractors; both forms must
# be one token. SmolLM2: 0 of 56 pairs refused.
NOUN_PAIRS = (
    ("key", "keys"), ("author", "authors"), ("dog", "dogs"), ("picture", "pictures"),
    ("teacher", "teachers"), ("book", "books"), ("car", "cars"), ("student", "students"),
    ("friend", "friends"), ("door", "doors"), ("painting", "paintings"), ("letter", "letters"),
    ("bottle", "bottles"), ("cabinet", "cabinets"), ("table", "tables"), ("window", "windows"),
    ("house", "houses"), ("farmer", "farmers"), ("doctor", "doctors"), ("child", "children"),
    ("man", "men"), ("woman", "women"), ("box", "boxes"), ("bag", "bags"), ("toy", "toys"),
    ("chair", "chairs"), ("flower", "flowers"), ("bird", "birds"), ("tree", "trees"),
    ("song", "songs"), ("player", "players"), ("officer", "officers"), ("manager", "managers"),
    ("pilot", "pilots"), ("singer", "singers"), ("lawyer", "lawyers"), ("boy", "boys"),
    ("girl", "girls"), ("cat", "cats"), ("horse", "horses"), ("road", "roads"), ("city", "cities"),
    ("building", "buildings"), ("bridge", "bridges"), ("computer", "computers"),
    ("phone", "phones"), ("lamp", "lamps"), ("shoe", "shoes"), ("coin", "coins"),
    ("report", "reports"), ("label", "labels"), ("nurse", "nurses"), ("worker", "workers"),
    ("soldier", "soldiers"), ("athlete", "athletes"), ("engineer", "engineers"),
)
# Variation families (lexical): irregular plurals; collective nouns (singular in form; their
# verb is singular in American usage, which is what the metric takes as the answer).
IRREGULAR_PAIRS = (
    ("child", "children"), ("man", "men"), ("woman", "women"), ("person", "people"),
    ("mouse", "mice"), ("foot", "feet"), ("tooth", "teeth"), ("goose", "geese"), ("wife", "wives"),
    ("knife", "knives"), ("leaf", "leaves"), ("life", "lives"),
)
COLLECTIVE_PAIRS = (
    ("team", "teams"), ("committee", "committees"), ("family", "families"), ("crowd", "crowds"),
    ("group", "groups"), ("army", "armies"), ("class", "classes"), ("band", "bands"),
    ("audience", "audiences"), ("government", "governments"), ("company", "companies"),
    ("crew", "crews"), ("council", "councils"), ("club", "clubs"), ("gang", "gangs"),
    ("board", "boards"), ("jury", "juries"), ("choir", "choirs"),
)
# The verb forms the answer is read on: (singular, plural); the metric averages over the three.
VERB_PAIRS = (("is", "are"), ("was", "were"), ("has", "have"))

# --------------------------------------------------------------------------------------------
# Country-capital recall: country -> capital. Only pairs whose capital is one token are usable
# (the answer is one token); the country must be one token too, for the counterfactual (another
# country) to align. Of the 63 pairs the base generator draws from (72 listed, less the 7
# CAPITAL_NOT_LARGEST and the 2 CAPITALS_EXCLUDED below), SmolLM2 refuses 31 (capital or country
# several tokens, e.g. Bangkok, Hanoi, Kyiv, Prague's "Czechia") and keeps 32; of the 7 not the
# largest city it refuses 3 (Ankara, Brasilia, Abuja).
CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "England": "London",
    "Japan": "Tokyo", "Russia": "Moscow", "China": "Beijing", "Egypt": "Cairo", "Greece": "Athens",
    "Austria": "Vienna", "Ireland": "Dublin", "Portugal": "Lisbon", "Norway": "Oslo",
    "Sweden": "Stockholm", "Finland": "Helsinki", "Poland": "Warsaw", "Hungary": "Budapest",
    "Belgium": "Brussels", "Netherlands": "Amsterdam", "Denmark": "Copenhagen",
    "Philippines": "Manila", "Iran": "Tehran", "Iraq": "Baghdad", "Syria": "Damascus",
    "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago", "Cuba": "Havana",
    "Afghanistan": "Kabul", "Bulgaria": "Sofia", "Tunisia": "Tunis", "Jamaica": "Kingston",
    "Wales": "Cardiff",
    "Thailand": "Bangkok", "Vietnam": "Hanoi", "Indonesia": "Jakarta", "Venezuela": "Caracas",
    "Colombia": "Bogota", "Ecuador": "Quito", "Bangladesh": "Dhaka", "Lebanon": "Beirut",
    "Jordan": "Amman", "Pakistan": "Islamabad", "Ukraine": "Kyiv", "Romania": "Bucharest",
    "Serbia": "Belgrade", "Croatia": "Zagreb", "Estonia": "Tallinn", "Latvia": "Riga",
    "Lithuania": "Vilnius", "Iceland": "Reykjavik", "Morocco": "Rabat", "Algeria": "Algiers",
    "Ghana": "Accra", "Uganda": "Kampala", "Qatar": "Doha", "Nepal": "Kathmandu",
    "Czechia": "Prague", "Taiwan": "Taipei", "Uruguay": "Montevideo", "Zimbabwe": "Harare",
    "Albania": "Tirana", "Slovenia": "Ljubljana", "Nicaragua": "Managua",
    # capitals that are not the country's largest city: a variation family of their own, kept out
    # of the base generator (CAPITAL_NOT_LARGEST)
    "Canada": "Ottawa", "Australia": "Canberra", "Switzerland": "Bern", "Scotland": "Edinburgh",
    "Turkey": "Ankara", "Brazil": "Brasilia", "Nigeria": "Abuja",
}
CAPITAL_NOT_LARGEST = ("Canada", "Australia", "Switzerland", "Scotland", "Turkey", "Brazil", "Nigeria")
# Left out of every list, with the reason (a prompt with them would not test recall cleanly):
CAPITALS_EXCLUDED = {
    "Mexico": "the capital (Mexico City) repeats the country's name",
    "Singapore": "a city-state: the answer repeats the country's name",
    "Kuwait": "the capital (Kuwait City) repeats the country's name",
    "Luxembourg": "the capital repeats the country's name",
    "Panama": "the capital (Panama City) repeats the country's name",
    "India": "the capital is New Delhi, whose first token ' New' is not specific",
    "Argentina": "the capital is Buenos Aires, two tokens",
    "Israel": "the capital is disputed",
    "Korea": "ambiguous between North and South Korea",
    "Netherlands": "needs the article ('the Netherlands'), which the templates do not have",
    "Philippines": "needs the article ('the Philippines'), which the templates do not have",
}

# --------------------------------------------------------------------------------------------
# Gendered pronouns (Mathwin et al. 2023): common English first names with a clear gender.
# Gender-ambiguous names (Alex, Sam, Jordan, ...) are kept apart for their own family.
# SmolLM2: 2 of 49 female names refused (Natalie, Megan), 0 of 48 male names.
FEMALE_NAMES = (
    "Mary", "Anna", "Emma", "Sarah", "Laura", "Lisa", "Susan", "Linda", "Karen", "Julia", "Rachel",
    "Rebecca", "Jessica", "Jennifer", "Emily", "Hannah", "Olivia", "Sophia", "Grace", "Alice",
    "Helen", "Kate", "Amy", "Claire", "Lucy", "Maria", "Nancy", "Betty", "Diana", "Ellen", "Jane",
    "Ruth", "Rose", "Sophie", "Amanda", "Monica", "Nicole", "Natalie", "Victoria", "Elizabeth",
    "Catherine", "Michelle", "Patricia", "Barbara", "Margaret", "Heather", "Megan", "Melissa",
    "Stephanie",
)
MALE_NAMES = (
    "John", "James", "Michael", "David", "Robert", "William", "Thomas", "Daniel", "Paul", "Mark",
    "George", "Peter", "Richard", "Charles", "Joseph", "Steven", "Kevin", "Brian", "Edward",
    "Jason", "Matthew", "Andrew", "Ryan", "Eric", "Adam", "Jack", "Henry", "Frank", "Tom", "Mike",
    "Samuel", "Patrick", "Jeff", "Scott", "Greg", "Tim", "Bob", "Harry", "Oliver", "Ben", "Luke",
    "Simon", "Martin", "Philip", "Arthur", "Victor", "Walter", "Ronald",
)
# Variation family (lexical): rarer, old-fashioned names (SmolLM2 refuses several: see the
# generated table's provenance).
RARE_FEMALE_NAMES = ("Edith", "Agnes", "Harriet", "Gertrude", "Dorothy", "Florence", "Eleanor",
                     "Ada", "Iris", "Ivy", "Vera", "Mabel", "Beatrice", "Matilda", "Hazel", "Nora")
RARE_MALE_NAMES = ("Clarence", "Horace", "Ernest", "Herbert", "Bernard", "Cecil", "Percy",
                   "Leonard", "Cornelius", "Eugene", "Gilbert", "Otto", "Hugo", "Felix", "Amos",
                   "Abel", "Wilbur", "Rupert")
AMBIGUOUS_NAMES = ("Alex", "Sam", "Jordan", "Taylor", "Casey", "Morgan", "Jamie", "Chris", "Pat",
                   "Robin", "Charlie", "Jesse", "Riley", "Avery", "Kelly")
PRONOUNS = {"female": "she", "male": "he"}
