"""Word lists and templates for the IOI generalisation sweeps (:mod:`circuitgen.variations`).

Templates use the slots

- ``[S]`` the subject (first mention S1, last mention S2 the giver), ``[IO]`` the indirect object,
  ``[X]`` a third, distractor name;
- ``[PLACE]`` a place (bare noun, the template supplies "the"), ``[OBJECT]`` an object phrase with
  its article ("a drink", "the keys"), ``[NOUN]`` a bare object noun (the template supplies the
  article), ``[VERB]`` a past-tense verb of transfer that takes "to";
- ``[FILLER]`` name-free filler text (empty, or sentences with a leading space).

Templates are written S-first (``[S] ... [IO] ... [S]``); the generator may swap the first ``[S]``
and the first ``[IO]`` to make the IO-first (ABBA) twin. No template starts with a name slot (the
first word of a text has no leading space, so its token would differ from the answer's) and every
template ends right before the answer. The wording is this project's own.

Names carry a gender (``f``, ``m``, ``u`` = used for both or unknown to us) and an origin tag; the
tags are coarse, for grouping only. Not all names are one token with a leading space in every
tokenizer: the generators filter them per tokenizer and report what they dropped.
"""

from __future__ import annotations

from circuitgen import ioi_templates

# --------------------------------------------------------------------------------------------
# Names: gender and origin tags for every name in ioi_templates.NAMES, plus a few more.

_NAME_TABLE = """
english f: Mary Alice Sarah Emma Laura Rachel Anna Kate Lisa Susan Helen Emily Amy Jessica Claire
english f: Linda Karen Nancy Julia Megan
english m: John Bob David James Michael Thomas Paul Peter Mark Daniel George Richard Steven Kevin
english m: Brian Jack Adam Eric Ryan Scott
european f: Maria Sofia Ana Lucia Giulia Marie Greta Elena Rosa Olga Ingrid Nina Vera Eva Carmen
european m: Carlos Juan Luis Diego Marco Pierre Hans Pedro Jose Miguel Hugo Felix Antonio Pablo
european m: Ivan Dmitri Nikos Sven Boris Karl Otto Lars Erik Anton Stefan Jorge
european u: Andrea
middle_eastern f: Fatima Layla Leila Sara
middle_eastern m: Ahmed Omar Ali Yusuf Darius Emre Noam Hassan Ibrahim Mohammed Malik Amir
asian f: Priya Anjali Maya Mei Xiaoling Jing
asian m: Raj Arjun Hiroshi Kenji Rahul Amit
asian u: Wei Yuki Jin Min Ming Lin Jun Kim Tao
african f: Amara Nia Zainab Ngozi
african m: Kwame Chidi Tunde Kofi Musa Ade Sipho Thabo
"""


def _parse(table: str) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for line in table.strip().splitlines():
        head, names = line.split(":")
        origin, gender = head.split()
        for name in names.split():
            if name in out:
                raise ValueError(f"name {name!r} is listed twice in the name table")
            out[name] = (gender, origin)
    return out


NAME_INFO: dict[str, tuple[str, str]] = _parse(_NAME_TABLE)
"""name -> (gender, origin). Covers ``ioi_templates.NAMES`` and a few more per origin."""

NAMES: tuple[str, ...] = tuple(NAME_INFO)
ORIGINS: tuple[str, ...] = ("english", "european", "middle_eastern", "asian", "african")
MIN_NAMES_PER_GROUP = 4  # a name condition needs this many single-token names, else it is skipped

# Names that are also common English words (adversarial). All are capitalised in prompts; the
# templates never use these words with a capital letter.
WORD_NAMES: dict[str, str] = {
    "Rose": "f", "Will": "m", "Mark": "m", "Grace": "f", "Bill": "m", "Hope": "f", "Jack": "m",
    "Faith": "f", "Joy": "f", "June": "f", "Dawn": "f", "Ruby": "f", "Frank": "m", "Iris": "f",
    "Lily": "f", "Penny": "f", "Dean": "m", "Drew": "m", "Chase": "m", "Ray": "m", "Grant": "m",
    "Ivy": "f", "Holly": "f", "Daisy": "f", "Miles": "m", "Crystal": "f", "Hunter": "m",
    "Cliff": "m", "Rich": "m", "Summer": "f", "Autumn": "f", "Art": "m", "Sandy": "u",
}

# --------------------------------------------------------------------------------------------
# Lexical vocabulary

