from __future__ import annotations

import io

import openpyxl
import pytest

from fulfillment.codefile import MalformedFileError, parse


def test_parse_txt_skips_blank_lines_and_strips_whitespace():
    parsed = parse(b"AAAA1111\n\n  BBBB2222  \r\nCCCC3333", file_name="codes.txt")

    assert [code for _, code in parsed.codes] == ["AAAA1111", "BBBB2222", "CCCC3333"]
    assert [line for line, _ in parsed.codes] == [1, 3, 4]


def test_parse_rejects_codes_too_short_or_with_inner_spaces_by_line():
    parsed = parse(b"AAAA1111\nab\nCC CC3333\n" + b"X" * 129, file_name="codes.txt")

    assert [code for _, code in parsed.codes] == ["AAAA1111"]
    assert [r.line for r in parsed.rejected] == [2, 3, 4]


def test_parse_csv_reads_code_column():
    parsed = parse(b"batch,code\n1,AAAA1111\n1,BBBB2222\n", file_name="codes.csv")

    assert [code for _, code in parsed.codes] == ["AAAA1111", "BBBB2222"]


@pytest.mark.parametrize(
    ("content", "name", "line"),
    [
        (b"serial\nAAAA1111\n", "codes.csv", 1),
        (b"code,note\nAAAA1111,x\nBBBB2222\n", "codes.csv", 3),
        (b"AAAA1111\nBB\xffBB2222\n", "codes.txt", 2),
        (b"AAAA1111\nBBBB\x002222\n", "codes.txt", 2),
    ],
    ids=["no-code-column", "ragged-row", "not-utf8", "binary"],
)
def test_parse_raises_naming_the_line_when_malformed(content, name, line):
    with pytest.raises(MalformedFileError) as exc:
        parse(content, file_name=name)

    assert exc.value.line == line
    assert f"第 {line} 行" in exc.value.message


def test_parse_refuses_unknown_file_type_and_empty_file():
    with pytest.raises(MalformedFileError):
        parse(b"AAAA1111", file_name="codes.pdf")
    with pytest.raises(MalformedFileError):
        parse(b"\n\n", file_name="codes.txt")


def test_parse_xlsx_reads_code_column_keeping_numeric_codes():
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["code", "note"])
    sheet.append(["AAAA1111", "a"])
    sheet.append([123456789012, "numeric"])
    buffer = io.BytesIO()
    book.save(buffer)

    parsed = parse(buffer.getvalue(), file_name="codes.xlsx")

    assert [code for _, code in parsed.codes] == ["AAAA1111", "123456789012"]


def test_parse_xlsx_refuses_a_corrupt_workbook():
    with pytest.raises(MalformedFileError):
        parse(b"PK\x03\x04 not really a zip", file_name="codes.xlsx")


@pytest.mark.parametrize(
    "code", ["=HYPERLINK(1)", "+12345678", "-ABCDEFGH", "@SUM1234"]
)
def test_parse_rejects_codes_a_spreadsheet_would_run_as_formula(code):
    parsed = parse(f"AAAA1111\n{code}\n".encode(), file_name="codes.txt")

    assert [c for _, c in parsed.codes] == ["AAAA1111"]
    assert parsed.rejected[0].line == 2
    assert "公式" in parsed.rejected[0].reason
