"""DetectLabels and DetectText on the real server: boto3 (every response also checked against
botocore's output shapes), the native ``/v1/labels`` and ``/v1/text``, roles and ledger records.

Text images are drawn here with Pillow (DejaVu Sans when installed) and read back exactly;
label tests use ``couple.jpg`` from the shared photos (skipped without them) and drawn colours.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from PIL import Image, ImageDraw, ImageFont

from faceledger.audit.ledger import Ledger
from faceledger.config import Settings
from helpers.rekognition import ShapeChecker, rekognition_client

LINES = ("HELLO WORLD 2024", "FaceLedger audit", "STOP AHEAD", "Invoice 12345", "open source")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def text_png(lines: tuple[str, ...] = LINES) -> bytes:
    img = Image.new("RGB", (1280, 720), "white")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((100, 60 + i * 120), line, fill="black", font=_font(40))
    return _png(img)


def halves_png() -> bytes:
    """Left 3/4 pure red, right 1/4 pure blue: two dominant colours with known shares."""
    img = Image.new("RGB", (400, 200), (255, 0, 0))
    ImageDraw.Draw(img).rectangle((300, 0, 399, 199), fill=(0, 0, 255))
    return _png(img)


@pytest.fixture(scope="module")
def rek(live_server: str, api_key: tuple[str, str]) -> Any:
    checker = ShapeChecker()
    client = rekognition_client(live_server, *api_key)
    client.meta.events.register("before-parse.rekognition", checker)
    yield client
    assert not checker.problems, "\n".join(checker.problems)


@pytest.fixture(scope="module")
def couple(data_dir: Path) -> bytes:
    path = data_dir / "photos" / "couple.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path.read_bytes()


def _records(settings: Settings, operation: str) -> list[Any]:
    ledger = Ledger.from_settings(settings)
    try:
        return [e for e in ledger.entries() if e.payload.get("operation") == operation]
    finally:
        ledger.close()


# -- DetectLabels --------------------------------------------------------------------------------
def test_detect_labels_people_parents_categories_and_filters(rek: Any, couple: bytes) -> None:
    out = rek.detect_labels(Image={"Bytes": couple})
    assert out["LabelModelVersion"] == "yolox-nano-coco80"
    by_name = {label["Name"]: label for label in out["Labels"]}
    person = by_name["Person"]
    assert len(person["Instances"]) == 2 and person["Confidence"] >= 55
    assert person["Categories"] == [{"Name": "Person Description"}]
    assert person["Parents"] == []
    for instance in person["Instances"]:
        box = instance["BoundingBox"]
        assert 0.3 < box["Height"] <= 1 and 0 <= box["Left"] < 1
    tie = by_name["Tie"]
    assert [p["Name"] for p in tie["Parents"]] == ["Accessories", "Formal Wear", "Clothing"]
    assert by_name["Clothing"]["Instances"] == []  # ancestors are labels without instances
    confidences = [label["Confidence"] for label in out["Labels"]]
    assert confidences == sorted(confidences, reverse=True)
    assert "ImageProperties" not in out

    assert [
        x["Name"] for x in rek.detect_labels(Image={"Bytes": couple}, MaxLabels=1)["Labels"]
    ] == [out["Labels"][0]["Name"]]
    only_tie = rek.detect_labels(
        Image={"Bytes": couple},
        Settings={"GeneralLabels": {"LabelInclusionFilters": ["Tie"]}},
    )
    assert [x["Name"] for x in only_tie["Labels"]] == ["Tie"]
    no_people = rek.detect_labels(
        Image={"Bytes": couple},
        Settings={"GeneralLabels": {"LabelCategoryExclusionFilters": ["Person Description"]}},
    )
    assert "Person" not in {x["Name"] for x in no_people["Labels"]}
    assert "Tie" in {x["Name"] for x in no_people["Labels"]}
    assert rek.detect_labels(Image={"Bytes": couple}, MinConfidence=100)["Labels"] == []


def test_detect_labels_image_properties(rek: Any) -> None:
    out = rek.detect_labels(
        Image={"Bytes": halves_png()},
        Features=["IMAGE_PROPERTIES"],
        Settings={"ImageProperties": {"MaxDominantColors": 2}},
    )
    assert out["Labels"] == []  # GENERAL_LABELS was not asked for
    props = out["ImageProperties"]
    colours = props["DominantColors"]
    assert [(c["HexCode"], c["SimplifiedColor"], c["CSSColor"]) for c in colours] == [
        ("#ff0000", "red", "red"),
        ("#0000ff", "blue", "blue"),
    ]
    assert [c["PixelPercent"] for c in colours] == pytest.approx([75.0, 25.0], abs=2.0)
    quality = props["Quality"]
    assert 0 <= quality["Brightness"] <= 100 and 0 <= quality["Sharpness"] <= 100
    blank = rek.detect_labels(
        Image={"Bytes": _png(Image.new("RGB", (200, 200), (255, 255, 255)))},
        Features=["GENERAL_LABELS", "IMAGE_PROPERTIES"],
    )
    assert blank["Labels"] == []  # nothing there, and no scene is guessed
    assert blank["ImageProperties"]["Quality"]["Brightness"] == pytest.approx(100.0)
    assert blank["ImageProperties"]["Quality"]["Sharpness"] == pytest.approx(0.0)
    assert blank["ImageProperties"]["DominantColors"][0]["SimplifiedColor"] == "white"


def test_detect_labels_bad_input(rek: Any) -> None:
    with pytest.raises(ClientError) as err:
        rek.detect_labels(Image={"Bytes": b"not an image at all, just text"})
    assert err.value.response["Error"]["Code"] == "InvalidImageFormatException"


# -- DetectText ----------------------------------------------------------------------------------
def test_detect_text_lines_words_and_geometry(rek: Any) -> None:
    out = rek.detect_text(Image={"Bytes": text_png()})
    assert out["TextModelVersion"].startswith("rapidocr-")
    found = out["TextDetections"]
    lines = [d for d in found if d["Type"] == "LINE"]
    words = [d for d in found if d["Type"] == "WORD"]
    assert [d["DetectedText"] for d in lines] == list(LINES)
    assert [d["Id"] for d in lines] == list(range(len(LINES)))
    assert found[: len(lines)] == lines  # lines first, then words, as Rekognition answers
    for line in lines:
        mine = [w["DetectedText"] for w in words if w["ParentId"] == line["Id"]]
        assert mine == line["DetectedText"].split()
        assert "ParentId" not in line
    assert sorted(d["Id"] for d in found) == list(range(len(found)))
    hello = next(w for w in words if w["DetectedText"] == "HELLO")
    box = hello["Geometry"]["BoundingBox"]
    assert box["Left"] == pytest.approx(100 / 1280, abs=0.01)
    assert box["Top"] == pytest.approx(60 / 720, abs=0.02)
    polygon = hello["Geometry"]["Polygon"]
    assert (
        len(polygon) == 4
        and polygon[0]["X"] < polygon[1]["X"]
        and polygon[1]["Y"] < polygon[2]["Y"]
    )
    assert all(50 < d["Confidence"] <= 100 for d in found)


def test_detect_text_filters(rek: Any) -> None:
    image = {"Bytes": text_png()}
    top = rek.detect_text(
        Image=image,
        Filters={
            "RegionsOfInterest": [
                {"BoundingBox": {"Left": 0.0, "Top": 0.0, "Width": 1.0, "Height": 0.3}}
            ]
        },
    )
    assert [d["DetectedText"] for d in top["TextDetections"] if d["Type"] == "LINE"] == list(
        LINES[:2]
    )
    polygon = rek.detect_text(
        Image=image,
        Filters={
            "RegionsOfInterest": [
                {
                    "Polygon": [
                        {"X": 0.0, "Y": 0.4},
                        {"X": 0.16, "Y": 0.4},
                        {"X": 0.16, "Y": 0.5},
                        {"X": 0.0, "Y": 0.5},
                    ]
                }
            ]
        },
    )
    assert [d["DetectedText"] for d in polygon["TextDetections"]] == ["STOP", "STOP"]
    wide = rek.detect_text(Image=image, Filters={"WordFilter": {"MinBoundingBoxWidth": 0.15}})
    kept = {d["DetectedText"] for d in wide["TextDetections"] if d["Type"] == "WORD"}
    assert kept == {"FaceLedger"}  # the one word wider than 192 px at 40 pt
    assert (
        rek.detect_text(Image=image, Filters={"WordFilter": {"MinConfidence": 100}})[
            "TextDetections"
        ]
        == []
    )


def test_detect_text_without_text(rek: Any) -> None:
    blank = _png(Image.new("RGB", (320, 240), (200, 210, 220)))
    assert rek.detect_text(Image={"Bytes": blank})["TextDetections"] == []


# -- accountability ------------------------------------------------------------------------------
def test_roles_and_ledger_records(
    live_server: str,
    make_key: Any,
    live_server_settings: Settings,
) -> None:
    enrol_only = rekognition_client(live_server, *make_key("labels-enrol", ["enrol"]))
    image = text_png(("ledger me",))
    for call in (enrol_only.detect_labels, enrol_only.detect_text):
        with pytest.raises(ClientError) as err:
            call(Image={"Bytes": image})
        assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    searcher = rekognition_client(live_server, *make_key("labels-search", ["search"]))
    searcher.detect_text(Image={"Bytes": image})
    searcher.detect_labels(Image={"Bytes": image})
    digest = hashlib.sha256(image).hexdigest()
    for operation in ("DetectText", "DetectLabels"):
        records = _records(live_server_settings, operation)
        # refused before the image is read: the record names who and what, not the image
        denied = [r for r in records if r.payload["principal"] == "labels-enrol"]
        assert [r.payload["outcome"] for r in denied] == ["AccessDeniedException"], operation
        done = [r for r in records if r.payload["principal"] == "labels-search"]
        assert [r.payload["outcome"] for r in done] == ["ok"], operation
        assert done[0].payload["probe_sha256"] == [digest]
        assert "ledger me" not in str(done[0].payload)  # counts and names, never the text read
    text_ok = next(
        r
        for r in _records(live_server_settings, "DetectText")
        if digest in r.payload["probe_sha256"] and r.payload["outcome"] == "ok"
    )
    assert text_ok.payload["result"] == {"lines": 1, "words": 2}


# -- native API ----------------------------------------------------------------------------------
def test_native_labels_and_text(api: httpx.Client, couple: bytes) -> None:
    got = api.post(
        "/v1/labels",
        files={"image": ("couple.jpg", couple, "image/jpeg")},
        data={"include": "Person", "image_properties": "true"},
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert [label["name"] for label in body["labels"]] == ["Person"]
    assert len(body["labels"][0]["instances"]) == 2
    x, y, w, h = body["labels"][0]["instances"][0]["bbox_px"]
    assert 0 <= x < 2280 and 0 <= y < 1588 and w > 500 and h > 1000
    assert body["image_properties"]["dominant_colours"]

    text = api.post("/v1/text", files={"image": ("t.png", text_png(), "image/png")})
    assert text.status_code == 200, text.text
    lines = [d["text"] for d in text.json()["detections"] if d["type"] == "LINE"]
    assert lines == list(LINES)
    bad = api.post("/v1/text", files={"image": ("t.png", b"GIF89a....", "image/gif")})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "InvalidImageFormatException"
