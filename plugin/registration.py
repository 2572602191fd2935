"""Make `kipoi predict GENA-LM/<model> ...` work as typed (no --source), reversibly.

Where Kipoi looks (kipoi 0.8.6): a model name is resolved in exactly one source, `--source`, whose default is
`kipoi`; sources come only from ~/.kipoi/config.yaml and there is no plugin hook for adding one. The `kipoi`
source is a git clone of the public model zoo at its `local_path` (default ~/.kipoi/models); kipoi finds models
there with a recursive glob for model.yaml that follows directory symlinks. On first use per process it runs
`git clone` when that folder is missing or empty, and `git pull` (errors printed and ignored) when it is not.

So `register` adds one entry to that folder (and edits ~/.kipoi/config.yaml in one case only, below):

    <local_path>/GENA-LM  ->  <installed kipoi_genalm>/zoo/GENA-LM      (a symlink, created atomically)

* A clone of the public zoo is there: the link is an untracked entry, listed in the clone's .git/info/exclude so
  `git status` stays clean; kipoi's `git pull` leaves it alone.
* No clone yet: kipoi would clone only into a missing or empty folder, and the link would make it non-empty
  forever. `register` therefore first "seeds" the folder as an empty git repository whose `origin` is the
  source's remote_url and whose master tracks origin/master (marked with `git config genalm.seeded true`). The
  `git pull` kipoi runs on every use then fetches the public zoo as soon as the network allows.
* A `local` source: the link is simply placed in its folder.

Automatic updates of a seeded repository: with `auto_update: true` (kipoi's default) every kipoi call runs that
`git pull`, which on a machine without the network prints a failed pull (twice per call) for a zoo that is not
there. So when the repository is one `register` seeded (now or before) and the public zoo has not arrived,
`register` sets that source's `auto_update` to false in ~/.kipoi/config.yaml: a one-line text edit (the rest of the
file, comments included, stays byte for byte; it is re-read and compared before it is written), recorded in the
seeded repository's git config (`genalm.autoupdate`) so that it can be undone exactly. The price: the public zoo
no longer arrives by itself; `register --auto-update` puts kipoi's automatic pull back (the next kipoi call then
fetches the zoo when the network allows), and registering with `--auto-update` from the start keeps it. A
`auto_update` the user set, a clone of the zoo, a local source: never touched.

`unregister` removes exactly what `register` added: the link, the exclude line, the markers, the `auto_update`
edit, and the seeded repository itself if the public zoo never arrived. Both are idempotent; `status` only looks.
Caveats (documented for users): one `genalm-kipoi register` per user/HOME (pip has no post-install hook); a clone
of the public zoo is still pulled by kipoi on every call (offline: a failed pull printed, harmless; `auto_update:
false` in config.yaml silences it); a seeded repository's first pull fetches the zoo's full history; run
`unregister` before `pip uninstall`.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from genalm_models.io_utils import atomic_path

from . import GROUP_DIR, GROUP_NAME

EXCLUDE_LINE = f"/{GROUP_NAME}"
SEEDED_KEY = "genalm.seeded"      # git-config marker: this repository was created by `register`
AUTO_UPDATE_KEY = "genalm.autoupdate"  # git-config marker: what register did to the source's auto_update (below)
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


# ---- auto_update of a seeded source in ~/.kipoi/config.yaml ------------------------------------------------------
# The marker's values: "replaced:<token>" (register turned `auto_update: <token>` into false), "added" (the source
# had no auto_update line - kipoi's default is true - and register added `auto_update: false`), "kept" (the user
# asked for automatic pulls: leave the setting alone).
_TRUE_TOKENS = ("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON")


def kipoi_config_path() -> Path:
    import kipoi.config

    return Path(getattr(kipoi.config, "_config_path", os.path.expanduser("~/.kipoi/config.yaml")))


def _load_yaml(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _source_block(lines: list[str], source_name: str) -> tuple[int, int] | None:
    """(index of the `<source_name>:` line under the top-level `model_sources:`, index after its block)."""
    significant = [(i, line) for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    top = next((k for k, (_, line) in enumerate(significant)
                if _indent(line) == 0 and re.match(r"model_sources\s*:\s*(#.*)?$", line)), None)
    if top is None:
        return None
    body = []
    for index, line in significant[top + 1:]:
        if _indent(line) == 0:
            break
        body.append((index, line))
    if not body:
        return None
    after_body = significant[top + 1 + len(body)][0] if top + 1 + len(body) < len(significant) else len(lines)
    child_indent = _indent(body[0][1])
    key = re.compile(rf"{re.escape(source_name)}\s*:\s*(#.*)?$")
    for position, (index, line) in enumerate(body):
        if _indent(line) == child_indent and key.match(line.strip()):
            end = next((other_index for other_index, other in body[position + 1:] if _indent(other) <= child_indent),
                       after_body)
            return index, end
    return None


_AUTO_UPDATE_LINE = re.compile(r"^(\s*auto_update\s*:\s*)(\S+)(\s*(#.*)?)$")


def _edit_auto_update(text: str, source_name: str, action: str) -> str | None:
    """The config text with the source's auto_update edited, or None when it cannot be done safely.

    action: "disable" (true -> false, or add `auto_update: false`), "restore:replaced:<token>", "restore:added"."""
    before = _load_yaml(text)
    if not isinstance(before, dict) or not isinstance(before.get("model_sources"), dict):
        return None
    source = before["model_sources"].get(source_name)
    if not isinstance(source, dict):
        return None
    lines = text.splitlines(keepends=True)
    block = _source_block([line.rstrip("\r\n") for line in lines], source_name)
    if block is None:
        return None
    start, end = block
    inside = [i for i in range(start + 1, end) if _AUTO_UPDATE_LINE.match(lines[i].rstrip("\r\n"))
              and _indent(lines[i]) > _indent(lines[start])]
    newline = "\r\n" if lines[start].endswith("\r\n") else "\n"
    if action == "disable":
        if inside:
            line = lines[inside[0]]
            match = _AUTO_UPDATE_LINE.match(line.rstrip("\r\n"))
            lines[inside[0]] = match.group(1) + "false" + (match.group(3) or "") + line[len(line.rstrip("\r\n")):]
        else:
            body = [i for i in range(start + 1, end) if lines[i].strip() and not lines[i].lstrip().startswith("#")]
            if not body:
                return None
            lines.insert(start + 1, " " * _indent(lines[body[0]]) + "auto_update: false" + newline)
        wanted = False
    elif action.startswith("restore:replaced:"):
        if len(inside) != 1:
            return None
        line = lines[inside[0]]
        match = _AUTO_UPDATE_LINE.match(line.rstrip("\r\n"))
        if match.group(2) != "false":
            return None
        token = action[len("restore:replaced:"):]
        lines[inside[0]] = match.group(1) + token + (match.group(3) or "") + line[len(line.rstrip("\r\n")):]
        wanted = True
    elif action == "restore:added":
        exact = [i for i in inside if lines[i].strip() == "auto_update: false"]
        if len(inside) != 1 or not exact:
            return None
        del lines[exact[0]]
        wanted = None
    else:
        raise ValueError(action)
    edited = "".join(lines)
    after = _load_yaml(edited)
    expected = dict(before)
    expected["model_sources"] = dict(before["model_sources"])
    expected["model_sources"][source_name] = dict(source)
    if wanted is None:
        expected["model_sources"][source_name].pop("auto_update", None)
    else:
        expected["model_sources"][source_name]["auto_update"] = wanted
    return edited if after == expected else None


def _read_config(path: Path) -> str:
    with open(path, newline="") as handle:  # line ends as they are (\r\n stays \r\n)
        return handle.read()


def _write_config(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:  # the file keeps its permissions
        with open(temporary, "w", newline="") as handle:
            handle.write(text)
        os.chmod(temporary, path.stat().st_mode & 0o7777)


def _auto_update_marker(repo: Path) -> str | None:
    return _git(repo, "config", "--local", "--get", AUTO_UPDATE_KEY, check=False).stdout.strip() or None


def _source_auto_update(source_name: str, config: Path) -> bool | None:
    data = _load_yaml(_read_config(config)) if config.is_file() else None
    try:
        value = data["model_sources"][source_name].get("auto_update", True)
    except (TypeError, KeyError, AttributeError):
        return None
    return value if isinstance(value, bool) else None


def _disable_auto_update(location: SourceLocation) -> str:
    """Turn kipoi's automatic pull of a seeded, still empty repository off; a note for the report ("" if none)."""
    repo, config = location.local_path, kipoi_config_path()
    if _auto_update_marker(repo) is not None or not config.is_file():
        return ""
    current = _source_auto_update(location.name, config)
    if current is not True:
        return ""  # the user's own `auto_update: false` (or something we do not understand): not ours to touch
    text = _read_config(config)
    edited = _edit_auto_update(text, location.name, "disable")
    if edited is None:
        return (f"; note: could not edit {config} safely - set `auto_update: false` for the {location.name!r} "
                "source yourself to stop kipoi's failing `git pull`")
    block = _source_block(text.splitlines(), location.name)
    had_line = block is not None and any(_AUTO_UPDATE_LINE.match(line) for line in text.splitlines()[block[0] + 1:
                                                                                                     block[1]])
    if had_line:
        token = next(_AUTO_UPDATE_LINE.match(line).group(2) for line in text.splitlines()[block[0] + 1:block[1]]
                     if _AUTO_UPDATE_LINE.match(line))
        marker = f"replaced:{token}"
    else:
        marker = "added"
    _git(repo, "config", AUTO_UPDATE_KEY, marker)
    _write_config(config, edited)
    return (f"; kipoi's automatic `git pull` of the absent public zoo turned off (auto_update: false in {config}; "
            "`genalm-kipoi register --auto-update` turns it back on)")


