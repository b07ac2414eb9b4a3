"""Reading a bulk-import file into rows, and checking each row as `create_device` would.

Two formats:

- CSV (UTF-8, an optional BOM; comma-separated, or `;`/tab when the header has no comma). The
  header names the columns: `name` (required), `display_name`, `group`, `tags` (separated by
  `;`), `attributes` (a JSON object), `attr.KEY` (one attribute per column, as text; empty
  cells are left out; they win over the same key in `attributes`) and `csr` (a PEM CSR, in a
  quoted cell). Rows are numbered as a spreadsheet shows them: the header is row 1, so the
  first device is on row 2 (a quoted cell spanning several lines is still one row).
- JSON: a list of objects (or `{"devices": [...]}`) with the keys `name`, `display_name`,
  `group`, `tags` (a list), `attributes` (an object) and `csr`. Rows are numbered from 1 in
  list order.

The file as a whole is refused (a `ValidationError` on `file`) when it cannot be read at all:
not UTF-8, not CSV or JSON, no `name` column, unknown columns, no rows or too many. Everything
else is a problem of one row, reported with its number while the other rows go on.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from django.core.exceptions import ValidationError

from pki.csr import check_public_key, load_csr
from pki.errors import PkiError
from pki.x509util import public_key_sha256

from .models import Device, DeviceGroup, Tenant
from .validators import DEVICE_NAME_RULE, is_valid_device_name

CSV = "csv"
JSON = "json"
FORMATS = (CSV, JSON)
COLUMNS = ("name", "display_name", "group", "tags", "attributes", "csr")
ATTR_PREFIX = "attr."
# The same limits as the devices API puts on one device.
MAX_TAGS = 64
MAX_TAG_LENGTH = 64
MAX_ATTRIBUTES_JSON = 64 * 1024


def file_error(message: str, code: str) -> ValidationError:
    """The whole file is refused (400, field `file`)."""
    return ValidationError({"file": ValidationError(message, code=code)})


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    name: str
    code: str
    message: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "name": self.name, "code": self.code, "message": self.message,
                "field": self.field}


@dataclass(slots=True)
class RawRow:
    """One row as read: the known columns (CSV cells are text) and the attr.KEY cells."""

    number: int
    values: dict[str, Any]
    attrs: dict[str, str] = field(default_factory=dict)
    problem: RowError | None = None

    @property
    def name(self) -> str:
        value = self.values.get("name")
        return value if isinstance(value, str) else ""


@dataclass(slots=True)
class DeviceRow:
    """A row that passed every check: an unsaved, validated Device and the CSR's key, if any."""

    number: int
    device: Device
    csr_key: CertificateIssuerPublicKeyTypes | None = None


# Reading ------------------------------------------------------------------------------------


def detect_format(data: bytes, declared: str = "", filename: str = "") -> str:
    """csv or json: as declared (a media type or a name), else by the file name, else by the first byte."""
    declared = declared.lower()
    if declared in FORMATS:
        return declared
    if "json" in declared:
        return JSON
    if "csv" in declared:
        return CSV
    lowered = filename.lower()
    if lowered.endswith(".json"):
        return JSON
    if lowered.endswith(".csv"):
        return CSV
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return JSON if head[:1] in (b"[", b"{") else CSV


def parse_rows(data: bytes, fmt: str, *, max_rows: int) -> list[RawRow]:
    """Every data row of the file (blank CSV lines are skipped but keep their numbers)."""
    if fmt == JSON:
        return _parse_json(data, max_rows)
    if fmt == CSV:
        return _parse_csv(data, max_rows)
    raise file_error(f"Unknown format {fmt!r}; send CSV or JSON.", "unsupported_format")


