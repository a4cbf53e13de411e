"""Writing output files safely, and telling outputs from inputs.

Every file the package writes (CSV, TIFF, PNG, checkpoints, plots, predictions) goes through
:func:`atomic_file`: it is written to a temporary name in the same folder, flushed to disk and
renamed over the target, so a full disk, Ctrl-C or a crash leaves either the old file or the new
one, never a truncated file. ``exclusive=True`` never replaces an existing file (two writers at the
same moment: one succeeds, the other gets FileExistsError).

:func:`resolve` resolves links without ever raising a bare RuntimeError / OSError for a link loop;
:func:`check_outputs` refuses, before any work starts, an output that is one of the inputs (the same
file through links or hard links, a file inside an input folder, or an input archive itself), or a
path that is not a regular file (a device, a pipe), or a folder where the file cannot be created.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .preprocess import InputError


def _text(path) -> str:
    from ._text import printable

    return printable(os.fspath(path))


def resolve(path, what: str = "") -> Path:
    """``path`` with ``~`` expanded and every symbolic link resolved (non-strict: the last parts
    need not exist). InputError for a link loop or a path the system cannot resolve."""
    try:
        p = Path(os.fspath(path)).expanduser()
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what + ' ' if what else ''}{path!r} is not a usable path ({exc}).") from None
    if "\0" in str(p):
        raise InputError(f"{what + ' ' if what else ''}{_text(p)} is not a usable path (it holds a NUL character).")
    try:
        return p.resolve()
    except RuntimeError as exc:  # Python < 3.13: "Symlink loop from ..."
        raise InputError(f"{what + ' ' if what else ''}{_text(p)} is a symbolic link loop (a link that "
                         "leads back to itself); remove or fix the link.") from exc
    except OSError as exc:
        if getattr(exc, "errno", None) == 40:  # ELOOP
            raise InputError(f"{what + ' ' if what else ''}{_text(p)} is a symbolic link loop (a link that "
                             "leads back to itself); remove or fix the link.") from exc
        raise InputError(f"{what + ' ' if what else ''}{_text(p)} cannot be resolved "
                         f"({exc.strerror or exc}).") from exc


def link_problem(path) -> str | None:
    """Why ``path`` cannot be opened when it is a broken link or a link loop, else None."""
    p = Path(os.fspath(path))
    try:
        if not p.is_symlink() or p.exists():
            return None
    except (OSError, ValueError):
        return None
    try:
        p.resolve(strict=True)
    except RuntimeError:
        return "is a symbolic link loop (a link that leads back to itself); remove or fix the link"
    except OSError as exc:
        if getattr(exc, "errno", None) == 40:
            return "is a symbolic link loop (a link that leads back to itself); remove or fix the link"
    try:
        target = os.readlink(p)
    except OSError:
        target = "?"
    return f"is a broken symbolic link (it points to {_text(target)}, which does not exist)"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def _new_temp(target: Path) -> str:
    """A new empty temporary file beside ``target`` (same suffix), with the permissions the target
    has (or would get from the umask), not mkstemp's 0600."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:80]}.", suffix=f".tmp{target.suffix[:16]}",
                               dir=target.parent)
    os.close(fd)
    try:
        mode = os.stat(target).st_mode & 0o777 if target.exists() else 0o666 & ~_UMASK
        os.chmod(tmp, mode)
    except OSError:
        pass
    return tmp


def _fsync_dir(folder: Path) -> None:
    try:  # make the rename durable (POSIX); harmless to skip elsewhere
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _commit(tmp: str, target: Path, exclusive: bool) -> None:
    if not exclusive:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # atomic, and fails if the target exists
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system: claim the name, then rename over it
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.close(fd)
        os.replace(tmp, target)
    else:
        os.unlink(tmp)


