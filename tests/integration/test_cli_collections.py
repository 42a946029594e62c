"""`faceledger collections|index|search` as an operator runs them (real subprocesses).

Every command goes through the gateway as the local operator: the records are
read back from the data directory's ledger afterwards.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import shutil
from pathlib import Path

from faceledger.config import Settings
from helpers.cli import run
from helpers.ledger import ledgered


def test_index_folder_resumes_and_search_finds_the_person(tmp_path: Path, data_dir: Path) -> None:
    root = data_dir / "lfw-devtrain" / "images"
    people = [p for p in sorted(root.iterdir()) if len(list(p.glob("*.jpg"))) >= 2][:4]
    photos = tmp_path / "photos"
    for person in people:
        (photos / person.name).mkdir(parents=True)
        shutil.copy(sorted(person.glob("*.jpg"))[0], photos / person.name / "enrol one.jpg")
    (photos / "notes.txt").write_text("not an image")
    env = {"FACELEDGER_WORKERS": "2"}

    created = run("collections", "create", "cases", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    # Rekognition's default behaviour for this collection (not the installation's floor)
    policy = run("collections", "policy", "cases", "--floor", "80", cwd=tmp_path)
    assert policy.returncode == 0, policy.stderr
    assert json.loads(policy.stdout) == {
        "collection_id": "cases",
        "require_purpose": False,
        "threshold_floor": 80.0,
        "retention_days": None,
        "keep_face_crops": False,
    }
    first = run("index", str(photos), "--collection", "cases", cwd=tmp_path, **env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["indexed_faces"] >= 4 and summary["processed"] == 5
    assert [u["file"] for u in summary["unreadable_files"]] == ["notes.txt"]
    assert "InvalidImageFormatException" in summary["unreadable_files"][0]["error"]

    # one IndexFaces record per image, with the image's SHA-256 and its ExternalImageId
    indexed = ledgered(tmp_path / "data", operation="IndexFaces")
    enrolled = sorted(photos.rglob("*.jpg"))
    assert len(indexed) == len(enrolled) == 4
    assert {r.probe_sha256 for r in indexed} == {
        (hashlib.sha256(p.read_bytes()).hexdigest(),) for p in enrolled
    }
    assert {r.result["external_image_id"] for r in indexed} == {
        f"{p.parent.name}:enrol_one.jpg" for p in enrolled
    }
    assert all(r.outcome == "ok" and r.source == "cli" for r in indexed)
    assert all(r.principal == f"local:{getpass.getuser()}" for r in indexed)
    assert sum(len(r.result["indexed"]) for r in indexed) == summary["indexed_faces"]

    # interrupted or repeated runs skip what is already enrolled
    second = run("index", str(photos), "--collection", "cases", cwd=tmp_path, **env)
    again = json.loads(second.stdout)
    assert again["skipped_already_indexed"] == 4 and again["indexed_faces"] == 0
    assert len(ledgered(tmp_path / "data", operation="IndexFaces")) == 4

    probe = sorted(people[1].glob("*.jpg"))[1]
    found = run(
        "search", str(probe), "--collection", "cases", "--threshold", "50", "--json",
        "--purpose", "identify a suspect", "--case", "CASE-2024-17", cwd=tmp_path,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    answer = json.loads(found.stdout)
    assert answer["threshold"] == 80 and answer["requested_threshold"] == 50  # the floor
    scale = answer["scale"]
    assert scale["face_count"] == summary["indexed_faces"] and scale["floor_source"] == "policy"
    assert scale["fpir"] is not None and scale["hit_rate"] is not None
    matches = answer["matches"]
    assert matches and matches[0]["external_image_id"] == f"{people[1].name}:enrol_one.jpg"
    [record] = ledgered(tmp_path / "data", operation="SearchFacesByImage")
    assert (record.purpose, record.case_reference) == ("identify a suspect", "CASE-2024-17")
    assert record.probe_sha256 == (hashlib.sha256(probe.read_bytes()).hexdigest(),)
    assert record.result["threshold"] == 80 and record.result["requested_threshold"] == 50
    assert record.result["scale"]["face_count"] == summary["indexed_faces"]
    assert [m[0] for m in record.result["matches"]] == [m["face_id"] for m in matches]
    table = run("search", str(probe), "--collection", "cases", "--threshold", "60", cwd=tmp_path)
    assert people[1].name in table.stdout and "human review" in table.stdout
    assert "Similarity ≥ 80" in table.stdout and "requested 60" in table.stdout
    assert f"{summary['indexed_faces']} faces searched" in table.stdout
    assert "pinned by the collection's policy" in table.stdout
    assert "searches for someone not in this collection returns a candidate" in table.stdout

    described = json.loads(run("collections", "describe", "cases", cwd=tmp_path).stdout)
    assert described["face_count"] == summary["indexed_faces"]
    gone = run("collections", "delete", "cases", cwd=tmp_path)
    assert gone.returncode == 0
    missing = run("search", str(probe), "--collection", "cases", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ResourceNotFoundException")
    assert "Traceback" not in missing.stderr
    operations = [e.operation for e in ledgered(tmp_path / "data", collection_id="cases")]
    assert operations[:2] == ["CreateCollection", "DescribeCollection"]  # policy: get, then put
    assert operations[2] == "PutCollectionPolicy"
    assert operations[-2:] == ["DeleteCollection", "SearchFacesByImage"]


def test_policy_requiring_a_purpose_refuses_a_search_without_one(
    tmp_path: Path, data_dir: Path
) -> None:
    photo = data_dir / "photos" / "img1.jpg"
    assert run("collections", "create", "cases", cwd=tmp_path).returncode == 0
    shown = run("collections", "policy", "cases", cwd=tmp_path)
    assert json.loads(shown.stdout)["threshold_floor"] == Settings().default_threshold_floor
    changed = run(
        "collections", "policy", "cases", "--require-purpose", "--retention-days", "30",
        cwd=tmp_path,
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout) == {
        "collection_id": "cases",
        "require_purpose": True,
        "threshold_floor": Settings().default_threshold_floor,  # kept
        "retention_days": 30,
        "keep_face_crops": False,
    }
    refused = run("search", str(photo), "--collection", "cases", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: AccessDeniedException:")
    assert "--purpose and --case" in refused.stderr
    bad = run("collections", "policy", "cases", "--floor", "101", cwd=tmp_path)
    assert bad.returncode == 2 and "threshold_floor" in bad.stderr
    pinned = run("collections", "policy", "cases", "--floor", "93", cwd=tmp_path)
    assert json.loads(pinned.stdout)["threshold_floor"] == 93
    unpinned = run("collections", "policy", "cases", "--size-floor", cwd=tmp_path)
    assert json.loads(unpinned.stdout)["threshold_floor"] is None  # follows the size again
    both = run("collections", "policy", "cases", "--floor", "93", "--size-floor", cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr and "Traceback" not in both.stderr
    cleared = run(
        "collections", "policy", "cases", "--no-require-purpose", "--retention-days", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert json.loads(cleared.stdout)["require_purpose"] is False
    assert json.loads(cleared.stdout)["retention_days"] is None
    [denied] = ledgered(tmp_path / "data", operation="SearchFacesByImage")
    assert denied.outcome == "AccessDeniedException" and denied.purpose is None


def test_index_enrols_each_photos_subject_unless_all_faces(tmp_path: Path, data_dir: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(data_dir / "photos" / "couple.jpg", photos / "couple.jpg")
    shutil.copy(data_dir / "photos" / "img1.jpg", photos / "img1.jpg")
    for name in ("subjects", "everyone"):
        assert run("collections", "create", name, cwd=tmp_path).returncode == 0

    default = run("index", str(photos), "--collection", "subjects", cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    summary = json.loads(default.stdout)
    assert summary["faces_per_photo"] == "subject"
    assert summary["indexed_faces"] == 2
    assert summary["unindexed_faces_by_reason"] == {"NOT_THE_SUBJECT": 1}

    every = run("index", str(photos), "--collection", "everyone", "--all-faces", cwd=tmp_path)
    assert every.returncode == 0, every.stderr
    summary = json.loads(every.stdout)
    assert summary["faces_per_photo"] == "all"
    assert summary["indexed_faces"] == 3 and summary["unindexed_faces_by_reason"] == {}
    indexed = ledgered(tmp_path / "data", operation="IndexFaces", collection_id="everyone")
    assert sorted(len(r.result["indexed"]) for r in indexed) == [1, 2]

    usage = run("index", "--help", cwd=tmp_path)
    assert "--all-faces" in usage.stdout