def _restore_auto_update(location: SourceLocation) -> str:
    """Undo `_disable_auto_update` (if it did anything); a note for the report ("" if nothing to undo)."""
    repo, config = location.local_path, kipoi_config_path()
    marker = _auto_update_marker(repo)
    if marker is None:
        return ""
    _git(repo, "config", "--unset", AUTO_UPDATE_KEY, check=False)
    if marker == "kept" or not config.is_file():
        return ""
    edited = _edit_auto_update(_read_config(config), location.name, f"restore:{marker}")
    if edited is None:  # the user changed it since: theirs now
        return ""
    _write_config(config, edited)
    return f"kipoi's automatic `git pull` (auto_update in {config})"


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
    auto_update: bool | None = None           # the source's auto_update in config.yaml (None: not a git source)
    auto_update_marker: str | None = None     # what register did to it (AUTO_UPDATE_KEY)

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
            elif self.seeded and self.auto_update is False:
                lines.append("public zoo: not fetched (`genalm-kipoi register --auto-update` lets kipoi's next "
                             "`git pull` bring it in)")
            elif self.seeded:
                lines.append("public zoo: not fetched yet (kipoi's next successful `git pull` brings it in)")
            else:
                lines.append("public zoo: not cloned")
            if self.auto_update is not None:
                by = " (set by register)" if (self.auto_update_marker or "").startswith(("replaced", "added")) \
                    else ""
                lines.append(f"kipoi's automatic `git pull`: {'on' if self.auto_update else 'off'}{by}")
        return "\n".join(lines)


