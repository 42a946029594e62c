"""`faceledger video search` states the scale `faceledger search` states (issue 14): the
collection's size-following floor as the job's threshold, FPIR and hit rate at that size, and
what they mean for the people the job tracked (real subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.cli import run
from helpers.data import lfw_people


def test_video_search_prints_the_scale_of_a_search(tmp_path: Path, data_dir: Path) -> None:
    from helpers.videos import Actor, make_video

    ((name, photos),) = list(lfw_people(data_dir, 3, 1).items())
    clip = tmp_path / "door.mp4"
    make_video(clip, [Actor(name, photos[0], 0.2, 2.8, (40, 60), (200, 90))], duration_s=3)
    assert run("collections", "create", "door", cwd=tmp_path).returncode == 0
    enrol = tmp_path / "enrol"
    enrol.mkdir()
    (enrol / "wanted.jpg").write_bytes(photos[1].read_bytes())
    assert run("index", str(enrol), "--collection", "door", cwd=tmp_path).returncode == 0

    searched = run(
        "search", str(photos[2]), "--collection", "door", "--threshold", "50", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert searched.returncode == 0, searched.stderr
    expected = json.loads(searched.stdout)["scale"]
    assert expected["floor_source"] == "collection size" and expected["face_count"] == 1

    as_json = run(
        "video", "search", str(clip), "--collection", "door", "--threshold", "50", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    job = json.loads(as_json.stdout)
    scale = job["scale"]
    assert job["threshold"] == expected["floor"] == expected["threshold"]
    assert {k: scale[k] for k in expected} == expected
    assert scale["persons_tracked"] >= 1
    assert scale["expected_false_persons"] == scale["persons_tracked"] * expected["fpir"]

    text = run("video", "search", str(clip), "--collection", "door", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert f"1 faces searched; floor {expected['floor']:g} (follows" in text.stdout
    assert "searches for someone not enrolled with a candidate (FPIR)" in text.stdout
    assert "Each person tracked in the video is one search: if none of the" in text.stdout
    assert "not an identification" in text.stdout
