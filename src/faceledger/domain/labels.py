"""Object labels and text: the COCO → Rekognition label table, and the label/text results.

**Why this table.** Rekognition answers a hierarchy: each label names its Parents (all
ancestors, nearest first: ``Car → Vehicle → Transportation``) and its Categories (a coarse
grouping used by ``LabelCategoryInclusionFilters``). The default ``labels`` pack detects the 80
COCO classes and nothing else, so every answer starts from one of them:

- *Names* are Rekognition's for the same thing where COCO's differs (``motorcycle`` →
  ``Motorcycle``, ``tv`` → ``TV``, ``dining table`` → ``Dining Table``, ``cell phone`` →
  ``Mobile Phone``, ``sports ball`` → ``Ball``, ``potted plant`` → ``Potted Plant``); title case
  like Rekognition's.
- *Parents* are only the ancestors Rekognition itself gives for that label and that follow from
  the class with certainty (a car is always a vehicle; a dog is always an animal and a pet is
  not certain, so ``Pet`` is not claimed). Ancestors are emitted as labels too, with the
  confidence of their best child, as Rekognition does; they carry no Instances.
- *Categories* are Rekognition's published category names, one per label.

No scene classes exist in this pack (no "Outdoors", "Beach", "Office"): the service answers
nothing rather than guess a scene from the objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from faceledger.domain.collections import BoundingBox

# COCO's 80 classes in the order of the detector's class scores (YOLOX, Detectron, MMDet).
COCO80: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip


@dataclass(frozen=True)
class LabelInfo:
    """A label's Rekognition-style name, its ancestors (nearest first) and its category."""

    name: str
    parents: tuple[str, ...]
    category: str


def _l(name: str, category: str, *parents: str) -> LabelInfo:
    return LabelInfo(name, parents, category)


_VEHICLE = ("Vehicle", "Transportation")
_FOOD = ("Food",)
_FURNITURE = ("Furniture",)
_ANIMAL = ("Animal",)
_MAMMAL = ("Mammal", "Animal")
_APPLIANCE = ("Appliance",)
_ELECTRONICS = ("Electronics",)
_SPORT = ("Sport",)

