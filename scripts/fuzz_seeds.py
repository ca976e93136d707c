"""Derive the name_rule and request_document seed corpora from the event seeds.

    python scripts/fuzz_seeds.py fuzz/corpus

Reads `<dir>/event/*.json` (events/ plus the hostile-input corpus, `make
fuzz-seeds`) and writes every request body it finds (HTTP bodies, SQS message
bodies) to `<dir>/request_document/` and every `Name` string to `<dir>/name_rule/`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sys
from pathlib import Path


def bodies(event: object) -> list[bytes]:
    if not isinstance(event, dict):
        return []
    out = []
    body = event.get("body")
    if isinstance(body, str):
        if event.get("isBase64Encoded") is True:
            try:
                out.append(base64.b64decode(body, validate=True))
            except (binascii.Error, ValueError):
                pass
        else:
            out.append(body.encode("utf-8", "surrogatepass"))
    for record in event.get("Records") or []:
        if isinstance(record, dict) and isinstance(record.get("body"), str):
            out.append(record["body"].encode("utf-8", "surrogatepass"))
    return out


def write(directory: Path, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main(root: Path) -> int:
    count = 0
    for path in sorted((root / "event").glob("*.json")):
        for body in bodies(json.loads(path.read_text(encoding="utf-8"))):
            write(root / "request_document", body)
            try:
                name = json.loads(body).get("Name")
            except (ValueError, AttributeError, RecursionError):
                name = None
            if isinstance(name, str):
                write(root / "name_rule", name.encode("utf-8", "surrogatepass"))
            count += 1
    print(f"fuzz seeds: {count} bodies from {root / 'event'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
