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


def test_rate_limit_answers_429_with_retry_after(populated):
    import httpx2

    populated.rate_limit("2", match="/api/models/acme/m1")
    response = httpx2.get(f"{populated.endpoint}/api/models/acme/m1")
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert httpx2.get(f"{populated.endpoint}/api/models/acme/m1").status_code == 200  # a burst of one


def test_flapping_5xx_fails_one_request_in_three(populated):
    import httpx2

    populated.fail_5xx(count=None, every=3, match="/api/models/acme")
    codes = [httpx2.get(f"{populated.endpoint}/api/models/acme/m1").status_code for _ in range(6)]
    assert codes == [200, 200, 503, 200, 200, 503]


def test_stall_after_headers_is_a_read_timeout(populated):
    import httpx2

    populated.stall_after_headers(match="model.safetensors")
    url = f"{populated.endpoint}/acme/m2/resolve/main/model.safetensors"
    with pytest.raises(httpx2.ReadTimeout), httpx2.stream("GET", url, timeout=0.5) as response:
        assert response.status_code == 200  # the headers came
        response.read()


def test_stall_never_answers(populated):
    import httpx2

    populated.stall(match="/api/models/acme/m1", count=1)
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.get(f"{populated.endpoint}/api/models/acme/m1", timeout=0.5)


@pytest.mark.parametrize("fault", ["reset", "truncate"])
def test_body_faults_break_the_body_mid_way(populated, fault):
    import httpx2

    getattr(populated, fault)(count=1, match="model.safetensors")
    url = f"{populated.endpoint}/acme/m2/resolve/main/model.safetensors"
    with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
        httpx2.get(url, timeout=5)
    assert len(httpx2.get(url, timeout=5).content) == int(httpx2.head(url).headers["Content-Length"])


def test_gated_repo_answers_401_then_403_then_the_file(populated, tmp_path):
    from huggingface_hub.errors import GatedRepoError

    populated.gate("acme/m2", "hf_good")
    api = HfApi(endpoint=populated.endpoint)
    assert api.model_info("acme/m2").gated == "manual"  # the info stays public, as on the Hub
    for token, status in ((False, 401), ("hf_bad", 403)):
        with pytest.raises(GatedRepoError) as raised:
            hf_hub_download("acme/m2", "model.safetensors", endpoint=populated.endpoint, token=token)
        assert raised.value.response.status_code == status
    path = hf_hub_download(
        "acme/m2", "model.safetensors", endpoint=populated.endpoint, token="hf_good", local_dir=tmp_path / "ok"
    )
    assert path.endswith("model.safetensors")


def test_redirect_to_another_port_is_another_host_for_httpx(populated):
    """The CDN server differs from the hub only by its port: httpx2 must treat it as another origin and drop the
    Authorization header when following the hub's redirect there (the Range header goes along)."""
    import httpx2

    populated.redirect_downloads(match=".safetensors")
    with httpx2.Client(follow_redirects=True) as client:
        response = client.get(
            f"{populated.endpoint}/acme/m2/resolve/main/model.safetensors",
            headers={"Authorization": "Bearer hf_secret", "Range": "bytes=0-7"},
        )
    assert response.status_code == 206 and len(response.content) == 8
    assert str(response.url).startswith(populated.cdn_endpoint)
    assert ("/acme/m2/resolve/main/model.safetensors", "Bearer hf_secret") in populated.auth
    assert populated.cdn_auth and all(auth is None for _, auth in populated.cdn_auth)


def test_lying_hub_answers_a_hostile_sha(populated):
    populated.lie_about_sha("acme/m1", "../../../tmp/x")
    assert HfApi(endpoint=populated.endpoint).model_info("acme/m1").sha == "../../../tmp/x"
