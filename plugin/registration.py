"""Make `kipoi predict GENA-LM/<model> ...` work as typed (no --source), reversibly.

Where Kipoi looks (kipoi 0.8.6): a model name is resolved in exactly one source, `--source`, whose default is
`kipoi`; sources come only from ~/.kipoi/config.yaml and there is no plugin hook for adding one. The `kipoi`
source is a git clone of the public model zoo at its `local_path` (default ~/.kipoi/models); kipoi finds models
there with a recursive glob for model.yaml that follows directory symlinks. On first use per process it runs
`git clone` when that folder is missing or empty, and `git pull` (errors printed and ignored) when it is not.

So `register` adds one entry to that folder and never writes ~/.kipoi/config.yaml:

    <local_path>/GENA-LM  ->  <installed kipoi_genalm>/zoo/GENA-LM      (a symlink, created atomically)

* A clone of the public zoo is there: the link is an untracked entry, listed in the clone's .git/info/exclude so
  `git status` stays clean; kipoi's `git pull` leaves it alone.
* No clone yet: kipoi would clone only into a missing or empty folder, and the link would make it non-empty
  forever. `register` therefore first "seeds" the folder as an empty git repository whose `origin` is the
  source's remote_url and whose master tracks origin/master (marked with `git config genalm.seeded true`). The
  `git pull` kipoi runs on every use then fetches the public zoo as soon as the network allows.
* A `local` source: the link is simply placed in its folder.

`unregister` removes exactly what `register` added: the link, the exclude line, the marker, and the seeded
repository itself if the public zoo never arrived. Both are idempotent; `status` only looks.
Caveats (documented for users): one `genalm-kipoi register` per user/HOME (pip has no post-install hook); offline,
every kipoi call still prints the failing `git pull` (`auto_update: false` in config.yaml avoids it); a seeded
repository's first pull fetches the zoo's full history; run `unregister` before `pip uninstall`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import GROUP_DIR, GROUP_NAME

EXCLUDE_LINE = f"/{GROUP_NAME}"
SEEDED_KEY = "genalm.seeded"      # git-config marker: this repository was created by `register`
ZOO_BRANCH = "master"             # default branch of github.com/kipoi/models
GIT_SOURCE_TYPES = ("git", "git-lfs")


class RegistrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class SourceLocation:
    name: str
    type: str
    local_path: Path
    remote_url: str | None

    @property
    def link(self) -> Path:
        return self.local_path / GROUP_NAME

    @property
    def is_git(self) -> bool:
        return self.type in GIT_SOURCE_TYPES


def locate_source(source_name: str = "kipoi") -> SourceLocation:
    """Where the Kipoi source `source_name` keeps its models, as configured in ~/.kipoi/config.yaml."""
    import kipoi  # reads $HOME/.kipoi/config.yaml at import time

    try:
        source = kipoi.config.get_source(source_name)
    except ValueError:
        names = ", ".join(kipoi.config.model_sources())
        raise RegistrationError(f"{source_name!r} is not a model source in ~/.kipoi/config.yaml "
                                f"(sources: {names})") from None
    if source.TYPE not in GIT_SOURCE_TYPES + ("local",):
        raise RegistrationError(f"source {source_name!r} is of type {source.TYPE!r}; GENA-LM models can be added "
                                "to git, git-lfs or local sources only")
    return SourceLocation(source_name, source.TYPE, Path(os.path.expanduser(source.local_path)),
                          getattr(source, "remote_url", None))


# ---- git helpers --------------------------------------------------------------------------------------------------
def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RegistrationError(f"git {' '.join(args)} in {repo} failed: {result.stderr.strip()}")
    return result


def _is_git_repo(path: Path) -> bool:
    return (path / ".git").is_dir()


def _has_commits(repo: Path) -> bool:
    return _git(repo, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode == 0


def _is_seeded(repo: Path) -> bool:
    return _git(repo, "config", "--local", "--get", SEEDED_KEY, check=False).stdout.strip() == "true"


def _seed_repository(location: SourceLocation) -> None:
    """An empty repository that tracks the public zoo, so that kipoi's next `git pull` fills it in."""
    if not location.remote_url:
        raise RegistrationError(f"source {location.name!r} has no remote_url to seed {location.local_path} with")
    repo = location.local_path
    repo.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "-q")
    _git(repo, "symbolic-ref", "HEAD", f"refs/heads/{ZOO_BRANCH}")
    _git(repo, "remote", "add", "origin", location.remote_url)
    _git(repo, "config", f"branch.{ZOO_BRANCH}.remote", "origin")
    _git(repo, "config", f"branch.{ZOO_BRANCH}.merge", f"refs/heads/{ZOO_BRANCH}")
    _git(repo, "config", SEEDED_KEY, "true")


def _exclude_file(repo: Path) -> Path:
    return repo / ".git" / "info" / "exclude"


def _add_exclude(repo: Path) -> None:
    exclude = _exclude_file(repo)
    exclude.parent.mkdir(parents=True, exist_ok=True)
    text = exclude.read_text() if exclude.exists() else ""
    if EXCLUDE_LINE in text.splitlines():
        return
    separator = "" if not text or text.endswith("\n") else "\n"
    exclude.write_text(text + separator + EXCLUDE_LINE + "\n")