@contextlib.contextmanager
def atomic_file(path, mode: str = "wb", *, exclusive: bool = False, **open_kw) -> Iterator:
    """Open a temporary file beside ``path`` for writing; on success it is flushed, fsynced and
    renamed to ``path`` (``exclusive``: only if ``path`` does not exist, else FileExistsError and
    nothing changes). On any exception (also KeyboardInterrupt) the temporary file is removed and
    an existing ``path`` is untouched. A ``path`` that is a link is resolved: its target is replaced
    and the link kept. The temporary name keeps the suffix (``.name.XXXX.tmp.png``) so tools that
    look at suffixes still work."""
    if "w" not in mode and "x" not in mode:
        raise ValueError("atomic_file writes: mode must contain 'w'")
    target = resolve(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if exclusive and (target.exists() or target.is_symlink()):
        raise FileExistsError(17, "File exists", str(target))
    tmp = _new_temp(target)
    fmode = mode.replace("x", "w")
    try:
        with open(tmp, fmode, **open_kw) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _commit(tmp, target, exclusive)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_path(path, *, exclusive: bool = False) -> Iterator[Path]:
    """Like :func:`atomic_file` for writers that want a file name: yields a temporary path beside
    ``path`` (same suffix) to write to; it is renamed to ``path`` when the block succeeds."""
    target = resolve(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if exclusive and (target.exists() or target.is_symlink()):
        raise FileExistsError(17, "File exists", str(target))
    tmp = _new_temp(target)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _commit(tmp, target, exclusive)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


# --------------------------------------------------------------------------------------------------
# outputs are never inputs


def _stat(p: Path):
    try:
        return os.stat(p)
    except (OSError, ValueError):
        return None


def _inside(child: Path, folder: Path) -> bool:
    try:
        child.relative_to(folder)
        return True
    except ValueError:
        return False


def _hard_link_in(folder: Path, st) -> Path | None:
    """A file under ``folder`` that is the same file (device and inode) as ``st``, or None."""
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            s = _stat(Path(dirpath) / f)
            if s is not None and (s.st_dev, s.st_ino) == (st.st_dev, st.st_ino):
                return Path(dirpath) / f
    return None


def check_output(path, what: str, *, folder_ok: bool = False) -> Path:
    """Check that ``path`` can be written as a file, before any work: not a folder, not a device or
    pipe, its folder exists or can be created, and a file can really be created there (a temporary
    probe, removed at once). Returns the resolved path. InputError saying what to do."""
    p = resolve(path, what)
    shown = _text(path)
    if len(p.name.encode("utf-8", "surrogateescape")) > 255:
        raise InputError(f"Cannot write {what} {shown}: the file name is longer than 255 bytes; give a shorter name.")
    if p.exists():
        if p.is_dir() and not folder_ok:
            raise InputError(f"{what} {shown} is a folder; give a file name in it.")
        if not p.is_dir() and not p.is_file():
            raise InputError(f"{what} {shown} is not a regular file (a device, pipe or socket); "
                             "give the name of a file to write.")
    anc = p.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise InputError(f"Cannot write {what} {shown}: {_text(anc)} is a file, not a folder.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".napari-organelle-probe.", dir=anc)
    except OSError as exc:
        raise InputError(f"Cannot write {what} {shown}: the folder {_text(anc)} is not writable "
                         f"({exc.strerror or exc}). Choose another place.") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return p


def check_outputs(outputs: dict, inputs: Iterable = ()) -> None:
    """Refuse, before any work, outputs that would replace an input or each other.

    ``outputs``: {option name: path or None}; ``inputs``: paths (files, folders or archives) the
    command reads. An output is refused when it is the same file as an input (through symbolic or
    hard links), lies inside an input folder and is one of its files, or is an input archive."""
    outs = {k: v for k, v in outputs.items() if v is not None}
    res_out = {k: resolve(v, k) for k, v in outs.items()}
    keys = list(res_out)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            sa, sb = _stat(res_out[a]), _stat(res_out[b])
            same = res_out[a] == res_out[b] or (sa and sb and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino))
            if same:
                raise InputError(f"{a} and {b} name the same file ({_text(outs[a])}); give two names.")
    for inp in inputs:
        if inp is None:
            continue
        try:
            rin = resolve(inp)
        except InputError:
            continue  # the input itself is reported by whoever reads it
        sin = _stat(rin)
        for k, rout in res_out.items():
            shown = _text(outs[k])
            sout = _stat(rout)
            same = rout == rin or (sin is not None and sout is not None
                                   and (sin.st_dev, sin.st_ino) == (sout.st_dev, sout.st_ino))
            if same:
                kind = "folder" if rin.is_dir() else ("archive" if not _is_image_file(rin) and _is_archive(rin)
                                                      else "file")
                raise InputError(f"{k} {shown} is one of the input files (the input {kind} {_text(inp)}); "
                                 "writing it would replace the input. Give another name. Nothing was done.")
            if sin is not None and rin.is_dir():
                if _inside(rout, rin) and sout is not None and rout.is_file():
                    raise InputError(f"{k} {shown} is a file inside the input folder {_text(inp)} (it may be "
                                     "one of its images); writing it would replace it. Give a name outside "
                                     "that folder. Nothing was done.")
                if _inside(rout, rin) and _is_image_file(rout):
                    raise InputError(f"{k} {shown} would be a new image inside the input folder {_text(inp)}, "
                                     "read as one of its images the next time; write it outside that folder.")
                if _inside(rin, rout):
                    raise InputError(f"{k} {shown} contains the input folder {_text(inp)}; give another name.")
                if sout is not None and sout.st_nlink > 1 and _inside(rout, rin) is False:
                    other = _hard_link_in(rin, sout)
                    if other is not None:
                        raise InputError(f"{k} {shown} is the same file (a hard link) as {_text(other)} in the "
                                         f"input folder {_text(inp)}; give another name. Nothing was done.")


def _is_archive(p: Path) -> bool:
    low = p.name.lower()
    return low.endswith((".zip", ".tar", ".tgz", ".tar.gz", ".tbz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz"))


def _is_image_file(p: Path) -> bool:
    return p.name.lower().endswith((".tif", ".tiff", ".png", ".jpg", ".jpeg"))
