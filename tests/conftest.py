"""Shared fixtures: tiny real models built at test time, a fake encoder, the shared data sets."""

from __future__ import annotations

import inspect
import os
import tempfile
from pathlib import Path

import pytest

from tests.fakes import FakeEncoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tests never reach for the network
os.environ.setdefault("SIMSEARCH_LOCK_TIMEOUT", "10")
# ONNX exports made by the tests go to a throwaway cache, never the user's ~/.cache/simsearch.
os.environ.setdefault("SIMSEARCH_CACHE", tempfile.mkdtemp(prefix="simsearch-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

_WORDS = (
    "the a an is are was of to and in on for with cat dog sat mat bread fresh stale keep how "
    "search engine query document vector fast slow good bad model token korean english long "
    "word ##s ##ing ##ed"
).split()
# Hangul syllables common enough to build Korean test sentences from.
_HANGUL = list("서울지하철은편리하다김치찌개를끓이는법오늘날씨가좋고내일비올까요한국어문장검색엔진")


def write_vocab(directory: Path) -> Path:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    punctuation = list(".,!?'\"-:;()")
    vocab = list(dict.fromkeys(specials + punctuation + _WORDS + _HANGUL + [f"##{c}" for c in _HANGUL]))
    file = directory / "vocab.txt"
    file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return file


def make_tiny_model(directory: Path, kind: str = "bert", positions: int = 300, pooler: bool = True) -> Path:
    """Save a randomly initialised tiny BERT-family checkpoint with a WordPiece vocab."""
    import torch
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel, PreTrainedModel

    # transformers 5 keeps BertTokenizerFast (4.x's name) as a runtime alias its types do not show
    from transformers import BertTokenizerFast  # type: ignore[attr-defined]

    torch.manual_seed(0)
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = write_vocab(directory)
    vocab_size = len(vocab_file.read_text(encoding="utf-8").splitlines())
    if kind == "bert":
        model: PreTrainedModel
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=positions,
            initializer_range=0.5,
        )
        model = BertModel(config, add_pooling_layer=pooler)
    elif kind == "distilbert":
        distil = DistilBertConfig(
            vocab_size=vocab_size,
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=positions,
            initializer_range=0.5,
        )
        model = DistilBertModel(distil)
    else:
        raise ValueError(kind)
    model.save_pretrained(directory)
    # transformers 5 takes the WordPiece file as `vocab`, 4.x as `vocab_file`.
    takes_vocab = "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters
    tokenizer = BertTokenizerFast(
        **{"vocab" if takes_vocab else "vocab_file": str(vocab_file)},
        do_lower_case=True,
        model_max_length=positions,
    )
    assert tokenizer.tokenize("the cat") == ["the", "cat"], "test vocab not loaded"
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with 300 positions (like kcbert) and an English + Korean WordPiece vocab."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DistilBERT-style model: no token_type_ids, no pooler."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-distilbert"), kind="distilbert")


@pytest.fixture(scope="session")
def bundled_encoder():
    """The real default model (sentence-transformers/all-MiniLM-L6-v2), loaded once."""
    from simsearch.encode.torch_encoder import Encoder

    return Encoder()


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def index_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh index home, also exported as SIMSEARCH_INDEX_DIR."""
    home = tmp_path / "indexes"
    monkeypatch.setenv("SIMSEARCH_INDEX_DIR", str(home))
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repo (CI has it; a user's clone may not)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"evaluation data not found at {SHARED_DATA} (it sits beside the repo in CI)")
    return SHARED_DATA
