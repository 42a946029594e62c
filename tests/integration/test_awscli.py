"""The AWS CLI (``awscli`` from PyPI) against a real FaceLedger server, signed with a real key."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _aws_command() -> list[str]:
    candidate = Path(sys.executable).with_name("aws")
    if candidate.exists():
        return [sys.executable, str(candidate)]
    found = shutil.which("aws")
    if found is None:
        pytest.skip("the AWS CLI (awscli) is not installed in this environment")
    return [found]


def aws(url: str, key: tuple[str, str], home: Path, *args: str) -> tuple[int, Any, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),  # no ~/.aws of the machine's user
        "AWS_ACCESS_KEY_ID": key[0],
        "AWS_SECRET_ACCESS_KEY": key[1],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_MAX_ATTEMPTS": "1",
    }
    proc = subprocess.run(
        [*_aws_command(), "rekognition", *args, "--endpoint-url", url, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    body = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, body, proc.stderr


def test_aws_cli_round_trip(
    live_server: str, api_key: tuple[str, str], data_dir: Path, tmp_path: Path
) -> None:
    root = data_dir / "lfw-devtrain" / "images"
    person = next(p for p in sorted(root.iterdir()) if len(list(p.glob("*.jpg"))) >= 2)
    first, second = sorted(person.glob("*.jpg"))[:2]

    code, created, err = aws(
        live_server, api_key, tmp_path, "create-collection", "--collection-id", "cli-coll"
    )
    assert code == 0, err
    assert created["StatusCode"] == 200
    assert created["CollectionArn"].endswith(":collection/cli-coll")

    code, indexed, err = aws(
        live_server,
        api_key,
        tmp_path,
        "index-faces",
        "--collection-id",
        "cli-coll",
        "--image-bytes",
        f"fileb://{first}",
        "--external-image-id",
        person.name,
        "--max-faces",
        "1",
        "--quality-filter",
        "AUTO",
    )
    assert code == 0, err
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]

    code, found, err = aws(
        live_server,
        api_key,
        tmp_path,
        "search-faces-by-image",
        "--collection-id",
        "cli-coll",
        "--image-bytes",
        f"fileb://{second}",
        "--face-match-threshold",
        "80",
    )
    assert code == 0, err
    assert found["FaceMatches"][0]["Face"]["FaceId"] == face_id
    assert found["FaceMatches"][0]["Similarity"] >= 80

    code, listed, err = aws(
        live_server, api_key, tmp_path, "list-faces", "--collection-id", "cli-coll"
    )
    assert code == 0, err
    assert [f["FaceId"] for f in listed["Faces"]] == [face_id]
    assert listed["Faces"][0]["ExternalImageId"] == person.name

    # errors come back as the CLI's usual "An error occurred (Code)" with a non-zero exit
    code, _, err = aws(
        live_server,
        api_key,
        tmp_path,
        "describe-collection",
        "--collection-id",
        "no-such-collection",
    )
    assert code != 0 and "(ResourceNotFoundException)" in err
    code, _, err = aws(live_server, (api_key[0], "wrong-secret"), tmp_path, "list-collections")
    assert code != 0 and "(InvalidSignatureException)" in err
