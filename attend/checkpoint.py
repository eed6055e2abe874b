"""Model folders: safetensors weights, YAML config, JSON vocabularies, atomic writes, safe loads.

A model folder holds everything `attend translate` needs and nothing that runs
code when loaded:

    config.yaml               the full, validated config
    vocab.json                source and target token lists
    tokenizers.json           how text becomes tokens (+ src.spm / tgt.spm for subwords)
    model.safetensors         the best weights so far (what translate uses)
    meta.json                 step and validation scores of those weights
    checkpoints/step-N/       the last N training states, for --resume
    train.log, metrics.jsonl  what happened

Every file is written to a temporary name, fsynced and renamed, so a crash
leaves either the old file or the new one. Weights carry a checksum of their
tensor data in their own header, so a damaged file is reported instead of
loaded.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from attend.config import Config, config_from_dict, config_to_yaml
from attend.data.tokenizers import Tokenizer, tokenizer_from_state
from attend.data.vocab import Vocab
from attend.errors import AttendError
from attend.models import Seq2Seq, build_model

WEIGHTS, META, CONFIG, VOCAB, TOKENIZERS = "model.safetensors", "meta.json", "config.yaml", "vocab.json", "tokenizers.json"
TRAINER_STATE = "trainer.pt"
ATTEND_KEY = "attend"  # the safetensors metadata entry with attend's own: tied-weight aliases, data checksum


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` so that readers see the old or the new file, never half of one."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = _temporary_beside(path)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        _raise_unwritable(path, e)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_text_writer(path: str | Path | None, keep: Iterable[str | Path | None] = ()):
    """A write(text) function for streaming output: to stdout, or to a temporary file that replaces `path`
    only when the block finishes without error, so a failed run never leaves a half-written file. A name
    ending in .gz is written gzip-compressed, as such a name is read.

    `keep` names the command's inputs (files, and model folders): an output that is one of them, or lies in
    one, is refused before anything is written. A link is followed, an existing file keeps its permissions, and
    what is not a regular file (/dev/null, a named pipe) is written into as it is."""
    if path is None:
        def write(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        yield write
        return
    path = Path(path)
    if path.is_dir():
        raise AttendError(f"{path}: is a folder; --output takes the name of a file")
    descriptor = _open_descriptor(path)
    if descriptor is not None:  # /dev/stdout and the like: written where they point, appended as the shell set
        try:
            duplicate = os.dup(descriptor)
        except OSError as e:
            raise AttendError(f"{path}: cannot write there ({e.strerror})") from None
        with os.fdopen(duplicate, "w", encoding="utf-8", newline="") as stream:
            if stat.S_ISREG(os.fstat(duplicate).st_mode):  # redirected to a file, which must not be an input
                refuse_an_input(f"/proc/self/fd/{duplicate}", keep)
            yield stream.write
        return
    if path.exists() and not path.is_file():  # a device or a pipe: nothing to replace
        with open(path, "w", encoding="utf-8", newline="") as stream:
            yield stream.write
        return
    path = Path(os.path.realpath(path))  # through a link, to the file it names
    if not path.parent.is_dir():
        raise AttendError(f"{path}: its folder {path.parent} does not exist; create it or choose another --output")
    refuse_an_input(path, keep)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
    handle, temporary = _temporary_beside(path)
    try:
        with os.fdopen(handle, "wb") as raw:
            packed = gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) if path.suffix.lower() == ".gz" else None
            text = io.TextIOWrapper(packed or raw, encoding="utf-8", newline="")
            yield text.write
            if packed is None:
                text.detach()  # flushed into raw, which stays open for fsync
            else:
                text.close()  # closes the gzip layer, which writes its trailer; raw stays open
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException as e:
        Path(temporary).unlink(missing_ok=True)
        _raise_unwritable(path, e)


def _open_descriptor(path: Path) -> int | None:
    """The descriptor that /dev/stdout, /dev/stderr, /dev/fd/N or /proc/self/fd/N names, also through a link
    or as the file standard output or error goes to: opening such a name anew would truncate a file the shell
    redirected to, or renaming over it would replace that file."""
    name = Path(os.path.normpath(path))
    named = {"/dev/stdout": 1, "/dev/stderr": 2}
    if str(name) in named:
        return named[str(name)]
    if str(name.parent) in ("/dev/fd", "/proc/self/fd") and name.name.isdigit():
        return int(name.name)
    try:
        target = os.stat(path)
    except OSError:
        return None
    for descriptor in (1, 2):
        try:
            held = os.fstat(descriptor)
        except OSError:
            continue
        if (held.st_dev, held.st_ino) == (target.st_dev, target.st_ino):
            return descriptor
    return None


def refuse_an_input(output: str | Path, keep: Iterable[str | Path | None]) -> None:
    """An output that would replace one of the command's inputs, or a file of its model folder, is an error."""
    output = Path(os.path.realpath(output))
    for given in filter(None, keep):
        given = Path(given)
        if given.is_dir() and output.is_relative_to(Path(os.path.realpath(given))):
            raise AttendError(f"{output}: lies in the model folder {given}; choose an --output elsewhere")
        if given.is_file() and output.exists() and os.path.samefile(output, given):
            what = "standard input" if str(given) == "/proc/self/fd/0" else given
            raise AttendError(f"{output}: is {what}, which this command reads; choose another --output")


