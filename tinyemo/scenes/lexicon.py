"""The emotion lexicon the rule teacher writes with: synonyms and phrases per Mikels-8 emotion.

`feel`: how the viewer feels (adjectives); `noun`: names of the feeling; `mood`: adjectives
for the scene; `effect`: what an element does ("{X} {effect}", third person singular, an
`{s}` marks the verb ending that a plural subject drops).
"""
from __future__ import annotations

LEXICON: dict[str, dict[str, tuple[str, ...]]] = {
    "amusement": {
        "feel": ("amused", "tickled", "cheerful", "light-hearted", "playful"),
        "noun": ("amusement", "playful fun", "light-hearted joy", "mirth", "giddy delight"),
        "mood": ("playful", "whimsical", "silly", "festive", "cheeky"),
        "effect": ("make{s} me want to smile", "add{s} a silly, party-like touch",
                   "feel{s} like the start of a joke", "bring{s} a sense of play",
                   "look{s} as if a party has just begun"),
    },
    "anger": {
        "feel": ("tense", "agitated", "irritated", "on edge", "furious"),
        "noun": ("anger", "rage", "fury", "hostility", "aggression"),
        "mood": ("violent", "aggressive", "harsh", "volatile", "destructive"),
        "effect": ("radiate{s} aggression", "feel{s} like an outburst of rage",
                   "suggest{s} something destroyed in fury", "make{s} the scene feel hostile",
                   "carr{ies} a sense of violent energy"),
    },
    "awe": {
        "feel": ("small", "humbled", "overwhelmed", "spellbound", "astonished"),
        "noun": ("awe", "wonder", "reverence", "amazement", "sublime wonder"),
        "mood": ("vast", "majestic", "grand", "immense", "breathtaking"),
        "effect": ("dwarf{s} everything around it", "stretch{es} far beyond the eye",
                   "make{s} me feel tiny in comparison", "command{s} silent admiration",
                   "open{s} the scene to something immense"),
    },
    "contentment": {
        "feel": ("calm", "at ease", "peaceful", "warm inside", "serene"),
        "noun": ("contentment", "peace", "quiet happiness", "serenity", "gentle satisfaction"),
        "mood": ("gentle", "tranquil", "cosy", "soft", "harmonious"),
        "effect": ("bring{s} a gentle warmth", "make{s} the place feel safe and pleasant",
                   "suggest{s} a slow, peaceful afternoon", "soften{s} the whole picture",
                   "invite{s} me to linger and relax"),
    },
    "disgust": {
        "feel": ("repulsed", "queasy", "revolted", "uneasy in the stomach", "sickened"),
        "noun": ("disgust", "revulsion", "distaste", "loathing", "nausea"),
        "mood": ("foul", "rotten", "filthy", "putrid", "unclean"),
        "effect": ("make{s} me want to look away", "suggest{s} decay and filth",
                   "look{s} slimy and unclean", "evoke{s} the smell of something rotting",
                   "turn{s} my stomach"),
    },
    "excitement": {
        "feel": ("thrilled", "energised", "eager", "exhilarated", "buzzing"),
        "noun": ("excitement", "thrill", "exhilaration", "anticipation", "electric energy"),
        "mood": ("energetic", "dazzling", "electric", "vibrant", "exhilarating"),
        "effect": ("promise{s} that something great is about to happen", "burst{s} with energy",
                   "make{s} my pulse quicken", "fill{s} the scene with anticipation",
                   "feel{s} like a celebration in full swing"),
    },
    "fear": {
        "feel": ("frightened", "nervous", "uneasy", "alarmed", "scared"),
        "noun": ("fear", "dread", "terror", "unease", "menace"),
        "mood": ("menacing", "sinister", "threatening", "eerie", "ominous"),
        "effect": ("seem{s} to lurk, ready to strike", "make{s} me want to step back",
                   "signal{s} danger", "give{s} the scene a threatening edge",
                   "send{s} a shiver down my spine"),
    },
    "sadness": {
        "feel": ("sad", "heavy-hearted", "melancholic", "sorrowful", "downcast"),
        "noun": ("sadness", "grief", "melancholy", "sorrow", "loss"),
        "mood": ("mournful", "bleak", "lonely", "gloomy", "desolate"),
        "effect": ("speak{s} of loss", "make{s} the scene feel lonely",
                   "remind{s} me of mourning", "weigh{s} on the whole picture",
                   "evoke{s} a quiet grief"),
    },
}

POSITIVE = ("amusement", "awe", "contentment", "excitement")  # valence used by sentiment answers


def conjugate(phrase: str, plural: bool) -> str:
    """Fill the verb ending of an `effect` phrase for a singular or plural subject."""
    if plural:
        return phrase.replace("{s}", "").replace("{es}", "").replace("{ies}", "y")
    return phrase.replace("{s}", "s").replace("{es}", "es").replace("{ies}", "ies")
