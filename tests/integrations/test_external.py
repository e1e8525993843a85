"""Foreign embeddings and the server's model worker are encoders: the Encoder Protocol, no casts."""

from __future__ import annotations

import numpy as np

from simsearch.encode import Encoder
from simsearch.integrations.external import ExternalEncoder, GivenVectors
from simsearch.server.worker import ModelWorker
from tests.fakes import FakeEncoder


def test_an_external_embedding_is_an_encoder_that_learns_its_dimension() -> None:
    encoder: Encoder = ExternalEncoder(lambda texts: [[3.0, 4.0]] * len(texts), "langchain", "pkg.Emb")
    assert isinstance(encoder, Encoder)
    assert (encoder.model_id, str(encoder.model_path)) == ("langchain:pkg.Emb", "langchain:pkg.Emb")
    assert (encoder.pooling, encoder.precision, encoder.max_length, encoder.dim) == (
        "external",
        "external",
        None,
        0,
    )
    vectors, cut = encoder.encode_counting(["a", "b"])
    assert np.allclose(vectors, [[0.6, 0.8], [0.6, 0.8]]) and cut == 0
    assert encoder.dim == 2
    assert isinstance(encoder, ExternalEncoder)
    assert encoder.embedding_section == {"kind": "langchain", "class": "pkg.Emb", "dim": 2}


def test_given_vectors_are_an_encoder() -> None:
    given: Encoder = GivenVectors("haystack", "haystack.Document.embedding", 2)
    assert isinstance(given, GivenVectors) and given.dim == 2
    with given.giving(["x"], [[0.0, 2.0]]):
        assert np.allclose(given.encode(["x"]), [[0.0, 1.0]])


def test_the_model_worker_is_the_encoder_it_runs() -> None:
    fake = FakeEncoder()
    worker: Encoder = ModelWorker(fake, model_id="named/by-manifest")
    try:
        assert isinstance(worker, Encoder)
        assert worker.model_id == "named/by-manifest"
        assert (worker.model_path, worker.pooling, worker.dim, worker.max_length, worker.precision) == (
            fake.model_path,
            fake.pooling,
            fake.dim,
            fake.max_length,
            fake.precision,
        )
        assert np.allclose(worker.encode(["some words"]), fake.encode(["some words"]))
    finally:
        assert isinstance(worker, ModelWorker)
        worker.close()