def _remove_exclude(repo: Path) -> None:
    exclude = _exclude_file(repo)
    if not exclude.exists():
        return
    lines = exclude.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.rstrip("\r\n") != EXCLUDE_LINE]
    if kept != lines:
        exclude.write_text("".join(kept))


# ---- the link -----------------------------------------------------------------------------------------------------
def _link_target(link: Path) -> Path | None:
    return Path(os.readlink(link)) if link.is_symlink() else None


def _looks_like_ours(target: Path) -> bool:
    """A link made by `register` from some (maybe uninstalled) copy of this package."""
    return target.parts[-2:] == ("zoo", GROUP_NAME)


def _models_in(group_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in group_dir.glob("*/model.yaml"))


@dataclass
class Status:
    location: SourceLocation
    group_dir: Path
    link_target: Path | None
    registered: bool
    models: list[str]
    seeded: bool
    zoo_present: bool

    def __str__(self) -> str:
        loc = self.location
        lines = [f"source {loc.name!r} ({loc.type}) at {loc.local_path}"]
        if self.registered:
            lines.append(f"registered: {loc.link} -> {self.group_dir}")
        elif self.link_target is not None:
            lines.append(f"not registered: {loc.link} points to {self.link_target}, not {self.group_dir}")
        else:
            lines.append("not registered (run `genalm-kipoi register`)")
        lines.append(f"bundled models in {self.group_dir}: "
                     + (", ".join(f"{GROUP_NAME}/{m}" for m in self.models) or "none"))
        if loc.is_git:
            if self.zoo_present:
                lines.append("public zoo: cloned")
            elif self.seeded:
                lines.append("public zoo: not fetched yet (kipoi's next successful `git pull` brings it in)")
            else:
                lines.append("public zoo: not cloned")
        return "\n".join(lines)


def status(group_dir: Path | None = None, source_name: str = "kipoi") -> Status:
    group_dir = Path(group_dir or GROUP_DIR).resolve()
    location = locate_source(source_name)
    target = _link_target(location.link)
    repo = location.local_path
    is_repo = location.is_git and _is_git_repo(repo)
    return Status(location=location, group_dir=group_dir, link_target=target,
                  registered=target is not None and target == group_dir, models=_models_in(group_dir),
                  seeded=is_repo and _is_seeded(repo), zoo_present=is_repo and _has_commits(repo))


def register(group_dir: Path | None = None, source_name: str = "kipoi", force: bool = False) -> str:
    """Link the GENA-LM group into the source's folder; idempotent. Returns a one-line report."""
    group_dir = Path(group_dir or GROUP_DIR).resolve()
    if not _models_in(group_dir):
        raise RegistrationError(f"{group_dir} holds no <model>/model.yaml: nothing to register (export models "
                                "with `python -m genalm_models.train export`, or pass --group-dir)")
    location = locate_source(source_name)
    link = location.link
    target = _link_target(link)
    if target == group_dir:
        return f"already registered: {link} -> {group_dir}"
    if target is not None:
        # Replace our own stale link (e.g. from an uninstalled copy of the package) - anything else only on force.
        if not (force or (_looks_like_ours(target) and not target.exists())):
            raise RegistrationError(f"{link} points to {target}, not {group_dir}; not touching it "
                                    "(use --force to replace it)")
    elif link.exists():
        raise RegistrationError(f"{link} already exists and is not a link made by genalm-kipoi; not touching it")

    repo = location.local_path
    empty = not repo.exists() or not any(repo.iterdir())
    seeded_now = False
    if location.is_git and empty:
        _seed_repository(location)
        seeded_now = True
    if location.is_git and _is_git_repo(repo):
        _add_exclude(repo)
    repo.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{GROUP_NAME}.tmp-{os.getpid()}")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(group_dir, target_is_directory=True)
    os.replace(temporary, link)  # atomic: kipoi never sees a half-made entry
    note = " (seeded an empty repository tracking the public zoo there)" if seeded_now else ""
    return f"registered: {link} -> {group_dir}{note}"


def unregister(group_dir: Path | None = None, source_name: str = "kipoi", force: bool = False) -> str:
    """Remove what `register` added; idempotent. Returns a one-line report."""
    group_dir = Path(group_dir or GROUP_DIR).resolve()
    location = locate_source(source_name)
    link, repo = location.link, location.local_path
    target = _link_target(link)
    removed = []
    if target is not None:
        if target != group_dir and not force and not (_looks_like_ours(target) and not target.exists()):
            raise RegistrationError(f"{link} points to {target}, not {group_dir}; leaving it "
                                    "(use --force to remove it)")
        link.unlink()
        removed.append(str(link))
    elif link.exists():
        raise RegistrationError(f"{link} is not a link made by genalm-kipoi; leaving it")

    if location.is_git and _is_git_repo(repo):
        _remove_exclude(repo)
        if _is_seeded(repo):
            if not _has_commits(repo) and [p.name for p in repo.iterdir()] == [".git"]:
                shutil.rmtree(repo)  # the public zoo never arrived: back to "no clone at all"
                removed.append(f"the empty repository {repo} made by register")
            else:
                _git(repo, "config", "--unset", SEEDED_KEY)  # it is a real clone of the zoo now: keep it
    if not removed:
        return f"not registered: nothing to remove in {repo}"
    return "unregistered: removed " + " and ".join(removed)