BASE_PLACES: tuple[str, ...] = ioi_templates.PLACES
NEW_PLACES: tuple[str, ...] = (
    "train station", "bookshop", "farm", "bridge", "stadium", "church", "hotel", "pharmacy",
    "laundromat", "aquarium", "cinema", "parking lot", "harbour", "post office", "barbershop",
)
BASE_OBJECTS: tuple[str, ...] = tuple("a " + o for o in ioi_templates.OBJECTS)
NEW_OBJECTS: tuple[str, ...] = (
    "a blanket", "a candle", "a towel", "a wallet", "a lamp", "a map", "a camera", "a ticket",
    "a jacket", "a notebook", "a guitar", "a pillow", "a sweater", "a basket", "a puzzle",
)
# Definite and plural objects; "the keys" is one reported to make GPT-2 small stumble.
PLURAL_OBJECTS: tuple[str, ...] = (
    "the keys", "the flowers", "the tickets", "the papers", "the cookies", "the photos",
    "the letters", "the tools", "the shoes", "the books", "the glasses", "the coins",
)
GIVE_VERB = "gave"
OTHER_VERBS: tuple[str, ...] = (
    "handed", "passed", "sent", "threw", "sold", "lent", "showed", "brought", "offered",
    "mailed", "tossed", "returned",
)

LEXICAL_TEMPLATES: tuple[str, ...] = (
    "Then, [S] and [IO] went to the [PLACE]. [S] [VERB] [OBJECT] to",
    "When [S] and [IO] arrived at the [PLACE], [S] [VERB] [OBJECT] to",
    "After [S] and [IO] had lunch at the [PLACE], [S] [VERB] [OBJECT] to",
    "While [S] and [IO] were waiting at the [PLACE], [S] [VERB] [OBJECT] to",
    "Yesterday, [S] and [IO] spent the afternoon at the [PLACE]. [S] [VERB] [OBJECT] to",
)

# --------------------------------------------------------------------------------------------
# Syntactic templates ([NOUN] and [OBJECT] from the base lists, [PLACE] from the base places)

# Names introduced asymmetrically (not "A and B"): the first name is the grammatical subject.
ASYMMETRIC_TEMPLATES: tuple[str, ...] = (
    "Then, [S] met [IO] at the [PLACE]. [S] gave [OBJECT] to",
    "Yesterday, [S] ran into [IO] near the [PLACE]. [S] gave [OBJECT] to",
    "This morning, [S] was waiting for [IO] at the [PLACE]. [S] handed [OBJECT] to",
    "Last week, [S] visited [IO] at the [PLACE]. [S] brought [OBJECT] to",
)

FILLER_TEMPLATES: tuple[str, ...] = (
    "Then, [S] and [IO] went to the [PLACE].[FILLER] [S] gave [OBJECT] to",
    "Yesterday, [S] and [IO] met at the [PLACE].[FILLER] [S] handed [OBJECT] to",
    "This morning, [S] and [IO] walked to the [PLACE].[FILLER] [S] passed [OBJECT] to",
)
# Name-free sentences, each with a leading space; concatenated to reach a target length.
FILLER_SENTENCES: tuple[str, ...] = (
    " It was warm.", " The sky was clear.", " Nobody was in a hurry.", " The music was loud.",
    " A dog barked somewhere outside.", " The room smelled of fresh coffee.",
    " It had rained all morning, but now the sun was out.", " The streets were quiet.",
    " Somebody had left the window open.", " The clock on the wall was five minutes slow.",
    " They talked about the weather for a while.", " It was late.",
    " Outside, a bus rattled past and a few birds flew off the roof.", " The lights flickered.",
)
FILLER_TARGETS: tuple[int, ...] = (0, 5, 10, 20)

