"""`faceledger collections|index|search` as an operator runs them (real subprocesses)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_cli import run


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
    first = run("index", str(photos), "--collection", "cases", cwd=tmp_path, **env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["indexed_faces"] >= 4 and summary["processed"] == 5
    assert [u["file"] for u in summary["unreadable_files"]] == ["notes.txt"]
    assert "InvalidImageFormatException" in summary["unreadable_files"][0]["error"]

    # interrupted or repeated runs skip what is already enrolled
    second = run("index", str(photos), "--collection", "cases", cwd=tmp_path, **env)
    again = json.loads(second.stdout)
    assert again["skipped_already_indexed"] == 4 and again["indexed_faces"] == 0

    probe = sorted(people[1].glob("*.jpg"))[1]
    found = run("search", str(probe), "--collection", "cases", "--json", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    matches = json.loads(found.stdout)["matches"]
    assert matches and matches[0]["external_image_id"] == f"{people[1].name}:enrol_one.jpg"
    table = run("search", str(probe), "--collection", "cases", cwd=tmp_path)
    assert people[1].name in table.stdout and "human review" in table.stdout

    described = json.loads(run("collections", "describe", "cases", cwd=tmp_path).stdout)
    assert described["face_count"] == summary["indexed_faces"]
    gone = run("collections", "delete", "cases", cwd=tmp_path)
    assert gone.returncode == 0
    missing = run("search", str(probe), "--collection", "cases", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ResourceNotFoundException")
    assert "Traceback" not in missing.stderr
