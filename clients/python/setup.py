"""The package's build, beside `pyproject.toml`: it brings in the host's own
Lua scripts, `host/src/layout/lua/*.lua`, the only copy in the repository,
as the package's `invalidator/lua/`.

A wheel built from the repository (`pip install clients/python`, `pip wheel`)
takes them from there; an sdist carries them in `src/invalidator/lua/`, so a
wheel built from the sdist takes them from that. An editable install copies
nothing: `invalidator._scripts` then reads the repository's folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
#: The host's scripts, in a clone of the repository.
HOST_LUA = HERE.parent.parent / "host" / "src" / "layout" / "lua"
#: The scripts an sdist carries (never in the repository).
SDIST_LUA = HERE / "src" / "invalidator" / "lua"


def scripts() -> list[Path]:
    """The scripts to package: the host's, or else those of the sdist."""
    for folder in (HOST_LUA, SDIST_LUA):
        found = sorted(folder.glob("*.lua"))
        if found:
            return found
    raise FileNotFoundError(
        f"no Lua scripts to package: none in {HOST_LUA} (the host's, in a clone "
        f"of the repository) nor in {SDIST_LUA} (an sdist's)"
    )


def copy_scripts(target: Path) -> None:
    """Makes `target` hold the scripts to package, and nothing else."""
    if target.exists():
        shutil.rmtree(target)  # what an earlier build left there
    target.mkdir(parents=True)
    for script in scripts():
        shutil.copyfile(script, target / script.name)


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            copy_scripts(Path(self.build_lib) / "invalidator" / "lua")


class Sdist(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        copy_scripts(Path(base_dir) / "src" / "invalidator" / "lua")


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
