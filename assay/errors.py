"""Domain exceptions. The CLI turns each into one clear line and a non-zero exit."""

from __future__ import annotations

import difflib
import errno
import re
import sys


class AssayError(Exception):
    """Base of every error assay raises on purpose."""

    exit_code = 1


class InputError(AssayError):
    """Bad input at the edge: names the file, the line or record, the field and the value."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None, value: object = None):
        self.file, self.line, self.field, self.value = file, line, field, value
        where = file or ""
        if line is not None:
            where += f":{line}"
        parts = [f"{where}: " if where else "", message]
        if field is not None:
            parts.append(f" (field {field!r}")
            parts.append(f", value {short(value)})" if value is not None else ")")
        super().__init__(one_line("".join(parts)))


class ConfigError(AssayError):
    """Every problem of a config at once, so a user fixes them in one pass."""

    exit_code = 2

    def __init__(self, source: str, problems: list[str]):
        problems = [one_line(p) for p in problems]  # a key or value typed with a newline stays on its line
        self.problems = problems
        if len(problems) == 1:  # one problem, one line
            super().__init__(f"{source}: {problems[0]}")
            return
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in config:\n{listing}")


class NotFoundError(AssayError):
    """A name that is not registered; suggests the closest valid names."""

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...]):
        self.name, self.valid = name, list(valid)
        close = difflib.get_close_matches(name, self.valid, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(sorted(self.valid)) or "none"
        super().__init__(f"unknown {kind} {name!r}.{hint} Known: {known}.")


class ModelUnavailableError(AssayError):
    """A model that cannot be loaded here (no network, not cached, not in the catalogue)."""


class StoreError(AssayError):
    """A dataset version that is missing, corrupt or would be overwritten."""


def short(value: object, limit: int = 80) -> str:
    """repr() cut to `limit` characters; a value too deep for repr() is said to be."""
    try:
        text = repr(value)
    except RecursionError:
        return "(nested too deep to show)"
    except ValueError:  # an int of more than 4,300 digits
        return "(a number too long to show)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


_BREAKS_AND_SURROGATES = re.compile("[\r\n\ud800-\udfff]")


def one_line(text: str) -> str:
    """Line breaks that came with user data (a date, a key, a file name) shown as escapes, and so are lone
    surrogates (JSON can escape half an emoji), which no terminal or file encoding can write."""
    return _BREAKS_AND_SURROGATES.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def beyond_python(exc: RecursionError | ValueError) -> str:
    """What a parser's RecursionError or ValueError means in user input: nesting too deep, or an integer
    too long (Python refuses to convert more than 4,300 digits, against quadratic-time conversion)."""
    if isinstance(exc, RecursionError):
        return "nested deeper than Python can read"
    if "digits" in str(exc):
        return f"a number with more than {sys.get_int_max_str_digits():,} digits"
    return " ".join(str(exc).split())


# what a file system refuses that a user can act on: a read-only or someone else's folder, a name too long, a full disk
FILE_SYSTEM_ERRNOS = {errno.EACCES: "is the project folder writable?", errno.EPERM: "is the project folder writable?",
                      errno.EROFS: "the project is on a read-only file system",
                      errno.ENAMETOOLONG: "a name too long for the file system (255 bytes per name); use a shorter one",
                      errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up"}


def file_problem(exc: OSError) -> str | None:
    """One line for an OSError of the file system that the user can fix (the path, what it said, what to do),
    or None for any other OSError (a bug, a network fault), which keeps its traceback."""
    hint = FILE_SYSTEM_ERRNOS.get(exc.errno)
    if hint is None or exc.filename is None:
        return None
    path = str(exc.filename)
    if len(path) > 160:  # a name too long to store is too long to read: its start and end say which it was
        path = path[:80] + "..." + path[-60:]
    return one_line(f"{path}: {exc.strerror}; {hint}")
