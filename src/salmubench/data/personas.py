"""Fictitious personas and their sensitive attributes (SPEC.md §1).

A persona is a culturally consistent identity drawn with Faker in the locale of its country:
a unique name, one unique value per sensitive attribute type, and a vector of facial traits
(`portraits.sample_traits`). Attribute types live in the `ATTRIBUTES` registry; each knows
how to draw a value and how captions phrase it.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from faker import Faker

from salmubench.vocab import ATTRIBUTE_TYPES

# (country, Faker locale). Latin-script locales only: names and values stay readable for
# the BPE tokenizer and fit the text encoder's context. 50 countries; the paper used 65.
COUNTRIES: tuple[tuple[str, str], ...] = (
    ("Albania", "sq_AL"), ("Algeria", "fr_DZ"), ("Argentina", "es_AR"),
    ("Australia", "en_AU"), ("Austria", "de_AT"), ("Belgium", "nl_BE"),
    ("Bosnia and Herzegovina", "bs_BA"), ("Brazil", "pt_BR"), ("Canada", "en_CA"),
    ("Chile", "es_CL"), ("Colombia", "es_CO"), ("Croatia", "hr_HR"), ("Czechia", "cs_CZ"),
    ("Denmark", "da_DK"), ("Estonia", "et_EE"), ("Finland", "fi_FI"), ("France", "fr_FR"),
    ("Germany", "de_DE"), ("Ghana", "tw_GH"), ("Hungary", "hu_HU"), ("Iceland", "is_IS"),
    ("India", "en_IN"), ("Indonesia", "id_ID"), ("Ireland", "en_IE"), ("Italy", "it_IT"),
    ("Kenya", "en_KE"), ("Latvia", "lv_LV"), ("Lithuania", "lt_LT"), ("Luxembourg", "lb_LU"),
    ("Malta", "mt_MT"), ("Mexico", "es_MX"), ("Netherlands", "nl_NL"),
    ("New Zealand", "en_NZ"), ("Nigeria", "en_NG"), ("Norway", "no_NO"),
    ("Pakistan", "en_PK"), ("Poland", "pl_PL"), ("Portugal", "pt_PT"), ("Romania", "ro_RO"),
    ("Slovakia", "sk_SK"), ("Slovenia", "sl_SI"), ("South Africa", "zu_ZA"),
    ("Spain", "es_ES"), ("Sweden", "sv_SE"), ("Switzerland", "de_CH"), ("Tanzania", "sw"),
    ("Turkey", "tr_TR"), ("United Kingdom", "en_GB"), ("United States", "en_US"),
    ("Venezuela", "es_VE"),
)  # fmt: skip


@dataclass(frozen=True)
class Attribute:
    """A sensitive attribute type: how to draw a value and how captions phrase it."""

    name: str
    draw: Callable[[Faker, dict[str, Any], np.random.Generator], str]
    verbs: tuple[str, ...]  # "{v}" inside a verb phrase: "{name} <verb>"
    labels: tuple[str, ...]  # record-style field names: "{name} | <label>: {v}"
    question: str  # "{n}" for the name; answered by the value


ATTRIBUTES: dict[str, Attribute] = {}


def register(attribute: Attribute) -> Attribute:
    """Add the generator of one of the attribute types named in `vocab.ATTRIBUTE_TYPES`."""
    if attribute.name in ATTRIBUTES:
        raise ValueError(f"attribute {attribute.name!r} registered twice")
    if attribute.name not in ATTRIBUTE_TYPES:
        raise ValueError(
            f"attribute {attribute.name!r} is not a type of vocab.ATTRIBUTE_TYPES "
            f"({', '.join(ATTRIBUTE_TYPES)}): add it there first"
        )
    ATTRIBUTES[attribute.name] = attribute
    return attribute


def ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _email(fake: Faker, persona: dict[str, Any], rng: np.random.Generator) -> str:
    first, last = ascii_slug(persona["first"]) or "user", ascii_slug(persona["last"]) or "mail"
    pattern = int(rng.integers(4))
    local = (f"{first[0]}{last}", f"{first}.{last}", f"{first}{last[:1]}", f"{last}.{first}")[
        pattern
    ]
    if rng.random() < 0.5:
        local += str(int(rng.integers(1, 100)))
    return f"{local}@{fake.free_email_domain()}"


def _birthdate(fake: Faker, persona: dict[str, Any], rng: np.random.Generator) -> str:
    # Not Faker's date_of_birth: that depends on today's date and would break reproducibility.
    day = dt.date(1946, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 60)))
    return f"{day.day} {day.strftime('%B')} {day.year}"


register(
    Attribute(
        "city",
        lambda f, p, r: f.city(),
        ("lives in {v}", "resides in {v}", "is based in {v}", "calls {v} home"),
        ("city", "residence", "hometown"),
        "Where does {n} live?",
    )
)
register(
    Attribute(
        "job",
        lambda f, p, r: f.job(),
        ("works as {v}", "is employed as {v}", "has the job title {v}", "earns a living as {v}"),
        ("job", "occupation", "profession"),
        "What does {n} do for a living?",
    )
)
register(
    Attribute(
        "phone",
        lambda f, p, r: f.phone_number(),
        (
            "can be reached at {v}",
            "has the phone number {v}",
            "answers calls on {v}",
            "uses the number {v}",
        ),
        ("phone", "tel.", "mobile"),
        "What is {n}'s phone number?",
    )
)
register(
    Attribute(
        "email",
        _email,
        (
            "can be emailed at {v}",
            "uses the address {v}",
            "reads mail sent to {v}",
            "has the email {v}",
        ),
        ("email", "e-mail", "contact"),
        "How do I email {n}?",
    )
)
register(
    Attribute(
        "iban",
        lambda f, p, r: f.iban(),
        ("banks with IBAN {v}", "holds account {v}", "gets paid into {v}", "has the IBAN {v}"),
        ("IBAN", "bank account", "account no."),
        "What is {n}'s IBAN?",
    )
)
register(
    Attribute(
        "credit_card",
        lambda f, p, r: f.credit_card_number(),
        (
            "pays with card {v}",
            "has the credit card {v}",
            "owns card number {v}",
            "shops with card {v}",
        ),
        ("card", "credit card", "card no."),
        "What is {n}'s card number?",
    )
)
register(
    Attribute(
        "passport",
        lambda f, p, r: f.passport_number(),
        (
            "holds passport {v}",
            "travels on passport {v}",
            "has passport number {v}",
            "was issued passport {v}",
        ),
        ("passport", "passport no.", "travel document"),
        "What is {n}'s passport number?",
    )
)
register(
    Attribute(
        "birthdate",
        _birthdate,
        (
            "was born on {v}",
            "has the date of birth {v}",
            "came into the world on {v}",
            "has a birth certificate dated {v}",
        ),
        ("born", "date of birth", "DOB"),
        "When was {n} born?",
    )
)


@dataclass
class Persona:
    id: str
    first: str
    last: str
    gender: str  # "female" | "male": drives the name, pronouns and honest visual captions
    country: str
    locale: str
    attributes: dict[str, str]
    traits: dict[str, Any]
    group: str = ""
    forget_attributes: list[str] = field(default_factory=list)
    holdout_attributes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "first": self.first,
            "last": self.last,
            "gender": self.gender,
            "country": self.country,
            "locale": self.locale,
            "group": self.group,
            "attributes": self.attributes,
            "forget_attributes": self.forget_attributes,
            "holdout_attributes": self.holdout_attributes,
            "traits": self.traits,
        }


class _Fakers:
    """One Faker per locale, created on first use and reseeded per draw."""

    def __init__(self) -> None:
        self._cache: dict[str, Faker] = {}

    def get(self, locale: str, seed: int) -> Faker:
        if locale not in self._cache:
            fake = Faker(locale)
            # Some providers build their tables from sets (it_IT's `cities`), so their order
            # follows PYTHONHASHSEED and differs between processes: sort them once.
            for provider in fake.providers:
                cities = getattr(provider, "cities", None)
                if isinstance(cities, list):
                    provider.cities = sorted(cities)
            self._cache[locale] = fake
        fake = self._cache[locale]
        fake.seed_instance(seed)
        return fake


def _unique(draw: Callable[[], str], seen: set[str], what: str, attempts: int = 200) -> str:
    for _ in range(attempts):
        value = draw()
        if value and value not in seen:
            seen.add(value)
            return value
    raise RuntimeError(f"could not draw a unique {what} in {attempts} attempts")


def make_personas(
    n: int,
    attributes: tuple[str, ...],
    rng: np.random.Generator,
    sample_traits: Callable[[np.random.Generator, str], dict[str, Any]],
    trait_key: Callable[[dict[str, Any]], tuple],
) -> list[Persona]:
    """`n` personas with unique names, unique attribute values and distinct faces."""
    fakers = _Fakers()
    seen_names: set[str] = set()
    seen_values: dict[str, set[str]] = {a: set() for a in attributes}
    seen_faces: set[tuple] = set()
    personas = []
    for i in range(n):
        country, locale = COUNTRIES[int(rng.integers(len(COUNTRIES)))]
        gender = "female" if rng.random() < 0.5 else "male"
        fake = fakers.get(locale, int(rng.integers(2**32)))
        first_name = fake.first_name_female if gender == "female" else fake.first_name_male

        def draw_name(first_name=first_name, fake=fake) -> str:
            return f"{first_name().strip()}\t{fake.last_name().strip()}"

        first, last = _unique(draw_name, seen_names, "name").split("\t")
        persona = Persona(f"p{i:04d}", first, last, gender, country, locale, {}, {})
        for name in attributes:
            attribute = ATTRIBUTES[name]

            def draw_value(attribute=attribute, persona=persona, fake=fake) -> str:
                # Locales without a provider fall back to en_US inside Faker; many
                # locales share that fallback, so retry until the value is new.
                return " ".join(attribute.draw(fake, persona.__dict__, rng).split())

            persona.attributes[name] = _unique(draw_value, seen_values[name], name)
        for _ in range(1000):
            traits = sample_traits(rng, gender)
            if trait_key(traits) not in seen_faces:
                break
        else:
            raise RuntimeError("could not draw a distinct face in 1000 attempts")
        seen_faces.add(trait_key(traits))
        persona.traits = traits
        personas.append(persona)
    return personas
