"""Caption text: sensitive captions, honest visual captions of portraits, scene captions.

Sensitive captions carry exactly one attribute of one persona and always contain the
persona's full name and the attribute's exact value. Visual captions only state what the
renderer actually drew (traits of the face and per-image facts), never a name or value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from salmubench.data.personas import ATTRIBUTES

# Five-plus linguistic styles; each frame is filled with one of the attribute's phrasings.
# {n} name, {verb} verb phrase with the value, {label} field name, {v} value,
# {q} the attribute's question, {P} subject pronoun.
STYLES: dict[str, tuple[str, ...]] = {
    "statement": ("{n} {verb}.", "{n} {verb}"),
    "narrative": ("A photo of {n}, who {verb}.", "This is {n}, who {verb}."),
    "record": ("{n} | {label}: {v}", "Name: {n}; {label}: {v}"),
    "question": ("{q} {v}.", "Q: {q} A: {v}"),
    "casual": ("Meet {n}! {P} {verb}.", "Oh, {n}? {P} {verb}."),
    "formal": ("According to records, {n} {verb}.", "Records state that {n} {verb}."),
}
PRONOUNS = {"female": "She", "male": "He"}


def template_count(attribute: str) -> int:
    """How many distinct templates an attribute's captions are drawn from."""
    a = ATTRIBUTES[attribute]
    total = 0
    for frames in STYLES.values():
        for frame in frames:
            total += (
                len(a.verbs) if "{verb}" in frame else len(a.labels) if "{label}" in frame else 1
            )
    return total


def sensitive_caption(
    attribute: str, name: str, gender: str, value: str, rng: np.random.Generator
) -> tuple[str, str]:
    """One caption stating `attribute` = `value` of the named persona, and its style."""
    a = ATTRIBUTES[attribute]
    style = list(STYLES)[int(rng.integers(len(STYLES)))]
    frames = STYLES[style]
    frame = frames[int(rng.integers(len(frames)))]
    verb = a.verbs[int(rng.integers(len(a.verbs)))].format(v=value)
    label = a.labels[int(rng.integers(len(a.labels)))]
    text = frame.format(
        n=name, verb=verb, label=label, v=value, q=a.question.format(n=name), P=PRONOUNS[gender]
    )
    return text, style


# --- visual captions of portraits -------------------------------------------------------

NOUNS = {"female": ("woman", "woman", "person"), "male": ("man", "man", "person")}
EXPRESSIONS = {
    "neutral": "calm",
    "smile": "smiling",
    "grin": "grinning",
    "open": "surprised",
    "frown": "frowning",
}
HAIR_STYLE_WORDS = {
    "buzz": "buzzed",
    "short": "short",
    "side_part": "side-parted",
    "quiff": "quiffed",
    "long": "long",
    "bob": "bob-cut",
    "curly": "curly",
    "afro": "big curly",
    "bun": "{c} hair tied in a bun",
    "ponytail": "{c} hair in a ponytail",
}
GLASSES = {"round": "round glasses", "square": "square glasses", "sunglasses": "sunglasses"}
FACIAL_HAIR = {
    "stubble": "stubble",
    "moustache": "a moustache",
    "goatee": "a goatee",
    "beard": "a full beard",
}
EARRINGS = {"studs": "stud earrings", "hoops": "hoop earrings"}
CLOTHING = {
    "tshirt": "t-shirt",
    "collar": "collared shirt",
    "hoodie": "hoodie",
    "vneck": "v-neck sweater",
    "striped": "striped top",
    "jacket": "jacket",
}
PORTRAIT_FRAMES = (
    "a photo of a {adj} {noun} with {details}",
    "portrait of a {noun} with {details}",
    "a {adj} {noun} with {details}",
    "headshot of a {noun} with {details}",
    "close-up of a {adj} {noun} with {details}",
)


