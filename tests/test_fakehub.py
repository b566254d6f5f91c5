"""The fake hub speaks the protocol of the real huggingface_hub client (so the scan tests test the real client)."""

import numpy as np
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from tests.fakehub import model_index, write_model


@pytest.fixture
def populated(fake_hub, tmp_path):
    rng = np.random.default_rng(0)
    for i in range(5):
        folder = write_model(
            tmp_path / f"m{i}",
            {"a.weight": rng.standard_normal((20, 10)), "b.weight": rng.standard_normal((30, 10))},
            shards=2 if i == 0 else 1,
            card={"tags": ["demo"], "base_model": "acme/base", "model-index": model_index(f"m{i}", 0.5 + i / 10)},
        )
        fake_hub.add_folder(f"acme/m{i}", folder)
    return fake_hub


def test_list_models_paginates_and_filters(populated):
    api = HfApi(endpoint=populated.endpoint)
    assert [m.id for m in api.list_models(author="acme")] == [f"acme/m{i}" for i in range(5)]
    assert populated.count("GET", "/api/models") >= 3  # page size 2: three pages
    assert [m.id for m in api.list_models(search="m3")] == ["acme/m3"]
    assert len(list(api.list_models(filter="base_model:acme/base"))) == 5
    assert len(list(api.list_models(author="acme", limit=3))) == 3


def test_model_info_card_and_old_revisions(populated, tmp_path):
    api = HfApi(endpoint=populated.endpoint)
    info = api.model_info("acme/m1", files_metadata=True)
    assert info.card_data.eval_results[0].metric_value == pytest.approx(0.6)
    old = info.sha
    new = populated.commit("acme/m1", {"extra.txt": b"hello"})
    assert api.model_info("acme/m1").sha == new != old
    assert api.model_info("acme/m1", revision=old).sha == old
    path = hf_hub_download(
        "acme/m1", "model.safetensors", revision=old, endpoint=populated.endpoint, local_dir=tmp_path / "dl"
    )
    assert path.endswith("model.safetensors")


def test_safetensors_metadata_by_range_requests(populated):
    api = HfApi(endpoint=populated.endpoint)
    sharded = api.get_safetensors_metadata("acme/m0")
    assert sharded.sharded and set(sharded.weight_map) == {"a.weight", "b.weight"}
    single = api.get_safetensors_metadata("acme/m2")
    assert single.files_metadata["model.safetensors"].tensors["b.weight"].shape == [30, 10]
    assert any(r for m, p, r in populated.requests if r and "m2/resolve" in p)


def test_errors_map_to_the_client_exceptions(populated):
    api = HfApi(endpoint=populated.endpoint)
    populated.hide("acme/m4")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/m4")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("acme/m1", revision="deadbeef" * 5)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("acme/m1", "nope.bin", endpoint=populated.endpoint)


def test_truncated_body_is_an_error_not_a_short_file(populated, tmp_path):
    populated.truncate(count=10, match="model.safetensors")
    with pytest.raises(Exception):  # noqa: B017 - the client raises its own transport/consistency error
        hf_hub_download("acme/m2", "model.safetensors", endpoint=populated.endpoint, local_dir=tmp_path / "t")
    assert not (tmp_path / "t" / "model.safetensors").exists()


def test_ignored_range_still_gives_the_right_header(populated):
    populated.ignore_range()
    meta = HfApi(endpoint=populated.endpoint).get_safetensors_metadata("acme/m2")
    assert meta.files_metadata["model.safetensors"].tensors["a.weight"].shape == [20, 10]