# Paired: the same content as one sentence (subordinate clause) or as two sentences.
ONE_SENTENCE_TEMPLATES: tuple[str, ...] = (
    "When [S] and [IO] went to the [PLACE], [S] gave [OBJECT] to",
    "While [S] and [IO] were at the [PLACE], [S] handed [OBJECT] to",
    "Because [S] and [IO] were waiting at the [PLACE], [S] passed [OBJECT] to",
    "As soon as [S] and [IO] reached the [PLACE], [S] showed [OBJECT] to",
)
TWO_SENTENCE_TEMPLATES: tuple[str, ...] = (
    "Then, [S] and [IO] went to the [PLACE]. [S] gave [OBJECT] to",
    "Then, [S] and [IO] were at the [PLACE]. [S] handed [OBJECT] to",
    "Then, [S] and [IO] were waiting at the [PLACE]. [S] passed [OBJECT] to",
    "Then, [S] and [IO] reached the [PLACE]. [S] showed [OBJECT] to",
)
# Passive: the object is the grammatical subject, S the agent ("by"), the answer still the IO.
PASSIVE_TEMPLATES: tuple[str, ...] = (
    "Then, [S] and [IO] went to the [PLACE]. The [NOUN] was given by [S] to",
    "When [S] and [IO] arrived at the [PLACE], a [NOUN] was handed by [S] to",
    "While [S] and [IO] were at the [PLACE], the [NOUN] was passed by [S] to",
    "Yesterday, [S] and [IO] met at the [PLACE]. A [NOUN] was sent by [S] to",
)
RELATIVE_CLAUSE_TEMPLATES: tuple[str, ...] = (
    "Then, [S] and [IO] went to the [PLACE]. [S], who was in a good mood, gave [OBJECT] to",
    "Then, [S] and [IO], who both worked at the [PLACE], met for lunch. [S] gave [OBJECT] to",
    "The [PLACE] that [S] and [IO] visited was busy. [S] handed [OBJECT] to",
    "Then, [S] and [IO] went to the [PLACE], which had just opened. [S] passed [OBJECT] to",
)
# Reordered: the names' clause is the main clause, the giving a following subordinate clause
# (the reverse of "When A and B ..., B gave ...").
REORDERED_TEMPLATES: tuple[str, ...] = (
    "Then, [S] and [IO] went to the [PLACE], where [S] gave [OBJECT] to",
    "Then, [S] and [IO] went to the [PLACE] because [S] wanted to give [OBJECT] to",
    "Then, [S] and [IO] stayed at the [PLACE] until [S] handed [OBJECT] to",
    "Then, [S] and [IO] sat in the [PLACE] while [S] showed [OBJECT] to",
)

# --------------------------------------------------------------------------------------------
# Domains: the same structure with each world's own places, objects and verbs.

DOMAINS: dict[str, dict[str, tuple[str, ...]]] = {
    "workplace": {
        "templates": (
            "During the meeting in the [PLACE], [S] and [IO] reviewed the budget. "
            "Afterwards, [S] [VERB] [OBJECT] to",
            "Then, [S] and [IO] were working late at the [PLACE]. [S] [VERB] [OBJECT] to",
            "When [S] and [IO] started their shift at the [PLACE], [S] [VERB] [OBJECT] to",
        ),
        "places": ("office", "meeting room", "warehouse", "factory", "reception", "call centre"),
        "objects": ("the report", "a contract", "the invoice", "a memo", "the spreadsheet",
                    "a badge", "the schedule", "the slides"),
        "verbs": ("sent", "forwarded", "emailed", "handed", "gave", "passed"),
    },
    "sport": {
        "templates": (
            "During the match at the [PLACE], [S] and [IO] played well. Then [S] [VERB] [OBJECT] to",
            "Then, [S] and [IO] were training at the [PLACE]. [S] [VERB] [OBJECT] to",
            "When [S] and [IO] ran onto the [PLACE], [S] [VERB] [OBJECT] to",
        ),
        "places": ("stadium", "gym", "pitch", "locker room", "court", "track", "pool"),
        "objects": ("the ball", "a towel", "the trophy", "a water bottle", "the baton",
                    "a racket", "the medal", "a jersey"),
        "verbs": ("passed", "threw", "tossed", "handed", "gave", "kicked"),
    },
    "medicine": {
        "templates": (
            "At the [PLACE], [S] and [IO] examined the patient together. [S] [VERB] [OBJECT] to",
            "When [S] and [IO] finished the night shift at the [PLACE], [S] [VERB] [OBJECT] to",
            "Then, [S] and [IO] were called to the [PLACE]. [S] [VERB] [OBJECT] to",
        ),
        "places": ("hospital", "clinic", "ward", "pharmacy", "operating room", "emergency room"),
        "objects": ("the chart", "a syringe", "the prescription", "a bandage", "the scalpel",
                    "the test results", "a stethoscope", "the X-ray"),
        "verbs": ("handed", "gave", "passed", "sent", "brought", "showed"),
    },
    "law": {
        "templates": (
            "During the hearing at the [PLACE], [S] and [IO] spoke for hours. Then [S] [VERB] [OBJECT] to",
            "Then, [S] and [IO] met at the [PLACE] before the trial. [S] [VERB] [OBJECT] to",
            "When [S] and [IO] arrived at the [PLACE] with their lawyers, [S] [VERB] [OBJECT] to",
        ),
        "places": ("courtroom", "law firm", "courthouse", "police station", "prison", "notary"),
        "objects": ("the evidence", "a subpoena", "the verdict", "a contract", "the case file",
                    "the affidavit", "a warrant", "the will"),
        "verbs": ("handed", "gave", "submitted", "delivered", "sent", "passed"),
    },
    "fantasy": {
        "templates": (
            "Long ago, the wizard [S] and the knight [IO] guarded the [PLACE]. "
            "One night, [S] [VERB] [OBJECT] to",
            "Then, [S] and [IO] rode to the [PLACE]. [S] [VERB] [OBJECT] to",
            "When [S] and [IO] reached the [PLACE] at dawn, [S] [VERB] [OBJECT] to",
        ),
        "places": ("castle", "tower", "enchanted forest", "dragon's lair", "tavern", "throne room"),
        "objects": ("the sword", "a potion", "the amulet", "a scroll", "the wand", "a magic ring",
                    "the crown", "a shield"),
        "verbs": ("gave", "handed", "offered", "passed", "threw", "entrusted"),
    },
    "science": {
        "templates": (
            "In the [PLACE], [S] and [IO] ran the experiment again. Then [S] [VERB] [OBJECT] to",
            "Then, [S] and [IO] stayed late at the [PLACE]. [S] [VERB] [OBJECT] to",
            "When [S] and [IO] checked the readings at the [PLACE], [S] [VERB] [OBJECT] to",
        ),
        "places": ("lab", "observatory", "greenhouse", "clean room", "field station", "library"),
        "objects": ("the sample", "a microscope", "the data", "a test tube", "the results",
                    "a beaker", "the telescope", "a thermometer"),
        "verbs": ("handed", "gave", "passed", "sent", "showed", "brought"),
    },
}