# COCO class → label. Categories: Rekognition's category names.
COCO_LABELS: dict[str, LabelInfo] = {
    "person": _l("Person", "Person Description"),
    "bicycle": _l("Bicycle", "Vehicles and Automotive", *_VEHICLE),
    "car": _l("Car", "Vehicles and Automotive", *_VEHICLE),
    "motorcycle": _l("Motorcycle", "Vehicles and Automotive", *_VEHICLE),
    "airplane": _l("Airplane", "Vehicles and Automotive", "Aircraft", *_VEHICLE),
    "bus": _l("Bus", "Vehicles and Automotive", *_VEHICLE),
    "train": _l("Train", "Vehicles and Automotive", *_VEHICLE),
    "truck": _l("Truck", "Vehicles and Automotive", *_VEHICLE),
    "boat": _l("Boat", "Vehicles and Automotive", *_VEHICLE),
    "traffic light": _l("Traffic Light", "Vehicles and Automotive", "Light"),
    "fire hydrant": _l("Fire Hydrant", "Public Safety", "Hydrant"),
    "stop sign": _l("Stop Sign", "Vehicles and Automotive", "Road Sign", "Sign", "Symbol"),
    "parking meter": _l("Parking Meter", "Vehicles and Automotive"),
    "bench": _l("Bench", "Home and Indoors", *_FURNITURE),
    "bird": _l("Bird", "Animals and Pets", *_ANIMAL),
    "cat": _l("Cat", "Animals and Pets", *_MAMMAL),
    "dog": _l("Dog", "Animals and Pets", "Canine", *_MAMMAL),
    "horse": _l("Horse", "Animals and Pets", *_MAMMAL),
    "sheep": _l("Sheep", "Animals and Pets", "Livestock", *_MAMMAL),
    "cow": _l("Cow", "Animals and Pets", "Cattle", "Livestock", *_MAMMAL),
    "elephant": _l("Elephant", "Animals and Pets", "Wildlife", *_MAMMAL),
    "bear": _l("Bear", "Animals and Pets", "Wildlife", *_MAMMAL),
    "zebra": _l("Zebra", "Animals and Pets", "Wildlife", *_MAMMAL),
    "giraffe": _l("Giraffe", "Animals and Pets", "Wildlife", *_MAMMAL),
    "backpack": _l("Backpack", "Apparel and Accessories", "Bag", "Accessories"),
    "umbrella": _l("Umbrella", "Apparel and Accessories", "Accessories"),
    "handbag": _l("Handbag", "Apparel and Accessories", "Bag", "Accessories"),
    "tie": _l("Tie", "Apparel and Accessories", "Accessories", "Formal Wear", "Clothing"),
    "suitcase": _l("Suitcase", "Travel and Adventure", "Luggage"),
    "frisbee": _l("Frisbee", "Sports", "Toy"),
    "skis": _l("Ski", "Sports", "Sports Equipment", *_SPORT),
    "snowboard": _l("Snowboard", "Sports", "Sports Equipment", *_SPORT),
    "sports ball": _l("Ball", "Sports", "Sports Equipment", *_SPORT),
    "kite": _l("Kite", "Toys and Gaming", "Toy"),
    "baseball bat": _l("Baseball Bat", "Sports", "Sports Equipment", *_SPORT),
    "baseball glove": _l("Baseball Glove", "Sports", "Sports Equipment", *_SPORT),
    "skateboard": _l("Skateboard", "Sports", "Sports Equipment", *_SPORT),
    "surfboard": _l("Surfboard", "Sports", "Sports Equipment", *_SPORT),
    "tennis racket": _l("Racket", "Sports", "Sports Equipment", *_SPORT),
    "bottle": _l("Bottle", "Food and Beverage"),
    "wine glass": _l("Wine Glass", "Food and Beverage", "Glass"),
    "cup": _l("Cup", "Food and Beverage"),
    "fork": _l("Fork", "Food and Beverage", "Cutlery"),
    "knife": _l("Knife", "Food and Beverage", "Cutlery", "Weapon"),
    "spoon": _l("Spoon", "Food and Beverage", "Cutlery"),
    "bowl": _l("Bowl", "Food and Beverage"),
    "banana": _l("Banana", "Food and Beverage", "Fruit", "Plant", *_FOOD),
    "apple": _l("Apple", "Food and Beverage", "Fruit", "Plant", *_FOOD),
    "sandwich": _l("Sandwich", "Food and Beverage", *_FOOD),
    "orange": _l("Orange", "Food and Beverage", "Citrus Fruit", "Fruit", "Plant", *_FOOD),
    "broccoli": _l("Broccoli", "Food and Beverage", "Vegetable", "Plant", *_FOOD),
    "carrot": _l("Carrot", "Food and Beverage", "Vegetable", "Plant", *_FOOD),
    "hot dog": _l("Hot Dog", "Food and Beverage", *_FOOD),
    "pizza": _l("Pizza", "Food and Beverage", *_FOOD),
    "donut": _l("Donut", "Food and Beverage", "Sweets", *_FOOD),
    "cake": _l("Cake", "Food and Beverage", "Dessert", *_FOOD),
    "chair": _l("Chair", "Home and Indoors", *_FURNITURE),
    "couch": _l("Couch", "Home and Indoors", *_FURNITURE),
    "potted plant": _l("Potted Plant", "Plants and Flowers", "Plant"),
    "bed": _l("Bed", "Home and Indoors", *_FURNITURE),
    "dining table": _l("Dining Table", "Home and Indoors", "Table", *_FURNITURE),
    "toilet": _l("Toilet", "Home and Indoors", "Bathroom"),
    "tv": _l("TV", "Technology and Computing", "Screen", *_ELECTRONICS),
    "laptop": _l("Laptop", "Technology and Computing", "Computer", *_ELECTRONICS),
    "mouse": _l("Mouse", "Technology and Computing", "Computer Hardware", *_ELECTRONICS),
    "remote": _l("Remote Control", "Technology and Computing", *_ELECTRONICS),
    "keyboard": _l("Keyboard", "Technology and Computing", "Computer Hardware", *_ELECTRONICS),
    "cell phone": _l("Mobile Phone", "Technology and Computing", "Phone", *_ELECTRONICS),
    "microwave": _l("Microwave", "Home and Indoors", *_APPLIANCE),
    "oven": _l("Oven", "Home and Indoors", *_APPLIANCE),
    "toaster": _l("Toaster", "Home and Indoors", *_APPLIANCE),
    "sink": _l("Sink", "Home and Indoors"),
    "refrigerator": _l("Refrigerator", "Home and Indoors", *_APPLIANCE),
    "book": _l("Book", "Education", "Publication"),
    "clock": _l("Clock", "Home and Indoors"),
    "vase": _l("Vase", "Home and Indoors", "Pottery"),
    "scissors": _l("Scissors", "Tools and Machinery", "Tool"),
    "teddy bear": _l("Teddy Bear", "Toys and Gaming", "Toy"),
    "hair drier": _l("Hair Dryer", "Beauty and Personal Care", *_APPLIANCE),
    "toothbrush": _l("Toothbrush", "Beauty and Personal Care", "Tool"),
}

