"""Parse an uploaded code file into codes: TXT one per line, CSV/XLSX with a `code` column.

Pure Python apart from django-import-export's format classes (tablib underneath),
which read CSV and XLSX the same way the rest of the admin's import/export does.

Two kinds of trouble, kept apart on purpose:
- a *malformed* file (not UTF-8, binary, a ragged CSV row, no `code` column,
  control characters, no codes at all) raises MalformedFileError naming the line,
  and nothing is imported;
- a well-formed line whose value cannot be a code (too short, too long, blank
  inside) is *rejected*: counted and reported by line, the rest imports.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.utils.translation import gettext as _
from import_export.formats.base_formats import XLSX

from config.lib.errors import DomainError

CODE_MIN_LENGTH = 4
CODE_MAX_LENGTH = 128
MAX_FILE_BYTES = 32 * 1024 * 1024  # 32 MiB: about a million codes (import_codes)
# The admin imports inside one web request (gunicorn --timeout 120). At the measured
# 8-10k new codes/s (docs/PERFORMANCE.md), 200,000 codes take ~25 s; the byte cap
# stops huge uploads early, the code cap bounds the work. Bigger files: import_codes.
ADMIN_MAX_FILE_BYTES = 8 * 1024 * 1024
ADMIN_MAX_CODES = 200_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_INNER_SPACE = re.compile(r"\s")
_FORMULA_PREFIXES = frozenset("=+-@")
SUPPORTED_EXTENSIONS = ("txt", "csv", "xlsx")
# TXT and CSV are decoded and split this many bytes at a time (cut after a newline),
# so a million-code file is never held as one str or one list of lines.
_BLOCK_BYTES = 1024 * 1024
ERR_NO_CODES = _("文件中没有任何卡密")


class MalformedFileError(DomainError):
    code = "malformed_file"

    def __init__(self, message: str, *, line: int | None = None) -> None:
        self.line = line
        text = (
            _("第 %(line)d 行：%(message)s") % {"line": line, "message": message}
            if line
            else message
        )
        super().__init__(text)


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


@dataclass
class ParsedCodes:
    codes: list[tuple[int, str]] = field(default_factory=list)  # (line number, code)
    rejected: list[Rejected] = field(default_factory=list)


def file_format(file_name: str) -> str:
    ext = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else "txt"
    if ext not in SUPPORTED_EXTENSIONS:
        raise MalformedFileError(
            _("不支持的文件类型 .%(ext)s（支持 TXT、CSV、XLSX）") % {"ext": ext}
        )
    return ext


def parse(content: bytes, *, file_name: str) -> ParsedCodes:
    """Read every code in the file, or raise MalformedFileError before anything is imported."""
    parsed = ParsedCodes()
    for item in scan(content, file_name=file_name):
        if isinstance(item, Rejected):
            parsed.rejected.append(item)
        else:
            parsed.codes.append(item)
    if not parsed.codes and not parsed.rejected:
        raise MalformedFileError(ERR_NO_CODES)
    return parsed


def scan(content: bytes, *, file_name: str) -> Iterator[tuple[int, str] | Rejected]:
    """Yield each code as (line, code) and each rejected line, in file order.

    The streaming form of `parse` for the import: TXT and CSV are decoded block by
    block, so memory does not grow with the file (XLSX is read whole by tablib; its
    files are small). A malformed line raises MalformedFileError when it is reached,
    so the caller must not have committed anything before the generator ends. An
    empty file is the caller's check (ERR_NO_CODES).
    """
    if len(content) > MAX_FILE_BYTES:
        raise MalformedFileError(_("文件超过 32 MiB，请拆分后导入"))
    fmt = file_format(file_name)
    if fmt == "xlsx":
        rows: Iterator[tuple[int, str]] = iter(_xlsx_rows(content))
    elif fmt == "txt":
        rows = _text_rows(content)
    else:
        rows = _csv_rows(content)
    for line, raw in rows:
        _check_line(raw, line)
        value = raw.strip()
        if not value:
            continue  # blank lines are layout, not data
        reason = _rejection_reason(value)
        if reason:
            yield Rejected(line=line, reason=reason)
        else:
            yield (line, value)


def _decoded_blocks(content: bytes) -> Iterator[str]:
    """The file as UTF-8 text in blocks that each end just after a b"\\n" (bar the last).

    A UTF-8 multi-byte character never contains the byte 0x0a, so no block splits
    one; and no block ends between the \\r and \\n of a CRLF.
    """
    start = 3 if content.startswith(b"\xef\xbb\xbf") else 0  # Excel's UTF-8 BOM
    newlines_before = 0
    while start < len(content):
        cut = content.rfind(b"\n", start, start + _BLOCK_BYTES)
        end = (
            len(content) if start + _BLOCK_BYTES >= len(content) or cut < 0 else cut + 1
        )
        block = content[start:end]
        try:
            yield block.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = newlines_before + block[: exc.start].count(b"\n") + 1
            raise MalformedFileError(_("不是有效的 UTF-8 文本"), line=line) from None
        newlines_before += block.count(b"\n")
        start = end


def _check_line(raw: str, line: int) -> None:
    if _CONTROL.search(raw):
        raise MalformedFileError(_("包含控制字符或二进制内容"), line=line)


def _rejection_reason(value: str) -> str:
    if value[0] in _FORMULA_PREFIXES:
        # A spreadsheet opening an export would run it as a formula (CSV injection).
        return _("卡密以 = + - @ 开头，可能被表格软件当作公式执行")
    if _INNER_SPACE.search(value):
        return _("卡密中间含有空白字符")
    if len(value) < CODE_MIN_LENGTH:
        return _("卡密太短（至少 %(n)d 个字符）") % {"n": CODE_MIN_LENGTH}
    if len(value) > CODE_MAX_LENGTH:
        return _("卡密太长（最多 %(n)d 个字符）") % {"n": CODE_MAX_LENGTH}
    return ""


def _text_rows(content: bytes) -> Iterator[tuple[int, str]]:
    # splitlines() per block equals splitlines() of the whole text: each block but
    # the last ends with a line break.
    number = 0
    for block in _decoded_blocks(content):
        for line in block.splitlines():
            number += 1
            yield number, line


def _csv_lines(content: bytes) -> Iterator[str]:
    # Lines as io.StringIO(text, newline="") gives them (\n, \r\n or \r kept).
    for block in _decoded_blocks(content):
        yield from io.StringIO(block, newline="")


def _csv_rows(content: bytes) -> Iterator[tuple[int, str]]:
    reader = csv.reader(_csv_lines(content))
    try:
        header = next(reader)
    except StopIteration:
        raise MalformedFileError(_("文件为空")) from None
    except csv.Error as exc:
        raise MalformedFileError(str(exc), line=1) from None
    column = _code_column(header)
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise MalformedFileError(
                    _("应有 %(expected)d 列，实际 %(found)d 列")
                    % {"expected": len(header), "found": len(row)},
                    line=line,
                )
            yield line, row[column]
    except csv.Error as exc:
        raise MalformedFileError(str(exc), line=reader.line_num) from None


def _code_column(header: list[str]) -> int:
    names = [name.strip().lstrip("\ufeff").lower() for name in header]
    if "code" not in names:
        raise MalformedFileError(_("缺少 code 列（第一行应为表头，包含 code）"), line=1)
    return names.index("code")


def _xlsx_rows(content: bytes) -> list[tuple[int, str]]:
    try:
        dataset = XLSX().create_dataset(content)
    except Exception:  # openpyxl raises many types for a corrupt workbook
        raise MalformedFileError(
            _("无法读取 XLSX 文件（文件损坏或不是 XLSX）")
        ) from None
    column = _code_column([str(h or "") for h in (dataset.headers or [])])
    rows = []
    for index, row in enumerate(dataset, start=2):  # line 1 is the header
        cell = row[column]
        if cell is None:
            continue
        rows.append((index, _cell_text(cell)))
    return rows


def _cell_text(cell: object) -> str:
    # Numeric-looking codes come back from Excel as int/float; keep their digits.
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)