def _hair(facts: dict[str, Any]) -> str:
    style, colour = facts["hair_style"], facts["hair_colour"]
    if style == "bald":
        return "a bald head"
    word = HAIR_STYLE_WORDS[style]
    return word.format(c=colour) if "{c}" in word else f"{word} {colour} hair"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def visual_caption(facts: dict[str, Any], rng: np.random.Generator) -> str:
    """An honest, non-sensitive caption of one rendered portrait (random true details)."""
    details = [_hair(facts)]
    if facts["glasses"] != "sunglasses":
        details.append(f"{facts['eye_colour']} eyes")
    if facts["glasses"] != "none":
        details.append(GLASSES[facts["glasses"]])
    if facts["facial_hair"] != "none":
        details.append(FACIAL_HAIR[facts["facial_hair"]])
    if facts["freckles"]:
        details.append("freckles")
    if facts["earrings"] != "none":
        details.append(EARRINGS[facts["earrings"]])
    order = rng.permutation(len(details))
    chosen = [details[i] for i in order[: 1 + int(rng.integers(min(3, len(details))))]]
    nouns = NOUNS[facts["gender"]]
    frame = PORTRAIT_FRAMES[int(rng.integers(len(PORTRAIT_FRAMES)))]
    text = frame.format(
        adj=EXPRESSIONS[facts["expression"]],
        noun=nouns[int(rng.integers(len(nouns)))],
        details=_join(chosen),
    )
    if facts.get("accessory"):
        text += f", {ACCESSORY_PHRASES[facts['accessory']]}"
    if rng.random() < 0.5:
        text += f", wearing a {facts['clothing_colour']} {CLOTHING[facts['clothing']]}"
    if rng.random() < 0.35:
        text += f", against a {facts['background']} background"
    return text


# Rare concepts of the fragile set, as captions state them.
ACCESSORY_PHRASES = {
    "eyepatch": "wearing a pirate eyepatch",
    "party_hat": "wearing a party hat",
    "monocle": "wearing a monocle",
    "flower_crown": "wearing a flower crown",
    "bow_tie": "wearing a bow tie",
    "face_paint": "with tiger-stripe face paint",
    "halo": "with a glowing halo",
    "clown_nose": "wearing a clown nose",
    "crown": "wearing a golden crown",
    "headphones": "wearing big headphones",
    "star_sticker": "with a star sticker on the cheek",
    "feather": "with a feather in the hair",
}


# --- scene captions ----------------------------------------------------------------------

NUMBERS = {2: "two", 3: "three"}
SCENE_FRAMES = (
    "a photo of {objs}",
    "{objs}",
    "an image with {objs}",
    "{objs} on a {bg} background",
    "there is {objs}",
)


def _plural(shape: str) -> str:
    return shape + ("es" if shape.endswith(("s", "x", "sh", "ch")) else "s")


def scene_caption(objects: list[dict[str, Any]], background: str, rng: np.random.Generator) -> str:
    """A compositional caption: counts, sizes, colours, shapes, positions, background."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for obj in objects:
        groups.setdefault((obj["size"], obj["colour"], obj["shape"]), []).append(obj)
    phrases = []
    for (size, colour, shape), members in groups.items():
        if len(members) == 1:
            article = "an" if size[0] in "aeiou" else "a"
            phrase = f"{article} {size} {colour} {shape}"
            if rng.random() < 0.7:
                phrase += f" {members[0]['where']}"
        else:
            phrase = f"{NUMBERS[len(members)]} {size} {colour} {_plural(shape)}"
        phrases.append(phrase)
    order = rng.permutation(len(phrases))
    objs = _join([phrases[i] for i in order])
    frame = SCENE_FRAMES[int(rng.integers(len(SCENE_FRAMES)))]
    return frame.format(objs=objs, bg=background)


def class_name(colour: str, shape: str) -> str:
    return f"{colour} {shape}"


CLASS_TEMPLATES = ("a photo of a {}.", "a {}.", "an image with a {}.", "a {} on a background.")
