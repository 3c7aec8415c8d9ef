#!/usr/bin/env python3
"""Generate the Python code of the protobuf contract, reproducibly.

    .venv/bin/python scripts/gen_proto.py            # regenerate common/learnerledger/v1/
    .venv/bin/python scripts/gen_proto.py --check    # fail if the committed code is stale
    .venv/bin/python scripts/gen_proto.py --lint     # also run `buf lint`

The .proto files under ``proto/`` are the only source. For every ``proto/learnerledger/v1/x.proto``
this writes ``x_pb2.py`` and ``x_pb2.pyi`` (mypy-protobuf stubs) and, when the file declares a
service, ``x_pb2_grpc.py`` and ``x_pb2_grpc.pyi``. Imports read
``from learnerledger.v1 import events_pb2``. Generated files that no longer have a source are
removed; ``__init__.py`` and anything else that is not generated is left alone.

Everything runs through ``grpc_tools.protoc`` (the protoc bundled with the pinned grpcio-tools)
and the pinned mypy-protobuf plugins, so the output depends only on the sources and the pins.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROTO_DIR = REPO_ROOT / "proto"
DEFAULT_OUT_DIR = REPO_ROOT / "common"
#: The proto package directory; its generated code lands in the same path under the out dir.
PACKAGE_PATH = Path("learnerledger") / "v1"
#: File name endings this script generates (and therefore owns) in the package directory.
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
GRPC_SUFFIXES = ("_pb2_grpc.py", "_pb2_grpc.pyi")
REGENERATE_HINT = "run: .venv/bin/python scripts/gen_proto.py"


class GenerationError(RuntimeError):
    """protoc or a plugin failed."""


def _bin_dir() -> Path:
    """The directory of this interpreter's console scripts (the venv's bin)."""
    return Path(sys.executable).parent


def _tool(name: str) -> str:
    """Path of a console script installed next to this interpreter, else from PATH."""
    candidate = _bin_dir() / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise GenerationError(f"{name} not found (install the dev extras: pip install -e .[dev])")
    return found


def _proto_files(proto_dir: Path) -> list[str]:
    """The .proto files of the package, relative to ``proto_dir``, sorted for determinism."""
    files = sorted((proto_dir / PACKAGE_PATH).glob("*.proto"))
    if not files:
        raise GenerationError(f"no .proto files in {proto_dir / PACKAGE_PATH}")
    return [path.relative_to(proto_dir).as_posix() for path in files]


def _run_protoc(args: Sequence[str]) -> None:
    """Run the bundled protoc in a child process (grpc_tools.protoc keeps global state)."""
    command = [sys.executable, "-m", "grpc_tools.protoc", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GenerationError(
            f"protoc failed ({result.returncode}):\n{result.stderr.strip() or result.stdout}"
        )


def generate(proto_dir: Path, out_dir: Path) -> list[Path]:
    """Generate into ``out_dir`` (which must be empty or new); returns the files written,
    relative to ``out_dir``."""
    proto_dir = proto_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    sources = _proto_files(proto_dir)
    with tempfile.TemporaryDirectory(prefix="gen_proto_") as scratch:
        descriptor_set = Path(scratch) / "descriptors.binpb"
        _run_protoc(
            [
                f"--proto_path={proto_dir}",
                f"--proto_path={well_known}",
                f"--plugin=protoc-gen-mypy={_tool('protoc-gen-mypy')}",
                f"--plugin=protoc-gen-mypy_grpc={_tool('protoc-gen-mypy_grpc')}",
                f"--python_out={out_dir}",
                f"--mypy_out={out_dir}",
                f"--grpc_python_out={out_dir}",
                f"--mypy_grpc_out={out_dir}",
                f"--descriptor_set_out={descriptor_set}",
                *sources,
            ]
        )
        files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    # grpc plugins write a (useless) module even for files without services: drop those.
    for file in files.file:
        if not file.service:
            stem = file.name.removesuffix(".proto")
            for suffix in GRPC_SUFFIXES:
                (out_dir / f"{stem}{suffix}").unlink(missing_ok=True)
    return sorted(path.relative_to(out_dir) for path in _generated_in(out_dir / PACKAGE_PATH))


def _generated_in(package_dir: Path) -> list[Path]:
    """Files in ``package_dir`` that this script owns (by name)."""
    if not package_dir.is_dir():
        return []
    return sorted(
        path
        for path in package_dir.iterdir()
        if path.is_file() and path.name.endswith(GENERATED_SUFFIXES)
    )


def stale_files(proto_dir: Path, out_dir: Path) -> list[str]:
    """Generated files under ``out_dir`` that differ from a fresh generation, are missing, or
    have no source any more (paths relative to ``out_dir``)."""
    with tempfile.TemporaryDirectory(prefix="gen_proto_check_") as tmp:
        fresh_root = Path(tmp)
        fresh = {path.as_posix() for path in generate(proto_dir, fresh_root)}
        current = {
            path.relative_to(out_dir).as_posix() for path in _generated_in(out_dir / PACKAGE_PATH)
        }
        problems: list[str] = []
        for name in sorted(fresh | current):
            if name not in current:
                problems.append(f"{name} (missing)")
            elif name not in fresh:
                problems.append(f"{name} (no longer generated: its .proto is gone)")
            elif not filecmp.cmp(fresh_root / name, out_dir / name, shallow=False):
                problems.append(f"{name} (out of date)")
        return problems


def write(proto_dir: Path, out_dir: Path) -> list[str]:
    """Regenerate into ``out_dir``: replace generated files, remove orphans, keep the rest.
    Returns the files that changed."""
    package_dir = out_dir / PACKAGE_PATH
    package_dir.mkdir(parents=True, exist_ok=True)
    changed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gen_proto_out_") as tmp:
        fresh_root = Path(tmp)
        fresh = generate(proto_dir, fresh_root)
        fresh_names = {path.name for path in fresh}
        for old in _generated_in(package_dir):
            if old.name not in fresh_names:
                old.unlink()
                changed.append(f"{old.relative_to(out_dir).as_posix()} (removed)")
        for relative in fresh:
            target = out_dir / relative
            if target.exists() and filecmp.cmp(fresh_root / relative, target, shallow=False):
                continue
            shutil.copyfile(fresh_root / relative, target)
            changed.append(relative.as_posix())
    init = package_dir / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated from proto/learnerledger/v1 by scripts/gen_proto.py."""\n')
    return changed


