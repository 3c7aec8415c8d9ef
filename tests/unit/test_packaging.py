"""Every Python package under the code roots is listed in pyproject.toml, mapped to its folder."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE_ROOTS = [
    ROOT / "common",
    ROOT / "services" / "issuer-gateway",
    ROOT / "services" / "ledger",
    ROOT / "services" / "query",
    ROOT / "tools" / "ledgerctl",
]


def test_each_package_folder_is_listed_and_mapped() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = {}
    for root in CODE_ROOTS:
        for init in root.glob("learnerledger/*/__init__.py"):
            found[f"learnerledger.{init.parent.name}"] = init.parent.relative_to(ROOT).as_posix()
    assert found, "no packages found: the layout changed?"
    top_level = {package for package in listed if package.count(".") == 1}
    assert set(found) == top_level, "pyproject.toml [tool.setuptools] packages is out of date"
    for package, folder in found.items():
        assert mapping.get(package) == folder, f"package-dir of {package} should be {folder}"


def test_nested_packages_are_not_left_out_of_wheels() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    nested = {
        "learnerledger." + ".".join(init.parent.relative_to(root / "learnerledger").parts): root
        for root in CODE_ROOTS
        for init in root.glob("learnerledger/*/*/**/__init__.py")
    }
    assert "learnerledger.ctl.commands" in nested, "the layout changed?"
    missing = sorted(set(nested) - listed)
    assert missing == [], f"nested packages need an entry in pyproject.toml packages: {missing}"


def test_the_development_stack_is_not_a_package_of_this_distribution() -> None:
    """tools/devstack is a distribution of its own, never installed into the runtime image."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = " ".join([*config["packages"], *config["package-dir"].values()])
    assert "devstack" not in mapped
    assert (ROOT / "tools" / "devstack" / "pyproject.toml").is_file()
