"""Trained attributes as plugin packages: ``chatface package-mapper`` writes a folder that
pip installs, whose plugin registers its bundled mapper files with ``mapper_provider``.

Layout (for ``--name chatface-curly-hair``)::

    pyproject.toml    entry point ``chatface_curly_hair`` in the group "chatface"
    README.md         what each attribute does, how it was trained, credits
    src/chatface_curly_hair/__init__.py
    src/chatface_curly_hair/mappers/curly_hair.json, curly_hair.safetensors
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import typer

from chatface import __version__
from chatface.config import load_config, toml_value
from chatface.errors import ChatFaceError
from chatface.plugins.mapper.files import MapperInfo, checked_tensors, mapper_paths, read_info
from chatface.plugins.mapper.provider import MAPPERS_FOLDER

PACKAGE_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PAPER = (
    'Yue et al., "ChatFace: Chat-Guided Real Face Editing via Diffusion Latent Space '
    'Manipulation", arXiv 2305.14742'
)

PLUGIN_MODULE = '''"""chatface plugin: the trained attributes {attributes} (ChatFace mappers)."""

from __future__ import annotations

from pathlib import Path

from collections.abc import Callable
from pathlib import Path

from chatface import hookimpl
from chatface.plugins.mapper import mapper_provider


@hookimpl
def chatface_register_directions(register: Callable[..., None]) -> None:
    register(mapper_provider(Path(__file__).parent / "mappers", name={module!r}))
'''


class PackageError(ChatFaceError):
    """A plugin package cannot be written as asked."""


ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_]*")  # as the registry accepts


def module_name(package: str) -> str:
    """The import name of a package name: ``chatface-curly-hair`` -> ``chatface_curly_hair``."""
    if not PACKAGE_NAME.match(package):
        raise PackageError(
            f"A package name is lower-case letters and digits joined by '-', starting with a "
            f"letter (e.g. chatface-curly-hair); got {package!r}."
        )
    return package.replace("-", "_")


def checked_mappers(paths: Sequence[Path]) -> list[tuple[Path, MapperInfo]]:
    """Each mapper file with its metadata, its tensors checked against their sha256."""
    found: dict[str, tuple[Path, MapperInfo]] = {}
    for path in paths:
        info = read_info(path)
        if not ATTRIBUTE_NAME.fullmatch(info.attribute):
            raise PackageError(
                f"{path} names the attribute {info.attribute!r}; an attribute name is "
                "lower-case letters, digits and _ (e.g. curly_hair)."
            )
        checked_tensors(path, info)
        if info.attribute in found:
            raise PackageError(
                f"{path} and {found[info.attribute][0]} both hold the attribute "
                f"{info.attribute!r}; a package holds each attribute once."
            )
        found[info.attribute] = (path, info)
    if not found:
        raise PackageError("Name at least one mapper file (NAME.json) to package.")
    return list(found.values())


def write_package(
    mappers: Sequence[Path], name: str, out: Path, *, version: str = "0.1.0", author: str = ""
) -> Path:
    """Write the package ``name`` holding ``mappers`` into the folder ``out`` (which must
    not exist or be empty), all at once; returns ``out``."""
    module = module_name(name)
    checked = checked_mappers([Path(p) for p in mappers])
    out = Path(out).expanduser().absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PackageError(f"{out} already exists and is not an empty folder; choose another.")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        folder = staging / "src" / module / "mappers"
        folder.mkdir(parents=True)
        for path, info in checked:
            for source, target in zip(
                mapper_paths(path), mapper_paths(folder / info.attribute), strict=True
            ):
                shutil.copyfile(source, target)
        infos = [info for _, info in checked]
        attributes = ", ".join(info.attribute for info in infos)
        (staging / "src" / module / "__init__.py").write_text(
            PLUGIN_MODULE.format(attributes=attributes, module=module), encoding="utf-8"
        )
        (staging / "pyproject.toml").write_text(
            pyproject(name, module, infos, version, author), encoding="utf-8"
        )
        (staging / "README.md").write_text(readme(name, infos, author), encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private; a package folder is not
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def pyproject(
    name: str, module: str, infos: Sequence[MapperInfo], version: str, author: str
) -> str:
    description = f"chatface attributes: {', '.join(i.attribute for i in infos)}"
    if len(infos) == 1:
        description = f"chatface attribute {infos[0].attribute}: {infos[0].description}"
    authors = f"authors = [{{ name = {toml_value(author)} }}]\n" if author else ""
    return (
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        f"\n[project]\nname = {toml_value(name)}\nversion = {toml_value(version)}\n"
        f"description = {toml_value(description)}\n"
        f'readme = "README.md"\n{authors}requires-python = ">=3.11"\n'
        f'dependencies = ["chatface>={__version__}"]\n'
        "\n# chatface finds the plugin through this entry point.\n"
        f"[project.entry-points.chatface]\n{module} = {toml_value(module)}\n"
        '\n[tool.setuptools.packages.find]\nwhere = ["src"]\n'
        f'\n[tool.setuptools.package-data]\n{module} = ["mappers/*.json", '
        '"mappers/*.safetensors"]\n'
    )


def readme(name: str, infos: Sequence[MapperInfo], author: str) -> str:
    lines = [
        f"# {name}",
        "",
        "A chatface plugin with trained attributes: ChatFace mapping",
        "networks (z_edit = z + s * M(z) on the backend's semantic latent).",
        "",
        "```bash",
        f"pip install ./{name}",
        f"chatface plugins    # lists {name.replace('-', '_')} and its attributes",
        "```",
        "",
        "Then ask for an attribute by its name or an alias in `chatface chat` or a bot.",
    ]
    for info in infos:
        lines += ["", f"## {info.attribute}", "", info.description, ""]
        if info.aliases:
            lines.append(f"- aliases: {', '.join(info.aliases)}")
        sha = f" (weights sha256 {info.backend_sha256})" if info.backend_sha256 else ""
        lines.append(f"- backend: `{info.backend}`{sha}, latent width {info.latent_dim}")
        if info.source or info.target:
            lines.append(f'- CLIP prompts: "{info.source}" -> "{info.target}"')
        if info.schedule:
            lines.append(f"- condition schedule: `{info.schedule}`")
        lines.append(f"- network: {info.layers} layers, {info.hidden} hidden")
        for title, table in (("training", info.training), ("metrics", info.metrics)):
            if table:
                lines.append(f"- {title}: " + ", ".join(f"{k}={v}" for k, v in table.items()))
    lines += ["", "## Credits", ""]
    if author:
        lines.append(f"Trained by {author}.")
    lines += [
        f"Packaged with chatface {__version__} (`chatface package-mapper`). The mapping",
        f"networks follow ChatFace: {PAPER}.",
        "",
    ]
    return "\n".join(lines)


def package_mapper(
    mappers: list[str] = typer.Argument(
        ...,
        help="Mapper files (NAME.json beside NAME.safetensors), or names of trained "
        "attributes in <data dir>/mappers.",
        show_default=False,
    ),
    name: str = typer.Option(..., "--name", help="Package name, e.g. chatface-curly-hair."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder to write; must not exist or be empty. Default: ./NAME."
    ),
    version: str = typer.Option("0.1.0", "--version", help="Version of the package."),
    author: str = typer.Option("", "--author", help="Who trained it (README, pyproject)."),
) -> None:
    """Write a pip-installable plugin package holding trained attributes.

    Example: chatface package-mapper curly_hair --name chatface-curly-hair
    """
    folder = load_config().data_dir / MAPPERS_FOLDER
    paths = [_mapper_path(text, folder) for text in mappers]
    written = write_package(paths, name, out or Path(name), version=version, author=author)
    typer.echo(f"Wrote {written}; install it with: pip install {written}")


def _mapper_path(text: str, folder: Path) -> Path:
    """A mapper file as given, or the trained attribute of that name in ``folder``."""
    path = Path(text).expanduser()
    if not mapper_paths(path)[1].is_file() and path.name == text:
        return folder / text
    return path
