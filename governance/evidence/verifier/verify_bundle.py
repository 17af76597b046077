#!/usr/bin/env python3
"""Check a Changeboard evidence bundle with nothing but Python's standard library and `cryptography`.

    python verifier/verify_bundle.py [BUNDLE] [--public-key FILE]

BUNDLE is the bundle's zip or the folder it was extracted to (by default the folder holding this verifier). It
checks that manifest.json is signed by the ledger's key, that every file the manifest lists is there with its
SHA-256, size and row count and that no other file is, and that the ledger events in ledger/events.jsonl form an
unbroken hash chain anchored on both ends by the signed checkpoints of ledger/checkpoints.json. It prints what it
checked and every failure by file, row or event, and exits 0 when all holds, 1 otherwise.

This file must stay self-contained: it is copied verbatim into every bundle and run where no Changeboard code is.
"""

import argparse
import csv
import hashlib
import io
import json
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
BUNDLED_KEY = "verifier/public_key.pem"
EVENTS = "ledger/events.jsonl"
CHECKPOINTS = "ledger/checkpoints.json"
GENESIS_HASH = "0" * 64
# The texts an event's hash covers, in hashing order after its seq (the ledger's EVENT_FIELDS).
EVENT_FIELDS = (
    "occurred_at", "actor_kind", "actor_id", "actor_name", "token_id", "action", "object_type", "object_id",
    "object_label", "changes", "request_id", "client_ip", "context",
)


def canonical_event(seq: int, texts) -> bytes:
    """seq and each field's text as netstrings (`length:text,`, the length counted in UTF-8 bytes)."""
    return "".join(f"{len(t.encode())}:{t}," for t in (str(seq), *texts)).encode()


