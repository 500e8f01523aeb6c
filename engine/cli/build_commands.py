"""CLI build commands: `build` (a Dockerfile) and `commit` (a container's changes)."""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

from engine.cli.progressbar import Bars
from engine.errors import InvalidArgument
from engine.progress import ignore
from engine.services import builds, refs

_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="Build an image from a Dockerfile")
    p.add_argument("path", help="the build context: a directory, or - for a tar (or a Dockerfile) on stdin")
    p.add_argument("-t", "--tag", action="append", default=[], help="name and optionally a tag (name:tag)")
    p.add_argument("-f", "--file", help="the Dockerfile (default: PATH/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], help="set a build-time variable KEY=VALUE")
    p.add_argument("--target", help="build this stage")
    p.add_argument("--no-cache", action="store_true", help="do not use the cache when building the image")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress the output and print the image ID")
    p.set_defaults(handler=cmd_build)

    p = sub.add_parser("commit", help="Create a new image from a container's changes")
    p.add_argument("container")
    p.add_argument("repository", nargs="?", help="REPOSITORY[:TAG]")
    p.add_argument("-c", "--change", action="append", default=[], help="apply a Dockerfile instruction")
    p.add_argument("-m", "--message", default="", help="commit message")
    p.add_argument("-a", "--author", default="", help='author (e.g. "Jane Doe <jane@example.com>")')
    p.add_argument(
        "-p",
        "--pause",
        default="true",
        choices=["true", "false"],
        help="pause the container during the commit",
    )
    p.set_defaults(handler=cmd_commit)


def _build_args(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not key:
            raise InvalidArgument(f"invalid --build-arg {value!r}: expected KEY=VALUE")
        if not sep:
            if key not in os.environ:
                continue  # Docker: a bare KEY takes its value from the environment, if set
            rest = os.environ[key]
        out[key] = rest
    return out


def cmd_build(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="berth-build-") as empty:
        return _build(args, Path(empty))


def _build(args: argparse.Namespace, empty: Path) -> int:
    for tag in args.tag:
        refs.parse_image(tag)  # a bad tag fails before any work starts
    build_args = _build_args(args.build_arg)
    dockerfile = "Dockerfile"
    dockerfile_text: str | None = None
    source: Path | io.BufferedReader
    if args.path == "-":
        data = sys.stdin.buffer.read()
        if _is_archive(data):
            source = io.BufferedReader(io.BytesIO(data))
        else:  # a Dockerfile on stdin: an empty context, as `docker build - < Dockerfile`
            source = empty
            dockerfile_text = data.decode("utf-8", errors="replace")
    else:
        source = Path(args.path)
    if args.file:
        if args.file == "-":
            dockerfile_text = sys.stdin.read()
        else:
            dockerfile, dockerfile_text = _dockerfile(Path(args.file), source)
    bars = Bars(enabled=False) if not args.quiet else None
    try:
        image = builds.build(
            source,
            dockerfile=dockerfile,
            dockerfile_text=dockerfile_text,
            tags=args.tag,
            build_args=build_args,
            target=args.target,
            no_cache=args.no_cache,
            progress=bars or ignore,
        )
    finally:
        if bars is not None:
            bars.close()
    if args.quiet:
        sys.stdout.write(f"{image.id}\n")
        return 0
    sys.stdout.write(f"Successfully built {image.short_id}\n")
    for tag in args.tag:
        sys.stdout.write(f"Successfully tagged {refs.parse_image(tag).familiar()}\n")
    return 0


def _dockerfile(path: Path, source: Path | io.BufferedReader) -> tuple[str, str | None]:
    """-f inside a directory context is read from the context; anywhere else, the CLI reads it."""
    if isinstance(source, Path):
        root = source.resolve()
        candidate = (Path.cwd() / path) if not path.is_absolute() else path
        try:
            return str(candidate.resolve().relative_to(root)), None
        except ValueError:
            pass
    try:
        return "Dockerfile", path.read_text(errors="replace")
    except OSError as exc:
        raise InvalidArgument(f"cannot read the Dockerfile {path}: {exc.strerror}") from None


def _is_archive(data: bytes) -> bool:
    return any(data.startswith(m) for m in _ARCHIVE_MAGIC) or (len(data) >= 512 and data[257:262] == b"ustar")


def cmd_commit(args: argparse.Namespace) -> int:
    image = builds.commit(
        args.container,
        args.repository,
        changes=args.change,
        message=args.message,
        author=args.author,
        pause=args.pause == "true",
    )
    sys.stdout.write(f"{image.id}\n")
    return 0