# Categories of the ancestor labels (those that are no COCO class themselves).
ANCESTOR_CATEGORIES: dict[str, str] = {
    "Vehicle": "Vehicles and Automotive",
    "Transportation": "Vehicles and Automotive",
    "Aircraft": "Vehicles and Automotive",
    "Road Sign": "Vehicles and Automotive",
    "Animal": "Animals and Pets",
    "Mammal": "Animals and Pets",
    "Canine": "Animals and Pets",
    "Livestock": "Animals and Pets",
    "Cattle": "Animals and Pets",
    "Wildlife": "Animals and Pets",
    "Food": "Food and Beverage",
    "Fruit": "Food and Beverage",
    "Citrus Fruit": "Food and Beverage",
    "Vegetable": "Food and Beverage",
    "Sweets": "Food and Beverage",
    "Dessert": "Food and Beverage",
    "Cutlery": "Food and Beverage",
    "Glass": "Food and Beverage",
    "Furniture": "Home and Indoors",
    "Table": "Home and Indoors",
    "Appliance": "Home and Indoors",
    "Bathroom": "Home and Indoors",
    "Pottery": "Home and Indoors",
    "Electronics": "Technology and Computing",
    "Computer": "Technology and Computing",
    "Computer Hardware": "Technology and Computing",
    "Screen": "Technology and Computing",
    "Phone": "Technology and Computing",
    "Sport": "Sports",
    "Sports Equipment": "Sports",
    "Toy": "Toys and Gaming",
    "Plant": "Plants and Flowers",
    "Bag": "Apparel and Accessories",
    "Accessories": "Apparel and Accessories",
    "Clothing": "Apparel and Accessories",
    "Formal Wear": "Apparel and Accessories",
    "Luggage": "Travel and Adventure",
    "Light": "Home and Indoors",
    "Hydrant": "Public Safety",
    "Sign": "Text and Documents",
    "Symbol": "Text and Documents",
    "Publication": "Education",
    "Tool": "Tools and Machinery",
    "Weapon": "Weapons and Military",
}


def label_info(class_name: str) -> LabelInfo:
    """The label of a detector class; a class outside the table keeps its own name, title-cased,
    with no parents (a user pack may detect other classes)."""
    known = COCO_LABELS.get(class_name)
    if known is not None:
        return known
    return LabelInfo(class_name.strip().title(), (), "")


def category_of(label: str) -> str:
    for info in COCO_LABELS.values():
        if info.name == label:
            return info.category
    return ANCESTOR_CATEGORIES.get(label, "")


@dataclass(frozen=True)
class LabelInstance:
    box: BoundingBox
    confidence_pct: float


@dataclass(frozen=True)
class Label:
    """One label of an image: Rekognition's Label, in ratios and percent."""

    name: str
    confidence_pct: float
    instances: tuple[LabelInstance, ...]
    parents: tuple[str, ...]
    category: str


@dataclass(frozen=True)
class DominantColour:
    red: int
    green: int
    blue: int
    hex_code: str
    css_colour: str
    simplified_colour: str
    pixel_pct: float


@dataclass(frozen=True)
class ImageQuality:
    brightness: float  # 0–100
    sharpness: float  # 0–100
    contrast: float  # 0–100


@dataclass(frozen=True)
class ImageProperties:
    quality: ImageQuality
    dominant_colours: tuple[DominantColour, ...]


@dataclass(frozen=True)
class LabelsResult:
    labels: tuple[Label, ...]
    label_model_version: str
    image_properties: ImageProperties | None
    width_px: int
    height_px: int


@dataclass(frozen=True)
class TextItem:
    """A LINE or WORD: text, confidence (0–100), ratio box and four-point ratio polygon."""

    id: int
    parent_id: int | None
    kind: str  # "LINE" | "WORD"
    text: str
    confidence_pct: float
    box: BoundingBox
    polygon: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class TextResult:
    items: tuple[TextItem, ...]
    text_model_version: str
    width_px: int
    height_px: int
