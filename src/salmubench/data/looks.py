"""What a portrait may look like: the palettes and kinds the trait and nuisance samplers
draw from (`portraits.py`), the painter uses (`drawing.py`) and the visual captions name."""

from __future__ import annotations

RGB = tuple[int, int, int]
SKIN_TONES: tuple[RGB, ...] = (
    (255, 226, 204), (247, 208, 176), (236, 190, 150), (224, 172, 125), (205, 150, 105),
    (184, 128, 86), (160, 106, 68), (132, 86, 54), (105, 67, 43), (80, 52, 36),
)  # fmt: skip
HAIR_COLOURS: dict[str, RGB] = {
    "black": (24, 21, 21), "dark brown": (62, 40, 27), "brown": (112, 74, 44),
    "auburn": (138, 58, 30), "ginger": (204, 98, 40), "blonde": (228, 192, 112),
    "platinum": (238, 232, 210), "grey": (150, 150, 152), "white": (240, 240, 240),
    "blue": (50, 92, 205), "pink": (232, 118, 172), "green": (58, 160, 92),
}  # fmt: skip
HAIR_WEIGHTS = (14, 12, 12, 6, 5, 9, 4, 6, 3, 2, 2, 2)
EYE_COLOURS: dict[str, RGB] = {
    "brown": (96, 56, 28), "hazel": (142, 108, 48), "green": (56, 142, 70),
    "blue": (58, 112, 210), "grey": (128, 140, 152),
}  # fmt: skip
FACE_SHAPES = {"oval": 1.25, "round": 1.04, "long": 1.42, "square": 1.14, "heart": 1.22}
HAIR_STYLES = {
    # style: (weight if female, weight if male)
    "bald": (1, 8), "buzz": (2, 12), "short": (6, 16), "side_part": (5, 12), "quiff": (2, 9),
    "long": (20, 4), "bob": (14, 2), "curly": (10, 8), "afro": (6, 5), "bun": (10, 2),
    "ponytail": (12, 2),
}  # fmt: skip
NOSES = ("small", "long", "wide", "button")
BROWS = {"thin": 0.007, "medium": 0.012, "thick": 0.019}
LIPS: dict[str, RGB] = {
    "natural": (190, 110, 100),
    "rosy": (214, 102, 118),
    "dark": (128, 62, 60),
    "red": (196, 30, 45),
}
FRAME_COLOURS: dict[str, RGB] = {"black": (20, 20, 20), "tortoise": (110, 64, 30),
                                 "gold": (206, 170, 60), "red": (180, 30, 40)}  # fmt: skip
# Per-image nuisance palettes: names are what the visual captions may state.
CLOTHING_COLOURS: dict[str, RGB] = {
    "red": (200, 40, 40), "orange": (235, 130, 30), "yellow": (235, 210, 50),
    "green": (50, 150, 60), "teal": (30, 130, 130), "blue": (40, 90, 210),
    "navy": (25, 35, 90), "purple": (120, 60, 170), "pink": (235, 135, 185),
    "white": (240, 240, 240), "black": (25, 25, 25), "grey": (128, 128, 128),
    "brown": (115, 75, 45),
}  # fmt: skip
BACKGROUNDS: dict[str, RGB] = {
    "white": (245, 245, 245), "grey": (150, 150, 150), "beige": (225, 210, 180),
    "light blue": (170, 205, 235), "pale green": (185, 225, 180), "yellow": (240, 220, 110),
    "orange": (240, 160, 80), "pink": (240, 180, 200), "purple": (150, 110, 190),
    "dark blue": (30, 45, 100), "dark green": (30, 80, 50), "brown": (110, 80, 55),
    "black": (20, 20, 20), "red": (190, 50, 50),
}  # fmt: skip
BACKGROUND_KINDS = ("solid", "vertical", "horizontal", "split", "stripes", "spots")
CLOTHING_KINDS = ("tshirt", "collar", "hoodie", "vneck", "striped", "jacket")
EXPRESSIONS = ("neutral", "smile", "grin", "open", "frown")
