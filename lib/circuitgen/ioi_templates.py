"""Word lists and templates for IOI prompts, in the style of Wang et al. 2022 (arXiv:2211.00593).

Templates are written in the BABA order with the placeholders ``[A]`` (the indirect object),
``[B]`` (the subject, twice), ``[PLACE]`` and ``[OBJECT]``; each ends right before the answer, so
the model's next token should be `` [A]``. The ABBA twin of a template swaps its first ``[B]`` with
its ``[A]`` (done in :mod:`circuitgen.ioi`). The wording is this project's own; the structure
(two names introduced together, then the subject repeated as the giver) is the paper's.

Names are common first names of mixed gender and origin. Not all of them are a single token with a
leading space in every tokenizer; :func:`circuitgen.ioi.single_token_names` filters them per
tokenizer and reports what it dropped. Objects begin with a consonant so that "a [OBJECT]" reads
right. No name in the list is also an ordinary English word that a template uses.
"""

from __future__ import annotations

BABA_TEMPLATES: tuple[str, ...] = (
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Later that day, [B] and [A] walked into the [PLACE]. [B] handed a [OBJECT] to",
    "When [B] and [A] arrived at the [PLACE], [B] passed a [OBJECT] to",
    "After [B] and [A] had lunch at the [PLACE], [B] offered a [OBJECT] to",
    "While [B] and [A] were waiting at the [PLACE], [B] threw a [OBJECT] to",
    "Yesterday, [B] and [A] spent the afternoon at the [PLACE]. [B] brought a [OBJECT] to",
    "On Sunday, [B] and [A] cleaned the [PLACE] together. [B] gave a [OBJECT] to",
    "This morning, [B] and [A] met outside the [PLACE]. [B] sent a [OBJECT] to",
    "Once [B] and [A] reached the [PLACE], [B] showed a [OBJECT] to",
    "At the [PLACE], [B] and [A] found a [OBJECT]. [B] gave it to",
    "Before [B] and [A] left the [PLACE], [B] lent a [OBJECT] to",
    "Last week, [B] and [A] visited the [PLACE]. Then [B] sold a [OBJECT] to",
    "During a trip to the [PLACE], [B] and [A] got hungry, so [B] gave a [OBJECT] to",
    "Then, [B] and [A] had a long argument at the [PLACE]. Afterwards, [B] said sorry to",
    "As soon as [B] and [A] got to the [PLACE], [B] returned the [OBJECT] to",
    "The [PLACE] was crowded when [B] and [A] came in, so [B] gave a [OBJECT] to",
    "After the meeting, [B] and [A] stayed at the [PLACE]. [B] wanted to give a [OBJECT] to",
    "Friends [B] and [A] bought a [OBJECT] at the [PLACE]. Later, [B] gave the [OBJECT] to",
)

NAMES: tuple[str, ...] = (
    # English-language, mixed gender
    "Mary", "John", "Alice", "Bob", "Sarah", "David", "Emma", "James", "Laura", "Michael",
    "Rachel", "Thomas", "Anna", "Paul", "Kate", "Peter", "Lisa", "Mark", "Susan", "Daniel",
    "Helen", "George", "Emily", "Richard", "Amy", "Steven", "Jessica", "Kevin", "Claire", "Brian",
    "Linda", "Jack", "Karen", "Adam", "Nancy", "Eric", "Julia", "Ryan", "Megan", "Scott",
    # Spanish, Portuguese, Italian, French, German
    "Carlos", "Maria", "Juan", "Sofia", "Luis", "Ana", "Diego", "Lucia", "Marco", "Giulia",
    "Pierre", "Marie", "Hans", "Greta", "Pedro", "Elena", "Jose", "Miguel", "Rosa", "Andrea",
    "Hugo", "Felix", "Antonio", "Pablo",
    # Slavic, Greek, Nordic
    "Ivan", "Olga", "Dmitri", "Nikos", "Sven", "Ingrid", "Nina", "Vera", "Boris",
    # Arabic, Persian, Turkish, Hebrew
    "Ahmed", "Fatima", "Omar", "Layla", "Ali", "Yusuf", "Leila", "Darius", "Emre", "Noam",
    "Hassan", "Ibrahim", "Mohammed", "Sara",
    # South and East Asian
    "Priya", "Raj", "Arjun", "Anjali", "Maya", "Wei", "Mei", "Hiroshi", "Yuki", "Kenji",
    "Jin", "Min", "Ming", "Lin", "Jun", "Kim", "Xiaoling",
    # African
    "Kwame", "Amara", "Chidi", "Nia", "Tunde", "Zainab",
)

PLACES: tuple[str, ...] = (
    "store", "garden", "restaurant", "school", "hospital", "office", "station", "park", "house",
    "market", "library", "beach", "cafe", "museum", "airport", "gym", "bakery", "kitchen",
    "theater", "zoo",
)

OBJECTS: tuple[str, ...] = (
    "ring", "drink", "snack", "book", "ball", "necklace", "basketball", "computer", "letter",
    "gift", "pen", "bottle", "cake", "flower", "hat", "sandwich", "toy", "key", "phone", "bag",
)
