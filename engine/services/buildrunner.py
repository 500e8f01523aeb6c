"""Run a parsed Dockerfile, stage by stage and step by step, through the engine's services.

Each step that changes anything is committed as an untagged image whose parent is the previous one,
which is what `images -a` shows and what the build cache finds: a step is reused when a child of the
current image has the same `created_by` (which carries the instruction, the build args a RUN sees,
and a digest of the files a COPY reads), the same resulting config and one layer more (or none).
Metadata instructions add an `empty_layer` history entry and no layer.

Over 400 lines because the Builder is one state machine over stages and steps, whose cache lookup and commit
must see the same state.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import tarfile
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import conf
from engine.dockerfile import copying, metadata, words
from engine.dockerfile import parser as dockerfile
from engine.dockerfile.context import SourceTree, check_source
from engine.dockerfile.parser import Dockerfile, Instruction, Stage
from engine.errors import DockerfileError, EngineError, ImageNotFound, InvalidArgument
from engine.models import Image
from engine.progress import OutputLine, Progress, StepProgress
from engine.runtime import users
from engine.services import buildsteps as steps
from engine.services import images
from engine.services.buildstate import State, commit, find_cached, state_of
from engine.services.imagestore import StoredLayer
from engine.services.options import ContainerOptions
from engine.store import layerdiff
from engine.store import layers as layer_store

log = logging.getLogger(__name__)

# Docker passes these to RUN without an ARG and keeps them out of the image history and the cache key.
_PROXIES = ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy")
PREDEFINED_ARGS = frozenset(_PROXIES) | frozenset(name.upper() for name in _PROXIES)


class Builder:
    def __init__(
        self,
        parsed: Dockerfile,
        context: SourceTree,
        *,
        build_args: Mapping[str, str],
        target: str | None,
        no_cache: bool,
        progress: Progress,
        cancel: threading.Event | None = None,
    ) -> None:
        self.df = parsed
        self.cancel = cancel
        self.context = context
        self.build_args = dict(build_args)
        self.no_cache = no_cache
        self.progress = progress
        self.used_args: set[str] = set()
        last = parsed.stages[-1]
        self.target = parsed.find_stage(target) if target else last
        if self.target is None:
            raise InvalidArgument(f"target stage {target!r} could not be found in the Dockerfile")
        self.global_args = self._global_args()
        self.results: dict[int, Image | None] = {}
        self.step = 0
        self.total = 0

    # -- planning -------------------------------------------------------------------------------
    def _global_args(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instr in self.df.global_args:
            for name, default in self._arg_pairs(instr, values):
                if name in self.build_args:
                    values[name] = self.build_args[name]
                    self.used_args.add(name)
                elif default is not None:
                    values[name] = default
        return values

    def _arg_pairs(self, instr: Instruction, env: Mapping[str, str]) -> list[tuple[str, str | None]]:
        out = []
        for word in words.raw_words(instr.args, escape=self.df.escape):
            name, sep, default = word.partition("=")
            if not name or not name.replace("_", "a").isalnum():
                raise DockerfileError(f"ARG {word!r}: invalid name", line=instr.line)
            value = words.expand(default, env, escape=self.df.escape, line=instr.line) if sep else None
            out.append((name, value))
        return out

    def _needed(self) -> list[Stage]:
        """The target stage and the stages it depends on (FROM and COPY --from), in file order."""
        assert self.target is not None
        needed: set[int] = set()
        pending = [self.target]
        while pending:
            stage = pending.pop()
            if stage.index in needed:
                continue
            needed.add(stage.index)
            refs = [self._expand_global(stage.base, stage.line)]
            refs += [
                i.flag("from") or "" for i in stage.instructions if i.keyword == "COPY" and i.flag("from")
            ]
            for ref in refs:
                dep = self.df.find_stage(ref, before=stage.index)
                if dep is not None:
                    pending.append(dep)
        return [s for s in self.df.stages if s.index in needed]

    def _expand_global(self, text: str, line: int) -> str:
        return words.expand(text, self.global_args, escape=self.df.escape, line=line)

    # -- running --------------------------------------------------------------------------------
    def run(self) -> Image:
        """Build every needed stage; return the target stage's image."""
        stages = self._needed()
        self.total = sum(1 + len(s.instructions) for s in stages)
        image: Image | None = None
        for stage in stages:
            image = self._stage(stage)
            self.results[stage.index] = image
        unused = sorted(set(self.build_args) - self.used_args - PREDEFINED_ARGS)
        if unused:
            self.progress(OutputLine(f"[Warning] One or more build-args {unused} were not consumed"))
        if image is None:
            raise DockerfileError("the build produced no image (FROM scratch with no instructions)")
        return image

    def _stage(self, stage: Stage) -> Image | None:
        base = self._expand_global(stage.base, stage.line)
        self._report(f"FROM {base}" + (f" AS {stage.name}" if stage.name else ""))
        st = state_of(self._base_image(base, stage))
        if st.image is not None:
            self.progress(OutputLine(f" ---> {st.image.short_id}"))
        # The base image's ONBUILD triggers run first, and are not inherited by this image.
        triggers = st.config.pop("OnBuild", None) or []
        if triggers:
            self.progress(OutputLine(f"# Executing {len(triggers)} build trigger(s)"))
        for text in triggers:
            self._step(st, dockerfile.parse_trigger(text, stage.line, self.df.escape))
        for instr in stage.instructions:
            self._report(instr.original)
            self._step(st, instr)
        return st.image

    def _step(self, st: State, instr: Instruction) -> None:
        try:
            self._instruction(st, instr)
        except DockerfileError:
            raise
        except InvalidArgument as exc:
            raise DockerfileError(f"{instr.keyword}: {exc.message}", line=instr.line, hint=exc.hint) from exc

    def _report(self, text: str) -> None:
        steps.check_cancelled(self.cancel)
        self.step += 1
        self.progress(StepProgress(self.step, self.total, text))

    def _base_image(self, base: str, stage: Stage) -> Image | None:
        earlier = self.df.find_stage(base, before=stage.index)
        if earlier is not None and not base.isdigit():
            return self.results.get(earlier.index)
        if base.lower() == "scratch":
            return None
        try:
            return images.resolve(base)
        except (ImageNotFound, InvalidArgument):
            raise DockerfileError(
                f"base image {base} is not available locally",
                line=stage.line,
                hint=f"pull or load {base} first",
            ) from None

    def _instruction(self, st: State, instr: Instruction) -> None:
        kw = instr.keyword
        if kw == "ARG":
            for name, default in self._arg_pairs(instr, st.variables()):
                if name in self.build_args:
                    st.args[name] = self.build_args[name]
                    self.used_args.add(name)
                elif default is not None:
                    st.args[name] = default
                elif name in self.global_args:
                    st.args[name] = self.global_args[name]
            return
        if kw in metadata.METADATA:
            config = metadata.apply(instr, st.config, st.variables(), escape=self.df.escape)
            if kw == "ENTRYPOINT" and not st.cmd_set:
                config["Cmd"] = None  # a new ENTRYPOINT drops an inherited CMD, as Docker does
            st.cmd_set = st.cmd_set or kw == "CMD"
            if kw == "MAINTAINER":
                st.author = instr.args
            self._commit_step(st, f"/bin/sh -c #(nop) {instr.original}", config, None)
            return
        if kw == "RUN":
            self._run(st, instr)
        elif kw in ("COPY", "ADD"):
            self._copy(st, instr)
        else:
            raise DockerfileError(f"{kw} is not supported here", line=instr.line)

    # -- committing and the cache ---------------------------------------------------------------
    def _commit_step(
        self, st: State, created_by: str, config: dict[str, Any], make_layer: Any, *, digest_key: str = ""
    ) -> None:
        """Reuse a cached child of the current image, or make the layer (if any) and commit."""
        key = created_by + digest_key
        cached = None if self.no_cache else find_cached(st, key, config, adds_layer=make_layer is not None)
        if cached is not None:
            self.progress(OutputLine(" ---> Using cache"))
            fresh = state_of(cached)
            fresh.args, fresh.cmd_set = st.args, st.cmd_set
            st.__dict__.update(fresh.__dict__)
            self.progress(OutputLine(f" ---> {cached.short_id}"))
            return
        layer = make_layer() if make_layer is not None else None
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        entry: dict[str, Any] = {"created": when, "created_by": key}
        if layer is None:
            entry["empty_layer"] = True
        layers = st.layers + ([layer] if layer else [])
        history = st.history + [entry]
        image = commit(st, config, layers, history, when)
        st.image, st.layers, st.history, st.config = image, layers, history, config
        self.progress(OutputLine(f" ---> {image.short_id}"))

    # -- RUN ------------------------------------------------------------------------------------
    def _run(self, st: State, instr: Instruction) -> None:
        if st.image is None:
            raise DockerfileError(
                "RUN needs a base image with a shell; this stage starts FROM scratch", line=instr.line
            )
        argv = metadata.command(instr, st.config)
        env_keys = set(metadata.env_of(st.config))
        run_args = {k: v for k, v in st.args.items() if k not in env_keys}
        proxies = {k: v for k, v in self.build_args.items() if k in PREDEFINED_ARGS and k not in st.args}
        self.used_args.update(proxies)
        shown = " ".join(f"{k}={v}" for k, v in sorted(run_args.items()))
        created_by = (f"|{len(run_args)} {shown} " if run_args else "") + " ".join(argv)
        options = ContainerOptions(
            image=st.image.id,
            command=tuple(argv),
            entrypoint=("",),
            env=tuple(f"{k}={v}" for k, v in {**run_args, **proxies}.items()),
            workdir=st.config.get("WorkingDir") or None,
            user=st.config.get("User") or None,
            labels={steps.BUILD_LABEL: "true"},
            health_test=("NONE",),  # a RUN step is not a service: the base image's HEALTHCHECK stays unrun
        )

        def make_layer() -> StoredLayer:
            step = steps.RunStep(options, progress=self.progress, cancel=self.cancel)
            try:
                try:
                    code = step.run()
                except (DockerfileError, steps.BuildCancelled):
                    raise
                except EngineError as exc:
                    raise DockerfileError(f"RUN {instr.args}: {exc}", line=instr.line) from exc
                if code != 0:
                    raise DockerfileError(
                        f"the command '{' '.join(argv)}' returned a non-zero code: {code}", line=instr.line
                    )
                assert step.container_id is not None
                return steps.upper_layer(step.container_id, st.parent_chain)
            finally:
                step.remove()

        self._commit_step(st, created_by, dict(st.config), make_layer)

    # -- COPY and ADD ---------------------------------------------------------------------------
    def _copy(self, st: State, instr: Instruction) -> None:
        env = st.variables()
        esc = self.df.escape
        if instr.exec_form is not None:
            args = [words.expand(w, env, escape=esc, line=instr.line) for w in instr.exec_form]
        else:
            args = words.split_words(instr.args, env, escape=esc, line=instr.line)
        if len(args) < 2:
            raise DockerfileError(f"{instr.keyword} requires at least two arguments", line=instr.line)
        *sources, dest = args
        if not dest.startswith("/"):
            workdir = st.config.get("WorkingDir") or "/"
            dest = posixpath.join(workdir, dest) + ("/" if dest.endswith("/") or dest in (".", "./") else "")
        chmod = copying.parse_chmod(instr.flag("chmod"), instr.line)
        chown = instr.flag("chown")
        from_ref = instr.flag("from")
        for source in sources:
            if copying.is_url(source):
                if instr.keyword == "COPY":
                    raise DockerfileError(f"COPY source can't be a URL: {source}", line=instr.line)
                raise DockerfileError(
                    f"ADD {source}: downloading URLs is not supported",
                    line=instr.line,
                    hint="download the file into the build context and COPY it (remote sources are refused: SSRF, A25)",
                )
        if from_ref is not None:
            self._copy_from(st, instr, sources, dest, chown, chmod, words.expand(from_ref, env, escape=esc))
            return
        matches = self._match(self.context, sources, instr)
        digest = self.context.digest(matches)
        self._write_copy(
            st, instr, self.context, matches, dest, chown, chmod, f"context:{digest}", preserve=False
        )

    def _copy_from(
        self,
        st: State,
        instr: Instruction,
        sources: list[str],
        dest: str,
        chown: str | None,
        chmod: int | None,
        ref: str,
    ) -> None:
        stage = self.df.find_stage(ref)
        if stage is not None:
            if stage.index not in self.results:
                raise DockerfileError(
                    f"COPY --from={ref}: stage {ref} is not built before this one", line=instr.line
                )
            image = self.results[stage.index]
        else:
            try:
                image = images.resolve(ref)
            except (ImageNotFound, InvalidArgument):
                raise DockerfileError(
                    f"COPY --from={ref}: no such stage or local image",
                    line=instr.line,
                    hint=f"pull or load {ref} first",
                ) from None
        with steps.image_view(image) as tree:
            matches = self._match(tree, sources, instr)
            key = f"from:{image.id if image else 'scratch'}:{json.dumps(matches)}"
            self._write_copy(st, instr, tree, matches, dest, chown, chmod, key, preserve=True)

    def _match(self, tree: SourceTree, sources: list[str], instr: Instruction) -> list[str]:
        found: list[str] = []
        for source in sources:
            check_source(source, instr.line)
            if any(c in source for c in "*?["):
                hits = tree.glob(source)
            else:
                rel = posixpath.normpath(source).strip("/")
                rel = "" if rel == "." else rel
                resolved = None if tree.excluded(rel) else tree.resolve(source)
                hits = [] if resolved is None else [resolved]
            if not hits:
                raise DockerfileError(
                    f"{instr.keyword} failed: {source}: no such file or directory in the build context "
                    "(or excluded by .dockerignore)",
                    line=instr.line,
                )
            found.extend(h for h in hits if h not in found)
        return found

    def _write_copy(
        self,
        st: State,
        instr: Instruction,
        tree: SourceTree,
        matches: list[str],
        dest: str,
        chown: str | None,
        chmod: int | None,
        key: str,
        *,
        preserve: bool,
    ) -> None:
        flags = " ".join(f"--{k}={v}" for k, v in instr.flags if k != "from")
        created_by = f"/bin/sh -c #(nop) {instr.keyword} {flags + ' ' if flags else ''}{key} in {dest}"

        def make_layer() -> StoredLayer:
            with steps.image_view(st.image) as view, steps.temp_dir("add-") as scratch:
                owner = self._owner(view, chown, st.variables(), instr, preserve)
                archives = [m for m in matches if instr.keyword == "ADD" and copying.is_archive(tree, m)]
                targets, parents = copying.plan(
                    matches, tree, dest, view, line=instr.line, as_dir=set(archives)
                )
                unpacked = {m: _unpack(tree, m, scratch / str(i)) for i, m in enumerate(archives)}

                def write(tar: tarfile.TarFile) -> None:
                    copying.write_parents(tar, parents, view, owner)
                    for target in targets:
                        if target.source in unpacked:
                            copying.write_parents(tar, [target.path] if target.path else [], view, owner)
                            # An extracted archive keeps its own owners unless --chown was given.
                            uid, gid = (owner.uid, owner.gid) if chown is not None else (None, None)
                            writer = layerdiff.TreeWriter(
                                tar, overlay=False, prefix=target.path, uid=uid, gid=gid
                            )
                            writer.write(unpacked[target.source])
                        else:
                            copying.write_target(tar, tree, target, owner, chmod, view)

                return steps.store_layer(write, st.parent_chain)

        self._commit_step(st, created_by, dict(st.config), make_layer)

    def _owner(
        self, view: SourceTree, chown: str | None, env: Mapping[str, str], instr: Instruction, preserve: bool
    ) -> copying.Owner:
        """--chown resolved against the image's own passwd and group files; root without it."""
        if chown is None:
            return copying.Owner(None, None) if preserve else copying.Owner(0, 0)
        spec = words.expand(chown, env, escape=self.df.escape, line=instr.line)
        passwd = users.parse_passwd(view.read_text("etc/passwd", limit=users.MAX_FILE) or "")
        groups = users.parse_group(view.read_text("etc/group", limit=users.MAX_FILE) or "")
        try:
            resolved = users.resolve(spec, passwd, groups)
        except InvalidArgument as exc:
            raise DockerfileError(f"--chown={spec}: {exc.message}", line=instr.line) from None
        # Docker: a user without a group gets the same number as its gid.
        return copying.Owner(resolved.uid, resolved.gid if ":" in spec else resolved.uid)


def _unpack(tree: SourceTree, path: str, dest: Path) -> Path:
    """Extract a local archive through the engine's hostile-tar extractor (A25)."""
    dest.mkdir(mode=0o755)
    fd = tree.open_file(path)
    with os.fdopen(fd, "rb") as fh:
        layer_store.unpack(fh, dest, reserve=conf.disk_reserve())
    return dest