def _temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file in `path`'s folder (so that renaming it over `path` is atomic)."""
    try:
        return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise AttendError(f"{path}: cannot write there ({e.strerror or e})") from None


def _raise_unwritable(path: Path, error: BaseException):
    """Re-raise `error`; a failed write (no permission, a full disk) becomes one line naming the file."""
    if isinstance(error, OSError):
        raise AttendError(f"{path}: cannot write ({error.strerror or error}); the old file, if any, is unchanged") from None
    raise error


def require_new_folder(folder: Path, advice: str) -> None:
    """Refuse to write into a folder that holds anything: a run never mixes its files with another's."""
    if folder.exists() and not folder.is_dir():
        raise AttendError(f"{folder}: is a file; give the name of a new folder")
    if folder.exists() and any(folder.iterdir()):
        raise AttendError(f"{folder}: already exists and is not empty; {advice}")


@contextlib.contextmanager
def new_run_folder(folder: Path):
    """The (new or empty) folder of a training run. If the run fails before its first checkpoint (Ctrl-C
    included, when it comes before the first step), the folder is left as it was found, so the same command
    can simply be run again. A run killed outright leaves a config without weights, which --resume trains
    from the start."""
    existed = folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with run_lock(folder):
            yield folder
    except BaseException:
        if not any((folder / "checkpoints").glob("step-*")):
            if existed:  # emptied, not replaced: a link, ".", and the folder's own permissions stay
                for child in folder.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            else:
                shutil.rmtree(folder, ignore_errors=True)
        raise


@contextlib.contextmanager
def run_lock(folder: Path):
    """Hold `folder` for one training run: a second `attend train` or `--resume` into it while the first runs
    is refused, since both would write its checkpoints and logs. The lock is the system's (flock on the
    folder itself), so it ends with the process, however that ends; where there is none (Windows), no lock."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AttendError(f"{folder}: another attend train is running in it; wait for it, or stop it first") from None
        except OSError:  # a file system without locks on folders (some NFS mounts): train unguarded, as before
            pass
        yield
    finally:
        os.close(handle)


@contextlib.contextmanager
def staged_folder(out: Path):
    """A temporary folder beside `out` that becomes `out` when the block succeeds: `out` appears whole or not
    at all (`out` must be new or empty)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class LoadedModel:
    """A model ready for inference, with what turns text into its inputs and back."""

    config: Config
    model: Seq2Seq
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    src_vocab: Vocab
    tgt_vocab: Vocab
    meta: dict
    path: Path | None = None


def weights_bytes(model: Seq2Seq) -> bytes:
    """safetensors bytes of the state dict; tied tensors are stored once and named as aliases.

    The header carries the sha256 of the tensors, so the file checks itself: no second file has to be
    replaced in step with it, and an interruption between two renames cannot make good weights look corrupt.
    Both live under one metadata key, since safetensors writes several keys in no fixed order and the same
    weights must give the same bytes.
    """
    tensors, aliases, seen = {}, {}, {}
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tensor.shape, tensor.dtype)
        if key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = tensor.detach().cpu().contiguous()
    ours = {"aliases": aliases, "tensors_sha256": _tensors_sha256(tensors)}
    return save_safetensors(tensors, {ATTEND_KEY: json.dumps(ours, sort_keys=True)})


