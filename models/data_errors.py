"""The error a reader of a user's training data raises, and reading a user's text files with it.

A user's mistake (a file saved as GBK, a CSV with a stray line, a JSON record without its
question) is not a bug of the job: the training jobs print a `DataError` as one line naming the
file and the place in it, and exit with status 2 (`training.common.job.Job.main`), rather than
dump a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


class DataError(ValueError):
    """A file or folder a job was given cannot be used; the message says why and where."""


def not_utf8(path: str | os.PathLike[str], error: UnicodeDecodeError) -> DataError:
    """The error for a file that is not UTF-8 (a GBK export, UTF-16 from Windows tools)."""
    with open(path, "rb") as f:
        head = f.read(2)
    utf16 = head in (b"\xff\xfe", b"\xfe\xff")
    what = "UTF-16 text" if utf16 else "not UTF-8 text"
    source = "UTF-16" if utf16 else "GBK"
    return DataError(
        f"{path}: {what} (it holds the byte 0x{error.object[error.start]:02x}); save it as UTF-8 "
        f"(e.g. iconv -f {source} -t UTF-8 in.txt > out.txt)"
    )


def check_file(path: str | os.PathLike[str]) -> Path:
    """`path` as a Path; DataError unless it is a file."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: a folder; give a file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return path


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of a UTF-8 file, a leading byte order mark dropped.

    Raises:
        DataError: no such file, a folder, or not UTF-8.
    """
    path = check_file(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise not_utf8(path, error) from None


def text_lines(path: str | os.PathLike[str]) -> Iterator[str]:
    """The lines of a UTF-8 file one by one (a BOM dropped, newlines kept), for files too big to
    read at once.

    Raises:
        DataError: no such file, a folder, or not UTF-8 (when the line that is not is reached).
    """
    path = check_file(path)
    with open(path, encoding="utf-8-sig", newline=None) as f:
        try:
            yield from f
        except UnicodeDecodeError as error:
            raise not_utf8(path, error) from None
