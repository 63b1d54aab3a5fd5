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
    if len(content) > MAX_FILE_BYTES:
        raise MalformedFileError(_("文件超过 32 MiB，请拆分后导入"))
    fmt = file_format(file_name)
    if fmt == "xlsx":
        rows = _xlsx_rows(content)
    else:
        text = _decode(content)
        rows = _text_rows(text) if fmt == "txt" else _csv_rows(text)
    parsed = ParsedCodes()
    for line, raw in rows:
        _check_line(raw, line)
        value = raw.strip()
        if not value:
            continue  # blank lines are layout, not data
        reason = _rejection_reason(value)
        if reason:
            parsed.rejected.append(Rejected(line=line, reason=reason))
        else:
            parsed.codes.append((line, value))
    if not parsed.codes and not parsed.rejected:
        raise MalformedFileError(_("文件中没有任何卡密"))
    return parsed


def _decode(content: bytes) -> str:
    if content.startswith(b"\xef\xbb\xbf"):
        content = content[3:]  # Excel's UTF-8 BOM
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise MalformedFileError(_("不是有效的 UTF-8 文本"), line=line) from None


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


def _text_rows(text: str) -> list[tuple[int, str]]:
    return [(number, line) for number, line in enumerate(text.splitlines(), start=1)]


def _csv_rows(text: str) -> list[tuple[int, str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise MalformedFileError(_("文件为空")) from None
    except csv.Error as exc:
        raise MalformedFileError(str(exc), line=1) from None
    column = _code_column(header)
    rows = []
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
            rows.append((line, row[column]))
    except csv.Error as exc:
        raise MalformedFileError(str(exc), line=reader.line_num) from None
    return rows


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