def _tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of each tensor's name, dtype, shape and bytes, in name order: what a weights file must hold."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _safetensors_header(raw: bytes) -> dict:
    """The JSON header of safetensors bytes (tensor offsets, and the metadata entries)."""
    return json.loads(raw[8: 8 + int.from_bytes(raw[:8], "little")])


def load_weights(model: Seq2Seq, path: Path, expected_sha256: str | None = None) -> None:
    """Fill `model` from a safetensors file, checking its checksum and every tensor name and shape.

    The checksum is the one in the file's header; `expected_sha256` (of the whole file, from meta.json) is
    the check of folders written before weights carried their own.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AttendError(f"{path}: weights file is missing; the model folder is incomplete") from None
    try:
        tensors = load_safetensors(raw)
        metadata = _safetensors_header(raw).get("__metadata__", {})
        ours = json.loads(metadata[ATTEND_KEY]) if ATTEND_KEY in metadata else {  # or as earlier versions wrote it
            "aliases": json.loads(metadata.get("aliases", "{}"))}
        aliases = ours["aliases"]
    except (SafetensorError, ValueError, KeyError, TypeError) as e:
        raise AttendError(f"{path}: not a valid safetensors file ({str(e).splitlines()[0]}); retrain or restore it") from None
    if "tensors_sha256" in ours:
        intact = _tensors_sha256(tensors) == ours["tensors_sha256"]
    else:
        intact = not expected_sha256 or hashlib.sha256(raw).hexdigest() == expected_sha256
    if not intact:
        raise AttendError(f"{path}: checksum mismatch, the file is corrupt or was changed; retrain or restore it")
    for alias, source in aliases.items():
        if source in tensors:
            tensors[alias] = tensors[source]
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        detail = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise AttendError(f"{path}: weights do not fit the model in config.yaml ({detail})") from None


def save_static(folder: Path, config: Config, src_tok, tgt_tok, src_vocab: Vocab, tgt_vocab: Vocab) -> None:
    """What does not change during training: config, vocabularies, tokenizers."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / CONFIG, config_to_yaml(config))
    atomic_write(folder / VOCAB, json.dumps({"src": src_vocab.to_list(), "tgt": tgt_vocab.to_list()}, ensure_ascii=False))
    atomic_write(folder / TOKENIZERS, json.dumps({"src": src_tok.state(), "tgt": tgt_tok.state()}))
    for side, tok in (("src", src_tok), ("tgt", tgt_tok)):
        if tok.kind == "subword":
            atomic_write(folder / f"{side}.spm", tok.model_bytes)


def save_weights(folder: Path, model: Seq2Seq, meta: dict) -> None:
    """model.safetensors (which carries its own checksum) and meta.json, each written atomically."""
    atomic_write(folder / WEIGHTS, weights_bytes(model))
    atomic_write(folder / META, json.dumps(meta, indent=1))


