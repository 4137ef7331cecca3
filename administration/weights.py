"""Checking model weight folders that an administrator copied onto this machine.

A folder is fingerprinted file by file (SHA-256 and size) into a manifest. The first import writes it;
later imports and every start-up compare the folder with it, so a bit flipped on a USB disk or a file
lost in copying is found before a model is loaded, and the message names the file.
No path may lead outside the folder: a symbolic link that does is refused, not followed.
"""
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "scribe-manifest.json"
CHUNK = 4 * 1024 * 1024

ASR = "asr"
DIARIZATION = "diarization"

NATIVE_LAYOUT_HELP = (
    "This folder is in Mistral's native layout (params.json, consolidated.safetensors, tekken.json). "
    "Scribe loads the Hugging Face transformers layout of Voxtral Mini 4B Realtime (config.json, "
    "model*.safetensors, tekken.json, processor and generation configs). Copy that layout from the "
    "model's release instead, or convert on a connected machine with the conversion script that ships "
    "in transformers (models/voxtral_realtime/convert_*.py) and bring the converted folder."
)


class WeightsError(Exception):
    """A weights folder cannot be used; the message says which file and what to do."""


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False


def list_files(folder: Path) -> list[Path]:
    """Every regular file under `folder`, relative to it, refusing links that lead outside."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise WeightsError(f"{folder} is not a folder (or cannot be read).")
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in dirnames + filenames:
            path = here / name
            if path.is_symlink() and not _inside(root, path):
                raise WeightsError(f"{path.relative_to(root)} is a link to {os.readlink(path)}, outside the model folder. Copy the file itself.")
        for name in filenames:
            rel = (here / name).relative_to(root)
            if rel.name != MANIFEST_NAME and (here / name).is_file():
                files.append(rel)
    return sorted(files)


def file_sha256(path: Path, on_read=None) -> str:
    """SHA-256 of one file; `on_read(n)` after each block, so that one multi-GB checkpoint shows progress too."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            if on_read:
                on_read(len(chunk))
    return digest.hexdigest()


def fingerprint(folder: Path, progress=None) -> dict[str, FileEntry]:
    """SHA-256 and size of every file; `progress(done_bytes, total_bytes)` is called as files are read."""
    root = Path(folder).resolve()
    files = list_files(root)
    total = sum((root / f).stat().st_size for f in files)
    done, entries = 0, {}

    def read(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(min(done, total), total)

    for rel in files:
        path = root / rel
        size = path.stat().st_size
        before = done
        entries[rel.as_posix()] = FileEntry(sha256=file_sha256(path, read), size=size)
        if done != before + size:  # a file that changed size while read still counts as its listed size
            done = before + size
            if progress:
                progress(min(done, total), total)
    return entries


def detect_kind(folder: Path) -> str:
    """'asr' for a transformers Voxtral Realtime folder, 'diarization' for a pyannote pipeline folder."""
    root = Path(folder)
    if (root / "params.json").exists() and (root / "consolidated.safetensors").exists():
        raise WeightsError(NATIVE_LAYOUT_HELP)
    if (root / "config.json").exists():
        try:
            config = json.loads((root / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise WeightsError(f"config.json cannot be read: {exc}") from None
        if config.get("model_type") == "voxtral_realtime":
            return ASR
        raise WeightsError(f"config.json describes a {config.get('model_type')!r} model, not Voxtral Realtime.")
    if (root / "config.yaml").exists():
        return DIARIZATION
    raise WeightsError(f"{folder} holds neither a Voxtral Realtime model (config.json) nor a pyannote pipeline (config.yaml).")


def required_files(folder: Path, kind: str) -> list[str]:
    """Files a folder of `kind` cannot work without, including every shard a sharded checkpoint lists."""
    root = Path(folder)
    if kind == DIARIZATION:
        return ["config.yaml"]
    needed = ["config.json", "tekken.json"]
    index = root / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError) as exc:
            raise WeightsError(f"model.safetensors.index.json cannot be read: {exc}") from None
        needed += ["model.safetensors.index.json", *shards]
    else:
        needed.append("model.safetensors")
    return needed


def check_complete(folder: Path, kind: str) -> None:
    missing = [name for name in required_files(folder, kind) if not (Path(folder) / name).is_file()]
    if missing:
        raise WeightsError(f"The model folder is incomplete: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing.")


def compare(expected: dict[str, FileEntry], actual: dict[str, FileEntry]) -> list[str]:
    """Plain-language problems, one per file, in file order; empty when the folder matches."""
    problems = []
    for name in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(name), actual.get(name)
        if got is None:
            problems.append(f"{name} is missing")
        elif want is None:
            problems.append(f"{name} was not part of the imported model")
        elif want.size != got.size:
            problems.append(f"{name} has {got.size} bytes instead of {want.size}")
        elif want.sha256 != got.sha256:
            problems.append(f"{name} is corrupt (its checksum differs from the imported copy)")
    return problems


def write_manifest(folder: Path, entries: dict[str, FileEntry], kind: str) -> Path:
    path = Path(folder) / MANIFEST_NAME
    doc = {"kind": kind, "files": {name: {"sha256": e.sha256, "size": e.size} for name, e in entries.items()}}
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))
    return path


def read_manifest(folder: Path) -> dict[str, FileEntry] | None:
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        return {name: FileEntry(**entry) for name, entry in doc["files"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{MANIFEST_NAME} is damaged ({exc}); restore it from the original disk.") from None


def verify_folder(folder: Path, progress=None) -> tuple[str, dict[str, FileEntry], bool]:
    """Check a folder end to end. Returns (kind, fingerprint, manifest_was_written); raises WeightsError."""
    kind = detect_kind(folder)
    check_complete(folder, kind)
    actual = fingerprint(folder, progress)
    expected = read_manifest(folder)
    if expected is None:
        try:
            write_manifest(folder, actual, kind)
        except OSError:
            return kind, actual, False  # a read-only disk: the checksums are still kept by the caller
        return kind, actual, True
    problems = compare(expected, actual)
    if problems:
        raise WeightsError("The model folder does not match its manifest: " + "; ".join(problems) + ".")
    return kind, actual, False