def lint(proto_dir: Path) -> int:
    """Run ``buf lint`` on ``proto_dir`` with the buf.yaml found above it; returns its exit code."""
    proto_dir = proto_dir.resolve()
    env = dict(os.environ)
    env.setdefault("BUF_CACHE_DIR", str(Path(tempfile.gettempdir()) / "buf-cache"))
    result = subprocess.run(
        [_tool("buf"), "lint", str(proto_dir)],
        cwd=proto_dir.parent,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        print(f"buf lint failed ({result.returncode}):\n{output}", file=sys.stderr)
    else:
        print("buf lint: clean")
    return result.returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary directory and fail if the committed code differs",
    )
    parser.add_argument("--lint", action="store_true", help="also run `buf lint` on the sources")
    parser.add_argument(
        "--proto-dir",
        type=Path,
        default=DEFAULT_PROTO_DIR,
        help=f"include root of the .proto sources (default: {DEFAULT_PROTO_DIR})",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help=f"root the generated package path goes under (default: {DEFAULT_OUT_DIR})",
    )
    args = parser.parse_args(argv)
    proto_dir: Path = args.proto_dir.resolve()
    out_dir: Path = args.out_dir.resolve()

    status = 0
    if args.lint and lint(proto_dir) != 0:
        status = 1
    try:
        if args.check:
            problems = stale_files(proto_dir, out_dir)
            if problems:
                print(
                    f"generated protobuf code in {out_dir / PACKAGE_PATH} is stale:",
                    *(f"  {problem}" for problem in problems),
                    REGENERATE_HINT,
                    sep="\n",
                    file=sys.stderr,
                )
                status = 1
            else:
                print(f"generated protobuf code in {out_dir / PACKAGE_PATH} is up to date")
        else:
            changed = write(proto_dir, out_dir)
            lines = [f"wrote {name}" for name in changed] or ["generated code already up to date"]
            print(*lines, sep="\n")
    except GenerationError as error:
        print(error, file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