def _parse_csv(data: bytes, max_rows: int) -> list[RawRow]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise file_error(f"The file is not UTF-8 text (byte {exc.start} cannot be decoded); "
                         "save it as CSV UTF-8.", "invalid_encoding") from None
    end = text.find("\n")
    first_line = text if end < 0 else text[:end]
    delimiter = ","
    if "," not in first_line:
        delimiter = ";" if ";" in first_line else ("\t" if "\t" in first_line else ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    number = 0  # the row last read; a read error is on the next one
    try:
        header = next(reader, None)
        number = 1
        if header is None or not any(cell.strip() for cell in header):
            raise file_error("The file is empty; the first line must be a header such as `name,group`.",
                             "no_rows")
        columns = _columns(header)
        rows: list[RawRow] = []
        for record in reader:
            number += 1
            if not any(cell.strip() for cell in record):
                continue
            if len(rows) >= max_rows:
                raise _too_many(max_rows)
            rows.append(_csv_row(number, record, columns))
    except csv.Error as exc:
        raise file_error(f"The CSV cannot be read at row {number + 1}: {exc}.",
                         "invalid_csv") from None
    if not rows:
        raise file_error("The file has a header but no rows.", "no_rows")
    return rows


def _columns(header: list[str]) -> list[tuple[str, str]]:
    """(kind, key) per column: ("name", "") … or ("attr", KEY)."""
    columns: list[tuple[str, str]] = []
    unknown: list[str] = []
    for cell in header:
        label = cell.strip()
        lowered = label.lower()
        if lowered.startswith(ATTR_PREFIX):
            key = label[len(ATTR_PREFIX):].strip()
            if not key:
                raise file_error("A column named `attr.` needs a key: `attr.site`.", "invalid_header")
            columns.append(("attr", key))
        elif lowered in COLUMNS:
            columns.append((lowered, ""))
        else:
            unknown.append(label or "(empty)")
    if unknown:
        raise file_error(f"Unknown column(s) {', '.join(unknown)}; the header may name "
                         f"{', '.join(COLUMNS)} and attr.KEY columns.", "invalid_header")
    if ("name", "") not in columns:
        raise file_error("The header has no `name` column.", "invalid_header")
    if len(set(columns)) != len(columns):
        raise file_error("A column appears twice in the header.", "invalid_header")
    return columns


def _csv_row(number: int, record: list[str], columns: list[tuple[str, str]]) -> RawRow:
    row = RawRow(number, {})
    if len(record) > len(columns):
        row.values["name"] = record[0].strip() if record else ""
        row.problem = RowError(number, row.name, "invalid_row",
                               f"The row has {len(record)} cells and the header {len(columns)}; "
                               "quote cells that contain the delimiter.")
        return row
    for (kind, key), cell in zip(columns, record, strict=False):
        if kind == "attr":
            if cell != "":
                row.attrs[key] = cell
        elif kind == "csr":
            row.values["csr"] = cell.strip()
        else:
            row.values[kind] = cell.strip()
    return row


def _too_many(max_rows: int) -> ValidationError:
    return file_error(f"The file has more than {max_rows} rows; split it into several imports.",
                      "too_many_rows")


def _parse_json(data: bytes, max_rows: int) -> list[RawRow]:
    try:
        document = json.loads(data)
    except UnicodeDecodeError:
        raise file_error("The file is not UTF-8 text.", "invalid_encoding") from None
    except json.JSONDecodeError as exc:
        raise file_error(f"The JSON cannot be read: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                         "invalid_json") from None
    except (ValueError, RecursionError) as exc:  # nesting, or an integer of thousands of digits
        raise file_error(f"The JSON cannot be read: {exc}.", "invalid_json") from None
    if isinstance(document, dict) and set(document) == {"devices"}:
        document = document["devices"]
    if not isinstance(document, list):
        raise file_error('The JSON must be a list of device objects (or {"devices": [...]}).', "invalid_json")
    if not document:
        raise file_error("The list of devices is empty.", "no_rows")
    if len(document) > max_rows:
        raise _too_many(max_rows)
    return [_json_row(number, item) for number, item in enumerate(document, start=1)]


def _json_row(number: int, item: Any) -> RawRow:
    if not isinstance(item, dict):
        return RawRow(number, {}, problem=RowError(number, "", "invalid_row",
                                                   "Each item must be an object with at least a `name`."))
    row = RawRow(number, dict(item))
    unknown = sorted(str(key) for key in item if key not in COLUMNS)
    if unknown:
        row.problem = RowError(number, row.name, "unknown_field",
                               f"Unknown key(s) {', '.join(unknown)}; use {', '.join(COLUMNS)}.", unknown[0])
    return row


# Checking -------------------------------------------------------------------------------------


class RowChecker:
    """Checks rows one by one, remembering names (and CSR keys) seen earlier in the file."""

    def __init__(self, tenant: Tenant, *, issue_certs: bool) -> None:
        self.tenant = tenant
        self.issue_certs = issue_certs
        self.groups = {group.name: group for group in DeviceGroup.objects.filter(tenant=tenant)}
        self.names: dict[str, int] = {}
        self.csr_keys: dict[str, int] = {}

    def check(self, raw: RawRow) -> DeviceRow | RowError:
        if raw.problem is not None:
            return raw.problem
        try:
            return self._check(raw)
        except _Refused as refused:
            return RowError(raw.number, raw.name, refused.code, refused.message, refused.field)

    def _check(self, raw: RawRow) -> DeviceRow:
        values = raw.values
        name = values.get("name")
        if name is None or name == "":
            raise _Refused("required", "The name is missing.", "name")
        if not isinstance(name, str) or not is_valid_device_name(name):
            raise _Refused("invalid_device_name", f"Invalid device name {name!r}: use {DEVICE_NAME_RULE}.", "name")
        first = self.names.setdefault(name, raw.number)
        if first != raw.number:
            raise _Refused("duplicate_row", f"Device {name!r} is already on row {first} of this file.", "name")
        display_name = _text(values.get("display_name"), "display_name")
        group = self._group(values.get("group"))
        tags = _tags(values.get("tags"))
        attributes = _attributes(values.get("attributes"), raw.attrs)
        csr_key = self._csr_key(values.get("csr"), raw.number)
        device = Device(tenant=self.tenant, name=name, display_name=display_name, group=group, tags=tags,
                        attributes=attributes, enabled=True)
        try:
            # As create_device does, minus the foreign-key lookups: the tenant and group are
            # known to exist (one query per row each would dominate a large import).
            device.full_clean(exclude=["tenant", "group"], validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            field_name, messages = next(iter(exc.message_dict.items()))
            raise _Refused("invalid", " ".join(messages), None if field_name == "__all__" else field_name) from None
        return DeviceRow(raw.number, device, csr_key)

    def _group(self, value: Any) -> DeviceGroup | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise _Refused("invalid", "The group must be a group's name.", "group")
        group = self.groups.get(value)
        if group is None:
            raise _Refused("unknown_group", f"No group {value!r} in tenant {self.tenant.slug!r}; "
                                            "create it first (imports do not create groups).", "group")
        return group

    def _csr_key(self, value: Any, number: int) -> CertificateIssuerPublicKeyTypes | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise _Refused("invalid_csr", "The CSR must be PEM text.", "csr")
        if not self.issue_certs:
            raise _Refused("csr_needs_issue_certs", "The row has a CSR but the import does not issue "
                                                    "certificates; set issue_certs.", "csr")
        try:
            # load_csr() applied the key policy; check_public_key() says so to the type checker.
            key = check_public_key(load_csr(value).public_key())
        except PkiError as exc:
            raise _Refused(exc.code, exc.message, "csr") from None
        first = self.csr_keys.setdefault(public_key_sha256(key), number)
        if first != number:
            raise _Refused("public_key_in_use", f"The CSR's key is already used on row {first}; "
                                                "every device needs a key of its own.", "csr")
        return key


class _Refused(Exception):
    def __init__(self, code: str, message: str, field: str | None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def _text(value: Any, field_name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Refused("invalid", f"The {field_name} must be text.", field_name)
    _no_nul(value, field_name)
    return value


def _no_nul(text: str, field_name: str, *, encoded: bool = False) -> None:
    # PostgreSQL stores no NUL character in text or jsonb; refused here, not by the database.
    if ("\x00" in text) if not encoded else bool(_ESCAPED_NUL.search(text)):
        raise _Refused("invalid", f"The {field_name} contains a NUL character.", field_name)


# \u0000 in JSON text, unless its backslash is itself escaped (a literal "\u0000").
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _tags(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        tags = [tag.strip() for tag in value.split(";") if tag.strip()]
    elif isinstance(value, list) and all(isinstance(tag, str) for tag in value):
        tags = list(value)
    else:
        raise _Refused("invalid_tags", "Tags must be a list of strings (in CSV: separated by `;`).", "tags")
    if len(tags) > MAX_TAGS:
        raise _Refused("invalid_tags", f"At most {MAX_TAGS} tags.", "tags")
    _no_nul("".join(tags), "tags")
    long = next((tag for tag in tags if len(tag) > MAX_TAG_LENGTH), None)
    if long is not None:
        raise _Refused("invalid_tags", f"The tag {long[:20]!r}… is longer than {MAX_TAG_LENGTH} characters.", "tags")
    return tags


def _attributes(value: Any, cells: dict[str, str]) -> dict[str, Any]:
    attributes: Any = {}
    if isinstance(value, str) and value.strip():
        try:
            attributes = json.loads(value)
        except (ValueError, RecursionError) as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or "nested too deeply"
            raise _Refused("invalid_attributes", f"The attributes are not valid JSON ({detail}); "
                                                 'write an object such as {"site": "north"}.', "attributes") from None
    elif value is not None and not isinstance(value, str):
        attributes = value
    if not isinstance(attributes, dict):
        raise _Refused("invalid_attributes", "The attributes must be a JSON object.", "attributes")
    merged: dict[str, Any] = {**attributes, **cells}
    try:
        # NaN and Infinity are not JSON; PostgreSQL's jsonb refuses them.
        encoded = json.dumps(merged, allow_nan=False)
    except ValueError:
        raise _Refused("invalid_attributes", "The attributes hold NaN or Infinity, which JSON does not allow.",
                       "attributes") from None
    _no_nul(encoded, "attributes", encoded=True)
    if len(encoded) > MAX_ATTRIBUTES_JSON:
        raise _Refused("invalid_attributes", f"Attributes take at most {MAX_ATTRIBUTES_JSON} bytes as JSON.",
                       "attributes")
    return merged


def chunks(rows: list[RawRow], size: int) -> Iterator[list[RawRow]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]