def event_hash(prev_hash: str, seq: int, texts) -> str:
    """SHA-256 over the previous event's hash, a newline, and the event's canonical bytes."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical_event(seq, texts)).hexdigest()


def checkpoint_message(seq: int, head_hash: str, created_at: str) -> bytes:
    stamp = datetime.fromisoformat(created_at).astimezone(UTC).isoformat(timespec="microseconds")
    return f"changeboard-audit-checkpoint:v1:{seq}:{head_hash}:{stamp}".encode()


def key_id(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, as the ledger names the key a checkpoint was signed with."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def signature_valid(key: Ed25519PublicKey, message: bytes, signature_hex: str) -> bool:
    try:
        key.verify(bytes.fromhex(signature_hex.strip()), message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class Report:
    checked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        verdict = "BUNDLE VERIFIED" if self.ok else f"BUNDLE BROKEN: {len(self.failures)} failure(s)"
        return [*(f"checked: {line}" for line in self.checked), *(f"FAILED: {line}" for line in self.failures),
                verdict]


class _Bundle:
    """The bundle's files by their names in the manifest, from a zip or an extracted folder, read as streams so a
    bundle of any size is checked in little memory."""

    def __init__(self, path: Path):
        self.zip = zipfile.ZipFile(path) if path.is_file() else None
        self.root = path

    def names(self) -> set[str]:
        if self.zip is not None:
            return {info.filename for info in self.zip.infolist() if not info.is_dir()}
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}

    def open(self, name: str) -> IO[bytes] | None:
        if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
            return None
        try:
            if self.zip is not None:
                return self.zip.open(name)
            return (self.root / name).open("rb")
        except (KeyError, OSError):
            return None

    def read(self, name: str) -> bytes | None:
        file = self.open(name)
        if file is None:
            return None
        with file:
            return file.read()

    def text_lines(self, name: str) -> Iterator[str]:
        file = self.open(name)
        if file is not None:
            with io.TextIOWrapper(file, encoding="utf-8", errors="replace", newline="") as text:
                yield from text


def verify(path, public_key_pem: bytes | None = None) -> Report:
    """Every check on the bundle at `path`; the key is the published one when given, else the bundled one."""
    report = Report()
    bundle = _Bundle(Path(path))
    manifest_bytes = bundle.read(MANIFEST)
    if manifest_bytes is None:
        report.failures.append(f"{MANIFEST}: missing; nothing can be checked without it")
        return report
    key = _trusted_key(bundle, public_key_pem, report)
    if key is not None:
        _check_signature(bundle, manifest_bytes, key, report)
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as exc:
        report.failures.append(f"{MANIFEST}: not JSON ({exc})")
        return report
    _check_files(bundle, manifest, report)
    if key is not None:
        _check_ledger(bundle, key, report)
    return report


def _trusted_key(bundle: _Bundle, public_key_pem: bytes | None, report: Report) -> Ed25519PublicKey | None:
    source = "the key given" if public_key_pem is not None else BUNDLED_KEY
    pem = public_key_pem if public_key_pem is not None else bundle.read(BUNDLED_KEY)
    if pem is None:
        report.failures.append(f"{BUNDLED_KEY}: missing; pass the published key with --public-key")
        return None
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        report.failures.append(f"{source}: not a public key in PEM ({exc})")
        return None
    if not isinstance(key, Ed25519PublicKey):
        report.failures.append(f"{source}: not an Ed25519 public key")
        return None
    report.checked.append(f"signatures against {source}, key id {key_id(key)} (compare it with the key "
                          "Changeboard publishes at /audit/key/)")
    return key


def _check_signature(bundle: _Bundle, manifest_bytes: bytes, key: Ed25519PublicKey, report: Report) -> None:
    signature = bundle.read(SIGNATURE)
    if signature is None:
        report.failures.append(f"{SIGNATURE}: missing")
    elif signature_valid(key, manifest_bytes, signature.decode(errors="replace")):
        report.checked.append(f"{SIGNATURE}: a valid Ed25519 signature of {MANIFEST}")
    else:
        report.failures.append(f"{SIGNATURE}: not a valid signature of {MANIFEST} by this key "
                               "(the manifest was altered or signed with another key)")


def _check_files(bundle: _Bundle, manifest: dict, report: Report) -> None:
    listed = {entry["name"]: entry for entry in manifest.get("files", [])}
    for name in sorted(bundle.names() - set(listed) - {MANIFEST, SIGNATURE}):
        report.failures.append(f"{name}: present but not listed in the manifest")
    for name, entry in sorted(listed.items()):
        measured = _measure(bundle, name)
        if measured is None:
            report.failures.append(f"{name}: listed in the manifest but missing")
            continue
        digest, size = measured
        problems = []
        if digest != entry.get("sha256"):
            problems.append(f"its SHA-256 is {digest}, the manifest says {entry.get('sha256')}")
        if size != entry.get("size"):
            problems.append(f"it has {size} bytes, the manifest says {entry.get('size')}")
        rows = _rows_of(bundle, name)
        if rows is not None and entry.get("rows") is not None and rows != entry["rows"]:
            problems.append(f"it has {rows} rows, the manifest says {entry['rows']}")
        if problems:
            report.failures.append(f"{name}: " + "; ".join(problems))
        else:
            counted = f", {rows} rows" if rows is not None else ""
            report.checked.append(f"{name}: SHA-256 and size{' and row count' if counted else ''} match{counted}")


def _measure(bundle: _Bundle, name: str) -> tuple[str, int] | None:
    file = bundle.open(name)
    if file is None:
        return None
    digest, size = hashlib.sha256(), 0
    with file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _rows_of(bundle: _Bundle, name: str) -> int | None:
    """Data rows of a CSV (header aside) or lines of a JSONL file; None for other kinds."""
    if name.endswith(".csv"):
        return max(sum(1 for _ in csv.reader(bundle.text_lines(name))) - 1, 0)
    if name.endswith(".jsonl"):
        return sum(1 for line in bundle.text_lines(name) if line.strip())
    return None


@dataclass
class _Chain:
    """What walking the events found: the first and last seq, the first event's previous hash, and the hash of
    each event a checkpoint names (only those are kept, so a bundle of any size is walked in little memory)."""

    events: int = 0
    first: int = 0
    last: int = 0
    first_prev: str = ""
    hashes_at: dict[int, str] = field(default_factory=dict)


def _check_ledger(bundle: _Bundle, key: Ed25519PublicKey, report: Report) -> None:
    checkpoints_bytes = bundle.read(CHECKPOINTS)
    if EVENTS not in bundle.names() or checkpoints_bytes is None:
        report.failures.append(f"{CHECKPOINTS if checkpoints_bytes is None else EVENTS}: missing; the ledger chain "
                               "cannot be checked")
        return
    try:
        checkpoints = json.loads(checkpoints_bytes)["checkpoints"]
        wanted = {int(checkpoint["seq"]) for checkpoint in checkpoints}
    except (ValueError, KeyError, TypeError) as exc:
        report.failures.append(f"{CHECKPOINTS}: unreadable ({exc})")
        return
    chain = _walk_chain(bundle.text_lines(EVENTS), wanted, report)
    if chain.events == 0:
        report.checked.append(f"{EVENTS}: no events in the period")
        return
    first, last = chain.first, chain.last
    anchored_start = first == 1 and chain.first_prev == GENESIS_HASH
    anchored_end = False
    trusted = key_id(key)
    for checkpoint in checkpoints:
        seq, head = checkpoint["seq"], checkpoint["head_hash"]
        name = f"checkpoint at event #{seq} (signed {checkpoint['created_at']})"
        message = checkpoint_message(seq, head, checkpoint["created_at"])
        if checkpoint.get("key_id") != trusted or not signature_valid(key, message, checkpoint["signature"]):
            report.failures.append(f"{CHECKPOINTS}: {name} is not validly signed by this key")
            continue
        if seq == first - 1:
            if head != chain.first_prev:
                report.failures.append(f"{CHECKPOINTS}: {name} does not anchor event #{first}: it signs "
                                       f"{head[:16]}…, event #{first} names {chain.first_prev[:16]}… as previous")
                continue
            anchored_start = True
        elif first <= seq <= last:
            if chain.hashes_at.get(seq) != head:
                report.failures.append(f"{EVENTS}: event #{seq} does not match the {name}: the events up to it "
                                       "were rewritten")
                continue
            anchored_end = anchored_end or seq == last
        else:
            report.failures.append(f"{CHECKPOINTS}: {name} is outside the events included (#{first} to #{last})")
            continue
        report.checked.append(f"{CHECKPOINTS}: {name} has a valid signature and matches the chain")
    if not anchored_start:
        report.failures.append(f"{EVENTS}: the first event #{first} is not anchored by a signed checkpoint at "
                               f"#{first - 1} (events before it may have been dropped)")
    if not anchored_end:
        report.failures.append(f"{EVENTS}: the last event #{last} is not covered by a signed checkpoint (events "
                               "after it may have been dropped)")


def _walk_chain(lines: Iterable[str], wanted: set[int], report: Report) -> _Chain:
    """Recompute each event's hash from its texts and check its link to the one before."""
    chain = _Chain()
    prev_hash = ""
    prev_seq: int | None = None
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            seq, texts = int(event["seq"]), [event[name] for name in EVENT_FIELDS]
            stored_prev, stored_hash = event["prev_hash"], event["hash"]
        except (ValueError, KeyError, TypeError) as exc:
            report.failures.append(f"{EVENTS}: line {line_number} is not an event ({exc})")
            continue
        if prev_seq is None:
            chain.first, chain.first_prev = seq, stored_prev
        elif seq != prev_seq + 1:
            report.failures.append(f"{EVENTS}: event #{prev_seq + 1} is missing: the events go from #{prev_seq} "
                                   f"to #{seq}" if seq > prev_seq else
                                   f"{EVENTS}: event #{seq} appears out of order after #{prev_seq}")
        elif stored_prev != prev_hash:
            report.failures.append(f"{EVENTS}: event #{seq} does not follow event #{prev_seq}: it names "
                                   f"{stored_prev[:16]}… as the previous hash, event #{prev_seq} hashes to "
                                   f"{prev_hash[:16]}…")
        recomputed = event_hash(stored_prev, seq, texts)
        if recomputed != stored_hash:
            report.failures.append(f"{EVENTS}: event #{seq} was altered: its fields no longer match its hash")
        if seq in wanted:
            chain.hashes_at[seq] = recomputed
        chain.events += 1
        chain.last = max(chain.last, seq)
        prev_seq, prev_hash = seq, recomputed
    if chain.events:
        report.checked.append(f"{EVENTS}: {chain.events} events, #{chain.first} to #{chain.last}, each hash "
                              "recomputed from its fields and linked to the one before")
    return chain


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check a Changeboard evidence bundle offline.")
    parser.add_argument("bundle", nargs="?", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the bundle's zip or extracted folder (default: the folder holding this verifier)")
    parser.add_argument("--public-key", type=Path,
                        help="the ledger's public key as Changeboard publishes it (default: the bundled copy)")
    args = parser.parse_args(argv)
    report = verify(args.bundle, args.public_key.read_bytes() if args.public_key else None)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