def status(group_dir: Path | None = None, source_name: str = "kipoi") -> Status:
    group_dir = Path(group_dir or GROUP_DIR).resolve()
    location = locate_source(source_name)
    target = _link_target(location.link)
    repo = location.local_path
    is_repo = location.is_git and _is_git_repo(repo)
    return Status(location=location, group_dir=group_dir, link_target=target,
                  registered=target is not None and target == group_dir, models=_models_in(group_dir),
                  seeded=is_repo and _is_seeded(repo), zoo_present=is_repo and _has_commits(repo),
                  auto_update=_source_auto_update(source_name, kipoi_config_path()) if location.is_git else None,
                  auto_update_marker=_auto_update_marker(repo) if is_repo else None)


def _auto_update_step(location: SourceLocation, keep: bool) -> str:
    """register's handling of kipoi's automatic pull (module docstring); a note for its report."""
    repo = location.local_path
    if not (location.is_git and _is_git_repo(repo) and _is_seeded(repo)):
        return ""
    if keep:
        restored = _restore_auto_update(location)
        _git(repo, "config", AUTO_UPDATE_KEY, "kept")
        return f"; {restored} is on again" if restored else ""
    if _has_commits(repo):
        return ""
    return _disable_auto_update(location)


@contextlib.contextmanager
def _one_at_a_time():
    """An exclusive lock on the ~/.kipoi folder itself around a whole register / unregister, taken before kipoi
    is imported: two runs at once in a fresh HOME would otherwise both seed the repository ("remote origin already
    exists") or read the config.yaml the other kipoi import is still writing. The folder, not a lock file in it:
    `unregister` leaves ~/.kipoi exactly as it found it (kipoi itself makes the folder on import anyway)."""
    import fcntl

    folder = Path(os.path.expanduser("~")) / ".kipoi"
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def register(group_dir: Path | None = None, source_name: str = "kipoi", force: bool = False,
             auto_update: bool = False) -> str:
    """Link the GENA-LM group into the source's folder; idempotent, also when several run at once. Returns a
    one-line report.

    auto_update: keep (or put back) kipoi's automatic `git pull` of a repository `register` seeded; by default it
    is turned off while the public zoo has not arrived (see the module docstring)."""
    with _one_at_a_time():
        return _register(group_dir, source_name, force, auto_update)


