"""The fake hub speaks the protocol of the real huggingface_hub client (so the scan tests test the real client)."""

import numpy as np
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from flows.scanning.families import SORT_KEYS
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
    populated.page_size = 2
    assert [m.id for m in api.list_models(author="acme")] == [f"acme/m{i}" for i in range(5)]
    assert populated.count("GET", "/api/models") == 3  # page size 2: three pages
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


def test_a_listing_holds_no_sha_unless_asked(populated):
    """The Hub's documented listing: no sha or lastModified by default; expand returns only what it names (and the
    ids); full adds sha, lastModified and file names without sizes."""
    import httpx2

    plain = httpx2.get(f"{populated.endpoint}/api/models", params={"author": "acme"}).json()
    assert set(plain[0]) == {
        "_id", "id", "likes", "downloads", "trendingScore", "private", "tags", "pipeline_tag", "library_name",
        "createdAt",
    }  # fmt: skip
    expanded = httpx2.get(
        f"{populated.endpoint}/api/models", params={"author": "acme", "expand": ["sha", "lastModified"]}
    ).json()
    assert set(expanded[0]) == {"_id", "id", "sha", "lastModified"}
    assert expanded[0]["sha"] == populated.repos["acme/m0"].head.sha
    full = httpx2.get(f"{populated.endpoint}/api/models", params={"author": "acme", "full": "true"}).json()
    assert {"sha", "lastModified", "siblings"} <= set(full[0])
    assert all(set(sibling) == {"rfilename"} for sibling in full[0]["siblings"])
    # Through the client: a plain listing leaves ModelInfo.sha empty, expand fills it.
    api = HfApi(endpoint=populated.endpoint)
    assert {m.sha for m in api.list_models(author="acme")} == {None}
    assert None not in {m.sha for m in api.list_models(author="acme", expand=["sha"])}


def test_model_info_has_file_sizes_only_when_asked(populated):
    api = HfApi(endpoint=populated.endpoint)
    assert {s.size for s in api.model_info("acme/m1").siblings} == {None}
    assert None not in {s.size for s in api.model_info("acme/m1", files_metadata=True).siblings}


def test_listings_sort_by_every_documented_key_largest_first(populated):
    api = HfApi(endpoint=populated.endpoint)
    for i, repo in enumerate(f"acme/m{i}" for i in range(5)):
        populated.repos[repo].downloads = [5, 1, 4, 2, 3][i]
        populated.repos[repo].likes = [1, 5, 2, 4, 3][i]
        populated.repos[repo].trending_score = [2.0, 1.0, 5.0, 3.0, 4.0][i]
    for i in range(5):  # created a minute apart, m4 last
        populated.repos[f"acme/m{i}"].commits[0].created = 1_700_000_000 + 60 * i
    populated.commit("acme/m2", {"extra.txt": b"newest commit"})
    ids = {sort: [m.id for m in api.list_models(author="acme", sort=sort)] for sort in SORT_KEYS}
    assert ids["downloads"] == ["acme/m0", "acme/m2", "acme/m4", "acme/m3", "acme/m1"]
    assert ids["likes"] == ["acme/m1", "acme/m3", "acme/m4", "acme/m2", "acme/m0"]
    assert ids["trending_score"] == ["acme/m2", "acme/m4", "acme/m3", "acme/m0", "acme/m1"]
    assert ids["last_modified"][0] == "acme/m2"  # the newest commit
    assert ids["created_at"][0] == "acme/m4"  # the newest repo


def test_a_quota_answers_as_the_hub_does(populated):
    """Per bucket, a fixed window: every answer carries RateLimit and RateLimit-Policy; past the quota, 429 with
    r=0 and the seconds to the window's end, and no Retry-After (huggingface_hub issue #3553)."""
    import httpx2

    populated.quota("api", 3, 30)
    url = f"{populated.endpoint}/api/models/acme/m1"
    answers = [httpx2.get(url) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    remaining = [a.headers["RateLimit"].split(";")[1] for a in answers]
    assert remaining == ["r=2", "r=1", "r=0", "r=0"]
    assert answers[0].headers["RateLimit-Policy"] == '"fixed window";"api";q=3;w=30'
    seconds = int(answers[3].headers["RateLimit"].split("t=")[1])
    assert 1 <= seconds <= 30 and "Retry-After" not in answers[3].headers
    # Another bucket has its own budget (none here): downloads still go through.
    assert httpx2.head(f"{populated.endpoint}/acme/m1/resolve/main/README.md").status_code == 200
    assert populated.limited_by_bucket == {"api": 1} and populated.requests_by_bucket["resolvers"] == 1


def test_rate_limit_fault_as_the_hub_or_as_a_proxy(populated):
    import httpx2

    populated.rate_limit("2", match="/api/models/acme/m1")
    response = httpx2.get(f"{populated.endpoint}/api/models/acme/m1")
    assert response.status_code == 429 and response.headers["RateLimit"] == '"api";r=0;t=2'
    assert "Retry-After" not in response.headers
    assert httpx2.get(f"{populated.endpoint}/api/models/acme/m1").status_code == 200  # a burst of one
    populated.rate_limit("2", match="/api/models/acme/m1", retry_after=True)
    response = httpx2.get(f"{populated.endpoint}/api/models/acme/m1")
    assert (
        response.status_code == 429 and response.headers["Retry-After"] == "2" and "RateLimit" not in response.headers
    )


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


def test_close_early_is_a_short_body_only_its_content_range_tells(populated):
    """No Content-Length and the connection closed halfway: the client reads a body that ends cleanly; only a
    Range answer's Content-Range says it is short."""
    import httpx2

    populated.close_early(count=2, match="model.safetensors")
    url = f"{populated.endpoint}/acme/m2/resolve/main/model.safetensors"
    size = int(httpx2.head(url).headers["Content-Length"])
    whole = httpx2.get(url, timeout=5)
    assert (whole.status_code, len(whole.content), "Content-Length" in whole.headers) == (200, size // 2, False)
    ranged = httpx2.get(url, headers={"Range": "bytes=0-99"}, timeout=5)
    assert (ranged.status_code, len(ranged.content)) == (206, 50)
    assert ranged.headers["Content-Range"] == f"bytes 0-99/{size}"
    assert len(httpx2.get(url, timeout=5).content) == size  # the fault is spent


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