def save_training_state(folder: Path, model: Seq2Seq, meta: dict, trainer_state: dict, keep_last: int) -> Path:
    """A resumable checkpoint under checkpoints/step-N, built aside and renamed into place."""
    root = folder / "checkpoints"
    root.mkdir(exist_ok=True)
    for leftover in root.glob(".staging-*"):  # from a save that was killed; nothing else writes here
        shutil.rmtree(leftover, ignore_errors=True)
    final = root / f"step-{meta['step']:08d}"
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    try:
        save_weights(staging, model, meta)
        buffer = _torch_bytes(trainer_state)
        atomic_write(staging / TRAINER_STATE, buffer)
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; the umask decides, as for every file
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in sorted(root.glob("step-*"))[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _torch_bytes(obj) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoints/step-N, or None when the run has saved none yet."""
    found = sorted((Path(folder) / "checkpoints").glob("step-*"))
    return found[-1] if found else None


def load_trainer_state(checkpoint: Path) -> dict:
    """The optimizer/scheduler/RNG state, loaded without unpickling arbitrary objects."""
    path = checkpoint / TRAINER_STATE
    instead = f"delete the folder {checkpoint.name} to resume from the checkpoint before it"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AttendError(f"{path}: missing, so this checkpoint cannot be resumed; {instead}") from None
    except Exception as e:  # torch raises many types for damaged or unsafe files
        raise AttendError(f"{path}: cannot be loaded safely ({str(e).splitlines()[0][:120]}); {instead}") from None
    if not isinstance(state, dict):
        raise AttendError(f"{path}: holds a {type(state).__name__}, not a training state; {instead}")
    return state


def read_json(path: Path) -> dict:
    """A JSON object from a model folder; a missing or damaged file is a one-line error naming it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AttendError(f"{path}: missing; the model folder is incomplete") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AttendError(f"{path}: corrupt JSON ({e}); retrain or restore the model folder") from None
    if not isinstance(data, dict):
        raise AttendError(f"{path}: holds a JSON {type(data).__name__}, not an object; retrain or restore the "
                          "model folder")
    return data


def load_folder_config(folder: Path) -> Config:
    path = folder / CONFIG
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AttendError(f"{path}: missing; is {folder} a model folder written by attend train?") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise AttendError(f"{path}: corrupt ({str(e).splitlines()[0]})") from None
    return config_from_dict(raw, str(path))


def load_tokenizers(folder: Path) -> tuple[Tokenizer, Tokenizer]:
    """The source and target tokenizers saved in a folder (tokenizers.json, plus src/tgt.spm for subwords)."""
    tokenizers = read_json(folder / TOKENIZERS)
    toks = []
    for side in ("src", "tgt"):
        spm = folder / f"{side}.spm"
        state = tokenizers.get(side) if isinstance(tokenizers, dict) else None
        if not isinstance(state, dict):
            raise AttendError(f"{folder / TOKENIZERS}: no '{side}' tokenizer in it; the folder is damaged")
        try:
            toks.append(tokenizer_from_state(state, spm.read_bytes() if spm.exists() else None))
        except (KeyError, TypeError) as e:
            raise AttendError(f"{folder / TOKENIZERS}: lacks {e}; the folder is damaged") from None
        except RuntimeError:  # sentencepiece could not parse the model bytes
            raise AttendError(f"{spm}: not a sentencepiece model; the folder is damaged, retrain or restore it") from None
    return toks[0], toks[1]


def load_vocabs(folder: Path) -> tuple[Vocab, Vocab]:
    """The source and target vocabularies saved in a folder (vocab.json)."""
    vocab = read_json(folder / VOCAB)
    try:
        return Vocab(vocab["src"]), Vocab(vocab["tgt"])
    except KeyError as e:
        raise AttendError(f"{folder / VOCAB}: lacks {e}; the model folder is damaged") from None
    except TypeError as e:
        raise AttendError(f"{folder / VOCAB}: damaged ({e}); the model folder is damaged") from None


def load_model(folder: str | Path, weights_from: Path | None = None) -> LoadedModel:
    """A model folder (or, with `weights_from`, one of its checkpoints) ready for inference."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AttendError(f"{folder}: model folder not found; train one with 'attend train' or 'attend quickstart'")
    if (folder / "model.bin").exists() and not (folder / META).exists():
        raise AttendError(f"{folder}: a CTranslate2 export, not an attend model folder; run it with "
                          f"'attend translate --engine ctranslate2 -m {folder}'")
    if weights_from is None and not (folder / WEIGHTS).exists() and (folder / CONFIG).exists():
        newest = latest_checkpoint(folder)
        if newest is None:
            raise AttendError(f"{folder}: no weights yet (its run stopped before its first checkpoint); "
                              f"'attend train --resume {folder}' trains it from the start")
        raise AttendError(f"{folder}: no validated weights yet (its run stopped before its first validation); "
                          f"'attend average -m {folder} --last 1 --out DIR' makes a model of its {newest.name}, "
                          f"or 'attend train --resume {folder}' trains on")
    config = load_folder_config(folder)
    src_vocab, tgt_vocab = load_vocabs(folder)
    toks = load_tokenizers(folder)
    source = weights_from or folder
    meta = read_json(source / META)
    model = build_model(config.model, len(src_vocab), len(tgt_vocab))
    load_weights(model, source / WEIGHTS, meta.get("sha256"))
    model.eval()
    return LoadedModel(config, model, toks[0], toks[1], src_vocab, tgt_vocab, meta, folder)