def _register(group_dir: Path | None, source_name: str, force: bool, auto_update: bool) -> str:
    group_dir = Path(group_dir or GROUP_DIR).resolve()
    if not _models_in(group_dir):
        raise RegistrationError(f"{group_dir} holds no <model>/model.yaml: nothing to register (export models "
                                "with `python -m genalm_models.train export`, or pass --group-dir)")
    location = locate_source(source_name)
    link = location.link
    target = _link_target(link)
    if target == group_dir:
        return f"already registered: {link} -> {group_dir}" + _auto_update_step(location, auto_update)
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
    with atomic_path(link) as temporary:  # atomic: kipoi never sees a half-made entry
        temporary.symlink_to(group_dir, target_is_directory=True)
    note = " (seeded an empty repository tracking the public zoo there)" if seeded_now else ""
    return f"registered: {link} -> {group_dir}{note}" + _auto_update_step(location, auto_update)


def unregister(group_dir: Path | None = None, source_name: str = "kipoi", force: bool = False) -> str:
    """Remove what `register` added; idempotent. Returns a one-line report."""
    with _one_at_a_time():
        return _unregister(group_dir, source_name, force)


def _unregister(group_dir: Path | None, source_name: str, force: bool) -> str:
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
        restored = _restore_auto_update(location)
        if restored:
            removed.append(f"the auto_update edit (restored {restored})")
        if _is_seeded(repo):
            if not _has_commits(repo) and [p.name for p in repo.iterdir()] == [".git"]:
                shutil.rmtree(repo)  # the public zoo never arrived: back to "no clone at all"
                removed.append(f"the empty repository {repo} made by register")
            else:
                _git(repo, "config", "--unset", SEEDED_KEY)  # it is a real clone of the zoo now: keep it
    if not removed:
        return f"not registered: nothing to remove in {repo}"
    return "unregistered: removed " + " and ".join(removed)
