"""Unattended deploys: samconfig.toml's `ci` env and the minimum SAM CLI version.

- `sam deploy --config-env ci` asks nothing: no changeset confirmation, and an empty
  changeset is success; it deploys the same stack as the default env.
- The minimum SAM CLI version is one number, stated in make/deploy.mk (which checks
  it), requirements-deploy.txt and docs/DEPLOY.md, and the installed SAM CLI meets it.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def samconfig() -> dict:
    return tomllib.loads((ROOT / "samconfig.toml").read_text())


def test_the_ci_env_deploys_the_same_stack_without_asking():
    config = samconfig()
    ci, default = config["ci"], config["default"]
    assert ci["deploy"]["parameters"]["confirm_changeset"] is False
    assert ci["deploy"]["parameters"]["fail_on_empty_changeset"] is False
    for section, keys in (("global", ("stack_name", "region")),
                          ("deploy", ("capabilities", "resolve_s3", "s3_prefix")),
                          ("build", ("cached", "parallel"))):
        for key in keys:
            assert ci[section]["parameters"][key] == default[section]["parameters"][key], (section, key)
    # People deploying by hand still see the changeset first.
    assert default["deploy"]["parameters"]["confirm_changeset"] is True


def minimum() -> str:
    found = re.search(r"^SAM_MIN_VERSION := (\S+)$", (ROOT / "make" / "deploy.mk").read_text(), re.M)
    assert found, "make/deploy.mk states SAM_MIN_VERSION"
    return found.group(1)


def as_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def test_the_minimum_sam_cli_is_stated_once_and_met():
    version = minimum()
    pinned = re.search(r"^aws-sam-cli>=([0-9.]+)", (ROOT / "requirements-deploy.txt").read_text(), re.M)
    assert pinned and as_tuple(pinned.group(1)) == as_tuple(version)[: len(pinned.group(1).split("."))]
    assert f"SAM CLI {version}" in (ROOT / "docs" / "DEPLOY.md").read_text()
    sam = Path(sys.executable).parent / "sam"
    if sam.exists():
        out = subprocess.run([str(sam), "--version"], capture_output=True, text=True, timeout=120).stdout
        installed = re.search(r"version ([0-9.]+)", out)
        assert installed and as_tuple(installed.group(1)) >= as_tuple(version), out


def test_make_sam_build_cannot_prompt():
    recipe = (ROOT / "make" / "deploy.mk").read_text()
    build = re.search(r"^sam-build: (.*)\n((?:\t.*\n)+)", recipe, re.M)
    assert build and "sam-version" in build.group(1)
    assert "sam build" in build.group(2) and "</dev/null" in build.group(2)