# --------------------------------------------------------------------------------------------
# Adversarial templates ([OBJECT] and [NOUN] from the base lists)

DOUBLE_IO_TEMPLATES: tuple[str, ...] = (
    "Then, [S] and [IO] went to the [PLACE]. [IO] was tired, so [S] gave [OBJECT] to",
    "When [S] and [IO] arrived at the [PLACE], [IO] sat down and [S] gave [OBJECT] to",
    "While [S] and [IO] were at the [PLACE], [IO] looked hungry. [S] handed [OBJECT] to",
)
TRIPLE_IO_TEMPLATES: tuple[str, ...] = (
    "Then, [S] and [IO] went to the [PLACE]. [IO] was tired and [IO] was hungry, so [S] gave [OBJECT] to",
    "When [S] and [IO] arrived at the [PLACE], [IO] sat down. [IO] looked sad, so [S] gave [OBJECT] to",
    "While [S] and [IO] were at the [PLACE], [IO] waited and [IO] read. Then [S] handed [OBJECT] to",
)
DISTRACTOR_TEMPLATES: tuple[str, ...] = (
    "Then, [S] and [IO] went to the [PLACE] that [X] had recommended. [S] gave [OBJECT] to",
    "When [S] and [IO] arrived at the [PLACE], [X] had already left. [S] gave [OBJECT] to",
    "While [S] and [IO] were at the [PLACE], they talked about [X]. Then [S] handed [OBJECT] to",
)
S_THRICE_TEMPLATES: tuple[str, ...] = (
    "Then, [S] and [IO] went to the [PLACE]. [S] was in a good mood, so [S] gave [OBJECT] to",
    "When [S] and [IO] arrived at the [PLACE], [S] smiled. Then [S] handed [OBJECT] to",
    "While [S] and [IO] were at the [PLACE], [S] found a [NOUN]. Later [S] gave it to",
)
# S2 is a possessor: "John's friend gave a drink to" (the giver is the friend, not S).
POSSESSIVE_S2_TEMPLATES: tuple[str, ...] = (
    "When [S] and [IO] went to the [PLACE], [S]'s friend gave [OBJECT] to",
    "Then, [S] and [IO] were at the [PLACE]. [S]'s sister handed [OBJECT] to",
    "While [S] and [IO] waited at the [PLACE], [S]'s brother passed [OBJECT] to",
)
# S1 is a possessor; S2 is the giver, as in the base task. Not swapped (the possessive would
# move to the IO).
POSSESSIVE_S1_TEMPLATES: tuple[str, ...] = (
    "Then, [S]'s car broke down near the [PLACE], so [IO] came to help. [S] gave [OBJECT] to",
    "At [S]'s party in the [PLACE], [IO] arrived late. [S] handed [OBJECT] to",
    "Then, [S]'s phone rang at the [PLACE] and [IO] answered it. [S] gave [OBJECT] to",
)
